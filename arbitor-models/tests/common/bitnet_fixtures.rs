//! The BitNet checkpoint fixtures (`tests/fixtures/bitnet/`, written by
//! `scripts/hf/make_bitnet_fixtures.py`) and their transformers reference
//! logits, shared by the CPU and GPU test binaries.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

/// The directory of the fixture `name` (`packed_a`, `latent_b`, …).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bitnet")
        .join(name)
}

/// The reference `ids` and `logits` transformers wrote for a fixture.
pub fn reference(name: &str) -> (Vec<i64>, [usize; 2], Vec<f32>) {
    let bytes = std::fs::read(fixture(name).join("reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let ids = st.tensor("ids").unwrap();
    let shape = [ids.shape()[0], ids.shape()[1]];
    let ids: Vec<i64> = ids
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let logits: Vec<f32> = st
        .tensor("logits")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (ids, shape, logits)
}

/// Largest absolute difference relative to the largest reference magnitude.
pub fn max_relative(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    ours.iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}
