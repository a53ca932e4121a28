//! `pig_vae`: a frozen latent autoencoder compatible with diffusers
//! [`AutoencoderTiny`](https://huggingface.co/docs/diffusers/api/models/autoencoder_tiny)
//! (TAESD), which decodes [`VideoHead`](crate::video::VideoHead) latents to frames.
//!
//! The port follows diffusers 0.42 `EncoderTiny`, `DecoderTiny` and
//! `AutoencoderTinyBlock` layer by layer and loads the weights under their
//! diffusers names (`encoder.layers.{i}…`, `decoder.layers.{i}…`, blocks
//! `…conv.{0,2,4}` and `…skip`), from a diffusers model directory:
//! `config.json` plus `diffusion_pytorch_model.safetensors`.
//!
//! * encoder: `x ↦ (x + 1) / 2`, then per stage `i` a 3×3 conv (stage 0:
//!   `in → c` with bias; later stages: stride 2, no bias) and
//!   `num_encoder_blocks[i]` blocks, then a 3×3 conv to `latent_channels`;
//!   the image `[B, in, H, W]` gives latents `[B, latent, H/2^(n−1), W/2^(n−1)]`
//!   (rounded up at each stage).
//! * decoder: `z ↦ 3·tanh(z / 3)`, 3×3 conv and activation, then per stage
//!   the blocks, a nearest ×`upsampling_scaling_factor` upsampling (not after
//!   the last stage) and a 3×3 conv (bias only in the last one, which maps to
//!   `out_channels`), then `x ↦ 2x − 1`.
//! * block: `relu(conv₃(act(conv₂(act(conv₁(x))))) + skip(x))`, `skip` a
//!   1×1 conv without bias where the widths differ, else the identity.
//!
//! Numerics (measured by `tests/cpu/sidecars_vae_codec.rs` against diffusers on
//! two committed fixtures): the `f32` port matches to ≤ 1.1e-6 relative
//! error (max |Δ| / max |reference|, asserted ≤ 1e-4); the int8 port (Burn
//! `Q8S`, one scale per output channel) to ≤ 2.8e-2 (asserted ≤ 5e-2); the
//! frozen-bf16 fallback to 1.1e-2.

use std::path::Path;

use super::{
    error::{SidecarError, SidecarResult},
    freeze::{compute_dtype, freeze_and_quantize, sidecar_report, Sidecar, SidecarReport},
    json::{positive, positive_list, JsonConfig},
    weights::SafetensorsWeights,
    SidecarStorage,
};
use serde::{
    de::{Error as _, IgnoredAny},
    Deserialize, Deserializer,
};

use burn::{
    module::Module,
    nn::conv::Conv2d,
    tensor::{
        activation::{gelu, mish, relu, silu},
        backend::Backend,
        DType, Tensor,
    },
};

/// The weights file name diffusers writes.
pub const VAE_WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";

/// Activation of the convolution stacks (diffusers `get_activation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VaeActivation {
    /// `relu` (TAESD's, and diffusers' default).
    #[default]
    Relu,
    /// `silu` / `swish`.
    Silu,
    /// `gelu` (exact, erf).
    Gelu,
    /// `mish`.
    Mish,
}

impl<'de> Deserialize<'de> for VaeActivation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.to_lowercase().as_str() {
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            "gelu" => Self::Gelu,
            "mish" => Self::Mish,
            _ => {
                return Err(D::Error::custom(format!(
                    "`{name}` unsupported (relu, silu, swish, gelu, mish)"
                )))
            }
        })
    }
}

impl VaeActivation {
    fn apply<B: Backend>(self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Self::Relu => relu(x),
            Self::Silu => silu(x),
            Self::Gelu => gelu(x),
            Self::Mish => mish(x),
        }
    }
}

/// The diffusers `AutoencoderTiny` config (`config.json`).
///
/// Required keys: `in_channels`, `out_channels`, `latent_channels`,
/// `encoder_block_out_channels`, `decoder_block_out_channels`,
/// `num_encoder_blocks`, `num_decoder_blocks`. Optional keys take diffusers'
/// defaults: `act_fn` (`relu`), `upsample_fn` (`nearest`, the only one
/// supported), `upsampling_scaling_factor` (2), `latent_magnitude` (3),
/// `latent_shift` (0.5), `scaling_factor` (1), `shift_factor` (0),
/// `force_upcast`, `block_out_channels`. Keys starting with `_` are
/// metadata and ignored; any other key is an error naming it.
///
/// ```
/// use arbitor_models::sidecars::vae::PigVaeConfig;
///
/// let json = r#"{"in_channels": 3, "out_channels": 3, "latent_channels": 16,
///     "encoder_block_out_channels": [8, 8], "decoder_block_out_channels": [8, 8],
///     "num_encoder_blocks": [1, 1], "num_decoder_blocks": [1, 1]}"#;
/// let config = PigVaeConfig::from_json(json, "config.json").unwrap();
/// assert_eq!(config.latent_channels, 16);
/// assert_eq!(config.upsampling_scaling_factor, 2);
///
/// let err = PigVaeConfig::from_json(r#"{"in_channels": 3}"#, "config.json").unwrap_err();
/// assert!(err.to_string().contains("out_channels"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PigVaeConfig {
    /// Image channels in.
    pub in_channels: usize,
    /// Image channels out.
    pub out_channels: usize,
    /// Latent channels (16 for `pig_vae`).
    pub latent_channels: usize,
    /// Width of each encoder stage (all equal, as upstream requires).
    pub encoder_block_out_channels: Vec<usize>,
    /// Width of each decoder stage (all equal, as upstream requires).
    pub decoder_block_out_channels: Vec<usize>,
    /// Residual blocks per encoder stage.
    pub num_encoder_blocks: Vec<usize>,
    /// Residual blocks per decoder stage.
    pub num_decoder_blocks: Vec<usize>,
    /// Nearest-neighbour upsampling factor between decoder stages.
    pub upsampling_scaling_factor: usize,
    /// Activation.
    pub act_fn: VaeActivation,
    /// `scale_latents`: `z / (2·magnitude) + shift`.
    pub latent_magnitude: f64,
    /// See `latent_magnitude`.
    pub latent_shift: f64,
    /// diffusers' latent scaling factor (1 for TAESD).
    pub scaling_factor: f64,
    /// diffusers' latent shift factor (0 for TAESD).
    pub shift_factor: f64,
}

/// diffusers `AutoencoderTiny.__init__` arguments as `config.json` stores
/// them, with diffusers' defaults; any other key (but `_` metadata) is an
/// error naming it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoencoderTinyJson {
    #[serde(deserialize_with = "positive")]
    in_channels: usize,
    #[serde(deserialize_with = "positive")]
    out_channels: usize,
    #[serde(deserialize_with = "positive")]
    latent_channels: usize,
    #[serde(deserialize_with = "positive_list")]
    encoder_block_out_channels: Vec<usize>,
    #[serde(deserialize_with = "positive_list")]
    decoder_block_out_channels: Vec<usize>,
    #[serde(deserialize_with = "positive_list")]
    num_encoder_blocks: Vec<usize>,
    #[serde(deserialize_with = "positive_list")]
    num_decoder_blocks: Vec<usize>,
    #[serde(default = "two", deserialize_with = "positive")]
    upsampling_scaling_factor: usize,
    #[serde(default)]
    act_fn: VaeActivation,
    #[serde(default, rename = "upsample_fn")]
    _upsample_fn: Upsample,
    #[serde(default = "three")]
    latent_magnitude: f64,
    #[serde(default = "half")]
    latent_shift: f64,
    #[serde(default = "one")]
    scaling_factor: f64,
    #[serde(default)]
    shift_factor: f64,
    // Read by diffusers' pipelines, not by the model.
    #[serde(default, rename = "force_upcast")]
    _force_upcast: IgnoredAny,
    #[serde(default, rename = "block_out_channels")]
    _block_out_channels: IgnoredAny,
}

/// `upsample_fn`: only diffusers' default, `nearest`, is supported.
#[derive(Default, Deserialize)]
enum Upsample {
    #[default]
    #[serde(rename = "nearest")]
    Nearest,
}

// diffusers' defaults, for `#[serde(default = ...)]`.
fn two() -> usize {
    2
}
fn three() -> f64 {
    3.0
}
fn half() -> f64 {
    0.5
}
fn one() -> f64 {
    1.0
}

impl PigVaeConfig {
    /// Parses diffusers `config.json` text; `file` names it in errors.
    ///
    /// ```
    /// use arbitor_models::sidecars::vae::PigVaeConfig;
    ///
    /// let json = r#"{"in_channels": 3, "out_channels": 3, "latent_channels": 16,
    ///     "encoder_block_out_channels": [8], "decoder_block_out_channels": [8],
    ///     "num_encoder_blocks": [1], "num_decoder_blocks": [1], "upsample_fn": "bilinear"}"#;
    /// let err = PigVaeConfig::from_json(json, "config.json").unwrap_err();
    /// assert!(err.to_string().contains("`upsample_fn`"));
    /// ```
    pub fn from_json(text: &str, file: &str) -> SidecarResult<Self> {
        Self::from_config(&JsonConfig::parse(text, file)?)
    }

    /// Reads the config from a parsed [`JsonConfig`].
    ///
    /// ```
    /// use arbitor_models::sidecars::{json::JsonConfig, vae::PigVaeConfig};
    ///
    /// let json = JsonConfig::parse(r#"{"in_channels": 3, "colour": 1}"#, "config.json").unwrap();
    /// let err = PigVaeConfig::from_config(&json).unwrap_err();
    /// assert!(err.to_string().contains("`colour`"));
    /// ```
    pub fn from_config(json: &JsonConfig) -> SidecarResult<Self> {
        let raw: AutoencoderTinyJson = json.deserialize()?;
        let config = Self {
            in_channels: raw.in_channels,
            out_channels: raw.out_channels,
            latent_channels: raw.latent_channels,
            encoder_block_out_channels: raw.encoder_block_out_channels,
            decoder_block_out_channels: raw.decoder_block_out_channels,
            num_encoder_blocks: raw.num_encoder_blocks,
            num_decoder_blocks: raw.num_decoder_blocks,
            upsampling_scaling_factor: raw.upsampling_scaling_factor,
            act_fn: raw.act_fn,
            latent_magnitude: raw.latent_magnitude,
            latent_shift: raw.latent_shift,
            scaling_factor: raw.scaling_factor,
            shift_factor: raw.shift_factor,
        };
        config.validate(json.file())?;
        Ok(config)
    }

    /// Reads `config.json`.
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVaeConfig, SidecarError};
    ///
    /// let err = PigVaeConfig::load("/nonexistent/config.json".as_ref()).unwrap_err();
    /// assert!(matches!(err, SidecarError::Io { .. }));
    /// ```
    pub fn load(path: &Path) -> SidecarResult<Self> {
        Self::from_config(&JsonConfig::load(path)?)
    }

    fn validate(&self, file: &str) -> SidecarResult<()> {
        let pairs = [
            (
                "num_encoder_blocks",
                &self.encoder_block_out_channels,
                &self.num_encoder_blocks,
            ),
            (
                "num_decoder_blocks",
                &self.decoder_block_out_channels,
                &self.num_decoder_blocks,
            ),
        ];
        for (key, widths, blocks) in pairs {
            if widths.len() != blocks.len() {
                return Err(SidecarError::config(
                    file,
                    key,
                    format!("{} stages, but {} block widths", blocks.len(), widths.len()),
                ));
            }
        }
        for (key, widths) in [
            (
                "encoder_block_out_channels",
                &self.encoder_block_out_channels,
            ),
            (
                "decoder_block_out_channels",
                &self.decoder_block_out_channels,
            ),
        ] {
            if widths.iter().any(|w| *w != widths[0]) {
                return Err(SidecarError::config(
                    file,
                    key,
                    format!("{widths:?}: AutoencoderTiny needs one width for all stages"),
                ));
            }
        }
        Ok(())
    }

    /// Spatial downsampling of the encoder (`2^(stages − 1)`).
    ///
    /// ```
    /// # use arbitor_models::sidecars::vae::PigVaeConfig;
    /// # let json = r#"{"in_channels": 3, "out_channels": 3, "latent_channels": 16,
    /// #     "encoder_block_out_channels": [8, 8, 8], "decoder_block_out_channels": [8, 8, 8],
    /// #     "num_encoder_blocks": [1, 1, 1], "num_decoder_blocks": [1, 1, 1]}"#;
    /// let config = PigVaeConfig::from_json(json, "config.json").unwrap();
    /// assert_eq!(config.encoder_downsampling(), 4);
    /// assert_eq!(config.decoder_upsampling(), 4);
    /// ```
    pub fn encoder_downsampling(&self) -> usize {
        1 << (self.encoder_block_out_channels.len() - 1)
    }

    /// Spatial upsampling of the decoder (`factor^(stages − 1)`).
    pub fn decoder_upsampling(&self) -> usize {
        self.upsampling_scaling_factor
            .pow(self.decoder_block_out_channels.len() as u32 - 1)
    }
}

/// diffusers `AutoencoderTinyBlock`.
#[derive(Module, Debug)]
pub struct TinyBlock<B: Backend> {
    convs: Vec<Conv2d<B>>,
    skip: Option<Conv2d<B>>,
    #[module(skip)]
    act: VaeActivation,
}

impl<B: Backend> TinyBlock<B> {
    fn load(
        w: &SafetensorsWeights,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        act: VaeActivation,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let conv = |i: usize, c: usize| {
            conv3x3(w, &format!("{prefix}.conv.{i}"), c, c_out, 1, true, device)
        };
        Ok(Self {
            convs: vec![conv(0, c_in)?, conv(2, c_out)?, conv(4, c_out)?],
            skip: (c_in != c_out)
                .then(|| {
                    w.conv2d(
                        &format!("{prefix}.skip"),
                        c_in,
                        c_out,
                        [1, 1],
                        [1, 1],
                        [0, 0],
                        false,
                        device,
                    )
                })
                .transpose()?,
            act,
        })
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward(h);
            if i + 1 < self.convs.len() {
                h = self.act.apply(h);
            }
        }
        let skip = match &self.skip {
            Some(conv) => conv.forward(x),
            None => x,
        };
        relu(h + skip)
    }
}

/// A 3×3 convolution of stride `stride`, padding 1, from `{name}.{weight,bias}`.
fn conv3x3<B: Backend>(
    w: &SafetensorsWeights,
    name: &str,
    c_in: usize,
    c_out: usize,
    stride: usize,
    bias: bool,
    device: &B::Device,
) -> SidecarResult<Conv2d<B>> {
    w.conv2d(
        name,
        c_in,
        c_out,
        [3, 3],
        [stride, stride],
        [1, 1],
        bias,
        device,
    )
}

/// diffusers' `{side}.layers` `nn.Sequential`, read in order: each load
/// takes the next index, [`skip`](Self::skip) passes a layer without
/// weights (activation, upsampling).
struct Sequential<'a> {
    w: &'a SafetensorsWeights,
    side: &'static str,
    index: usize,
}

impl<'a> Sequential<'a> {
    fn new(w: &'a SafetensorsWeights, side: &'static str) -> Self {
        Self { w, side, index: 0 }
    }

    fn next(&mut self) -> String {
        self.index += 1;
        format!("{}.layers.{}", self.side, self.index - 1)
    }

    fn skip(&mut self) {
        self.index += 1;
    }

    fn conv3x3<B: Backend>(
        &mut self,
        c_in: usize,
        c_out: usize,
        stride: usize,
        bias: bool,
        device: &B::Device,
    ) -> SidecarResult<Conv2d<B>> {
        conv3x3(self.w, &self.next(), c_in, c_out, stride, bias, device)
    }

    /// `count` [`TinyBlock`]s of width `width`.
    fn blocks<B: Backend>(
        &mut self,
        count: usize,
        width: usize,
        act: VaeActivation,
        device: &B::Device,
    ) -> SidecarResult<Vec<TinyBlock<B>>> {
        (0..count)
            .map(|_| TinyBlock::load(self.w, &self.next(), width, width, act, device))
            .collect()
    }
}

/// One encoder stage: its first conv and its blocks.
#[derive(Module, Debug)]
pub struct EncoderStage<B: Backend> {
    conv: Conv2d<B>,
    blocks: Vec<TinyBlock<B>>,
}

/// diffusers `EncoderTiny`.
#[derive(Module, Debug)]
pub struct EncoderTiny<B: Backend> {
    stages: Vec<EncoderStage<B>>,
    out: Conv2d<B>,
}

impl<B: Backend> EncoderTiny<B> {
    fn load(
        w: &SafetensorsWeights,
        config: &PigVaeConfig,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let mut layers = Sequential::new(w, "encoder");
        let mut stages = Vec::new();
        for (i, (&width, &blocks)) in config
            .encoder_block_out_channels
            .iter()
            .zip(&config.num_encoder_blocks)
            .enumerate()
        {
            let conv = if i == 0 {
                layers.conv3x3(config.in_channels, width, 1, true, device)?
            } else {
                layers.conv3x3(width, width, 2, false, device)?
            };
            let blocks = layers.blocks(blocks, width, config.act_fn, device)?;
            stages.push(EncoderStage { conv, blocks });
        }
        let last = *config.encoder_block_out_channels.last().unwrap_or(&1);
        let out = layers.conv3x3(last, config.latent_channels, 1, true, device)?;
        Ok(Self { stages, out })
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = (x + 1.0) / 2.0;
        for stage in &self.stages {
            h = stage.conv.forward(h);
            for block in &stage.blocks {
                h = block.forward(h);
            }
        }
        self.out.forward(h)
    }
}

/// One decoder stage: its blocks, then (except in the last) nearest
/// upsampling, then its conv.
#[derive(Module, Debug)]
pub struct DecoderStage<B: Backend> {
    blocks: Vec<TinyBlock<B>>,
    upsample: usize,
    conv: Conv2d<B>,
}

/// diffusers `DecoderTiny`.
#[derive(Module, Debug)]
pub struct DecoderTiny<B: Backend> {
    stem: Conv2d<B>,
    stages: Vec<DecoderStage<B>>,
    #[module(skip)]
    act: VaeActivation,
}

/// Nearest-neighbour upsampling by an integer factor (PyTorch `nn.Upsample(mode="nearest")`).
fn upsample_nearest<B: Backend>(x: Tensor<B, 4>, factor: usize) -> Tensor<B, 4> {
    if factor == 1 {
        return x;
    }
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .repeat_dim(3, factor)
        .repeat_dim(5, factor)
        .reshape([b, c, h * factor, w * factor])
}

impl<B: Backend> DecoderTiny<B> {
    fn load(
        w: &SafetensorsWeights,
        config: &PigVaeConfig,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let mut layers = Sequential::new(w, "decoder");
        let first = config.decoder_block_out_channels[0];
        let stem = layers.conv3x3(config.latent_channels, first, 1, true, device)?;
        layers.skip(); // the activation
        let mut stages = Vec::new();
        let n = config.decoder_block_out_channels.len();
        for (i, (&width, &blocks)) in config
            .decoder_block_out_channels
            .iter()
            .zip(&config.num_decoder_blocks)
            .enumerate()
        {
            let last = i + 1 == n;
            let blocks = layers.blocks(blocks, width, config.act_fn, device)?;
            let upsample = if last {
                1
            } else {
                layers.skip(); // nn.Upsample
                config.upsampling_scaling_factor
            };
            let conv_out = if last { config.out_channels } else { width };
            let conv = layers.conv3x3(width, conv_out, 1, last, device)?;
            stages.push(DecoderStage {
                blocks,
                upsample,
                conv,
            });
        }
        Ok(Self {
            stem,
            stages,
            act: config.act_fn,
        })
    }

    fn forward(&self, z: Tensor<B, 4>) -> Tensor<B, 4> {
        let z = (z / 3.0).tanh() * 3.0;
        let mut h = self.act.apply(self.stem.forward(z));
        for stage in &self.stages {
            for block in &stage.blocks {
                h = block.forward(h);
            }
            h = upsample_nearest(h, stage.upsample);
            h = stage.conv.forward(h);
        }
        h * 2.0 - 1.0
    }
}

/// The `pig_vae` sidecar: diffusers `AutoencoderTiny`, frozen.
///
/// ```
/// use arbitor_models::sidecars::{vae::PigVae, Sidecar, SidecarStorage};
/// use burn::{backend::Flex, tensor::{Distribution, Tensor}};
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
/// let device = Default::default();
/// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::Int8, &device).unwrap();
/// // VideoHead latents (batch, 16, frames, h, w) to frames (batch, 3, frames, 4h, 4w).
/// let latents = Tensor::<Flex, 5>::random([1, 16, 1, 8, 8], Distribution::Normal(0.0, 1.0), &device);
/// assert_eq!(vae.decode_video(latents).dims(), [1, 3, 1, 32, 32]);
/// let report = vae.report();
/// assert!(report.frozen);
/// assert_eq!(report.storage, SidecarStorage::Int8);
/// ```
#[derive(Module, Debug)]
pub struct PigVae<B: Backend> {
    encoder: Option<EncoderTiny<B>>,
    decoder: DecoderTiny<B>,
    #[module(skip)]
    config: PigVaeConfig,
}

fn shape_error(tensor: &str, expected: Vec<usize>, actual: &[usize]) -> SidecarError {
    SidecarError::ShapeMismatch {
        tensor: tensor.to_string(),
        expected,
        actual: actual.to_vec(),
    }
}

impl<B: Backend> PigVae<B> {
    /// Loads a diffusers model directory (`config.json`,
    /// `diffusion_pytorch_model.safetensors`) and freezes it as `storage`
    /// (see [`freeze_and_quantize`] for the per-backend fallback).
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// use burn::backend::Flex;
    ///
    /// let err = PigVae::<Flex>::load("/nonexistent".as_ref(), SidecarStorage::F32, &Default::default())
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("config.json"));
    /// ```
    pub fn load(dir: &Path, storage: SidecarStorage, device: &B::Device) -> SidecarResult<Self> {
        let config = PigVaeConfig::load(&dir.join("config.json"))?;
        let weights = SafetensorsWeights::open(&dir.join(VAE_WEIGHTS_FILE))?;
        Ok(Self::from_weights(config, &weights, device)?.freeze(storage))
    }

    /// Builds the `f32` port from a config and weights, not yet frozen. The
    /// encoder is optional: a file without any `encoder.` tensor gives a
    /// decoder-only VAE (whose [`try_encode`](Self::try_encode) fails).
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::{PigVae, PigVaeConfig}, SafetensorsWeights};
    /// use burn::backend::Flex;
    ///
    /// let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sidecars/taesd_w8_s3");
    /// let config = PigVaeConfig::load(&dir.join("config.json")).unwrap();
    /// let weights = SafetensorsWeights::open(&dir.join("diffusion_pytorch_model.safetensors")).unwrap();
    /// let vae = PigVae::<Flex>::from_weights(config, &weights, &Default::default()).unwrap();
    /// assert!(vae.has_encoder());
    /// ```
    pub fn from_weights(
        config: PigVaeConfig,
        weights: &SafetensorsWeights,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let has_encoder = weights.names().iter().any(|n| n.starts_with("encoder."));
        let encoder = has_encoder
            .then(|| EncoderTiny::load(weights, &config, device))
            .transpose()?;
        let decoder = DecoderTiny::load(weights, &config, device)?;
        Ok(Self {
            encoder,
            decoder,
            config,
        })
    }

    /// Freezes (`no_grad`) and stores the weights as `storage`.
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, Sidecar, SidecarStorage};
    /// use burn::backend::Flex;
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &Default::default()).unwrap();
    /// assert_eq!(vae.freeze(SidecarStorage::Bf16).report().storage, SidecarStorage::Bf16);
    /// ```
    pub fn freeze(self, storage: SidecarStorage) -> Self {
        freeze_and_quantize(self, storage)
    }

    /// The config it was loaded with.
    ///
    /// ```
    /// # use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// # use burn::backend::Flex;
    /// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &Default::default()).unwrap();
    /// assert_eq!(vae.config().latent_channels, 16);
    /// ```
    pub fn config(&self) -> &PigVaeConfig {
        &self.config
    }

    /// Whether the encoder weights were present.
    pub fn has_encoder(&self) -> bool {
        self.encoder.is_some()
    }

    fn to_compute(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match compute_dtype(self) {
            DType::BF16 => x.cast(DType::BF16),
            _ => x,
        }
    }

    fn from_compute(x: Tensor<B, 4>) -> Tensor<B, 4> {
        if x.dtype() == DType::BF16 {
            x.cast(DType::F32)
        } else {
            x
        }
    }

    /// Encodes images `[batch, in_channels, h, w]` in `[-1, 1]` to raw latents
    /// `[batch, latent_channels, ⌈h / d⌉, ⌈w / d⌉]` (`d` =
    /// [`encoder_downsampling`](PigVaeConfig::encoder_downsampling)).
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// use burn::{backend::Flex, tensor::Tensor};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let device = Default::default();
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &device).unwrap();
    /// let wrong = Tensor::<Flex, 4>::zeros([1, 4, 8, 8], &device);
    /// assert!(vae.try_encode(wrong).unwrap_err().to_string().contains("images"));
    /// ```
    pub fn try_encode(&self, images: Tensor<B, 4>) -> SidecarResult<Tensor<B, 4>> {
        let dims = images.dims();
        if dims[1] != self.config.in_channels {
            return Err(shape_error(
                "images",
                vec![dims[0], self.config.in_channels, dims[2], dims[3]],
                &dims,
            ));
        }
        let encoder = self
            .encoder
            .as_ref()
            .ok_or_else(|| SidecarError::MissingTensor {
                file: "pig_vae".into(),
                tensor: "encoder.layers.0.weight".into(),
            })?;
        Ok(Self::from_compute(encoder.forward(self.to_compute(images))))
    }

    /// [`try_encode`](Self::try_encode), panicking on a bad shape or a decoder-only VAE.
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// use burn::{backend::Flex, tensor::Tensor};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let device = Default::default();
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &device).unwrap();
    /// let latents = vae.encode(Tensor::<Flex, 4>::zeros([1, 3, 13, 11], &device));
    /// assert_eq!(latents.dims(), [1, 16, 4, 3]);
    /// ```
    pub fn encode(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        self.try_encode(images).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Decodes raw latents `[batch, latent_channels, h, w]` to images
    /// `[batch, out_channels, h·u, w·u]` in about `[-1, 1]`
    /// (`u` = [`decoder_upsampling`](PigVaeConfig::decoder_upsampling)).
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// use burn::{backend::Flex, tensor::Tensor};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let device = Default::default();
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &device).unwrap();
    /// let err = vae.try_decode(Tensor::<Flex, 4>::zeros([1, 4, 8, 8], &device)).unwrap_err();
    /// assert!(err.to_string().contains("[1, 16, 8, 8]"));
    /// ```
    pub fn try_decode(&self, latents: Tensor<B, 4>) -> SidecarResult<Tensor<B, 4>> {
        let dims = latents.dims();
        if dims[1] != self.config.latent_channels {
            return Err(shape_error(
                "latents",
                vec![dims[0], self.config.latent_channels, dims[2], dims[3]],
                &dims,
            ));
        }
        Ok(Self::from_compute(
            self.decoder.forward(self.to_compute(latents)),
        ))
    }

    /// [`try_decode`](Self::try_decode), panicking on a bad shape.
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// use burn::{backend::Flex, tensor::Tensor};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let device = Default::default();
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &device).unwrap();
    /// let frames = vae.decode(Tensor::<Flex, 4>::zeros([2, 16, 5, 3], &device));
    /// assert_eq!(frames.dims(), [2, 3, 20, 12]);
    /// ```
    pub fn decode(&self, latents: Tensor<B, 4>) -> Tensor<B, 4> {
        self.try_decode(latents).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Decodes [`VideoHead`](crate::video::VideoHead) latents
    /// `[batch, latent_channels, frames, h, w]` frame by frame (frames folded
    /// into the batch) to `[batch, out_channels, frames, h·u, w·u]`.
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// use burn::{backend::Flex, tensor::Tensor};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let device = Default::default();
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &device).unwrap();
    /// let err = vae.try_decode_video(Tensor::<Flex, 5>::zeros([1, 8, 1, 4, 4], &device)).unwrap_err();
    /// assert!(err.to_string().contains("latents"));
    /// ```
    pub fn try_decode_video(&self, latents: Tensor<B, 5>) -> SidecarResult<Tensor<B, 5>> {
        let [b, c, t, h, w] = latents.dims();
        if c != self.config.latent_channels {
            return Err(shape_error(
                "latents",
                vec![b, self.config.latent_channels, t, h, w],
                &[b, c, t, h, w],
            ));
        }
        let frames = latents.swap_dims(1, 2).reshape([b * t, c, h, w]);
        let images = self.try_decode(frames)?;
        let [_, co, ho, wo] = images.dims();
        Ok(images.reshape([b, t, co, ho, wo]).swap_dims(1, 2))
    }

    /// [`try_decode_video`](Self::try_decode_video), panicking on a bad shape.
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// use burn::{backend::Flex, tensor::Tensor};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let device = Default::default();
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::Int8, &device).unwrap();
    /// let video = vae.decode_video(Tensor::<Flex, 5>::zeros([1, 16, 2, 4, 4], &device));
    /// assert_eq!(video.dims(), [1, 3, 2, 16, 16]);
    /// ```
    pub fn decode_video(&self, latents: Tensor<B, 5>) -> Tensor<B, 5> {
        self.try_decode_video(latents)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// diffusers `scale_latents`: raw latents to `[0, 1]`
    /// (`z / (2·magnitude) + shift`, clamped).
    ///
    /// ```
    /// use arbitor_models::sidecars::{vae::PigVae, SidecarStorage};
    /// use burn::{backend::Flex, tensor::Tensor};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/taesd_w8_s3");
    /// let device = Default::default();
    /// let vae = PigVae::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &device).unwrap();
    /// let z = Tensor::<Flex, 4>::full([1, 16, 2, 2], 1.5, &device);
    /// let back = vae.unscale_latents(vae.scale_latents(z));
    /// assert!((back.mean().into_scalar() - 1.5).abs() < 1e-5);
    /// ```
    pub fn scale_latents(&self, latents: Tensor<B, 4>) -> Tensor<B, 4> {
        (latents / (2.0 * self.config.latent_magnitude) + self.config.latent_shift).clamp(0.0, 1.0)
    }

    /// diffusers `unscale_latents`: `[0, 1]` to raw latents.
    pub fn unscale_latents(&self, scaled: Tensor<B, 4>) -> Tensor<B, 4> {
        (scaled - self.config.latent_shift) * (2.0 * self.config.latent_magnitude)
    }
}

impl<B: Backend> Sidecar<B> for PigVae<B> {
    fn report(&self) -> SidecarReport {
        sidecar_report("pig_vae", self)
    }
}
