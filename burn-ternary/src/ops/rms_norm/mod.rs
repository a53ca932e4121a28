//! RMS normalization of the last dimension with a gain, as Burn's
//! `RmsNorm` computes it: `x / sqrt(mean(x²) + ε) · γ`. The reference is
//! Burn's composition (six launches on a GPU, differentiable); the kernel
//! is one launch. The tensor-level entry point is
//! [`functional::rms_norm`](crate::functional::rms_norm).

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;
