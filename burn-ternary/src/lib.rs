#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod audit;
pub mod backend;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod cube;
pub mod error;
pub mod io;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod packing;
mod probe;
mod sm_count;
pub mod visit;

pub use backend::{
    Conv1dGeometry, TernaryAutodiffBackend, TernaryBackend, TernaryPrimitive, TernaryState,
};
pub use error::{TernaryError, TernaryResult};
pub use probe::device_available;
pub use sm_count::{set_sm_count_hint, SM_COUNT_ENV};
