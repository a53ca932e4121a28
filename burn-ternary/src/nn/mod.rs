//! Ternary layers, built the Burn way: `XxxConfig::new(..).init(&device)`, then `forward`.

mod conv1d;
mod conv_transpose1d;
mod embedding;
mod linear;
mod weight;

pub use conv1d::*;
pub use conv_transpose1d::*;
pub use embedding::*;
pub use linear::*;
pub use weight::*;
