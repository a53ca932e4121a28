//! Reference causal grouped-query attention: Burn tensor ops.

use burn::tensor::{activation::softmax, backend::Backend, ops::FloatTensor, Int, Tensor};

use crate::ops::{float, prim};

/// `softmax(scale · q·kᵀ, causal) · v` for token-major `q: [batch, n, heads,
/// head_dim]` at positions `start..start + n` over `keys`, `values`:
/// `[batch, kv_heads, total, head_dim]`; token-major output (see
/// [`super`]).
pub fn forward<B: Backend>(
    q: FloatTensor<B>,
    keys: FloatTensor<B>,
    values: FloatTensor<B>,
    start: usize,
    scale: f64,
) -> FloatTensor<B> {
    let q = float::<B, 4>(q);
    let (keys, values) = (float::<B, 4>(keys), float::<B, 4>(values));
    let [batch, n, heads, head_dim] = q.dims();
    let [_, kv_heads, total, _] = keys.dims();
    let rep = heads / kv_heads;
    let device = q.device();
    // The `rep` query heads of a group are stacked as rows of one matmul
    // against their shared key/value head.
    let q = q
        .swap_dims(1, 2)
        .reshape([batch, kv_heads, rep * n, head_dim]);
    let scores = q.matmul(keys.swap_dims(2, 3)).mul_scalar(scale);
    let position = Tensor::<B, 1, Int>::arange(0..total as i64, &device)
        .reshape([1, total])
        .expand([n, total]);
    let own = Tensor::<B, 1, Int>::arange(start as i64..(start + n) as i64, &device)
        .reshape([n, 1])
        .expand([n, total]);
    let blocked = position
        .greater(own)
        .reshape([1, 1, 1, n, total])
        .expand([batch, kv_heads, rep, n, total])
        .reshape([batch, kv_heads, rep * n, total]);
    let weights = softmax(scores.mask_fill(blocked, -1e30), 3);
    prim(
        weights
            .matmul(values)
            .reshape([batch, heads, n, head_dim])
            .swap_dims(1, 2),
    )
}
