#![doc = include_str!("../README.md")]
//! Arbitor: true ternary neural networks on Burn.
//!
//! This facade re-exports the workspace crates and owns the cross-crate tests.

pub use arbitor_models as models;
pub use arbitor_train as train;
pub use burn_ternary as ternary;
