#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod audit;
pub mod backend;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod cube;
pub mod error;
pub mod functional;
pub mod inference;
pub mod io;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub mod kernel_cache;
pub mod launch_count;
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
pub use error::{TernaryError, TernaryResult};
pub use inference::without_update_memory;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub use kernel_cache::{use_persistent_kernel_cache, use_persistent_kernel_cache_with_log};
pub use nn::{
    TernaryConv1d, TernaryConv1dConfig, TernaryConvTranspose1d, TernaryConvTranspose1dConfig,
    TernaryEmbedding, TernaryEmbeddingConfig, TernaryLinear, TernaryLinearConfig,
};
pub use optim::{TernaryOptimizer, TernaryOptimizerConfig};
pub use probe::device_available;
pub use sm_count::{set_sm_count_hint, SM_COUNT_ENV};
pub use types::{Conv1dGeometry, ConvEpilogue, TernaryPrimitive, TernaryState};
pub use weight::TernaryWeight;
