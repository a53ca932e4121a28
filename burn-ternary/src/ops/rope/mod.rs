//! Rotary position embedding in the rotate-half convention (Llama, BitNet):
//! each head's first and second halves form the rotated pairs,
//! `x · cos + rotate_half(x) · sin` with `rotate_half([a, b]) = [−b, a]`.
//! The reference is the Burn composition (six launches on a GPU,
//! differentiable); the kernel is one launch. The tensor-level entry point
//! is [`functional::rotary_embedding`](crate::functional::rotary_embedding).

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;
