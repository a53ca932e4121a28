//! Fused denoise step `latent' = (latent − (1 − α)·ε̂) / √α`. The
//! tensor-level entry point is
//! [`functional::denoise_step`](crate::functional::denoise_step).

pub(crate) mod backward;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;
