//! Reference squared-ReLU gate: Burn tensor ops.

use burn::tensor::{activation::relu, backend::Backend, ops::FloatTensor};

use crate::ops::{float, prim};

/// `relu(gate)² · up` for `gate`, `up`: `[rows, cols]`.
pub fn forward<B: Backend>(gate: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
    prim(relu(float::<B, 2>(gate)).powi_scalar(2) * float::<B, 2>(up))
}
