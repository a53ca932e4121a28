//! Ternary 1-D convolution (unfold + ternary matmul) and its transpose, and
//! the fused forward convolution of inference (epilogue and GELU copy in the
//! same launch).

pub(crate) mod backward;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;

/// The CubeCL conv kernels with an explicit register block (4 or 8; `None`:
/// the launch rule), for checks and benchmarks: `kernel_forward(x, trits,
/// scale, rows, geometry, block)`, `kernel_fused_forward(x, trits, scale,
/// rows, geometry, epilogue, gelu_copy, block)`, `kernel_input_grad(grad_y,
/// trits, scale, geometry, input_len, block)`.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
#[doc(hidden)]
pub use kernel::{
    forward as kernel_forward, fused_forward as kernel_fused_forward,
    input_grad as kernel_input_grad,
};
