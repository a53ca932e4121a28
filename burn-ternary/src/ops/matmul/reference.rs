//! Reference ternary matmul: unpack the trits into a dense matrix, then matmul.

use burn::tensor::{backend::Backend, ops::FloatTensor};

use crate::{
    ops::{dense_weight, float, prim},
    types::TernaryPrimitive,
};

/// `x: [m, cols]` to `x · Wᵀ: [m, rows]`.
pub fn forward<B: Backend>(x: FloatTensor<B>, weight: &TernaryPrimitive<B>) -> FloatTensor<B> {
    prim(float::<B, 2>(x).matmul(dense_weight(weight).transpose()))
}

/// `grad_y: [m, rows]` to `grad_y · W: [m, cols]`.
pub fn input_grad<B: Backend>(
    grad_y: FloatTensor<B>,
    weight: &TernaryPrimitive<B>,
) -> FloatTensor<B> {
    prim(float::<B, 2>(grad_y).matmul(dense_weight(weight)))
}

/// `grad_yᵀ · x: [rows, cols]`.
pub fn weight_grad<B: Backend>(x: FloatTensor<B>, grad_y: FloatTensor<B>) -> FloatTensor<B> {
    prim(float::<B, 2>(grad_y).transpose().matmul(float::<B, 2>(x)))
}
