//! Ternary scale matmul `y = x · (diag(s) · T)ᵀ`.

pub(crate) mod backward;
pub mod reference;
#[cfg(test)]
mod tests;
