//! The gate of BitNet's MLP, `relu(gate)² · up`, element-wise. The
//! reference is the Burn composition (four launches on a GPU: the
//! comparison and fill of `relu`, the square, the product;
//! differentiable); the kernel is one launch. The tensor-level entry point
//! is [`functional::relu2_gate`](crate::functional::relu2_gate).

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;
