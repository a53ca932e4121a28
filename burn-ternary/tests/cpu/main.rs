//! The CPU integration tests of `burn-ternary`, in one test binary: each
//! binary links and monomorphizes the whole Burn stack again, so one binary
//! instead of two shortens `cargo test` (CI builds on two cores).

mod inference;
mod optimizer;
mod state;
