//! Golden tests of the Moonshine, DINOv2 and ViT sidecar encoders against
//! tiny randomly initialized transformers models
//! (`scripts/data/make_vision_audio_fixtures.py`, fixtures under
//! `tests/fixtures/sidecars/{moonshine,dinov2,vit}_{a,b}/`), their int8
//! versions, freezing, and the errors of bad weights and configs. Tests on
//! real pretrained weights run only when the weights are on disk
//! (`$ARBITOR_WEIGHTS_DIR/<org>--<name>/` or the Hugging Face cache).

use std::path::{Path, PathBuf};

use arbitor_models::sidecars::{
    hf::HfConfig,
    moonshine::{MoonshineEncoder, MoonshineEncoderConfig},
    vision::{
        dinov2::{Dinov2Config, Dinov2Encoder},
        vit::{VitConfig, VitEncoder},
        VisionOutput,
    },
    SafetensorsWeights, Sidecar, SidecarError, SidecarStorage,
};
use burn::{
    backend::{Autodiff, Flex},
    tensor::{backend::Backend, Tensor, TensorData},
};
use safetensors::tensor::TensorView;

type B = Flex;
type AD = Autodiff<Flex>;

/// Relative L2 error the f32 port must meet against the float64 reference.
const F32_TOL: f64 = 1e-4;
/// Relative L2 error the int8 ports (weight matrices and kernels as
/// symmetric Q8S, biases, norms, CLS and position tables f32) must meet.
/// Measured worst case over each fixture's inputs on Flex (printed by the
/// tests): with one scale per row/output channel (`int8_scheme_for`)
/// moonshine_a 2.6e-2, moonshine_b 1.3e-2, dinov2_a 6.5e-3, dinov2_b 6.6e-3,
/// vit_a 8.3e-3, vit_b 8.6e-3; with one scale per tensor 3.7e-2, 1.4e-2,
/// 9.1e-3, 1.0e-2, 1.5e-2, 1.2e-2. The bounds cover both schemes; the
/// raw-audio conv stem of Moonshine loses the most.
const INT8_TOL_MOONSHINE: f64 = 0.05;
/// See [`INT8_TOL_MOONSHINE`].
const INT8_TOL_VISION: f64 = 0.02;
/// Relative L2 error of the BF16 storage, the fallback on autodiff backends
/// (measured: moonshine 1.2e-2 / 8.5e-3, dinov2 6.8e-3 / 6.9e-3, vit 7.9e-3 / 7.0e-3).
const BF16_TOL: f64 = 0.05;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sidecars")
        .join(name)
}

/// Inputs and reference outputs of a fixture, by name (`input.0`, ...).
struct Io(SafetensorsWeights);

impl Io {
    fn open(name: &str) -> Self {
        Self(SafetensorsWeights::open(&fixture(name).join("io.safetensors")).unwrap())
    }

    fn get(&self, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        self.0
            .contains(name)
            .then(|| self.0.read_f32(name).unwrap())
    }

    fn tensor<Bk: Backend, const D: usize>(&self, name: &str) -> Tensor<Bk, D> {
        let (shape, values) = self.get(name).unwrap();
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn cases(&self) -> usize {
        (0..)
            .take_while(|k| self.0.contains(&format!("input.{k}")))
            .count()
    }
}

fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data().convert::<f32>();
    (data.shape.clone().to_vec(), data.to_vec().unwrap())
}

/// `‖got − want‖ / ‖want‖`, with the shapes checked.
fn rel_l2(got: (Vec<usize>, Vec<f32>), want: &(Vec<usize>, Vec<f32>), what: &str) -> f64 {
    assert_eq!(got.0, want.0, "{what}: shape");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.1.iter().zip(&want.1) {
        assert!(g.is_finite(), "{what}: non-finite output");
        num += (*g as f64 - *w as f64).powi(2);
        den += (*w as f64).powi(2);
    }
    (num / den).sqrt()
}

/// Compares every output of every case of fixture `name` and returns the
/// worst relative error.
fn check_vision<Bk: Backend>(
    name: &str,
    label: &str,
    forward: impl Fn(Tensor<Bk, 4>) -> VisionOutput<Bk>,
) -> f64 {
    let io = Io::open(name);
    let mut worst = 0.0f64;
    for k in 0..io.cases() {
        let out = forward(io.tensor(&format!("input.{k}")));
        let want = io.get(&format!("last_hidden_state.{k}")).unwrap();
        let err = rel_l2(values(out.last_hidden_state), &want, name);
        println!(
            "{name} {label} case {k} {:?}: last_hidden_state rel L2 {err:.3e}",
            want.0
        );
        worst = worst.max(err);
        match (out.pooler_output, io.get(&format!("pooler_output.{k}"))) {
            (Some(got), Some(want)) => {
                let err = rel_l2(values(got), &want, name);
                println!("{name} {label} case {k}: pooler_output rel L2 {err:.3e}");
                worst = worst.max(err);
            }
            (None, None) => {}
            (got, want) => panic!(
                "{name}: pooler_output present in port: {}, in reference: {}",
                got.is_some(),
                want.is_some()
            ),
        }
    }
    worst
}

fn check_moonshine(name: &str, label: &str, encoder: &MoonshineEncoder<B>) -> f64 {
    let io = Io::open(name);
    let mut worst = 0.0f64;
    for k in 0..io.cases() {
        let out = encoder.forward(io.tensor(&format!("input.{k}")));
        let want = io.get(&format!("last_hidden_state.{k}")).unwrap();
        let err = rel_l2(values(out), &want, name);
        println!(
            "{name} {label} case {k} {:?}: last_hidden_state rel L2 {err:.3e}",
            want.0
        );
        worst = worst.max(err);
    }
    worst
}

fn assert_tolerances(name: &str, errs: [f64; 3], int8_tol: f64) {
    let [f32_err, int8_err, bf16_err] = errs;
    println!("{name}: worst rel L2 f32 {f32_err:.3e}, int8 {int8_err:.3e}, bf16 {bf16_err:.3e}");
    assert!(f32_err <= F32_TOL, "{name}: f32 port off by {f32_err:.3e}");
    assert!(
        int8_err <= int8_tol,
        "{name}: int8 port off by {int8_err:.3e}"
    );
    assert!(
        bf16_err <= BF16_TOL,
        "{name}: bf16 port off by {bf16_err:.3e}"
    );
}

/// Every storage: f32, int8, bf16.
const STORAGES: [SidecarStorage; 3] = [
    SidecarStorage::F32,
    SidecarStorage::Int8,
    SidecarStorage::Bf16,
];

#[test]
fn moonshine_matches_transformers() {
    let device = Default::default();
    for name in ["moonshine_a", "moonshine_b"] {
        let errs = STORAGES.map(|storage| {
            let encoder = MoonshineEncoder::<B>::load(fixture(name), storage, &device).unwrap();
            assert_eq!(encoder.report().storage, storage);
            check_moonshine(name, storage.name(), &encoder)
        });
        assert_tolerances(name, errs, INT8_TOL_MOONSHINE);
    }
}

#[test]
fn dinov2_matches_transformers() {
    let device = Default::default();
    for name in ["dinov2_a", "dinov2_b"] {
        let errs = STORAGES.map(|storage| {
            let encoder = Dinov2Encoder::<B>::load(fixture(name), storage, &device).unwrap();
            assert_eq!(encoder.report().storage, storage);
            check_vision(name, storage.name(), |x| encoder.forward(x))
        });
        assert_tolerances(name, errs, INT8_TOL_VISION);
    }
}

#[test]
fn vit_matches_transformers() {
    let device = Default::default();
    for name in ["vit_a", "vit_b"] {
        let errs = STORAGES.map(|storage| {
            let encoder = VitEncoder::<B>::load(fixture(name), storage, &device).unwrap();
            assert_eq!(encoder.report().storage, storage);
            check_vision(name, storage.name(), |x| encoder.forward(x))
        });
        assert_tolerances(name, errs, INT8_TOL_VISION);
    }
}

/// On an autodiff backend every encoder loads frozen: no parameter and no
/// output requires a gradient (int8 falls back there, see `freeze`).
#[test]
fn encoders_are_frozen() {
    let device = Default::default();
    let moon = MoonshineEncoder::<AD>::load(fixture("moonshine_a"), SidecarStorage::Int8, &device)
        .unwrap();
    let report = moon.report();
    println!("{report}");
    assert!(report.frozen, "{report}");
    let io = Io::open("moonshine_a");
    assert!(!moon.forward(io.tensor("input.1")).is_require_grad());

    let dino =
        Dinov2Encoder::<AD>::load(fixture("dinov2_a"), SidecarStorage::Int8, &device).unwrap();
    let report = dino.report();
    println!("{report}");
    assert!(report.frozen, "{report}");
    let out = dino.forward(Io::open("dinov2_a").tensor("input.1"));
    assert!(!out.last_hidden_state.is_require_grad());

    let vit = VitEncoder::<AD>::load(fixture("vit_b"), SidecarStorage::F32, &device).unwrap();
    let report = vit.report();
    println!("{report}");
    assert!(report.frozen, "{report}");
    assert!(!vit
        .forward(Io::open("vit_b").tensor("input.0"))
        .last_hidden_state
        .is_require_grad());
}

/// The fixture's weights rewritten: `drop` removed, `reshape` stored with another shape.
fn rewrite(
    name: &str,
    drop: Option<&str>,
    reshape: Option<(&str, Vec<usize>)>,
) -> SafetensorsWeights {
    let weights = SafetensorsWeights::open(&fixture(name).join("model.safetensors")).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for tensor in weights.names() {
        if Some(tensor.as_str()) == drop {
            continue;
        }
        let (mut shape, values) = weights.read_f32(&tensor).unwrap();
        let mut bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        if let Some((target, new_shape)) = &reshape
            && tensor == *target
        {
            let n: usize = new_shape.iter().product();
            bytes.resize(4 * n, 0);
            shape = new_shape.clone();
        }
        tensors.push((tensor, shape, bytes));
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    SafetensorsWeights::from_bytes(bytes, &format!("{name}-rewritten.safetensors")).unwrap()
}

fn config(name: &str) -> HfConfig {
    HfConfig::open(&fixture(name).join("config.json")).unwrap()
}

#[test]
fn bad_weights_name_the_tensor() {
    let device = Default::default();

    // Missing tensor.
    let cfg = MoonshineEncoderConfig::from_config(&config("moonshine_b")).unwrap();
    let missing = "model.encoder.layers.1.self_attn.k_proj.bias";
    let err = MoonshineEncoder::<B>::from_weights(
        &cfg,
        &rewrite("moonshine_b", Some(missing), None),
        &device,
    )
    .unwrap_err();
    println!("{err}");
    assert_eq!(
        err,
        SidecarError::MissingTensor {
            file: "moonshine_b-rewritten.safetensors".into(),
            tensor: missing.into()
        }
    );
    assert!(err.to_string().contains(missing));

    // Wrong shape: expected and actual shapes named.
    let cfg = Dinov2Config::from_config(&config("dinov2_b")).unwrap();
    let tensor = "dinov2.encoder.layer.0.mlp.weights_in.weight";
    let err = Dinov2Encoder::<B>::from_weights(
        &cfg,
        &rewrite("dinov2_b", None, Some((tensor, vec![192, 48]))),
        &device,
    )
    .unwrap_err();
    println!("{err}");
    assert_eq!(
        err,
        SidecarError::ShapeMismatch {
            tensor: tensor.into(),
            expected: vec![256, 48],
            actual: vec![192, 48]
        }
    );
    assert!(err.to_string().contains("[256, 48]") && err.to_string().contains("[192, 48]"));

    let cfg = VitConfig::from_config(&config("vit_a")).unwrap();
    let tensor = "embeddings.position_embeddings";
    let err = VitEncoder::<B>::from_weights(
        &cfg,
        &rewrite("vit_a", None, Some((tensor, vec![1, 26, 32]))),
        &device,
    )
    .unwrap_err();
    println!("{err}");
    assert_eq!(
        err,
        SidecarError::ShapeMismatch {
            tensor: tensor.into(),
            expected: vec![1, 17, 32],
            actual: vec![1, 26, 32]
        }
    );

    // No encoder at all under any known prefix.
    let err = VitEncoder::<B>::from_weights(
        &cfg,
        &rewrite("vit_a", Some("embeddings.cls_token"), None),
        &device,
    )
    .unwrap_err();
    println!("{err}");
    assert!(
        matches!(err, SidecarError::MissingTensor { ref tensor, .. } if tensor.contains("embeddings.cls_token"))
    );

    // Corrupt file: truncated, and a header that is not JSON.
    let bytes = std::fs::read(fixture("dinov2_a").join("model.safetensors")).unwrap();
    let err = SafetensorsWeights::from_bytes(bytes[..bytes.len() / 2].to_vec(), "half.safetensors")
        .unwrap_err();
    println!("{err}");
    assert!(matches!(err, SidecarError::Corrupt { ref file, .. } if file == "half.safetensors"));
    let mut garbled = bytes.clone();
    garbled[8..16].copy_from_slice(b"not json");
    let err = SafetensorsWeights::from_bytes(garbled, "garbled.safetensors").unwrap_err();
    assert!(matches!(err, SidecarError::Corrupt { .. }), "{err}");

    // Through `load`: a directory whose weights file is truncated.
    let dir = std::env::temp_dir().join(format!("arbitor-sidecar-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture("dinov2_a").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..100]).unwrap();
    let err = Dinov2Encoder::<B>::load(&dir, SidecarStorage::F32, &device).unwrap_err();
    println!("{err}");
    assert!(
        matches!(err, SidecarError::Corrupt { ref file, .. } if file.ends_with("model.safetensors"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_configs_name_the_key() {
    let strip = |name: &str, key: &str| {
        let text = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value.as_object_mut().unwrap().remove(key);
        value.to_string()
    };
    let err = MoonshineEncoderConfig::from_json(
        &strip("moonshine_a", "encoder_num_attention_heads"),
        "m.json",
    )
    .unwrap_err();
    assert!(
        matches!(err, SidecarError::Config { ref key, .. } if key == "encoder_num_attention_heads"),
        "{err}"
    );
    let err = Dinov2Config::from_json(&strip("dinov2_a", "hidden_size"), "d.json").unwrap_err();
    assert!(
        matches!(err, SidecarError::Config { ref key, .. } if key == "hidden_size"),
        "{err}"
    );
    let err = VitConfig::from_json(&strip("vit_a", "intermediate_size"), "v.json").unwrap_err();
    assert!(
        matches!(err, SidecarError::Config { ref key, .. } if key == "intermediate_size"),
        "{err}"
    );
    // Decoder fields are not needed.
    MoonshineEncoderConfig::from_json(&strip("moonshine_a", "decoder_num_hidden_layers"), "m.json")
        .unwrap();
    // A wrong type names the key.
    let text = std::fs::read_to_string(fixture("vit_b").join("config.json"))
        .unwrap()
        .replace("\"qkv_bias\": false", "\"qkv_bias\": \"no\"");
    let err = VitConfig::from_json(&text, "v.json").unwrap_err();
    assert!(
        matches!(err, SidecarError::Config { ref key, .. } if key == "qkv_bias"),
        "{err}"
    );
    // Nested keys are named by their path; `null` takes the default.
    let set = |name: &str, key: &str, value: serde_json::Value| {
        let text = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
        let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
        config.as_object_mut().unwrap().insert(key.into(), value);
        config.to_string()
    };
    let bad_rope = set(
        "moonshine_a",
        "rope_parameters",
        serde_json::json!({"rope_type": "default", "rope_theta": "ten thousand"}),
    );
    let err = MoonshineEncoderConfig::from_json(&bad_rope, "m.json").unwrap_err();
    assert!(
        matches!(err, SidecarError::Config { ref key, .. } if key == "rope_parameters.rope_theta"),
        "{err}"
    );
    let null_eps = set("vit_a", "layer_norm_eps", serde_json::Value::Null);
    assert_eq!(
        VitConfig::from_json(&null_eps, "v.json")
            .unwrap()
            .layer_norm_eps,
        1e-12
    );
}

/// `$ARBITOR_WEIGHTS_DIR/<org>--<name>/` or the newest Hugging Face cache
/// snapshot of `org/name` holding `config.json` and `model.safetensors`.
fn pretrained(repo: &str) -> Option<PathBuf> {
    let flat = repo.replace('/', "--");
    let has =
        |dir: &Path| dir.join("config.json").is_file() && dir.join("model.safetensors").is_file();
    if let Some(root) = std::env::var_os("ARBITOR_WEIGHTS_DIR") {
        let dir = PathBuf::from(root).join(&flat);
        if has(&dir) {
            return Some(dir);
        }
    }
    let hub = std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
        })?;
    let snapshots = hub.join(format!("models--{flat}")).join("snapshots");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(snapshots)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| has(d))
        .collect();
    dirs.sort_by_key(|d| std::fs::metadata(d).and_then(|m| m.modified()).ok());
    dirs.pop()
}

/// Run with `--ignored` only where the weights are present: a missing
/// download is a failure then, never a silent pass.
fn missing(repo: &str) -> ! {
    panic!(
        "pretrained {repo} not found in $ARBITOR_WEIGHTS_DIR/{}/ or the Hugging Face cache",
        repo.replace('/', "--")
    );
}

/// A deterministic, smooth test signal.
fn signal(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32) * 0.013).sin() * 0.5 + ((i as f32) * 0.0007).cos() * 0.1)
        .collect()
}

#[test]
#[ignore = "needs the pretrained weights (ARBITOR_WEIGHTS_DIR or the Hugging Face cache): run with --ignored"]
fn pretrained_moonshine_tiny() {
    let repo = "UsefulSensors/moonshine-tiny";
    let Some(dir) = pretrained(repo) else {
        missing(repo);
    };
    let device = Default::default();
    let f32_enc = MoonshineEncoder::<B>::load(&dir, SidecarStorage::F32, &device).unwrap();
    let int8_enc = MoonshineEncoder::<B>::load(&dir, SidecarStorage::Int8, &device).unwrap();
    println!("{}", int8_enc.report());
    let audio = Tensor::<B, 2>::from_data(TensorData::new(signal(16_000), [1, 16_000]), &device);
    let reference = values(f32_enc.forward(audio.clone()));
    assert_eq!(reference.0, vec![1, 40, f32_enc.config.hidden_size]);
    let err = rel_l2(values(int8_enc.forward(audio)), &reference, repo);
    println!("{repo}: int8 vs f32 rel L2 {err:.3e}");
    assert!(err < 0.1, "{repo}: int8 off by {err}");
}

fn pretrained_vision<E>(
    repo: &str,
    load: impl Fn(&Path, SidecarStorage) -> E,
    forward: impl Fn(&E, Tensor<B, 4>) -> VisionOutput<B>,
    size: usize,
) {
    let Some(dir) = pretrained(repo) else {
        missing(repo);
    };
    let device = Default::default();
    let (f32_enc, int8_enc) = (
        load(&dir, SidecarStorage::F32),
        load(&dir, SidecarStorage::Int8),
    );
    let pixels: Vec<f32> = (0..3 * size * size)
        .map(|i| ((i as f32) * 0.37).sin())
        .collect();
    let pixels = Tensor::<B, 4>::from_data(TensorData::new(pixels, [1, 3, size, size]), &device);
    let reference = values(forward(&f32_enc, pixels.clone()).last_hidden_state);
    println!("{repo}: last_hidden_state {:?}", reference.0);
    let err = rel_l2(
        values(forward(&int8_enc, pixels).last_hidden_state),
        &reference,
        repo,
    );
    println!("{repo}: int8 vs f32 rel L2 {err:.3e}");
    assert!(err < 0.1, "{repo}: int8 off by {err}");
}

#[test]
#[ignore = "needs the pretrained weights (ARBITOR_WEIGHTS_DIR or the Hugging Face cache): run with --ignored"]
fn pretrained_dinov2_small() {
    pretrained_vision(
        "facebook/dinov2-small",
        |dir, storage| Dinov2Encoder::<B>::load(dir, storage, &Default::default()).unwrap(),
        |enc, x| enc.forward(x),
        224,
    );
}

#[test]
#[ignore = "needs the pretrained weights (ARBITOR_WEIGHTS_DIR or the Hugging Face cache): run with --ignored"]
fn pretrained_vit_base() {
    pretrained_vision(
        "google/vit-base-patch16-224",
        |dir, storage| VitEncoder::<B>::load(dir, storage, &Default::default()).unwrap(),
        |enc, x| enc.forward(x),
        224,
    );
}

/// The activations not exercised by the fixtures, against their formulas.
#[test]
fn activations_match_their_formulas() {
    use arbitor_models::sidecars::hf::Activation;
    let xs = [-3.0f64, -1.0, -0.25, 0.0, 0.5, 2.0];
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    type Formula = fn(f64) -> f64;
    let cases: [(Activation, Formula); 4] = [
        (Activation::GeluTanh, |x| {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        }),
        (Activation::Relu, |x| x.max(0.0)),
        (Activation::Tanh, f64::tanh),
        (Activation::Silu, |x| x / (1.0 + (-x).exp())),
    ];
    let run = |act: Activation| -> Vec<f32> {
        let x = Tensor::<B, 1>::from_data(
            TensorData::new(xs.iter().map(|&x| x as f32).collect::<Vec<_>>(), [xs.len()]),
            &Default::default(),
        );
        act.forward(x).into_data().to_vec().unwrap()
    };
    for (act, f) in cases {
        for (got, &x) in run(act).iter().zip(&xs) {
            assert!(
                (*got as f64 - f(x)).abs() < 1e-5,
                "{act:?}({x}) = {got}, want {}",
                f(x)
            );
        }
    }
    for (got, &x) in run(Activation::QuickGelu).iter().zip(&xs) {
        let want = x * sigmoid(1.702 * x);
        assert!(
            (*got as f64 - want).abs() < 1e-5,
            "quick_gelu({x}) = {got}, want {want}"
        );
    }
}

#[test]
#[should_panic(expected = "too short")]
fn moonshine_rejects_too_short_audio() {
    let device = Default::default();
    let encoder =
        MoonshineEncoder::<B>::load(fixture("moonshine_a"), SidecarStorage::F32, &device).unwrap();
    encoder.forward(Tensor::zeros([1, 894], &device));
}
