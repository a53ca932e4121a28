//! The CPU (Flex) integration tests of `arbitor-models`, in one test binary:
//! each binary links and monomorphizes the whole Burn stack again, so one
//! binary instead of three shortens `cargo test` (CI builds on two cores).
//! The GPU smoke test stays apart (`tests/arb_gpu.rs`): it is built alone for
//! CUDA (`--test arb_gpu`).

mod arb_training;
mod bitnet_hf;
mod sidecars_encoders;
mod sidecars_vae_codec;
