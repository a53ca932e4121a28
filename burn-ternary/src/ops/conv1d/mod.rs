//! Ternary 1-D convolution (unfold + ternary matmul) and its transpose.

pub(crate) mod backward;
pub mod reference;
#[cfg(test)]
mod tests;
