//! Packed ternary embedding gather.

pub(crate) mod backward;
pub mod reference;
#[cfg(test)]
mod tests;
