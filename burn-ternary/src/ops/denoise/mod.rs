//! Fused denoise step `latent' = (latent − (1 − α)·ε̂) / √α`. The
//! tensor-level entry point is
//! [`functional::denoise_step`](crate::functional::denoise_step).

pub(crate) mod backward;
pub mod reference;
#[cfg(test)]
mod tests;

/// Old path of [`crate::functional::denoise_step`], kept while callers move.
#[doc(hidden)]
pub use crate::functional::denoise_step;
