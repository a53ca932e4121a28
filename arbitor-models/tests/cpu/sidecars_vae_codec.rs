//! Golden tests of the `pig_vae` (diffusers `AutoencoderTiny`) and
//! `TinyNeuralCodec` sidecars against references recorded with diffusers /
//! PyTorch by `scripts/data/make_sidecar_fixtures.py` (fixtures under
//! `tests/fixtures/sidecars/`).
//!
//! Errors are relative: `max |port − reference| / max |reference|`.
//! Tolerances (measured on Flex, CPU; see each test's output with `--nocapture`):
//!
//! | port | bound asserted | measured (encode / decode) |
//! | --- | --- | --- |
//! | f32 VAE `taesd_w8_s3` | 1e-4 | 1.1e-6 / 8.6e-7 |
//! | f32 VAE `taesd_w12_s2` | 1e-4 | 9.0e-7 / 6.2e-7 |
//! | f32 codec | 1e-4 | 5.8e-7 |
//! | int8 VAE `taesd_w8_s3` (Q8S, per-channel scales) | 5e-2 | 2.8e-2 / 1.5e-2 |
//! | int8 VAE `taesd_w12_s2` | 5e-2 | 9.8e-3 / 1.5e-2 |
//! | int8 codec | 5e-2 | 2.5e-2 |
//! | bf16 VAE `taesd_w8_s3` (the autodiff fallback) | 5e-2 | — / 1.1e-2 |
//!
//! The int8 error is the accumulated weight rounding of 10–15 random-init
//! layers (about 0.4 % of each kernel's range per weight).
//!
//! No test touches the network; the pretrained-weights test runs only when
//! weights are cached locally.

use std::path::{Path, PathBuf};

use arbitor_models::sidecars::{
    codec::{CodecConfig, LazyCodec, TinyNeuralCodec},
    sidecar_report,
    vae::{PigVae, PigVaeConfig, VAE_WEIGHTS_FILE},
    SafetensorsWeights, Sidecar, SidecarError, SidecarStorage,
};
use burn::{
    backend::{Autodiff, Flex},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use burn_ternary::audit::audit;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

type B = Flex;
type AD = Autodiff<Flex>;

/// Bound on the f32 ports' relative error.
const F32_TOL: f32 = 1e-4;
/// Bound on the int8 VAE's relative error (measured ≤ 2.8e-2 on both configs).
const INT8_VAE_TOL: f32 = 5e-2;
/// Bound on the int8 codec's relative error (measured 2.5e-2).
const INT8_CODEC_TOL: f32 = 5e-2;
/// Bound on the bf16 VAE's relative error (measured 1.1e-2).
const BF16_VAE_TOL: f32 = 5e-2;

const VAES: [&str; 2] = ["taesd_w8_s3", "taesd_w12_s2"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sidecars")
        .join(name)
}

fn io<Bk: Backend, const D: usize>(name: &str, tensor: &str) -> Tensor<Bk, D> {
    let weights = SafetensorsWeights::open(&fixture(name).join("io.safetensors")).unwrap();
    let (shape, values) = weights.read_f32(tensor).unwrap();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn tokens<Bk: Backend>(name: &str) -> Tensor<Bk, 2, Int> {
    let bytes = std::fs::read(fixture(name).join("io.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("tokens").unwrap();
    assert_eq!(view.dtype(), Dtype::I64);
    let ids: Vec<i64> = view
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Tensor::from_data(
        TensorData::new(ids, view.shape().to_vec()),
        &Default::default(),
    )
}

fn rel_err<Bk: Backend, const D: usize>(port: Tensor<Bk, D>, reference: Tensor<Bk, D>) -> f32 {
    assert_eq!(port.dims(), reference.dims());
    let port: Vec<f32> = port.into_data().convert::<f32>().into_vec().unwrap();
    let reference: Vec<f32> = reference.into_data().convert::<f32>().into_vec().unwrap();
    let diff = port
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = reference.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    assert!(diff.is_finite());
    diff / scale.max(1e-12)
}

fn load_vae<Bk: Backend>(name: &str, storage: SidecarStorage) -> PigVae<Bk> {
    PigVae::load(&fixture(name), storage, &Default::default()).unwrap()
}

#[test]
fn vae_f32_matches_diffusers() {
    for name in VAES {
        let vae = load_vae::<B>(name, SidecarStorage::F32);
        let enc = rel_err(vae.encode(io(name, "image")), io(name, "encoded"));
        let dec = rel_err(vae.decode(io(name, "latents")), io(name, "decoded"));
        println!("{name}: f32 encode rel err {enc:.2e}, decode rel err {dec:.2e}");
        assert!(enc <= F32_TOL && dec <= F32_TOL, "{name}: {enc} {dec}");
    }
}

#[test]
fn vae_int8_within_measured_tolerance() {
    for name in VAES {
        let vae = load_vae::<B>(name, SidecarStorage::Int8);
        let report = vae.report();
        assert_eq!(report.storage, SidecarStorage::Int8);
        assert!(report.frozen);
        let f32_bytes = load_vae::<B>(name, SidecarStorage::F32).report().bytes;
        assert!(
            report.bytes * 2 < f32_bytes,
            "{report} vs {f32_bytes} B in f32"
        );
        let enc = rel_err(vae.encode(io(name, "image")), io(name, "encoded"));
        let dec = rel_err(vae.decode(io(name, "latents")), io(name, "decoded"));
        println!(
            "{name}: int8 encode rel err {enc:.2e}, decode rel err {dec:.2e} ({} B vs {f32_bytes} B f32)",
            report.bytes
        );
        assert!(
            enc <= INT8_VAE_TOL && dec <= INT8_VAE_TOL,
            "{name}: {enc} {dec}"
        );
    }
}

#[test]
fn vae_decode_video_folds_frames() {
    let name = VAES[0];
    let vae = load_vae::<B>(name, SidecarStorage::F32);
    let latents: Tensor<B, 4> = io(name, "latents");
    let reference: Tensor<B, 4> = io(name, "decoded");
    // Two frames: the reference latents and their negation.
    let video = Tensor::stack::<5>(vec![latents.clone(), latents.clone().neg()], 2);
    let frames = vae.decode_video(video);
    let [b, c, t, h, w] = frames.dims();
    assert_eq!([b, c, t, h, w], [2, 3, 2, 20, 12]);
    let first = frames.clone().narrow(2, 0, 1).reshape([b, c, h, w]);
    assert!(rel_err(first, reference) <= F32_TOL);
    let second = frames.narrow(2, 1, 1).reshape([b, c, h, w]);
    assert!(rel_err(second, vae.decode(latents.neg())) <= F32_TOL);
}

#[test]
fn vae_frozen_on_autodiff_with_fallback() {
    let name = VAES[0];
    let device = Default::default();
    let config = PigVaeConfig::load(&fixture(name).join("config.json")).unwrap();
    let weights = SafetensorsWeights::open(&fixture(name).join(VAE_WEIGHTS_FILE)).unwrap();
    let unfrozen = PigVae::<AD>::from_weights(config, &weights, &device).unwrap();
    assert!(!sidecar_report("pig_vae", &unfrozen).frozen);
    // Burn's Autodiff cannot quantize: int8 falls back to frozen bf16 (Flex has bf16).
    let frozen = unfrozen.freeze(SidecarStorage::Int8);
    let report = frozen.report();
    println!("autodiff: {report}");
    assert!(report.frozen);
    assert_eq!(report.storage, SidecarStorage::Bf16);
    let frames = frozen.decode(io(name, "latents"));
    assert!(!frames.is_require_grad());
    let err = rel_err(frames.inner(), io::<B, 4>(name, "decoded"));
    println!("{name}: bf16 decode rel err {err:.2e}");
    assert!(err <= BF16_VAE_TOL, "{err}");
}

/// Rewrites a safetensors file with one tensor removed or replaced.
fn edit(bytes: &[u8], name: &str, replacement: Option<(Vec<usize>, Vec<f32>)>) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let data: Vec<u8> = replacement
        .as_ref()
        .map(|(_, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .unwrap_or_default();
    let mut views = Vec::new();
    for (n, view) in st.tensors() {
        if n != name {
            views.push((n, view));
        } else if let Some((shape, _)) = &replacement {
            views.push((
                n,
                TensorView::new(Dtype::F32, shape.clone(), &data).unwrap(),
            ));
        }
    }
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn bad_weights_name_the_tensor_and_shapes() {
    let dir = fixture(VAES[0]);
    let config = PigVaeConfig::load(&dir.join("config.json")).unwrap();
    let bytes = std::fs::read(dir.join(VAE_WEIGHTS_FILE)).unwrap();
    let device = Default::default();
    let build = |bytes: Vec<u8>| {
        SafetensorsWeights::from_bytes(bytes, "edited.safetensors")
            .and_then(|w| PigVae::<B>::from_weights(config.clone(), &w, &device))
    };

    let tensor = "decoder.layers.2.conv.2.weight";
    let err = build(edit(&bytes, tensor, None)).unwrap_err();
    assert_eq!(
        err,
        SidecarError::MissingTensor {
            file: "edited.safetensors".into(),
            tensor: tensor.into()
        }
    );
    assert!(err.to_string().contains(tensor), "{err}");

    let err = build(edit(
        &bytes,
        tensor,
        Some((vec![8, 8, 1, 3], vec![0.0; 192])),
    ))
    .unwrap_err();
    assert_eq!(
        err,
        SidecarError::ShapeMismatch {
            tensor: tensor.into(),
            expected: vec![8, 8, 3, 3],
            actual: vec![8, 8, 1, 3]
        }
    );
    let text = err.to_string();
    assert!(
        text.contains(tensor) && text.contains("[8, 8, 3, 3]") && text.contains("[8, 8, 1, 3]"),
        "{text}"
    );

    // A truncated file on disk: the error names the file.
    let tmp = std::env::temp_dir().join(format!("pig-vae-truncated-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(dir.join("config.json"), tmp.join("config.json")).unwrap();
    std::fs::write(tmp.join(VAE_WEIGHTS_FILE), &bytes[..bytes.len() - 100]).unwrap();
    let err = PigVae::<B>::load(&tmp, SidecarStorage::Int8, &device).unwrap_err();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(matches!(err, SidecarError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(VAE_WEIGHTS_FILE), "{err}");

    // An unsupported dtype names the tensor.
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let ints = vec![0u8; 8 * 8 * 9 * 4];
    let views: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            if n == tensor {
                (
                    n,
                    TensorView::new(Dtype::I32, vec![8, 8, 3, 3], &ints).unwrap(),
                )
            } else {
                (n, v)
            }
        })
        .collect();
    let err = build(safetensors::serialize(views, None).unwrap()).unwrap_err();
    assert!(
        matches!(&err, SidecarError::UnsupportedDtype { tensor: t, .. } if t == tensor),
        "{err:?}"
    );
}

#[test]
fn bad_configs_name_the_key() {
    let text = std::fs::read_to_string(fixture(VAES[0]).join("config.json")).unwrap();
    let missing = text.replace("\"latent_channels\": 16,", "");
    let err = PigVaeConfig::from_json(&missing, "config.json").unwrap_err();
    assert!(
        matches!(&err, SidecarError::Config { key, .. } if key == "latent_channels"),
        "{err:?}"
    );
    let unknown = text.replacen('{', "{\"latent_colour\": 1,", 1);
    let err = PigVaeConfig::from_json(&unknown, "config.json").unwrap_err();
    assert!(err.to_string().contains("`latent_colour`"), "{err}");
    let wrong = text.replace("\"in_channels\": 3", "\"in_channels\": \"three\"");
    let err = PigVaeConfig::from_json(&wrong, "config.json").unwrap_err();
    assert!(err.to_string().contains("`in_channels`"), "{err}");
    let uneven = text.replacen(
        "\"num_decoder_blocks\": [",
        "\"num_decoder_blocks\": [1, ",
        1,
    );
    let err = PigVaeConfig::from_json(&uneven, "config.json").unwrap_err();
    assert!(err.to_string().contains("`num_decoder_blocks`"), "{err}");
    let codec = r#"{"vocab": 8, "dim": 4, "channels": [4, 2], "kernel_sizes": [4],
        "strides": [2, 2], "paddings": [1, 1], "post_kernel": 3}"#;
    let err = CodecConfig::from_json(codec, "config.json").unwrap_err();
    assert!(err.to_string().contains("`kernel_sizes`"), "{err}");
    // A bad list entry is named by its index; `_` keys are metadata.
    let codec = r#"{"_comment": "x", "vocab": 8, "dim": 4, "channels": [4, 0],
        "kernel_sizes": [4, 4], "strides": [2, 2], "paddings": [1, 1], "post_kernel": 3}"#;
    let err = CodecConfig::from_json(codec, "config.json").unwrap_err();
    assert!(
        matches!(&err, SidecarError::Config { key, .. } if key == "channels[1]"),
        "{err:?}"
    );
}

#[test]
fn codec_matches_pytorch_reference() {
    for name in ["codec_289", "codec_512"] {
        codec_matches_pytorch_reference_for(name);
    }
}

fn codec_matches_pytorch_reference_for(name: &str) {
    let device = Default::default();
    let f32_codec =
        TinyNeuralCodec::<B>::load(&fixture(name), SidecarStorage::F32, &device).unwrap();
    let err = rel_err(f32_codec.decode(tokens(name)), io(name, "waveform"));
    println!("{name}: f32 rel err {err:.2e}");
    assert!(err <= F32_TOL, "{err}");

    let mut lazy = LazyCodec::<B>::new(fixture(name), SidecarStorage::Int8, device);
    assert!(!lazy.is_built());
    let wave = lazy.decode(tokens(name)).unwrap();
    assert!(lazy.is_built());
    let report = lazy.get().unwrap().report();
    assert_eq!(report.storage, SidecarStorage::Int8);
    assert!(report.frozen);
    let err = rel_err(wave, io(name, "waveform"));
    println!("{name}: int8 rel err {err:.2e} ({report})");
    assert!(err <= INT8_CODEC_TOL, "{err}");
}

#[test]
fn codec_frozen_on_autodiff_and_promotes_to_ternary() {
    let name = "codec_289";
    let device = Default::default();
    let codec = TinyNeuralCodec::<AD>::load(&fixture(name), SidecarStorage::Int8, &device).unwrap();
    let report = codec.report();
    assert!(report.frozen, "{report}");
    assert_ne!(report.storage, SidecarStorage::Int8);

    let ternary = codec.promote_to_ternary(&device);
    let state = audit(&ternary);
    assert!(state.is_pure_ternary(), "{state}");
    assert_eq!(state.ternary_tensors, 5);
    let wave = ternary.forward(tokens(name));
    assert_eq!(wave.dims(), [2, 160]);
    // Trainable: the loss reaches every ternary weight's gradient port as a
    // dense [rows, cols] gradient (what the ternary optimizer consumes).
    let grads = wave.powf_scalar(2.0).sum().backward();
    let mut grads = burn::optim::GradientsParams::from_grads(grads, &ternary);
    let weights = burn_ternary::visit::collect::<AD, _>(&ternary).ternary;
    assert_eq!(weights.len(), 5);
    for weight in weights {
        let grad = grads
            .remove::<Flex, 2>(weight.port)
            .unwrap_or_else(|| panic!("no gradient for {}", weight.path));
        assert_eq!(grad.dims(), weight.dims, "{}", weight.path);
    }
}

/// Codec weights that ternarize exactly (every entry ±0.5, zero biases): the
/// promoted codec must then compute what the float codec computes, which
/// checks the ternary layers' weight layouts against PyTorch's.
#[test]
fn promotion_preserves_ternary_representable_weights() {
    let config = CodecConfig {
        vocab: 11,
        dim: 6,
        channels: vec![5, 3],
        kernel_sizes: vec![4, 3],
        strides: vec![2, 1],
        paddings: vec![1, 1],
        post_kernel: 3,
        sample_rate: 16_000,
    };
    let mut shapes = vec![("embed.weight".to_string(), vec![11, 6])];
    let mut c_in = 6;
    for (i, (&c, &k)) in config.channels.iter().zip(&config.kernel_sizes).enumerate() {
        shapes.push((format!("ups.{i}.weight"), vec![c_in, c, k]));
        shapes.push((format!("ups.{i}.bias"), vec![c]));
        c_in = c;
    }
    shapes.push(("post.weight".into(), vec![1, 3, 3]));
    shapes.push(("post.bias".into(), vec![1]));
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            let bias = name.ends_with("bias");
            let bytes = (0..n)
                .flat_map(|i| {
                    let v = if bias {
                        0.0f32
                    } else if (i * 7 + t * 3) % 5 < 2 {
                        -0.5
                    } else {
                        0.5
                    };
                    v.to_le_bytes()
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<_> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let weights =
        SafetensorsWeights::from_bytes(safetensors::serialize(views, None).unwrap(), "synthetic")
            .unwrap();
    let device = Default::default();
    let float = TinyNeuralCodec::<B>::from_weights(config, &weights, &device).unwrap();
    let ternary = float.promote_to_ternary(&device);
    let ids = Tensor::<B, 2, Int>::from_ints([[0, 3, 10, 7, 1], [2, 2, 9, 4, 5]], &device);
    let err = rel_err(ternary.forward(ids.clone()), float.decode(ids));
    assert!(err <= 1e-5, "{err}");
}

/// Real TAESD-family weights, when cached locally (diffusers layout:
/// `config.json` + `diffusion_pytorch_model.safetensors`), are looked up in
/// `$ARBITOR_WEIGHTS_DIR/<name>` and in the Hugging Face cache
/// (`~/.cache/huggingface/hub/models--madebyollin--<name>/snapshots/*/`).
#[test]
#[ignore = "needs pretrained TAESD weights (ARBITOR_WEIGHTS_DIR or the Hugging Face cache): run with --ignored"]
fn pretrained_taesd_weights() {
    const NAMES: [&str; 4] = ["taef1", "taesd3", "taesd", "taesdxl"];
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = std::env::var("ARBITOR_WEIGHTS_DIR") {
        roots.extend(NAMES.iter().map(|n| Path::new(&dir).join(n)));
    }
    let hub = std::env::var("HF_HOME")
        .map(|h| Path::new(&h).join("hub"))
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cache/huggingface/hub")));
    if let Ok(hub) = hub {
        for name in NAMES {
            let snapshots = hub.join(format!("models--madebyollin--{name}/snapshots"));
            if let Ok(entries) = std::fs::read_dir(snapshots) {
                roots.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
    }
    let found: Vec<PathBuf> = roots
        .into_iter()
        .filter(|d| d.join("config.json").is_file() && d.join(VAE_WEIGHTS_FILE).is_file())
        .collect();
    if found.is_empty() {
        panic!(
            "no pretrained TAESD weights (madebyollin/{{{}}}: config.json + {VAE_WEIGHTS_FILE}) \
             in $ARBITOR_WEIGHTS_DIR/<name> or the Hugging Face cache",
            NAMES.join(",")
        );
    }
    let device = Default::default();
    for dir in found {
        let vae = PigVae::<B>::load(&dir, SidecarStorage::Int8, &device).unwrap();
        let c = vae.config().latent_channels;
        // A smooth gradient image survives the round trip.
        let (h, w) = (64, 64);
        let values: Vec<f32> = (0..3 * h * w)
            .map(|i| ((i % w) as f32 / w as f32) * 1.6 - 0.8)
            .collect();
        let image = Tensor::<B, 4>::from_data(TensorData::new(values, [1, 3, h, w]), &device);
        if vae.has_encoder() {
            let latents = vae.encode(image.clone());
            assert_eq!(latents.dims()[1], c);
            let back = vae.decode(latents);
            let err = (back - image).abs().mean().into_scalar();
            println!(
                "{}: {} round-trip mean |err| {err:.3}",
                dir.display(),
                vae.report()
            );
            assert!(err < 0.25, "{err}");
        } else {
            let frames = vae.decode(Tensor::zeros([1, c, 8, 8], &device));
            assert!(frames.abs().max().into_scalar().is_finite());
        }
    }
}
