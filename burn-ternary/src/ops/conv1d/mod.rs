//! Ternary 1-D convolution (unfold + ternary matmul) and its transpose.

pub(crate) mod backward;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;

/// The CubeCL conv kernels with an explicit register block (4 or 8; `None`:
/// the launch rule), for checks and benchmarks: `kernel_forward(x, trits,
/// scale, rows, geometry, block)`, `kernel_input_grad(grad_y, trits, scale,
/// geometry, input_len, block)`.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
#[doc(hidden)]
pub use kernel::{forward as kernel_forward, input_grad as kernel_input_grad};
