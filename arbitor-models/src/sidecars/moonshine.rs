//! Moonshine audio encoder: a frozen port of transformers' `MoonshineEncoder`
//! (`transformers/models/moonshine/modeling_moonshine.py`, transformers 5.x)
//! that loads the upstream safetensors names.
//!
//! The computation, for raw 16 kHz audio `[batch, samples]`:
//!
//! 1. conv stem: `conv1` (1 → d, kernel 127, stride 64, no bias) → `tanh` →
//!    `groupnorm` (1 group, eps 1e-5) → `conv2` (d → 2d, kernel 7, stride 3) →
//!    exact GELU → `conv3` (2d → d, kernel 3, stride 2) → exact GELU, giving
//!    `[batch, frames, d]`;
//! 2. `encoder_num_hidden_layers` pre-norm layers: `x + o_proj(attn(input_layernorm(x)))`,
//!    then `x + fc2(act(fc1(post_attention_layernorm(x))))`, with bias-free
//!    layer norms (eps 1e-5) and bidirectional attention with *partial,
//!    interleaved* rotary position embeddings: the first
//!    `2·⌈⌊head_dim · partial_rotary_factor⌋ / 2⌉` dimensions of each query
//!    and key head are rotated in pairs `(2i, 2i+1)` by `pos · θ^(-2i/rot)`
//!    (`rot = ⌊head_dim · partial_rotary_factor⌋`), the rest pass through;
//! 3. a final bias-free `layer_norm`.
//!
//! Checkpoint layouts: `MoonshineModel` stores the encoder under `encoder.`,
//! `MoonshineForConditionalGeneration` (the published `UsefulSensors/moonshine-*`
//! files) under `model.encoder.`, a bare `MoonshineEncoder` without prefix;
//! all three are accepted. Decoder tensors are ignored.
//!
//! Differences from upstream, none of which changes the result of an
//! unpadded batch: no `attention_mask` (every sample of the batch must be real
//! audio of the same length; pad-and-mask batches are not supported);
//! `pad_head_dim_to_multiple_of` is ignored (zero padding of the heads does not
//! change the attention output); only the `default` RoPE type is accepted.
//! With `encoder_num_key_value_heads < encoder_num_attention_heads` the port
//! does grouped-query attention (key/value heads repeated), the intended
//! semantics; upstream's encoder cannot run such a config (its query view uses
//! the key/value head count), so that case has no upstream reference.

use burn::{
    module::Module,
    nn::{conv::Conv1d, GroupNorm, LayerNorm, Linear},
    tensor::{
        activation::{gelu, tanh},
        backend::Backend,
        DType, Tensor,
    },
};

use super::{
    error::SidecarResult,
    freeze::{
        compute_dtype, freeze_and_quantize, sidecar_report, Sidecar, SidecarReport, SidecarStorage,
    },
    hf::{
        attention, defaults, find_prefix, head_dim, host_tensor, layer_norm_no_bias, merge_heads,
        split_heads, Activation, CheckpointFiles, HfConfig,
    },
    json::Positive,
    weights::SafetensorsWeights,
};
use serde::Deserialize;

/// Conv stem (kernel, stride) of the three convolutions.
const STEM: [(usize, usize); 3] = [(127, 64), (7, 3), (3, 2)];

/// The encoder part of a Moonshine `config.json`.
///
/// ```
/// use arbitor_models::sidecars::moonshine::MoonshineEncoderConfig;
///
/// // The published moonshine-tiny config (transformers 4.x layout), abridged.
/// let json = r#"{
///     "hidden_size": 288, "intermediate_size": 1152,
///     "encoder_num_hidden_layers": 6, "encoder_num_attention_heads": 8,
///     "encoder_num_key_value_heads": 8, "encoder_hidden_act": "gelu",
///     "decoder_num_hidden_layers": 6, "decoder_hidden_act": "silu",
///     "partial_rotary_factor": 0.9, "rope_theta": 10000.0, "rope_scaling": null,
///     "attention_bias": false, "pad_head_dim_to_multiple_of": 8
/// }"#;
/// let config = MoonshineEncoderConfig::from_json(json, "config.json").unwrap();
/// assert_eq!(config.head_dim, 36);
/// assert_eq!(config.rotary_dim(), 32);
///
/// // A missing key the encoder needs is named.
/// let err = MoonshineEncoderConfig::from_json(r#"{"hidden_size": 288}"#, "config.json").unwrap_err();
/// assert!(err.to_string().contains("`intermediate_size`"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MoonshineEncoderConfig {
    /// `hidden_size`: the model width `d`.
    pub hidden_size: usize,
    /// `intermediate_size`: the MLP width.
    pub intermediate_size: usize,
    /// `encoder_num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `encoder_num_attention_heads`.
    pub num_attention_heads: usize,
    /// `encoder_num_key_value_heads` (default: the attention heads).
    pub num_key_value_heads: usize,
    /// `head_dim` (default `hidden_size / encoder_num_attention_heads`).
    pub head_dim: usize,
    /// `encoder_hidden_act` (default `gelu`).
    pub hidden_act: Activation,
    /// `attention_bias`: biases on q/k/v (default false; `o_proj` never has one).
    pub attention_bias: bool,
    /// `rope_theta` (in `rope_parameters` or at the top level; default 10000).
    pub rope_theta: f64,
    /// `partial_rotary_factor` (in `rope_parameters` or at the top level; default 0.9).
    pub partial_rotary_factor: f64,
}

/// The keys of a transformers `MoonshineConfig` the encoder reads, with
/// upstream's defaults (`None` ones as `Option`); the encoder's size keys
/// are required.
#[derive(Deserialize)]
struct MoonshineJson {
    hidden_size: Positive,
    intermediate_size: Positive,
    encoder_num_hidden_layers: Positive,
    encoder_num_attention_heads: Positive,
    encoder_num_key_value_heads: Option<Positive>,
    head_dim: Option<Positive>,
    #[serde(default = "defaults::gelu")]
    encoder_hidden_act: Activation,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default = "default_rope_theta")]
    rope_theta: f64,
    #[serde(default = "default_partial_rotary_factor")]
    partial_rotary_factor: f64,
    rope_scaling: Option<RopeJson>,
    rope_parameters: Option<RopeJson>,
}

/// `rope_scaling` / `rope_parameters` (transformers 4.x / 5.x).
#[derive(Deserialize)]
struct RopeJson {
    rope_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    rope_theta: Option<f64>,
    partial_rotary_factor: Option<f64>,
}

fn default_rope_theta() -> f64 {
    10_000.0
}

fn default_partial_rotary_factor() -> f64 {
    0.9
}

impl MoonshineEncoderConfig {
    /// Reads the encoder fields of a parsed `config.json`.
    ///
    /// ```
    /// use arbitor_models::sidecars::{hf::HfConfig, moonshine::MoonshineEncoderConfig};
    ///
    /// let json = r#"{"hidden_size": 32, "intermediate_size": 64, "encoder_num_hidden_layers": 1,
    ///     "encoder_num_attention_heads": 4,
    ///     "rope_parameters": {"rope_type": "dynamic", "rope_theta": 10000.0}}"#;
    /// let err = MoonshineEncoderConfig::from_config(&HfConfig::from_str(json, "c.json").unwrap()).unwrap_err();
    /// assert!(err.to_string().contains("rope_type"));
    /// ```
    pub fn from_config(config: &HfConfig) -> SidecarResult<Self> {
        let raw: MoonshineJson = config.deserialize()?;
        let hidden_size = raw.hidden_size.0;
        let num_attention_heads = raw.encoder_num_attention_heads.0;
        let num_key_value_heads = raw
            .encoder_num_key_value_heads
            .map_or(num_attention_heads, |n| n.0);
        if !num_attention_heads.is_multiple_of(num_key_value_heads) {
            return Err(config.error(
                "encoder_num_key_value_heads",
                format!(
                    "{num_key_value_heads} does not divide encoder_num_attention_heads = {num_attention_heads}"
                ),
            ));
        }
        let head_dim = head_dim(
            raw.head_dim,
            raw.hidden_size,
            raw.encoder_num_attention_heads,
            config,
        )?;

        // transformers' precedence: `rope_scaling` replaces `rope_parameters`;
        // keys inside it win over the top-level `rope_theta` /
        // `partial_rotary_factor`.
        let (rope_key, rope) = match raw.rope_scaling {
            Some(r) => ("rope_scaling", Some(r)),
            None => ("rope_parameters", raw.rope_parameters),
        };
        let mut rope_theta = raw.rope_theta;
        let mut partial_rotary_factor = raw.partial_rotary_factor;
        if let Some(rope) = rope {
            let kind = rope.rope_type.or(rope.kind);
            let kind = kind.as_deref().unwrap_or("default");
            if kind != "default" {
                return Err(config.error(
                    &format!("{rope_key}.rope_type"),
                    format!("RoPE type `{kind}` is not supported (only `default`)"),
                ));
            }
            rope_theta = rope.rope_theta.unwrap_or(rope_theta);
            partial_rotary_factor = rope.partial_rotary_factor.unwrap_or(partial_rotary_factor);
        }
        if !rope_theta.is_finite() || rope_theta <= 0.0 {
            return Err(config.error("rope_theta", format!("must be positive, got {rope_theta}")));
        }
        let this = Self {
            hidden_size,
            intermediate_size: raw.intermediate_size.0,
            num_hidden_layers: raw.encoder_num_hidden_layers.0,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            hidden_act: raw.encoder_hidden_act,
            attention_bias: raw.attention_bias,
            rope_theta,
            partial_rotary_factor,
        };
        if !(0.0..=1.0).contains(&partial_rotary_factor) || this.rotary_dim() > head_dim {
            return Err(config.error(
                "partial_rotary_factor",
                format!(
                    "{partial_rotary_factor} gives {} rotated dimensions for head_dim {head_dim}",
                    this.rotary_dim()
                ),
            ));
        }
        Ok(this)
    }

    /// Parses `config.json` text; `file` names it in errors.
    ///
    /// ```
    /// use arbitor_models::sidecars::moonshine::MoonshineEncoderConfig;
    ///
    /// assert!(MoonshineEncoderConfig::from_json("{", "config.json").is_err());
    /// ```
    pub fn from_json(text: &str, file: &str) -> SidecarResult<Self> {
        Self::from_config(&HfConfig::from_str(text, file)?)
    }

    /// The number of rotated dimensions per head, `2·⌈rot/2⌉` with
    /// `rot = ⌊head_dim · partial_rotary_factor⌋` (upstream's
    /// `arange(0, rot, 2)` frequencies, each applied to one pair).
    ///
    /// ```
    /// # use arbitor_models::sidecars::moonshine::MoonshineEncoderConfig;
    /// # let json = r#"{"hidden_size": 32, "intermediate_size": 64, "encoder_num_hidden_layers": 1, "encoder_num_attention_heads": 4}"#;
    /// let config = MoonshineEncoderConfig::from_json(json, "c.json").unwrap();
    /// // head_dim 8: ⌊7.2⌋ = 7 → 4 frequencies → all 8 dimensions rotate.
    /// assert_eq!(config.rotary_dim(), 8);
    /// ```
    pub fn rotary_dim(&self) -> usize {
        2 * self.rotary_frequencies()
    }

    fn rotary_frequencies(&self) -> usize {
        let dim = (self.head_dim as f64 * self.partial_rotary_factor) as usize;
        dim.div_ceil(2)
    }

    /// The number of encoder frames for `samples` audio samples, `None` when
    /// the audio is too short for the conv stem (fewer than 895 samples).
    ///
    /// ```
    /// # use arbitor_models::sidecars::moonshine::MoonshineEncoderConfig;
    /// assert_eq!(MoonshineEncoderConfig::output_frames(16_000), Some(40));
    /// assert_eq!(MoonshineEncoderConfig::output_frames(894), None);
    /// ```
    pub fn output_frames(samples: usize) -> Option<usize> {
        STEM.iter().try_fold(samples, |len, &(kernel, stride)| {
            (len >= kernel).then(|| (len - kernel) / stride + 1)
        })
    }
}

/// Self-attention of one encoder layer (upstream `MoonshineAttention`).
///
/// ```
/// # use arbitor_models::sidecars::moonshine::MoonshineEncoder;
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/moonshine_a");
/// let encoder = MoonshineEncoder::<Flex>::load(dir, arbitor_models::sidecars::SidecarStorage::F32, &Default::default()).unwrap();
/// assert_eq!(encoder.layers[0].self_attn.num_heads, 4);
/// ```
#[derive(Module, Debug)]
pub struct MoonshineAttention<B: Backend> {
    /// `q_proj`: d → heads · head_dim.
    pub q_proj: Linear<B>,
    /// `k_proj`: d → kv_heads · head_dim.
    pub k_proj: Linear<B>,
    /// `v_proj`: d → kv_heads · head_dim.
    pub v_proj: Linear<B>,
    /// `o_proj`: heads · head_dim → d, without bias.
    pub o_proj: Linear<B>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
}

/// The feed-forward block of one encoder layer (upstream `MoonshineEncoderMLP`).
///
/// ```
/// # use arbitor_models::sidecars::{hf::Activation, moonshine::MoonshineEncoder};
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/moonshine_a");
/// let encoder = MoonshineEncoder::<Flex>::load(dir, arbitor_models::sidecars::SidecarStorage::F32, &Default::default()).unwrap();
/// assert_eq!(encoder.layers[0].mlp.activation, Activation::Gelu);
/// ```
#[derive(Module, Debug)]
pub struct MoonshineMlp<B: Backend> {
    /// `fc1`: d → intermediate.
    pub fc1: Linear<B>,
    /// `fc2`: intermediate → d.
    pub fc2: Linear<B>,
    /// `encoder_hidden_act`.
    pub activation: Activation,
}

/// One pre-norm encoder layer (upstream `MoonshineEncoderLayer`).
///
/// ```
/// # use arbitor_models::sidecars::moonshine::MoonshineEncoder;
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/moonshine_a");
/// let encoder = MoonshineEncoder::<Flex>::load(dir, arbitor_models::sidecars::SidecarStorage::F32, &Default::default()).unwrap();
/// assert_eq!(encoder.layers.len(), 2);
/// ```
#[derive(Module, Debug)]
pub struct MoonshineEncoderLayer<B: Backend> {
    /// `input_layernorm` (no bias).
    pub input_layernorm: LayerNorm<B>,
    /// `self_attn`.
    pub self_attn: MoonshineAttention<B>,
    /// `post_attention_layernorm` (no bias).
    pub post_attention_layernorm: LayerNorm<B>,
    /// `mlp`.
    pub mlp: MoonshineMlp<B>,
}

/// The frozen Moonshine encoder: raw 16 kHz audio `[batch, samples]` to
/// `last_hidden_state` `[batch, frames, hidden_size]`.
///
/// ```
/// use arbitor_models::sidecars::{moonshine::MoonshineEncoder, Sidecar, SidecarStorage};
/// use burn::{backend::Flex, tensor::{Distribution, Tensor}};
///
/// let device = Default::default();
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/moonshine_a");
/// let encoder = MoonshineEncoder::<Flex>::load(dir, SidecarStorage::Int8, &device).unwrap();
/// let audio = Tensor::<Flex, 2>::random([1, 16_000], Distribution::Normal(0.0, 0.1), &device);
/// let features = encoder.forward(audio);
/// assert_eq!(features.dims(), [1, 40, 32]);
/// let report = encoder.report();
/// assert_eq!(report.storage, SidecarStorage::Int8);
/// assert!(report.frozen);
/// ```
#[derive(Module, Debug)]
pub struct MoonshineEncoder<B: Backend> {
    /// `conv1`: 1 → d, kernel 127, stride 64, no bias.
    pub conv1: Conv1d<B>,
    /// `conv2`: d → 2d, kernel 7, stride 3.
    pub conv2: Conv1d<B>,
    /// `conv3`: 2d → d, kernel 3, stride 2.
    pub conv3: Conv1d<B>,
    /// `groupnorm`: one group over d channels, eps 1e-5.
    pub groupnorm: GroupNorm<B>,
    /// `layers`.
    pub layers: Vec<MoonshineEncoderLayer<B>>,
    /// `layer_norm`: the final norm (no bias).
    pub layer_norm: LayerNorm<B>,
    /// The configuration the weights were loaded with.
    pub config: MoonshineEncoderConfig,
    /// The dtype the forward pass computes in (BF16 for BF16 storage).
    pub compute: DType,
}

impl<B: Backend> MoonshineEncoder<B> {
    /// Loads `config.json` and `model.safetensors` (a directory, or
    /// [`CheckpointFiles::files`]) and freezes the encoder as `storage`
    /// ([`freeze_and_quantize`]: int8 where the backend supports it).
    ///
    /// ```
    /// use arbitor_models::sidecars::{moonshine::MoonshineEncoder, SidecarError, SidecarStorage};
    /// use burn::backend::Flex;
    ///
    /// let err = MoonshineEncoder::<Flex>::load("/nonexistent", SidecarStorage::F32, &Default::default())
    ///     .unwrap_err();
    /// assert!(matches!(err, SidecarError::Io { .. }));
    /// ```
    pub fn load(
        files: impl Into<CheckpointFiles>,
        storage: SidecarStorage,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let (config, weights) = files.into().open()?;
        let config = MoonshineEncoderConfig::from_config(&config)?;
        Ok(Self::from_weights(&config, &weights, device)?.freeze(storage))
    }

    /// Builds the encoder in `f32` from loaded weights, not yet frozen.
    ///
    /// ```
    /// use arbitor_models::sidecars::{moonshine::{MoonshineEncoder, MoonshineEncoderConfig}, SafetensorsWeights};
    /// use burn::backend::Flex;
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/moonshine_b");
    /// let config = MoonshineEncoderConfig::from_json(
    ///     &std::fs::read_to_string(format!("{dir}/config.json")).unwrap(), "config.json").unwrap();
    /// let weights = SafetensorsWeights::open(format!("{dir}/model.safetensors").as_ref()).unwrap();
    /// // moonshine_b stores the encoder under `model.encoder.`.
    /// let encoder = MoonshineEncoder::<Flex>::from_weights(&config, &weights, &Default::default()).unwrap();
    /// assert_eq!(encoder.config.hidden_size, 40);
    /// ```
    pub fn from_weights(
        config: &MoonshineEncoderConfig,
        weights: &SafetensorsWeights,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let p = find_prefix(weights, &["encoder.", "model.encoder.", ""], "conv1.weight")?;
        let d = config.hidden_size;
        let (h, kv, hd) = (
            config.num_attention_heads,
            config.num_key_value_heads,
            config.head_dim,
        );
        let (ffn, bias) = (config.intermediate_size, config.attention_bias);
        let norm = |name: &str| layer_norm_no_bias(weights, &format!("{p}{name}"), d, 1e-5, device);
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let linear = |name: &str, d_in, d_out, bias| {
                    weights.linear(&format!("{p}layers.{i}.{name}"), d_in, d_out, bias, device)
                };
                Ok(MoonshineEncoderLayer {
                    input_layernorm: norm(&format!("layers.{i}.input_layernorm"))?,
                    self_attn: MoonshineAttention {
                        q_proj: linear("self_attn.q_proj", d, h * hd, bias)?,
                        k_proj: linear("self_attn.k_proj", d, kv * hd, bias)?,
                        v_proj: linear("self_attn.v_proj", d, kv * hd, bias)?,
                        o_proj: linear("self_attn.o_proj", h * hd, d, false)?,
                        num_heads: h,
                        num_kv_heads: kv,
                        head_dim: hd,
                    },
                    post_attention_layernorm: norm(&format!(
                        "layers.{i}.post_attention_layernorm"
                    ))?,
                    mlp: MoonshineMlp {
                        fc1: linear("mlp.fc1", d, ffn, true)?,
                        fc2: linear("mlp.fc2", ffn, d, true)?,
                        activation: config.hidden_act,
                    },
                })
            })
            .collect::<SidecarResult<Vec<_>>>()?;
        // The conv stem: (name, in, out, bias), kernels and strides from STEM.
        let stem = [
            ("conv1", 1, d, false),
            ("conv2", d, 2 * d, true),
            ("conv3", 2 * d, d, true),
        ];
        let [conv1, conv2, conv3] = std::array::from_fn(|j| {
            let (name, c_in, c_out, bias) = stem[j];
            let (kernel, stride) = STEM[j];
            weights.conv1d(
                &format!("{p}{name}"),
                c_in,
                c_out,
                kernel,
                stride,
                0,
                bias,
                device,
            )
        });
        Ok(Self {
            conv1: conv1?,
            conv2: conv2?,
            conv3: conv3?,
            groupnorm: weights.group_norm(&format!("{p}groupnorm"), 1, d, 1e-5, device)?,
            layers,
            layer_norm: norm("layer_norm")?,
            config: config.clone(),
            compute: DType::F32,
        })
    }

    /// Freezes the encoder (`no_grad`) and stores it as `storage` (see
    /// [`freeze_and_quantize`]).
    ///
    /// ```
    /// use arbitor_models::sidecars::{moonshine::MoonshineEncoder, Sidecar, SidecarStorage};
    /// use burn::backend::{Autodiff, Flex};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/moonshine_a");
    /// let encoder = MoonshineEncoder::<Autodiff<Flex>>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
    /// assert!(encoder.report().frozen);
    /// ```
    pub fn freeze(self, storage: SidecarStorage) -> Self {
        let mut frozen = freeze_and_quantize(self, storage);
        frozen.compute = compute_dtype(&frozen);
        frozen
    }

    /// Encodes raw audio `[batch, samples]` (16 kHz, unpadded) to
    /// `last_hidden_state` `[batch, frames, hidden_size]`, `frames` as given by
    /// [`MoonshineEncoderConfig::output_frames`]. The output has the input's dtype.
    ///
    /// # Panics
    ///
    /// If `samples` is below 895 (too short for the conv stem).
    ///
    /// ```
    /// # use arbitor_models::sidecars::moonshine::MoonshineEncoder;
    /// # use burn::{backend::Flex, tensor::Tensor};
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/moonshine_a");
    /// let encoder = MoonshineEncoder::<Flex>::load(dir, arbitor_models::sidecars::SidecarStorage::F32, &Default::default()).unwrap();
    /// let audio = Tensor::<Flex, 2>::zeros([2, 1153], &Default::default());
    /// assert_eq!(encoder.forward(audio).dims(), [2, 1, 32]);
    /// ```
    pub fn forward(&self, audio: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, samples] = audio.dims();
        let frames = MoonshineEncoderConfig::output_frames(samples).unwrap_or_else(|| {
            panic!(
                "MoonshineEncoder: audio of {samples} samples is too short (at least 895 needed)"
            )
        });
        let out_dtype = audio.dtype();
        let x = audio.cast(self.compute).reshape([batch, 1, samples]);
        let x = self.groupnorm.forward(tanh(self.conv1.forward(x)));
        let x = gelu(self.conv2.forward(x));
        let x = gelu(self.conv3.forward(x));
        let mut x = x.swap_dims(1, 2); // [batch, frames, d]
        debug_assert_eq!(x.dims()[1], frames);
        let (cos, sin) = self.rotary(frames, &x.device());
        for layer in &self.layers {
            let attn =
                layer
                    .self_attn
                    .forward(layer.input_layernorm.forward(x.clone()), &cos, &sin);
            x = x + attn;
            let mlp = &layer.mlp;
            let h = layer.post_attention_layernorm.forward(x.clone());
            x = x + mlp.fc2.forward(mlp.activation.forward(mlp.fc1.forward(h)));
        }
        self.layer_norm.forward(x).cast(out_dtype)
    }

    /// The rotary tables `[1, 1, frames, n_freq, 1]` (cos, sin), computed in
    /// `f32` as upstream does (`inv_freq = 1 / θ^(arange(0, rot, 2) / rot)`).
    fn rotary(&self, frames: usize, device: &B::Device) -> (Tensor<B, 5>, Tensor<B, 5>) {
        let n = self.config.rotary_frequencies();
        let dim = (self.config.head_dim as f64 * self.config.partial_rotary_factor) as usize;
        let theta = self.config.rope_theta as f32;
        let inv_freq: Vec<f32> = (0..n)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / dim as f32))
            .collect();
        let angles: Vec<f32> = (0..frames)
            .flat_map(|t| inv_freq.iter().map(move |f| t as f32 * f))
            .collect();
        let table = |f: fn(f32) -> f32| {
            host_tensor::<B, 5>(
                angles.iter().map(|&a| f(a)).collect(),
                [1, 1, frames, n, 1],
                self.compute,
                device,
            )
        };
        (table(f32::cos), table(f32::sin))
    }
}

impl<B: Backend> MoonshineAttention<B> {
    /// Bidirectional attention over `x: [batch, frames, d]` with the rotary
    /// tables `cos`, `sin` of [`MoonshineEncoder`]'s rotary embedding.
    fn forward(&self, x: Tensor<B, 3>, cos: &Tensor<B, 5>, sin: &Tensor<B, 5>) -> Tensor<B, 3> {
        let q = split_heads(self.q_proj.forward(x.clone()), self.num_heads);
        let k = split_heads(self.k_proj.forward(x.clone()), self.num_kv_heads);
        let v = split_heads(self.v_proj.forward(x), self.num_kv_heads);
        let (q, k) = (rotate(q, cos, sin), rotate(k, cos, sin));
        let out = attention(q, k, v, (self.head_dim as f64).powf(-0.5));
        self.o_proj.forward(merge_heads(out))
    }
}

/// Upstream `apply_rotary_pos_emb` for one of q/k `[batch, heads, frames, head_dim]`:
/// pairs `(2i, 2i+1)` of the first `2·n_freq` dimensions rotate by the angle
/// of frequency `i`; the remaining dimensions pass through.
fn rotate<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 5>, sin: &Tensor<B, 5>) -> Tensor<B, 4> {
    let [batch, heads, frames, head_dim] = x.dims();
    let n = cos.dims()[3];
    let rot = x
        .clone()
        .narrow(3, 0, 2 * n)
        .reshape([batch, heads, frames, n, 2]);
    let even = rot.clone().narrow(4, 0, 1);
    let odd = rot.narrow(4, 1, 1);
    let new_even = even.clone() * cos.clone() - odd.clone() * sin.clone();
    let new_odd = odd * cos.clone() + even * sin.clone();
    let rotated = Tensor::cat(vec![new_even, new_odd], 4).reshape([batch, heads, frames, 2 * n]);
    if 2 * n == head_dim {
        rotated
    } else {
        Tensor::cat(vec![rotated, x.narrow(3, 2 * n, head_dim - 2 * n)], 3)
    }
}

impl<B: Backend> Sidecar<B> for MoonshineEncoder<B> {
    fn report(&self) -> SidecarReport {
        sidecar_report("moonshine", self)
    }
}
