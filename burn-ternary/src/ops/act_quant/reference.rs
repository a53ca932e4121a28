//! Reference per-token activation quantization: Burn tensor ops.

use burn::tensor::{backend::Backend, ops::FloatTensor};

use crate::ops::{float, prim};

/// Smallest row maximum the scale divides by (an all-zero row stays zero).
pub const ABSMAX_FLOOR: f64 = 1e-5;

/// `x: [rows, cols]` to `round(clamp(x · s, −128, 127)) / s` per row, with
/// `s = 127 / max(max_c |x[r, c]|, 1e-5)`; nine element-wise launches and a
/// reduction on a GPU, one kernel in [`kernel`](super::kernel).
pub fn forward<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let x = float::<B, 2>(x);
    let scale = x
        .clone()
        .abs()
        .max_dim(1)
        .clamp_min(ABSMAX_FLOOR)
        .recip()
        .mul_scalar(127.0);
    prim((x * scale.clone()).round().clamp(-128.0, 127.0) / scale)
}
