//! BitNet b1.58 checkpoint import on Flex against transformers: tiny
//! randomly initialized models (`scripts/hf/make_bitnet_fixtures.py`,
//! fixtures under `tests/fixtures/bitnet/`), packed and latent, one sharded;
//! the imported model's logits against transformers' own (float32), cached
//! decoding and a Burn record round trip of an imported model, and bad
//! checkpoints named.

use std::path::{Path, PathBuf};

use arbitor_models::bitnet::{hf::HfError, BitNetCache, BitNetForCausalLM};
use burn::{
    backend::Flex,
    module::Module,
    record::{BinBytesRecorder, FullPrecisionSettings, Recorder},
    tensor::{Int, Tensor, TensorData},
};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

type B = Flex;

/// Logits must be within this of transformers', relative to the largest
/// reference logit (the bound).
const TOL: f32 = 1e-3;

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bitnet")
        .join(name)
}

/// The reference `ids` and `logits` transformers wrote for a fixture.
pub(crate) fn reference(name: &str) -> (Vec<i64>, [usize; 2], Vec<f32>) {
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
pub(crate) fn max_relative(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    ours.iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn logits(model: &BitNetForCausalLM<B>, ids: &[i64], shape: [usize; 2]) -> Vec<f32> {
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.to_vec(), shape), &Default::default());
    model.forward(ids).into_data().convert::<f32>().to_vec().unwrap()
}

fn check_fixture(name: &str) -> f32 {
    let model = BitNetForCausalLM::<B>::from_hf_dir(&fixture(name), &Default::default()).unwrap();
    let (ids, shape, expected) = reference(name);
    let err = max_relative(&logits(&model, &ids, shape), &expected);
    println!("{name}: max relative logit error vs transformers {err:.2e}");
    assert!(err < TOL, "{name}: logits off by {err:e} (relative), bound {TOL:e}");
    err
}

#[test]
fn packed_checkpoints_match_transformers() {
    check_fixture("packed_a");
    // Sharded (model.safetensors.index.json), untied lm_head.
    check_fixture("packed_b");
}

#[test]
fn latent_checkpoints_match_transformers() {
    check_fixture("latent_a");
    check_fixture("latent_b");
}

/// The packed fixture of `a` is the ternarization of the latent one's master
/// weights: importing either gives the same trits and scales.
#[test]
fn latent_import_ternarizes_as_upstream_and_keeps_the_residual() {
    let device = Default::default();
    let packed = BitNetForCausalLM::<B>::from_hf_dir(&fixture("packed_a"), &device).unwrap();
    let latent = BitNetForCausalLM::<B>::from_hf_dir(&fixture("latent_a"), &device).unwrap();
    let mut nonzero_memory = 0;
    for (p, l) in packed.ternary_linears().iter().zip(latent.ternary_linears()) {
        assert_eq!(p.weight.trits_host(), l.weight.trits_host());
        assert!(p.weight.memory_host().iter().all(|&m| m == 0));
        nonzero_memory += l.weight.memory_host().iter().filter(|&&m| m != 0).count();
        assert!(l.weight.memory_host().iter().all(|m| (-64..=64).contains(m)));
    }
    // Gaussian weights leave a residual almost everywhere.
    assert!(nonzero_memory > 1000, "{nonzero_memory} nonzero memory cells");
    let scales = |m: &BitNetForCausalLM<B>| -> Vec<f32> {
        m.model
            .layers
            .iter()
            .flat_map(|l| {
                let a = l.self_attn.weight_scale.as_ref().unwrap().val();
                let b = l.mlp.weight_scale.as_ref().unwrap().val();
                let mut v: Vec<f32> = a.into_data().to_vec().unwrap();
                v.extend(b.into_data().to_vec::<f32>().unwrap());
                v
            })
            .collect()
    };
    let (sp, sl) = (scales(&packed), scales(&latent));
    for (a, b) in sp.iter().zip(&sl) {
        assert!((a - b).abs() <= 1e-6 * a.abs(), "weight_scale {a} vs {b}");
    }
}

#[test]
fn imported_model_decodes_with_the_cache_and_survives_a_record_round_trip() {
    let device = Default::default();
    let model = BitNetForCausalLM::<B>::from_hf_dir(&fixture("packed_b"), &device).unwrap();
    let (ids, shape, _) = reference("packed_b");
    let full = logits(&model, &ids, shape);

    let seq = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.clone(), shape), &device);
    let mut cache = BitNetCache::new(&model.config, shape[0], shape[1], &device).unwrap();
    let mut pieces = vec![model.try_forward_cached(seq.clone().narrow(1, 0, 3), &mut cache).unwrap()];
    for t in 3..shape[1] {
        pieces.push(model.try_forward_cached(seq.clone().narrow(1, t, 1), &mut cache).unwrap());
    }
    let cached: Vec<f32> = Tensor::cat(pieces, 1).into_data().to_vec().unwrap();
    let err = max_relative(&cached, &full);
    assert!(err < 1e-5, "cached decoding off by {err:e}");

    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(model.clone().into_record(), ()).unwrap();
    let fresh = model.config.init::<B>(&device);
    assert_ne!(logits(&fresh, &ids, shape), full, "a fresh model should differ");
    let loaded = fresh.load_record(recorder.load(bytes, &device).unwrap());
    assert_eq!(logits(&loaded, &ids, shape), full);
}

/// A copy of fixture `name` in a fresh temporary directory.
pub(crate) fn scratch_copy(name: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arbitor-bitnet-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// Rewrites `dir/model.safetensors` through `edit`, which gets every
/// tensor as (name, dtype, shape, bytes).
fn rewrite(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn import_error(dir: &Path) -> HfError {
    let err = BitNetForCausalLM::<B>::from_hf_dir(dir, &Default::default()).unwrap_err();
    let _ = std::fs::remove_dir_all(dir);
    err
}

#[test]
fn bad_checkpoints_are_named() {
    const Q: &str = "model.layers.1.self_attn.q_proj.weight";

    // An unknown quantization_config.
    let dir = scratch_copy("packed_a", "quant");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), text.replace("\"bitlinear\"", "\"bitlinear4\"")).unwrap();
    let err = import_error(&dir);
    assert!(matches!(&err, HfError::Config { key, .. } if key == "quantization_config.linear_class"), "{err}");
    assert!(err.to_string().contains("bitlinear4"), "{err}");

    // No quantization_config at all (an unquantized float BitNet).
    let dir = scratch_copy("packed_a", "noquant");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("quantization_config");
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    let err = import_error(&dir);
    assert!(matches!(&err, HfError::Config { key, .. } if key == "quantization_config"), "{err}");

    // A missing tensor.
    let dir = scratch_copy("packed_a", "missing");
    rewrite(&dir, |t| t.retain(|(n, ..)| n != Q));
    let err = import_error(&dir);
    assert!(matches!(&err, HfError::MissingTensor { tensor, .. } if tensor == Q), "{err}");

    // A shape mismatch: one packed byte column short.
    let dir = scratch_copy("packed_a", "shape");
    rewrite(&dir, |t| {
        let q = t.iter_mut().find(|(n, ..)| n == Q).unwrap();
        let [rows, cols] = [q.2[0], q.2[1]];
        q.2 = vec![rows, cols - 1];
        q.3.truncate(rows * (cols - 1));
    });
    let err = import_error(&dir);
    assert_eq!(
        err,
        HfError::Shape { tensor: Q.into(), expected: vec![10, 40], actual: vec![10, 39] }
    );

    // A dtype mismatch: the packed weight as int8.
    let dir = scratch_copy("packed_a", "dtype");
    rewrite(&dir, |t| t.iter_mut().find(|(n, ..)| n == Q).unwrap().1 = Dtype::I8);
    let err = import_error(&dir);
    assert!(matches!(&err, HfError::Dtype { tensor, actual, .. } if tensor == Q && actual == "I8"), "{err}");

    // A latent checkpoint whose master weight is packed bytes.
    let dir = scratch_copy("latent_a", "latent-dtype");
    rewrite(&dir, |t| {
        let q = t.iter_mut().find(|(n, ..)| n == Q).unwrap();
        q.1 = Dtype::U8;
        q.3.truncate(q.3.len() / 2);
    });
    let err = import_error(&dir);
    assert!(matches!(&err, HfError::Dtype { tensor, .. } if tensor == Q), "{err}");

    // A 2-bit code that is no trit.
    let dir = scratch_copy("packed_a", "code3");
    rewrite(&dir, |t| t.iter_mut().find(|(n, ..)| n == Q).unwrap().3[5] = 0b11);
    let err = import_error(&dir);
    assert!(matches!(&err, HfError::BadValue { tensor, reason } if tensor == Q && reason.contains("code 3")), "{err}");

    // A shard the index names but that is not there.
    let dir = scratch_copy("packed_b", "shard");
    std::fs::remove_file(dir.join("model-00002-of-00003.safetensors")).unwrap();
    let err = import_error(&dir);
    assert!(matches!(&err, HfError::Io { path, .. } if path.ends_with("model-00002-of-00003.safetensors")), "{err}");
}
