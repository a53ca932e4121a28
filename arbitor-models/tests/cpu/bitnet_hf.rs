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

use crate::bitnet_fixtures::{fixture, max_relative, reference};

type B = Flex;

/// Logits must be within this of transformers', relative to the largest
/// reference logit (the issue's bound).
const TOL: f32 = 1e-3;

fn logits(model: &BitNetForCausalLM<B>, ids: &[i64], shape: [usize; 2]) -> Vec<f32> {
    let ids =
        Tensor::<B, 2, Int>::from_data(TensorData::new(ids.to_vec(), shape), &Default::default());
    model
        .forward(ids)
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap()
}

fn check_fixture(name: &str) -> f32 {
    let model = BitNetForCausalLM::<B>::from_hf_dir(&fixture(name), &Default::default()).unwrap();
    let (ids, shape, expected) = reference(name);
    let err = max_relative(&logits(&model, &ids, shape), &expected);
    println!("{name}: max relative logit error vs transformers {err:.2e}");
    assert!(
        err < TOL,
        "{name}: logits off by {err:e} (relative), bound {TOL:e}"
    );
    err
}

#[test]
fn packed_checkpoints_match_transformers() {
    check_fixture("packed_a");
    // Sharded (model.safetensors.index.json), untied lm_head.
    check_fixture("packed_b");
}

/// Imported for inference (no update memory), every fixture gives the same
/// logits as the full import and holds 1 byte per weight less.
#[test]
fn checkpoints_import_for_inference_without_update_memory() {
    let device = Default::default();
    for name in ["packed_a", "packed_b", "latent_a", "latent_b"] {
        let full = BitNetForCausalLM::<B>::from_hf_dir(&fixture(name), &device).unwrap();
        let lean =
            BitNetForCausalLM::<B>::from_hf_dir_for_inference(&fixture(name), &device).unwrap();
        let (ids, shape, _) = reference(name);
        assert_eq!(
            logits(&lean, &ids, shape),
            logits(&full, &ids, shape),
            "{name}"
        );
        assert!(lean
            .ternary_linears()
            .iter()
            .all(|l| !l.weight.has_update_memory()));
        let bytes = |m: &BitNetForCausalLM<B>| burn_ternary::audit(m).ternary_state_bytes;
        assert!(
            bytes(&lean) * 2 < bytes(&full),
            "{name}: {} vs {}",
            bytes(&lean),
            bytes(&full)
        );
    }
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
    for (p, l) in packed
        .ternary_linears()
        .iter()
        .zip(latent.ternary_linears())
    {
        assert_eq!(p.weight.trits_host(), l.weight.trits_host());
        assert!(p.weight.memory_host().iter().all(|&m| m == 0));
        nonzero_memory += l.weight.memory_host().iter().filter(|&&m| m != 0).count();
        assert!(l
            .weight
            .memory_host()
            .iter()
            .all(|m| (-64..=64).contains(m)));
    }
    // Gaussian weights leave a residual almost everywhere.
    assert!(
        nonzero_memory > 1000,
        "{nonzero_memory} nonzero memory cells"
    );
    let scales = |m: &BitNetForCausalLM<B>| m.config.weight_scales.clone().unwrap();
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
    let mut pieces = vec![model
        .try_forward_cached(seq.clone().narrow(1, 0, 3), &mut cache)
        .unwrap()];
    for t in 3..shape[1] {
        pieces.push(
            model
                .try_forward_cached(seq.clone().narrow(1, t, 1), &mut cache)
                .unwrap(),
        );
    }
    let cached: Vec<f32> = Tensor::cat(pieces, 1).into_data().to_vec().unwrap();
    let err = max_relative(&cached, &full);
    assert!(err < 1e-5, "cached decoding off by {err:e}");

    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(model.clone().into_record(), ()).unwrap();
    let fresh = model.config.init::<B>(&device);
    assert_ne!(
        logits(&fresh, &ids, shape),
        full,
        "a fresh model should differ"
    );
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
    std::fs::write(
        dir.join("config.json"),
        text.replace("\"bitlinear\"", "\"bitlinear4\""),
    )
    .unwrap();
    let err = import_error(&dir);
    assert!(
        matches!(&err, HfError::Config { key, .. } if key == "quantization_config.linear_class"),
        "{err}"
    );
    assert!(err.to_string().contains("bitlinear4"), "{err}");

    // No quantization_config at all (an unquantized float BitNet).
    let dir = scratch_copy("packed_a", "noquant");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("quantization_config");
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    let err = import_error(&dir);
    assert!(
        matches!(&err, HfError::Config { key, .. } if key == "quantization_config"),
        "{err}"
    );

    // A missing tensor.
    let dir = scratch_copy("packed_a", "missing");
    rewrite(&dir, |t| t.retain(|(n, ..)| n != Q));
    let err = import_error(&dir);
    assert!(
        matches!(&err, HfError::MissingTensor { tensor, .. } if tensor == Q),
        "{err}"
    );

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
        HfError::Shape {
            tensor: Q.into(),
            expected: vec![10, 40],
            actual: vec![10, 39]
        }
    );

    // A dtype mismatch: the packed weight as int8.
    let dir = scratch_copy("packed_a", "dtype");
    rewrite(&dir, |t| {
        t.iter_mut().find(|(n, ..)| n == Q).unwrap().1 = Dtype::I8
    });
    let err = import_error(&dir);
    assert!(
        matches!(&err, HfError::Dtype { tensor, actual, .. } if tensor == Q && actual == "I8"),
        "{err}"
    );

    // A latent checkpoint whose master weight is packed bytes.
    let dir = scratch_copy("latent_a", "latent-dtype");
    rewrite(&dir, |t| {
        let q = t.iter_mut().find(|(n, ..)| n == Q).unwrap();
        q.1 = Dtype::U8;
        q.3.truncate(q.3.len() / 2);
    });
    let err = import_error(&dir);
    assert!(
        matches!(&err, HfError::Dtype { tensor, .. } if tensor == Q),
        "{err}"
    );

    // A 2-bit code that is no trit.
    let dir = scratch_copy("packed_a", "code3");
    rewrite(&dir, |t| {
        t.iter_mut().find(|(n, ..)| n == Q).unwrap().3[5] = 0b11
    });
    let err = import_error(&dir);
    assert!(
        matches!(&err, HfError::BadValue { tensor, reason } if tensor == Q && reason.contains("code 3")),
        "{err}"
    );

    // A shard the index names but that is not there.
    let dir = scratch_copy("packed_b", "shard");
    std::fs::remove_file(dir.join("model-00002-of-00003.safetensors")).unwrap();
    let err = import_error(&dir);
    assert!(
        matches!(&err, HfError::Io { path, .. } if path.ends_with("model-00002-of-00003.safetensors")),
        "{err}"
    );
}

/// Where the export tests leave their files for `scripts/hf/check_export.py`:
/// `$BITNET_EXPORT_DIR` when set (kept), else a temporary directory
/// (removed).
fn export_root(tag: &str) -> (PathBuf, bool) {
    match std::env::var_os("BITNET_EXPORT_DIR") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (
            std::env::temp_dir().join(format!(
                "arbitor-bitnet-export-{tag}-{}",
                std::process::id()
            )),
            false,
        ),
    }
}

fn save_f32(path: &Path, tensors: Vec<(String, Vec<usize>, Vec<f32>)>) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The packed export of every fixture loads back with the same trits and
/// bit-identical logits, and writes transformers' own bytes: the exported
/// `weight` and `weight_scale` of `packed_a` equal those transformers'
/// `save_pretrained` wrote. Each export also gets `arbitor_logits.safetensors`
/// (our logits of the reference ids) for the Python check.
#[test]
fn hf_export_round_trips_and_writes_transformers_bytes() {
    let device = Default::default();
    let (root, keep) = export_root("hf");
    for name in ["packed_a", "packed_b", "latent_a", "latent_b"] {
        let model = BitNetForCausalLM::<B>::from_hf_dir(&fixture(name), &device).unwrap();
        let (ids, shape, _) = reference(name);
        let ours = logits(&model, &ids, shape);
        let out = root.join(format!("hf_{name}"));
        model.save_hf_dir(&out).unwrap();
        let again = BitNetForCausalLM::<B>::from_hf_dir(&out, &device).unwrap();
        assert_eq!(
            logits(&again, &ids, shape),
            ours,
            "{name}: logits after a round trip"
        );
        for (a, b) in model.ternary_linears().iter().zip(again.ternary_linears()) {
            assert_eq!(a.weight.trits_host(), b.weight.trits_host());
        }
        save_f32(
            &out.join("arbitor_logits.safetensors"),
            vec![
                (
                    "ids".into(),
                    shape.to_vec(),
                    ids.iter().map(|&i| i as f32).collect(),
                ),
                (
                    "logits".into(),
                    vec![shape[0], shape[1], model.config.vocab_size],
                    ours,
                ),
            ],
        );
        if name == "packed_a" {
            let ours = std::fs::read(out.join("model.safetensors")).unwrap();
            let theirs = std::fs::read(fixture(name).join("model.safetensors")).unwrap();
            let (ours, theirs) = (
                SafeTensors::deserialize(&ours).unwrap(),
                SafeTensors::deserialize(&theirs).unwrap(),
            );
            let mut names = theirs.names();
            names.sort();
            let mut written = ours.names();
            written.sort();
            assert_eq!(
                written, names,
                "the same tensor names as transformers writes"
            );
            for n in names {
                let (a, b) = (ours.tensor(n).unwrap(), theirs.tensor(n).unwrap());
                assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()), "{n}");
                assert_eq!(a.data(), b.data(), "{n}: bytes differ from transformers'");
            }
        }
    }
    if !keep {
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[test]
fn hf_export_refuses_what_transformers_cannot_hold() {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("arbitor-bitnet-refuse-{}", std::process::id()));
    // Random initialization gives every row its own scale code.
    let config = arbitor_models::bitnet::BitNetConfig::new(32, 48, 1, 4, 2, 20);
    let err = config.init::<B>(&device).save_hf_dir(&dir).unwrap_err();
    assert!(
        matches!(&err, HfError::Export { tensor, reason }
            if tensor == "model.layers.0.self_attn.q_proj.weight" && reason.contains("scale codes")),
        "{err}"
    );
    let mut model = BitNetForCausalLM::<B>::from_hf_dir(&fixture("packed_a"), &device).unwrap();
    model.config.quantize_activations = false;
    let err = model.save_hf_dir(&dir).unwrap_err();
    assert!(
        matches!(&err, HfError::Export { tensor, .. } if tensor == "config.quantize_activations"),
        "{err}"
    );
    assert!(
        !dir.exists(),
        "nothing is written when the export is refused"
    );
}

/// The GGUF export against the GGUF v3 and TQ2_0 layouts as documented
/// (llama.cpp's `docs/gguf.md`, ggml's `block_tq2_0`), decoded here by hand:
/// header, metadata, aligned tensor data, every projection's 2-bit codes and
/// per-block f16 scales against the model's trits and row scales, the float
/// tensors bit for bit. A random model (per-row scale codes) of input widths
/// 256 and 512. The file and each tensor's expected values are left for
/// `scripts/hf/check_export.py` (`gguf_expected.safetensors`).
#[test]
fn gguf_export_follows_the_documented_layout() {
    use arbitor_models::bitnet::{
        hf::{GgufFile, GgufValue},
        BitNetConfig,
    };
    use burn::tensor::f16;

    let device = Default::default();
    let config = BitNetConfig::new(256, 512, 2, 4, 2, 50).with_rope_theta(10000.0);
    let model = config.init::<B>(&device);
    let (root, keep) = export_root("gguf");
    std::fs::create_dir_all(&root).unwrap();
    let path = root.join("model.gguf");
    model.save_gguf(&path).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"GGUF");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.tensors.len(), 1 + 2 * (4 + 7) + 1);
    assert_eq!(file.data_start % 32, 0);
    for (key, value) in [
        ("general.architecture", GgufValue::String("bitnet".into())),
        ("general.file_type", GgufValue::U32(37)),
        ("bitnet.embedding_length", GgufValue::U32(256)),
        ("bitnet.feed_forward_length", GgufValue::U32(512)),
        ("bitnet.block_count", GgufValue::U32(2)),
        ("bitnet.attention.head_count", GgufValue::U32(4)),
        ("bitnet.attention.head_count_kv", GgufValue::U32(2)),
        ("bitnet.rope.dimension_count", GgufValue::U32(64)),
        ("bitnet.rope.freq_base", GgufValue::F32(10000.0)),
        ("bitnet.vocab_size", GgufValue::U32(50)),
        (
            "bitnet.hidden_activation",
            GgufValue::String("relu2".into()),
        ),
        (
            "bitnet.attention.layer_norm_rms_epsilon",
            GgufValue::F32(1e-5),
        ),
    ] {
        assert_eq!(file.get(key), Some(&value), "{key}");
    }

    let mut expected = Vec::new();
    let names = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    for (i, linear) in model.ternary_linears().iter().enumerate() {
        let name = format!("blk.{}.{}.weight", i / 7, names[i % 7]);
        let info = file.tensor(&name).unwrap();
        let [rows, cols] = linear.weight.dims();
        assert_eq!(
            (info.dims.clone(), info.ggml_type),
            (vec![cols as u64, rows as u64], 35),
            "{name}"
        );
        assert_eq!(info.offset % 32, 0);
        let raw = file.tensor_bytes(&name).unwrap();
        assert_eq!(raw.len(), rows * cols / 256 * 66);
        let trits = linear.weight.trits_host();
        let codes = linear.weight.scale_codes_host();
        for r in 0..rows {
            let d = 2f32.powf(codes[r] as f32 / 16.0);
            for b in 0..cols / 256 {
                let block = &raw[(r * cols / 256 + b) * 66..][..66];
                assert_eq!(
                    f16::from_le_bytes([block[64], block[65]]),
                    f16::from_f32(d),
                    "{name} row {r}"
                );
                for e in 0..256 {
                    // Element e: byte 32·(e/128) + e%32, bits 2·((e%128)/32).
                    let code = (block[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
                    assert_eq!(
                        code as i8 - 1,
                        trits[r * cols + b * 256 + e],
                        "{name} [{r}, {}]",
                        b * 256 + e
                    );
                }
            }
        }
        let dense: Vec<f32> = linear.weight.to_dense().into_data().to_vec().unwrap();
        let back = file.dequantize(&name).unwrap();
        let err = max_relative(&back, &dense);
        assert!(
            err <= 1.0 / 2048.0,
            "{name}: dequantized off by {err:e} (f16 scale)"
        );
        expected.push((name, vec![rows, cols], dense));
    }
    let gain =
        |n: &burn::nn::RmsNorm<B>| -> Vec<f32> { n.gamma.val().into_data().to_vec().unwrap() };
    let embed: Vec<f32> = model
        .model
        .embed_tokens
        .weight
        .val()
        .into_data()
        .to_vec()
        .unwrap();
    let mut floats = vec![
        ("token_embd.weight".to_string(), vec![50, 256], embed),
        (
            "output_norm.weight".to_string(),
            vec![256],
            gain(&model.model.norm),
        ),
    ];
    for (l, layer) in model.model.layers.iter().enumerate() {
        floats.push((
            format!("blk.{l}.attn_norm.weight"),
            vec![256],
            gain(&layer.input_layernorm),
        ));
        floats.push((
            format!("blk.{l}.attn_sub_norm.weight"),
            vec![256],
            gain(&layer.self_attn.attn_sub_norm),
        ));
        floats.push((
            format!("blk.{l}.ffn_norm.weight"),
            vec![256],
            gain(&layer.post_attention_layernorm),
        ));
        floats.push((
            format!("blk.{l}.ffn_sub_norm.weight"),
            vec![512],
            gain(&layer.mlp.ffn_sub_norm),
        ));
    }
    for (name, shape, values) in &floats {
        let info = file.tensor(name).unwrap();
        let ggml_dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        assert_eq!(
            (info.dims.clone(), info.ggml_type),
            (ggml_dims, 0),
            "{name}"
        );
        assert_eq!(&file.dequantize(name).unwrap(), values, "{name}");
    }
    expected.extend(floats);
    save_f32(&root.join("gguf_expected.safetensors"), expected);
    if !keep {
        std::fs::remove_dir_all(&root).unwrap();
    }
}

/// The GGUF export with the repository's byte-level BPE tokenizer: llama.cpp's
/// `gpt2` vocabulary with the `gpt-2` split, every token by id with its type,
/// the merges in rank order, the end-of-text id. Tokenizers the format
/// cannot hold, or that do not fit the vocabulary, are refused by key. The
/// file, the ids of one line and our logits of them are left for
/// `scripts/hf/check_export.py`, which runs them through llama.cpp.
#[test]
fn gguf_export_carries_the_tokenizer() {
    use arbitor_models::bitnet::{
        hf::{GgufFile, GgufTokenizer, GgufValue},
        BitNetConfig,
    };

    let json = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tokenizer/tokenizer.json");
    let tokenizer = GgufTokenizer::from_tokenizer_json(&json, 512).unwrap();
    let device = Default::default();
    let model = BitNetConfig::new(256, 512, 2, 4, 2, 512)
        .with_rope_theta(10000.0)
        .init::<B>(&device);
    let (root, keep) = export_root("gguf-tok");
    std::fs::create_dir_all(&root).unwrap();
    let path = root.join("model_tok.gguf");
    model.save_gguf_with_tokenizer(&path, &tokenizer).unwrap();

    let file = GgufFile::open(&path).unwrap();
    let string = |s: &str| GgufValue::String(s.into());
    assert_eq!(file.get("tokenizer.ggml.model"), Some(&string("gpt2")));
    assert_eq!(file.get("tokenizer.ggml.pre"), Some(&string("gpt-2")));
    assert_eq!(
        file.get("tokenizer.ggml.eos_token_id"),
        Some(&GgufValue::U32(0))
    );
    assert_eq!(file.get("tokenizer.ggml.bos_token_id"), None);
    let Some(GgufValue::Array(tokens)) = file.get("tokenizer.ggml.tokens") else {
        panic!("no token list");
    };
    assert_eq!(tokens.len(), 512);
    assert_eq!(tokens[0], string("<|endoftext|>"));
    assert_eq!(tokens[199], string("Ċ"), "the newline's byte-level form");
    let Some(GgufValue::Array(types)) = file.get("tokenizer.ggml.token_type") else {
        panic!("no token types");
    };
    assert_eq!(
        (&types[0], &types[1]),
        (&GgufValue::I32(3), &GgufValue::I32(1))
    );
    let Some(GgufValue::Array(merges)) = file.get("tokenizer.ggml.merges") else {
        panic!("no merges");
    };
    assert_eq!(merges.len(), 255);
    assert_eq!(merges[0], string("Ġ t"));

    // Refused, by key: ids past the vocabulary; a tokenizer of another size;
    // a tokenizer that is not byte-level BPE.
    let err = GgufTokenizer::from_tokenizer_json(&json, 50).unwrap_err();
    assert!(
        matches!(&err, HfError::Config { key, .. } if key.starts_with("model.vocab.")),
        "{err}"
    );
    let small = BitNetConfig::new(256, 256, 1, 4, 2, 500).init::<B>(&device);
    let err = small
        .save_gguf_with_tokenizer(&root.join("refused.gguf"), &tokenizer)
        .unwrap_err();
    assert!(err.to_string().contains("512 tokens"), "{err}");
    let unigram = root.join("unigram.json");
    std::fs::write(&unigram, r#"{"model": {"type": "Unigram", "vocab": []}}"#).unwrap();
    let err = GgufTokenizer::from_tokenizer_json(&unigram, 512).unwrap_err();
    assert!(
        matches!(&err, HfError::Config { key, value, .. } if key == "model.type" && value == "\"Unigram\""),
        "{err}"
    );
    std::fs::remove_file(&unigram).unwrap();

    // Llama 3's split (bitnet-b1.58-2B-4T's tokenizer) is llama.cpp's
    // `llama-bpe`; the beginning-of-text token is the one its
    // post-processor puts first.
    let mut llama3: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    llama3["pre_tokenizer"] = serde_json::json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]});
    llama3["post_processor"] = serde_json::json!({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]});
    let llama3_path = root.join("llama3.json");
    std::fs::write(&llama3_path, llama3.to_string()).unwrap();
    let tok = GgufTokenizer::from_tokenizer_json(&llama3_path, 512).unwrap();
    assert_eq!((tok.pre, tok.bos), ("llama-bpe", Some(0)));
    std::fs::remove_file(&llama3_path).unwrap();

    let ids: Vec<i64> = vec![38, 315, 298, 418, 275, 73, 90, 281, 26, 199]; // "First Citizen:\n"
    let ours = logits(&model, &ids, [1, ids.len()]);
    save_f32(
        &root.join("gguf_tok_logits.safetensors"),
        vec![
            (
                "ids".into(),
                vec![1, ids.len()],
                ids.iter().map(|&i| i as f32).collect(),
            ),
            ("logits".into(), vec![1, ids.len(), 512], ours),
        ],
    );
    if !keep {
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[test]
fn gguf_export_refuses_what_tq2_0_cannot_hold() {
    let device = Default::default();
    let path =
        std::env::temp_dir().join(format!("arbitor-bitnet-refuse-{}.gguf", std::process::id()));
    // Input width 40 is no whole number of 256-weight blocks.
    let model = BitNetForCausalLM::<B>::from_hf_dir(&fixture("packed_a"), &device).unwrap();
    let err = model.save_gguf(&path).unwrap_err();
    assert!(
        matches!(&err, HfError::Export { tensor, .. } if tensor == "blk.0.attn_q.weight"),
        "{err}"
    );
    // An untied lm_head.
    let model = BitNetForCausalLM::<B>::from_hf_dir(&fixture("packed_b"), &device).unwrap();
    let err = model.save_gguf(&path).unwrap_err();
    assert!(
        matches!(&err, HfError::Export { tensor, .. } if tensor == "lm_head.weight"),
        "{err}"
    );
    assert!(!path.exists());
}

/// transformers' `"autobitlinear"` offline format stores the same packed
/// trits but multiplies by `weight_scale`: `packed_a` rewritten that way
/// (each scale inverted) imports to the same logits.
#[test]
fn autobitlinear_offline_checkpoints_multiply_by_their_scale() {
    let dir = scratch_copy("packed_a", "autobitlinear");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let text = text.replace("\"bitlinear\"", "\"autobitlinear\"");
    assert!(text.contains("\"offline\""));
    std::fs::write(dir.join("config.json"), text).unwrap();
    rewrite(&dir, |t| {
        for (name, dtype, _, bytes) in t.iter_mut() {
            if name.ends_with("weight_scale") {
                assert_eq!(*dtype, Dtype::F32);
                let s = f32::from_le_bytes(bytes[..4].try_into().unwrap());
                *bytes = (1.0 / s).to_le_bytes().to_vec();
            }
        }
    });
    let model = BitNetForCausalLM::<B>::from_hf_dir(&dir, &Default::default()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let (ids, shape, expected) = reference("packed_a");
    let err = max_relative(&logits(&model, &ids, shape), &expected);
    assert!(err < TOL, "relative difference {err:e}");
}

/// Local copies of microsoft/bitnet-b1.58-2B-4T (packed) and
/// microsoft/bitnet-b1.58-2B-4T-bf16 (latent master weights), looked up in
/// `$ARBITOR_WEIGHTS_DIR/microsoft--<name>/` and the Hugging Face cache
/// (`~/.cache/huggingface/hub/models--microsoft--<name>/snapshots/*/`).
fn pretrained_bitnet(name: &str) -> Option<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = std::env::var_os("ARBITOR_WEIGHTS_DIR") {
        roots.push(PathBuf::from(dir).join(format!("microsoft--{name}")));
    }
    let hub = std::env::var_os("HF_HOME")
        .map(|h| PathBuf::from(h).join("hub"))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
        });
    if let Some(hub) = hub
        && let Ok(entries) =
            std::fs::read_dir(hub.join(format!("models--microsoft--{name}/snapshots")))
    {
        roots.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    roots.into_iter().find(|d| d.join("config.json").is_file())
}

/// The real 2B-4T checkpoints, when cached locally: both import with the
/// preset's shape and give finite logits; when both are there, prints how
/// far the latent import's absmean ternarization of the bf16 master weights
/// agrees with the packed checkpoint's trits.
#[test]
#[ignore = "needs microsoft/bitnet-b1.58-2B-4T[-bf16] (ARBITOR_WEIGHTS_DIR or the Hugging Face cache): run with --ignored"]
fn pretrained_bitnet_2b_4t() {
    use arbitor_models::bitnet::BitNetConfig;
    let found: Vec<(&str, PathBuf)> = ["bitnet-b1.58-2B-4T", "bitnet-b1.58-2B-4T-bf16"]
        .into_iter()
        .filter_map(|n| pretrained_bitnet(n).map(|d| (n, d)))
        .collect();
    assert!(
        !found.is_empty(),
        "no microsoft/bitnet-b1.58-2B-4T[-bf16] in $ARBITOR_WEIGHTS_DIR/microsoft--<name> or the Hugging Face cache"
    );
    let device = Default::default();
    let mut models = Vec::new();
    for (name, dir) in &found {
        let model = BitNetForCausalLM::<B>::from_hf_dir(dir, &device).unwrap();
        let preset = BitNetConfig::b1_58_2b_4t();
        assert_eq!(
            (
                model.config.hidden_size,
                model.config.num_hidden_layers,
                model.config.vocab_size
            ),
            (
                preset.hidden_size,
                preset.num_hidden_layers,
                preset.vocab_size
            ),
            "{name}"
        );
        let ids = Tensor::<B, 2, Int>::from_ints([[128000, 791, 6864, 315]], &device);
        let out: Vec<f32> = model.forward(ids).into_data().to_vec().unwrap();
        assert!(
            out.iter().all(|v| v.is_finite()),
            "{name}: non-finite logits"
        );
        models.push(model);
    }
    if let [packed, latent] = &models[..] {
        // Printed, not asserted: the model card does not say that the packed
        // checkpoint is exactly this ternarization of the bf16 masters.
        let (mut same, mut total) = (0usize, 0usize);
        for (p, l) in packed
            .ternary_linears()
            .iter()
            .zip(latent.ternary_linears())
            .take(14)
        {
            let (a, b) = (p.weight.trits_host(), l.weight.trits_host());
            same += a.iter().zip(&b).filter(|(x, y)| x == y).count();
            total += a.len();
        }
        println!(
            "2B-4T: the bf16 masters' absmean ternarization agrees with the packed trits on {:.4}% of the first two layers' weights",
            100.0 * same as f64 / total as f64
        );
    }
}
