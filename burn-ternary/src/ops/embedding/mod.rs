//! Packed ternary embedding gather.

pub(crate) mod backward;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;
