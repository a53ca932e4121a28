//! Ternary scale matmul `y = x · (diag(s) · T)ᵀ`.
//!
//! `reference.rs` is the implementation on every backend; the CPU backends
//! (NdArray, Flex) run their forward for a few activation rows through
//! `host.rs` (see [`host::forward`]); on the CubeCL
//! backends (CUDA, WGPU) [`route::route`] picks one of the kernels below
//! (its docs list which runs when) and `launch` runs it:
//! * `gemv_mma/`: the forward GEMV for `m <= 16` on CUDA's int8 tensor cores
//!   (exact block-floating-point limbs of the activations);
//! * `gemv.rs`: the FMA GEMVs (plane-reduction and shared-memory forward,
//!   GEMV-transposed input gradient);
//! * `tiled.rs`: the shared-memory tiled FMA kernel, both directions;
//! * `unpack.rs`: the trit decode, and the half-precision route (dense
//!   unpack + Burn's matmul on tensor cores);
//! * `gemm_split.rs`: f32 activations on f16 tensor cores at f32 accuracy.
//!
//! Every kernel takes flat `Array` arguments (the operands are made
//! contiguous first) and its sizes as `u32` scalars: CubeCL sends a
//! `Tensor` argument's shape and strides with every launch, on CUDA as a
//! host-to-device copy of about 4 µs of host time.

pub(crate) mod backward;
pub mod host;
pub mod reference;
pub mod route;
#[cfg(test)]
mod tests;

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod gemm_split;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod gemv;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod gemv_mma;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
#[doc(hidden)]
pub mod launch;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod tiled;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod unpack;

pub use route::{
    DeviceCaps, F32TensorCores, MatmulPolicy, MatmulRoute, MMA_GEMV_MAX_M, TENSOR_CORE_MIN_M,
};
