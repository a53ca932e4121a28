//! Pieces shared by the Hugging Face transformers encoder ports
//! ([`moonshine`](super::moonshine), [`vision`](super::vision)): the
//! checkpoint files, the activation functions of
//! `transformers.activations.ACT2FN`, multi-head attention and PyTorch's
//! bicubic resampling.

use std::path::{Path, PathBuf};

use burn::{
    module::Param,
    nn::{LayerNorm, LayerNormConfig},
    tensor::{
        activation::{gelu, relu, sigmoid, silu, softmax, tanh},
        backend::Backend,
        DType, Tensor, TensorData,
    },
};
use serde::{de::Error as _, Deserialize, Deserializer};

use super::{
    error::{SidecarError, SidecarResult},
    json::{JsonConfig, Positive},
    weights::SafetensorsWeights,
};

/// A parsed Hugging Face `config.json`: [`JsonConfig`] under its former
/// name. The ports read it into their `#[derive(Deserialize)]` config
/// structs; keys they do not use (decoder fields, training settings) are
/// ignored.
///
/// ```
/// use arbitor_models::sidecars::hf::HfConfig;
///
/// let config = HfConfig::from_str(r#"{"model_type": "vit", "qkv_bias": null}"#, "config.json").unwrap();
/// assert!(config.has("model_type") && !config.has("qkv_bias"));
/// ```
pub type HfConfig = JsonConfig;

/// `head_dim`, or upstream's default `hidden_size / num_attention_heads`;
/// positive.
pub(crate) fn head_dim(
    head_dim: Option<Positive>,
    hidden_size: Positive,
    num_attention_heads: Positive,
    config: &HfConfig,
) -> SidecarResult<usize> {
    match head_dim.map_or(hidden_size.0 / num_attention_heads.0, |n| n.0) {
        0 => Err(config.error("head_dim", "must be positive")),
        n => Ok(n),
    }
}

/// `#[serde(default = ...)]` values shared by the transformers configs.
pub(crate) mod defaults {
    use super::{super::json::Positive, Activation};

    pub(crate) fn gelu() -> Activation {
        Activation::Gelu
    }

    pub(crate) fn tanh() -> Activation {
        Activation::Tanh
    }

    pub(crate) fn yes() -> bool {
        true
    }

    pub(crate) fn three() -> Positive {
        Positive(3)
    }
}

/// An activation function of `transformers.activations.ACT2FN`.
///
/// ```
/// use arbitor_models::sidecars::hf::Activation;
/// use burn::{backend::Flex, tensor::Tensor};
///
/// let x = Tensor::<Flex, 1>::from_floats([-1.0, 0.0, 2.0], &Default::default());
/// let y: Vec<f32> = Activation::Relu.forward(x).into_data().to_vec().unwrap();
/// assert_eq!(y, vec![0.0, 0.0, 2.0]);
/// assert_eq!(Activation::from_hf_name("gelu_pytorch_tanh"), Some(Activation::GeluTanh));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact, `x Φ(x)` with `erf`.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `quick_gelu`: `x σ(1.702 x)`.
    QuickGelu,
    /// `relu`.
    Relu,
    /// `silu` / `swish`: `x σ(x)`.
    Silu,
    /// `tanh`.
    Tanh,
}

impl Activation {
    /// The accepted `hidden_act` names.
    pub const NAMES: [&'static str; 9] = [
        "gelu",
        "gelu_new",
        "gelu_pytorch_tanh",
        "gelu_fast",
        "quick_gelu",
        "relu",
        "silu",
        "swish",
        "tanh",
    ];

    /// The activation for an ACT2FN name, if supported.
    ///
    /// ```
    /// use arbitor_models::sidecars::hf::Activation;
    ///
    /// assert_eq!(Activation::from_hf_name("swish"), Some(Activation::Silu));
    /// assert_eq!(Activation::from_hf_name("prelu"), None);
    /// ```
    pub fn from_hf_name(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "quick_gelu" => Self::QuickGelu,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            "tanh" => Self::Tanh,
            _ => return None,
        })
    }

    /// Applies the activation element-wise.
    ///
    /// ```
    /// use arbitor_models::sidecars::hf::Activation;
    /// use burn::{backend::Flex, tensor::Tensor};
    ///
    /// let x = Tensor::<Flex, 1>::from_floats([0.0], &Default::default());
    /// let y: Vec<f32> = Activation::Gelu.forward(x).into_data().to_vec().unwrap();
    /// assert_eq!(y, vec![0.0]);
    /// ```
    pub fn forward<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Gelu => gelu(x),
            Self::GeluTanh => {
                // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); x^3 as a
                // product (a float power of a negative base is NaN).
                const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
                let cube = x.clone() * x.clone() * x.clone();
                let inner = (x.clone() + cube * 0.044715) * SQRT_2_OVER_PI;
                x * (tanh(inner) + 1.0) * 0.5
            }
            Self::QuickGelu => x.clone() * sigmoid(x * 1.702),
            Self::Relu => relu(x),
            Self::Silu => silu(x),
            Self::Tanh => tanh(x),
        }
    }
}

/// An ACT2FN name; an unsupported one is an error naming it and the supported ones.
///
/// ```
/// use arbitor_models::sidecars::{hf::Activation, json};
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Act { hidden_act: Activation }
/// let act: Act = json::parse(r#"{"hidden_act": "gelu_new"}"#, "c.json").unwrap();
/// assert_eq!(act.hidden_act, Activation::GeluTanh);
/// let err = json::parse::<Act>(r#"{"hidden_act": "mish2"}"#, "c.json").unwrap_err();
/// assert!(err.to_string().contains("`hidden_act`") && err.to_string().contains("mish2"));
/// ```
impl<'de> Deserialize<'de> for Activation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::from_hf_name(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "unsupported activation `{name}` (supported: {})",
                Self::NAMES.join(", ")
            ))
        })
    }
}

/// `[batch, seq, heads * head_dim]` to `[batch, heads, seq, head_dim]`.
pub(crate) fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [batch, seq, width] = x.dims();
    x.reshape([batch, seq, heads, width / heads])
        .swap_dims(1, 2)
}

/// `[batch, heads, seq, head_dim]` to `[batch, seq, heads * head_dim]`.
pub(crate) fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, heads, seq, head_dim] = x.dims();
    x.swap_dims(1, 2).reshape([batch, seq, heads * head_dim])
}

/// Bidirectional scaled dot-product attention (upstream `eager_attention_forward`
/// without a mask): `softmax(q kᵀ · scale) v`, with the key/value heads
/// repeated to the query heads (grouped-query attention) where fewer.
pub(crate) fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    scale: f64,
) -> Tensor<B, 4> {
    let heads = q.dims()[1];
    let [batch, kv_heads, seq, head_dim] = k.dims();
    let repeat = |t: Tensor<B, 4>| {
        if kv_heads == heads {
            t
        } else {
            t.reshape([batch, kv_heads, 1, seq, head_dim])
                .repeat_dim(2, heads / kv_heads)
                .reshape([batch, heads, seq, head_dim])
        }
    };
    let (k, v) = (repeat(k), repeat(v));
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    softmax(scores, 3).matmul(v)
}

/// A `burn::nn::LayerNorm` without bias from `{prefix}.weight` (PyTorch
/// `nn.LayerNorm(d, bias=False)`).
pub(crate) fn layer_norm_no_bias<B: Backend>(
    weights: &SafetensorsWeights,
    prefix: &str,
    d: usize,
    eps: f64,
    device: &B::Device,
) -> SidecarResult<LayerNorm<B>> {
    let mut norm = LayerNormConfig::new(d)
        .with_epsilon(eps)
        .with_bias(false)
        .init(device);
    norm.gamma = Param::from_tensor(weights.tensor(&format!("{prefix}.weight"), [d], device)?);
    Ok(norm)
}

/// The first of `prefixes` under which `probe` (a tensor name without
/// prefix) is stored; else a [`SidecarError::MissingTensor`] naming the
/// tensor under the first prefix.
pub(crate) fn find_prefix(
    weights: &SafetensorsWeights,
    prefixes: &[&str],
    probe: &str,
) -> SidecarResult<String> {
    prefixes
        .iter()
        .find(|p| weights.contains(&format!("{p}{probe}")))
        .map(|p| p.to_string())
        .ok_or_else(|| SidecarError::MissingTensor {
            file: weights.origin().to_string(),
            tensor: format!(
                "{}{probe} (also looked under the prefixes {:?})",
                prefixes[0],
                &prefixes[1..]
            ),
        })
}

/// `config.json` and `model.safetensors` of a checkpoint directory, or the
/// two files given directly.
///
/// ```
/// use arbitor_models::sidecars::hf::CheckpointFiles;
///
/// let files = CheckpointFiles::dir("weights/facebook--dinov2-small");
/// assert!(files.config.ends_with("config.json"));
/// assert!(files.weights.ends_with("model.safetensors"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointFiles {
    /// The Hugging Face `config.json`.
    pub config: PathBuf,
    /// The safetensors weights.
    pub weights: PathBuf,
}

impl CheckpointFiles {
    /// `dir/config.json` and `dir/model.safetensors`.
    ///
    /// ```
    /// let files = arbitor_models::sidecars::hf::CheckpointFiles::dir("ckpt");
    /// assert_eq!(files.config, std::path::Path::new("ckpt/config.json"));
    /// ```
    pub fn dir(dir: impl AsRef<Path>) -> Self {
        Self {
            config: dir.as_ref().join("config.json"),
            weights: dir.as_ref().join("model.safetensors"),
        }
    }

    /// Two explicit files.
    ///
    /// ```
    /// let files = arbitor_models::sidecars::hf::CheckpointFiles::files("c.json", "w.safetensors");
    /// assert_eq!(files.weights, std::path::Path::new("w.safetensors"));
    /// ```
    pub fn files(config: impl AsRef<Path>, weights: impl AsRef<Path>) -> Self {
        Self {
            config: config.as_ref().to_path_buf(),
            weights: weights.as_ref().to_path_buf(),
        }
    }

    /// Opens both files.
    ///
    /// ```
    /// let files = arbitor_models::sidecars::hf::CheckpointFiles::dir("/nonexistent");
    /// assert!(files.open().unwrap_err().to_string().contains("config.json"));
    /// ```
    pub fn open(&self) -> SidecarResult<(HfConfig, SafetensorsWeights)> {
        let config = HfConfig::open(&self.config)?;
        let weights = SafetensorsWeights::open(&self.weights)?;
        Ok((config, weights))
    }
}

impl<P: AsRef<Path>> From<P> for CheckpointFiles {
    fn from(dir: P) -> Self {
        Self::dir(dir)
    }
}

/// PyTorch's `interpolate(mode="bicubic", align_corners=False)` along one
/// axis as a `[out, input]` matrix (cubic convolution with `A = -0.75`,
/// source index `(o + 0.5) · input / out - 0.5`, taps clamped to the border).
pub(crate) fn bicubic_matrix(input: usize, out: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let cubic1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0; // |x| <= 1
    let cubic2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A; // 1 < |x| < 2
    let scale = input as f64 / out as f64;
    let mut m = vec![0.0f64; out * input];
    for o in 0..out {
        let real = scale * (o as f64 + 0.5) - 0.5;
        let floor = real.floor();
        let t = real - floor;
        let taps = [cubic2(t + 1.0), cubic1(t), cubic1(1.0 - t), cubic2(2.0 - t)];
        for (j, w) in taps.into_iter().enumerate() {
            let idx = (floor as i64 - 1 + j as i64).clamp(0, input as i64 - 1) as usize;
            m[o * input + idx] += w;
        }
    }
    m.into_iter().map(|w| w as f32).collect()
}

/// Resamples a `[h, w, d]` grid to `[out_h, out_w, d]` with PyTorch's bicubic
/// interpolation (see [`bicubic_matrix`]).
pub(crate) fn bicubic_resize<B: Backend>(
    grid: Tensor<B, 3>,
    out_h: usize,
    out_w: usize,
) -> Tensor<B, 3> {
    let [h, w, d] = grid.dims();
    let device = grid.device();
    let dtype = grid.dtype();
    let matrix = |input: usize, out: usize| {
        Tensor::<B, 2>::from_data(
            TensorData::new(bicubic_matrix(input, out), [out, input]),
            &device,
        )
        .cast(dtype)
    };
    // Rows: [out_h, h] x [h, w * d].
    let rows = matrix(h, out_h).matmul(grid.reshape([h, w * d]));
    // Columns: per output row, [out_w, w] x [w, d].
    let cols = matrix(w, out_w).unsqueeze::<3>().repeat_dim(0, out_h);
    cols.matmul(rows.reshape([out_h, w, d]))
}

/// Casts a host-side `f32` tensor to the compute dtype of a sidecar.
pub(crate) fn host_tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    dtype: DType,
    device: &B::Device,
) -> Tensor<B, D> {
    let t = Tensor::<B, D>::from_data(TensorData::new(values, shape), device);
    if dtype == DType::F32 {
        t
    } else {
        t.cast(dtype)
    }
}
