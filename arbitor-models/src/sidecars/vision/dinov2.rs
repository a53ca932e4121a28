//! DINOv2: a frozen port of transformers' `Dinov2Model`
//! (`transformers/models/dinov2/modeling_dinov2.py`, transformers 5.x).
//!
//! `embeddings` (patch conv, CLS token, position embeddings interpolated
//! bicubically for other grids) → `num_hidden_layers` layers of
//! `x + layer_scale1 · attention(norm1(x))`, `x + layer_scale2 · mlp(norm2(x))`
//! → `layernorm`; `pooler_output` is the normed CLS token. The feed-forward is
//! `fc2(act(fc1(x)))` of width `⌊hidden · mlp_ratio⌋`, or with
//! `use_swiglu_ffn` the SwiGLU `weights_out(silu(x₁) · x₂)` with
//! `[x₁, x₂] = weights_in(x)` of width `(⌊⌊hidden · mlp_ratio⌋ · 2/3⌋ + 7) / 8 · 8`.
//!
//! Tensor names are those of the checkpoints (`facebook/dinov2-*`, and what
//! transformers 5's `save_pretrained` writes): `embeddings.*`,
//! `encoder.layer.{i}.{norm1,norm2,layer_scale1.lambda1,layer_scale2.lambda1}`,
//! `encoder.layer.{i}.attention.attention.{query,key,value}`,
//! `encoder.layer.{i}.attention.output.dense`,
//! `encoder.layer.{i}.mlp.{fc1,fc2}` or `mlp.{weights_in,weights_out}`,
//! `layernorm`; with or without a `dinov2.` prefix
//! (`Dinov2ForImageClassification`). `mask_token` (masked-image
//! pretraining only) and any classifier are ignored. Drop path and dropout
//! are inference no-ops.

use burn::{
    module::{Module, Param},
    nn::{LayerNorm, Linear},
    tensor::{activation::silu, backend::Backend, DType, Tensor},
};

use serde::Deserialize;

use super::{check_image_size, Tensors, VisionAttention, VisionEmbeddings, VisionOutput};
use crate::sidecars::{
    error::SidecarResult,
    freeze::{
        compute_dtype, freeze_and_quantize, sidecar_report, Sidecar, SidecarReport, SidecarStorage,
    },
    hf::{defaults, head_dim, Activation, CheckpointFiles, HfConfig},
    json::{Positive, Size2},
    weights::SafetensorsWeights,
};

/// The fields of a `Dinov2Config` `config.json` the encoder uses.
///
/// ```
/// use arbitor_models::sidecars::vision::dinov2::Dinov2Config;
///
/// // facebook/dinov2-small, abridged.
/// let json = r#"{"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
///     "mlp_ratio": 4, "image_size": 518, "patch_size": 14, "layer_norm_eps": 1e-6,
///     "use_swiglu_ffn": false, "hidden_act": "gelu", "qkv_bias": true}"#;
/// let config = Dinov2Config::from_json(json, "config.json").unwrap();
/// assert_eq!(config.ffn_hidden(), 1536);
///
/// let err = Dinov2Config::from_json(r#"{"hidden_size": 384}"#, "config.json").unwrap_err();
/// assert!(err.to_string().contains("`num_hidden_layers`"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dinov2Config {
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `head_dim` (default `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// `mlp_ratio` (default 4).
    pub mlp_ratio: f64,
    /// `hidden_act` of the plain MLP (default `gelu`).
    pub hidden_act: Activation,
    /// `layer_norm_eps` (default 1e-6).
    pub layer_norm_eps: f64,
    /// `image_size` `[h, w]`: the pretrained resolution.
    pub image_size: [usize; 2],
    /// `patch_size` `[h, w]`.
    pub patch_size: [usize; 2],
    /// `num_channels` (default 3).
    pub num_channels: usize,
    /// `qkv_bias` (default true).
    pub qkv_bias: bool,
    /// `use_swiglu_ffn` (default false).
    pub use_swiglu_ffn: bool,
}

/// The keys of a transformers `Dinov2Config` the encoder reads, with
/// upstream's defaults; the size keys are required.
#[derive(Deserialize)]
struct Dinov2Json {
    hidden_size: Positive,
    num_hidden_layers: Positive,
    num_attention_heads: Positive,
    image_size: Size2,
    patch_size: Size2,
    head_dim: Option<Positive>,
    #[serde(default = "default_mlp_ratio")]
    mlp_ratio: f64,
    #[serde(default = "defaults::gelu")]
    hidden_act: Activation,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "defaults::three")]
    num_channels: Positive,
    #[serde(default = "defaults::yes")]
    qkv_bias: bool,
    #[serde(default)]
    use_swiglu_ffn: bool,
}

fn default_mlp_ratio() -> f64 {
    4.0
}

fn default_layer_norm_eps() -> f64 {
    1e-6
}

impl Dinov2Config {
    /// Reads a parsed `config.json`; `hidden_size`, `num_hidden_layers`,
    /// `num_attention_heads`, `image_size` and `patch_size` are required, the
    /// rest take the upstream defaults.
    ///
    /// ```
    /// use arbitor_models::sidecars::{hf::HfConfig, vision::dinov2::Dinov2Config};
    ///
    /// let json = r#"{"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
    ///     "image_size": 28, "patch_size": 7, "mlp_ratio": "four"}"#;
    /// let err = Dinov2Config::from_config(&HfConfig::from_str(json, "c.json").unwrap()).unwrap_err();
    /// assert!(err.to_string().contains("`mlp_ratio`"));
    /// ```
    pub fn from_config(config: &HfConfig) -> SidecarResult<Self> {
        let raw: Dinov2Json = config.deserialize()?;
        let (image_size, patch_size) = (raw.image_size.0, raw.patch_size.0);
        check_image_size(image_size, patch_size, config)?;
        if !raw.mlp_ratio.is_finite() || raw.mlp_ratio <= 0.0 {
            let reason = format!("must be positive, got {}", raw.mlp_ratio);
            return Err(config.error("mlp_ratio", reason));
        }
        Ok(Self {
            hidden_size: raw.hidden_size.0,
            num_hidden_layers: raw.num_hidden_layers.0,
            num_attention_heads: raw.num_attention_heads.0,
            head_dim: head_dim(
                raw.head_dim,
                raw.hidden_size,
                raw.num_attention_heads,
                config,
            )?,
            mlp_ratio: raw.mlp_ratio,
            hidden_act: raw.hidden_act,
            layer_norm_eps: raw.layer_norm_eps,
            image_size,
            patch_size,
            num_channels: raw.num_channels.0,
            qkv_bias: raw.qkv_bias,
            use_swiglu_ffn: raw.use_swiglu_ffn,
        })
    }

    /// Parses `config.json` text; `file` names it in errors.
    ///
    /// ```
    /// use arbitor_models::sidecars::vision::dinov2::Dinov2Config;
    ///
    /// let err = Dinov2Config::from_json(r#"{"hidden_size": 32, "num_hidden_layers": 1,
    ///     "num_attention_heads": 4, "image_size": 4, "patch_size": 7}"#, "c.json").unwrap_err();
    /// assert!(err.to_string().contains("`image_size`"));
    /// ```
    pub fn from_json(text: &str, file: &str) -> SidecarResult<Self> {
        Self::from_config(&HfConfig::from_str(text, file)?)
    }

    /// The feed-forward width: `⌊hidden · mlp_ratio⌋`, or for SwiGLU two
    /// thirds of it rounded up to a multiple of 8.
    ///
    /// ```
    /// # use arbitor_models::sidecars::vision::dinov2::Dinov2Config;
    /// let json = r#"{"hidden_size": 48, "num_hidden_layers": 1, "num_attention_heads": 3,
    ///     "image_size": 30, "patch_size": 5, "use_swiglu_ffn": true}"#;
    /// assert_eq!(Dinov2Config::from_json(json, "c.json").unwrap().ffn_hidden(), 128);
    /// ```
    pub fn ffn_hidden(&self) -> usize {
        let hidden = (self.hidden_size as f64 * self.mlp_ratio) as usize;
        if self.use_swiglu_ffn {
            ((hidden as f64 * 2.0 / 3.0) as usize).div_ceil(8) * 8
        } else {
            hidden
        }
    }
}

/// The feed-forward block: a plain MLP (`fc1`, `fc2`) or SwiGLU
/// (`weights_in` as `fc1` with `2·hidden` outputs, `weights_out` as `fc2`).
///
/// ```
/// # use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, SidecarStorage};
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_b");
/// let dino = Dinov2Encoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
/// assert!(dino.layers[0].mlp.swiglu);
/// assert_eq!(dino.layers[0].mlp.fc1.weight.dims(), [48, 256]);
/// ```
#[derive(Module, Debug)]
pub struct Dinov2Ffn<B: Backend> {
    /// `mlp.fc1` (MLP) or `mlp.weights_in` (SwiGLU, gate then up).
    pub fc1: Linear<B>,
    /// `mlp.fc2` (MLP) or `mlp.weights_out` (SwiGLU).
    pub fc2: Linear<B>,
    /// Whether this is the SwiGLU variant.
    pub swiglu: bool,
    /// The MLP activation (unused by SwiGLU, which uses SiLU).
    pub activation: Activation,
}

impl<B: Backend> Dinov2Ffn<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.fc1.forward(x);
        let h = if self.swiglu {
            let width = h.dims()[2] / 2;
            let gate = h.clone().narrow(2, 0, width);
            let up = h.narrow(2, width, width);
            silu(gate) * up
        } else {
            self.activation.forward(h)
        };
        self.fc2.forward(h)
    }
}

/// One DINOv2 layer (upstream `Dinov2Layer`).
///
/// ```
/// # use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, SidecarStorage};
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_a");
/// let dino = Dinov2Encoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
/// assert_eq!(dino.layers[1].layer_scale1.dims(), [32]);
/// ```
#[derive(Module, Debug)]
pub struct Dinov2Layer<B: Backend> {
    /// `norm1`.
    pub norm1: LayerNorm<B>,
    /// `attention`.
    pub attention: VisionAttention<B>,
    /// `layer_scale1.lambda1` `[hidden]`.
    pub layer_scale1: Param<Tensor<B, 1>>,
    /// `norm2`.
    pub norm2: LayerNorm<B>,
    /// `mlp`.
    pub mlp: Dinov2Ffn<B>,
    /// `layer_scale2.lambda1` `[hidden]`.
    pub layer_scale2: Param<Tensor<B, 1>>,
}

impl<B: Backend> Dinov2Layer<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let scale = |p: &Param<Tensor<B, 1>>| p.val().unsqueeze::<3>();
        let attn = self.attention.forward(self.norm1.forward(x.clone()));
        let x = x + attn * scale(&self.layer_scale1);
        let ffn = self.mlp.forward(self.norm2.forward(x.clone()));
        x + ffn * scale(&self.layer_scale2)
    }
}

/// The frozen DINOv2 encoder: pixels `[batch, channels, h, w]` to
/// `last_hidden_state` `[batch, 1 + patches, hidden]` and the pooled CLS.
///
/// ```
/// use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, Sidecar, SidecarStorage};
/// use burn::{backend::Flex, tensor::{Distribution, Tensor}};
///
/// let device = Default::default();
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_a");
/// let dino = Dinov2Encoder::<Flex>::load(dir, SidecarStorage::Int8, &device).unwrap();
/// // Any size of at least one patch; here a 6 × 5 grid.
/// let pixels = Tensor::<Flex, 4>::random([2, 3, 42, 35], Distribution::Normal(0.0, 1.0), &device);
/// let out = dino.forward(pixels);
/// assert_eq!(out.last_hidden_state.dims(), [2, 31, 32]);
/// assert_eq!(dino.report().storage, SidecarStorage::Int8);
/// ```
#[derive(Module, Debug)]
pub struct Dinov2Encoder<B: Backend> {
    /// `embeddings`.
    pub embeddings: VisionEmbeddings<B>,
    /// `encoder.layer`.
    pub layers: Vec<Dinov2Layer<B>>,
    /// `layernorm`: the final norm.
    pub layernorm: LayerNorm<B>,
    /// The configuration the weights were loaded with.
    pub config: Dinov2Config,
    /// The dtype the forward pass computes in (BF16 for BF16 storage).
    pub compute: DType,
}

impl<B: Backend> Dinov2Encoder<B> {
    /// Loads `config.json` and `model.safetensors` (a directory, or
    /// [`CheckpointFiles::files`]) and freezes the encoder as `storage`
    /// ([`freeze_and_quantize`]).
    ///
    /// ```
    /// use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, SidecarError, SidecarStorage};
    /// use burn::backend::Flex;
    ///
    /// let err = Dinov2Encoder::<Flex>::load("/nonexistent", SidecarStorage::Int8, &Default::default())
    ///     .unwrap_err();
    /// assert!(matches!(err, SidecarError::Io { .. }));
    /// ```
    pub fn load(
        files: impl Into<CheckpointFiles>,
        storage: SidecarStorage,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let (config, weights) = files.into().open()?;
        let config = Dinov2Config::from_config(&config)?;
        Ok(Self::from_weights(&config, &weights, device)?.freeze(storage))
    }

    /// Builds the encoder in `f32` from loaded weights, not yet frozen.
    ///
    /// ```
    /// use arbitor_models::sidecars::{vision::dinov2::{Dinov2Config, Dinov2Encoder}, SafetensorsWeights};
    /// use burn::backend::Flex;
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_b");
    /// let config = Dinov2Config::from_json(
    ///     &std::fs::read_to_string(format!("{dir}/config.json")).unwrap(), "config.json").unwrap();
    /// let weights = SafetensorsWeights::open(format!("{dir}/model.safetensors").as_ref()).unwrap();
    /// // dinov2_b stores the model under `dinov2.`.
    /// let dino = Dinov2Encoder::<Flex>::from_weights(&config, &weights, &Default::default()).unwrap();
    /// assert_eq!(dino.layers.len(), 2);
    /// ```
    pub fn from_weights(
        config: &Dinov2Config,
        weights: &SafetensorsWeights,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let d = config.hidden_size;
        let ckpt = Tensors::find(weights, &["", "dinov2."], d, config.layer_norm_eps, device)?;
        let ffn = config.ffn_hidden();
        let layers = ckpt.layers(config.num_hidden_layers, |layer| {
            let mlp = if config.use_swiglu_ffn {
                Dinov2Ffn {
                    fc1: layer.linear("mlp.weights_in", d, 2 * ffn)?,
                    fc2: layer.linear("mlp.weights_out", ffn, d)?,
                    swiglu: true,
                    activation: Activation::Silu,
                }
            } else {
                Dinov2Ffn {
                    fc1: layer.linear("mlp.fc1", d, ffn)?,
                    fc2: layer.linear("mlp.fc2", ffn, d)?,
                    swiglu: false,
                    activation: config.hidden_act,
                }
            };
            Ok(Dinov2Layer {
                norm1: layer.layer_norm("norm1")?,
                attention: layer.attention(
                    config.num_attention_heads,
                    config.head_dim,
                    config.qkv_bias,
                )?,
                layer_scale1: layer.vector("layer_scale1.lambda1")?,
                norm2: layer.layer_norm("norm2")?,
                mlp,
                layer_scale2: layer.vector("layer_scale2.lambda1")?,
            })
        })?;
        Ok(Self {
            embeddings: ckpt.embeddings(
                config.num_channels,
                config.image_size,
                config.patch_size,
            )?,
            layers,
            layernorm: ckpt.layer_norm("layernorm")?,
            config: config.clone(),
            compute: DType::F32,
        })
    }

    /// Freezes the encoder (`no_grad`) and stores it as `storage` (see
    /// [`freeze_and_quantize`]).
    ///
    /// ```
    /// use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, Sidecar, SidecarStorage};
    /// use burn::backend::{Autodiff, Flex};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_a");
    /// let dino = Dinov2Encoder::<Autodiff<Flex>>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
    /// assert!(dino.report().frozen);
    /// ```
    pub fn freeze(self, storage: SidecarStorage) -> Self {
        let mut frozen = freeze_and_quantize(self, storage);
        frozen.compute = compute_dtype(&frozen);
        frozen
    }

    /// Encodes pixels `[batch, channels, h, w]` (normalized as the upstream
    /// image processor does). Outputs have the input's dtype.
    ///
    /// # Panics
    ///
    /// If the channel count differs from the config's, or the image is
    /// smaller than one patch.
    ///
    /// ```
    /// # use arbitor_models::sidecars::{vision::dinov2::Dinov2Encoder, SidecarStorage};
    /// # use burn::{backend::Flex, tensor::Tensor};
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/dinov2_b");
    /// let dino = Dinov2Encoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
    /// let out = dino.forward(Tensor::zeros([1, 3, 30, 30], &Default::default()));
    /// assert_eq!(out.last_hidden_state.dims(), [1, 37, 48]);
    /// ```
    pub fn forward(&self, pixels: Tensor<B, 4>) -> VisionOutput<B> {
        let out_dtype = pixels.dtype();
        let mut x = self.embeddings.forward(pixels.cast(self.compute));
        for layer in &self.layers {
            x = layer.forward(x);
        }
        let x = self.layernorm.forward(x).cast(out_dtype);
        let [batch, _, d] = x.dims();
        let pooled = x.clone().narrow(1, 0, 1).reshape([batch, d]);
        VisionOutput {
            last_hidden_state: x,
            pooler_output: Some(pooled),
        }
    }
}

impl<B: Backend> Sidecar<B> for Dinov2Encoder<B> {
    fn report(&self) -> SidecarReport {
        sidecar_report("dinov2", self)
    }
}
