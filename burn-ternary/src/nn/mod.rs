//! Ternary layers, built the Burn way: `XxxConfig::new(..).init(&device)`,
//! then `forward` (or `try_forward`, which reports bad input as a
//! [`TernaryError`](crate::TernaryError) instead of panicking).
//!
//! | layer | Burn counterpart | forward |
//! | --- | --- | --- |
//! | [`TernaryLinear`] | `Linear` | [`functional::linear`](crate::functional::linear) |
//! | [`TernaryEmbedding`] | `Embedding` | [`functional::embedding`](crate::functional::embedding) |
//! | [`TernaryConv1d`] | `Conv1d` | [`functional::conv1d`](crate::functional::conv1d) |
//! | [`TernaryConvTranspose1d`] | `ConvTranspose1d` | [`functional::conv_transpose1d`](crate::functional::conv_transpose1d) |
//!
//! Each holds one [`TernaryWeight`] and no float parameters, and prints its
//! shape (`println!("{layer}")`).

mod conv1d;
mod conv_transpose1d;
mod embedding;
mod linear;

pub use conv1d::*;
pub use conv_transpose1d::*;
pub use embedding::*;
pub use linear::*;
// The weight and the threshold live below the layers; re-exported here, their old paths.
pub use crate::weight::TernaryWeight;
