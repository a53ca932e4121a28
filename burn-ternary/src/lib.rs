#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod audit;
pub mod backend;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod cube;
pub mod error;
pub mod functional;
pub mod io;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod packing;
mod probe;
mod sm_count;
pub mod types;
pub mod visit;
mod weight;

pub use audit::{audit, AuditReport};
pub use backend::{TernaryAutodiffBackend, TernaryBackend};
/// Smallest batch `m` for which f16/bf16 activations on the CubeCL backends
/// take the unpack + tensor-core matmul route of the ternary matmul.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub use cube::TENSOR_CORE_MIN_M;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub use cube::{
    set_conv_block, set_f32_tensor_cores, set_fused_gemv, set_fused_gemv_shared_limit,
    set_gemv_ablation, set_gemv_early_limb_loads, set_gemv_row_groups, set_streamed_gemv,
    set_tensor_core_gemv, set_tiled_block, streamed_gemv_launches, tensor_core_matmul,
    tune_plane_gemv, tune_streamed_gemv, tune_tensor_core_gemv, with_f32_tensor_cores,
    F32TensorCores, MMA_GEMV_MAX_M,
};
pub use error::{TernaryError, TernaryResult};
pub use nn::{
    TernaryConv1d, TernaryConv1dConfig, TernaryConvTranspose1d, TernaryConvTranspose1dConfig,
    TernaryEmbedding, TernaryEmbeddingConfig, TernaryLinear, TernaryLinearConfig,
};
pub use optim::{TernaryOptimizer, TernaryOptimizerConfig};
pub use probe::device_available;
pub use sm_count::{set_sm_count_hint, SM_COUNT_ENV};
pub use types::{Conv1dGeometry, TernaryPrimitive, TernaryState};
pub use weight::TernaryWeight;
