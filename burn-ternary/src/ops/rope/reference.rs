//! Reference rotary embedding: Burn tensor ops.

use burn::tensor::{backend::Backend, ops::FloatTensor, Tensor};

use crate::ops::{float, prim};

/// Rotates `x: [batch, n, heads, head_dim]` (token-major) holding positions
/// `start..start + n` by the tables `cos`, `sin`: `[positions, head_dim]`.
pub fn forward<B: Backend>(
    x: FloatTensor<B>,
    cos: FloatTensor<B>,
    sin: FloatTensor<B>,
    start: usize,
) -> FloatTensor<B> {
    let x = float::<B, 4>(x);
    let [_, n, _, d] = x.dims();
    let table = |t: FloatTensor<B>| float::<B, 2>(t).narrow(0, start, n).reshape([1, n, 1, d]);
    let (cos, sin) = (table(cos), table(sin));
    let first = x.clone().narrow(3, 0, d / 2);
    let second = x.clone().narrow(3, d / 2, d / 2);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    prim(x * cos + rotated * sin)
}
