//! Causal grouped-query softmax attention over a key/value history:
//! queries `[batch, n, heads, head_dim]` (token-major) at positions
//! `start..start + n` read the keys and values `[batch, kv_heads, total,
//! head_dim]` of positions `0..=` their own, each group of `heads /
//! kv_heads` query heads sharing one key/value head (query head `h` reads
//! head `h / (heads / kv_heads)`, as transformers' `repeat_kv`), output
//! token-major like the queries. The reference is the Burn composition
//! (scores matmul, mask, softmax, values matmul and the layout copies:
//! about ten launches on a GPU, differentiable); the kernel is one launch
//! that never writes the scores to memory. The tensor-level entry point is
//! [`functional::causal_attention`](crate::functional::causal_attention).

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;
