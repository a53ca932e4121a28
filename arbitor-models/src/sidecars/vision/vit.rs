//! ViT: a frozen port of transformers' `ViTModel`
//! (`transformers/models/vit/modeling_vit.py`, transformers 5.x).
//!
//! `embeddings` → `num_hidden_layers` layers of
//! `x + attention(layernorm_before(x))`, `x + output(act(intermediate(layernorm_after(x))))`
//! → `layernorm`; with a pooler, `pooler_output = pooler_act(pooler.dense(CLS))`.
//!
//! Tensor names are those of the checkpoints (`google/vit-*`, and what
//! transformers 5's `save_pretrained` writes): `embeddings.*`,
//! `encoder.layer.{i}.attention.attention.{query,key,value}`,
//! `encoder.layer.{i}.attention.output.dense`,
//! `encoder.layer.{i}.{intermediate,output}.dense`,
//! `encoder.layer.{i}.{layernorm_before,layernorm_after}`, `layernorm`,
//! `pooler.dense`; with or without a `vit.` prefix
//! (`ViTForImageClassification`, e.g. `google/vit-base-patch16-224`, which has
//! no pooler). The pooler is loaded when the checkpoint has
//! `pooler.dense.weight` (`ViTModel(add_pooling_layer=True)`, the default).
//!
//! Other image sizes than `image_size` get bicubically interpolated
//! position embeddings, i.e. upstream's `interpolate_pos_encoding=True`
//! (upstream raises for them without it; at `image_size` both agree).

use burn::{
    module::Module,
    nn::{LayerNorm, Linear},
    tensor::{backend::Backend, DType, Tensor},
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

/// The fields of a `ViTConfig` `config.json` the encoder uses.
///
/// ```
/// use arbitor_models::sidecars::vision::vit::VitConfig;
///
/// // google/vit-base-patch16-224, abridged.
/// let json = r#"{"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
///     "intermediate_size": 3072, "hidden_act": "gelu", "image_size": 224, "patch_size": 16,
///     "layer_norm_eps": 1e-12, "qkv_bias": true, "num_channels": 3}"#;
/// let config = VitConfig::from_json(json, "config.json").unwrap();
/// assert_eq!(config.pooler_output_size, 768);
///
/// let err = VitConfig::from_json(r#"{"hidden_size": 768}"#, "config.json").unwrap_err();
/// assert!(err.to_string().contains("`num_hidden_layers`"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct VitConfig {
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `head_dim` (default `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `hidden_act` (default `gelu`).
    pub hidden_act: Activation,
    /// `layer_norm_eps` (default 1e-12).
    pub layer_norm_eps: f64,
    /// `image_size` `[h, w]`.
    pub image_size: [usize; 2],
    /// `patch_size` `[h, w]`.
    pub patch_size: [usize; 2],
    /// `num_channels` (default 3).
    pub num_channels: usize,
    /// `qkv_bias` (default true).
    pub qkv_bias: bool,
    /// `pooler_output_size` (default `hidden_size`).
    pub pooler_output_size: usize,
    /// `pooler_act` (default `tanh`).
    pub pooler_act: Activation,
}

/// The keys of a transformers `ViTConfig` the encoder reads, with
/// upstream's defaults (`None` ones as `Option`); the size keys are required.
#[derive(Deserialize)]
struct VitJson {
    hidden_size: Positive,
    num_hidden_layers: Positive,
    num_attention_heads: Positive,
    image_size: Size2,
    patch_size: Size2,
    head_dim: Option<Positive>,
    intermediate_size: Positive,
    #[serde(default = "defaults::gelu")]
    hidden_act: Activation,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "defaults::three")]
    num_channels: Positive,
    #[serde(default = "defaults::yes")]
    qkv_bias: bool,
    pooler_output_size: Option<Positive>,
    #[serde(default = "defaults::tanh")]
    pooler_act: Activation,
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

impl VitConfig {
    /// Reads a parsed `config.json`; `hidden_size`, `num_hidden_layers`,
    /// `num_attention_heads`, `intermediate_size`, `image_size` and
    /// `patch_size` are required, the rest take the upstream defaults.
    ///
    /// ```
    /// use arbitor_models::sidecars::{hf::HfConfig, vision::vit::VitConfig};
    ///
    /// let json = r#"{"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
    ///     "intermediate_size": 64, "image_size": 16, "patch_size": 4, "hidden_act": "mish"}"#;
    /// let err = VitConfig::from_config(&HfConfig::from_str(json, "c.json").unwrap()).unwrap_err();
    /// assert!(err.to_string().contains("`hidden_act`"));
    /// ```
    pub fn from_config(config: &HfConfig) -> SidecarResult<Self> {
        let raw: VitJson = config.deserialize()?;
        let (image_size, patch_size) = (raw.image_size.0, raw.patch_size.0);
        check_image_size(image_size, patch_size, config)?;
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
            intermediate_size: raw.intermediate_size.0,
            hidden_act: raw.hidden_act,
            layer_norm_eps: raw.layer_norm_eps,
            image_size,
            patch_size,
            num_channels: raw.num_channels.0,
            qkv_bias: raw.qkv_bias,
            pooler_output_size: raw.pooler_output_size.unwrap_or(raw.hidden_size).0,
            pooler_act: raw.pooler_act,
        })
    }

    /// Parses `config.json` text; `file` names it in errors.
    ///
    /// ```
    /// use arbitor_models::sidecars::vision::vit::VitConfig;
    ///
    /// let err = VitConfig::from_json(r#"{"hidden_size": 32, "num_hidden_layers": 1,
    ///     "num_attention_heads": 4, "intermediate_size": 64, "image_size": [16, 16, 3],
    ///     "patch_size": 4}"#, "c.json").unwrap_err();
    /// assert!(err.to_string().contains("`image_size`"));
    /// ```
    pub fn from_json(text: &str, file: &str) -> SidecarResult<Self> {
        Self::from_config(&HfConfig::from_str(text, file)?)
    }
}

/// One ViT layer (upstream `ViTLayer`).
///
/// ```
/// # use arbitor_models::sidecars::{vision::vit::VitEncoder, SidecarStorage};
/// # use burn::backend::Flex;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_a");
/// let vit = VitEncoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
/// assert_eq!(vit.layers[0].intermediate.weight.dims(), [32, 64]);
/// ```
#[derive(Module, Debug)]
pub struct VitLayer<B: Backend> {
    /// `layernorm_before`.
    pub layernorm_before: LayerNorm<B>,
    /// `attention`.
    pub attention: VisionAttention<B>,
    /// `layernorm_after`.
    pub layernorm_after: LayerNorm<B>,
    /// `intermediate.dense`: hidden → intermediate.
    pub intermediate: Linear<B>,
    /// `output.dense`: intermediate → hidden.
    pub output: Linear<B>,
    /// `hidden_act`.
    pub activation: Activation,
}

impl<B: Backend> VitLayer<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attention.forward(self.layernorm_before.forward(x));
        let h = self.layernorm_after.forward(x.clone());
        x + self
            .output
            .forward(self.activation.forward(self.intermediate.forward(h)))
    }
}

/// The frozen ViT encoder: pixels `[batch, channels, h, w]` to
/// `last_hidden_state` `[batch, 1 + patches, hidden]` and, with a pooler,
/// `pooler_output` `[batch, pooler_output_size]`.
///
/// ```
/// use arbitor_models::sidecars::{vision::vit::VitEncoder, Sidecar, SidecarStorage};
/// use burn::{backend::Flex, tensor::{Distribution, Tensor}};
///
/// let device = Default::default();
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_a");
/// let vit = VitEncoder::<Flex>::load(dir, SidecarStorage::Int8, &device).unwrap();
/// let pixels = Tensor::<Flex, 4>::random([1, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
/// let out = vit.forward(pixels);
/// assert_eq!(out.last_hidden_state.dims(), [1, 17, 32]);
/// assert_eq!(out.pooler_output.unwrap().dims(), [1, 32]);
/// assert!(vit.report().frozen);
/// ```
#[derive(Module, Debug)]
pub struct VitEncoder<B: Backend> {
    /// `embeddings`.
    pub embeddings: VisionEmbeddings<B>,
    /// `encoder.layer`.
    pub layers: Vec<VitLayer<B>>,
    /// `layernorm`: the final norm.
    pub layernorm: LayerNorm<B>,
    /// `pooler.dense`, when the checkpoint has it.
    pub pooler: Option<Linear<B>>,
    /// The configuration the weights were loaded with.
    pub config: VitConfig,
    /// The dtype the forward pass computes in (BF16 for BF16 storage).
    pub compute: DType,
}

impl<B: Backend> VitEncoder<B> {
    /// Loads `config.json` and `model.safetensors` (a directory, or
    /// [`CheckpointFiles::files`]) and freezes the encoder as `storage`
    /// ([`freeze_and_quantize`]).
    ///
    /// ```
    /// use arbitor_models::sidecars::{hf::CheckpointFiles, vision::vit::VitEncoder, SidecarStorage};
    /// use burn::backend::Flex;
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_b");
    /// let files = CheckpointFiles::files(format!("{dir}/config.json"), format!("{dir}/model.safetensors"));
    /// let vit = VitEncoder::<Flex>::load(files, SidecarStorage::F32, &Default::default()).unwrap();
    /// assert!(vit.pooler.is_none());
    /// ```
    pub fn load(
        files: impl Into<CheckpointFiles>,
        storage: SidecarStorage,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let (config, weights) = files.into().open()?;
        let config = VitConfig::from_config(&config)?;
        Ok(Self::from_weights(&config, &weights, device)?.freeze(storage))
    }

    /// Builds the encoder in `f32` from loaded weights, not yet frozen.
    ///
    /// ```
    /// use arbitor_models::sidecars::{vision::vit::{VitConfig, VitEncoder}, SafetensorsWeights};
    /// use burn::backend::Flex;
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_a");
    /// let config = VitConfig::from_json(
    ///     &std::fs::read_to_string(format!("{dir}/config.json")).unwrap(), "config.json").unwrap();
    /// let weights = SafetensorsWeights::open(format!("{dir}/model.safetensors").as_ref()).unwrap();
    /// let vit = VitEncoder::<Flex>::from_weights(&config, &weights, &Default::default()).unwrap();
    /// assert!(vit.pooler.is_some());
    /// ```
    pub fn from_weights(
        config: &VitConfig,
        weights: &SafetensorsWeights,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let d = config.hidden_size;
        let ckpt = Tensors::find(weights, &["", "vit."], d, config.layer_norm_eps, device)?;
        let layers = ckpt.layers(config.num_hidden_layers, |layer| {
            Ok(VitLayer {
                layernorm_before: layer.layer_norm("layernorm_before")?,
                attention: layer.attention(
                    config.num_attention_heads,
                    config.head_dim,
                    config.qkv_bias,
                )?,
                layernorm_after: layer.layer_norm("layernorm_after")?,
                intermediate: layer.linear("intermediate.dense", d, config.intermediate_size)?,
                output: layer.linear("output.dense", config.intermediate_size, d)?,
                activation: config.hidden_act,
            })
        })?;
        let pooler = ckpt
            .has("pooler.dense.weight")
            .then(|| ckpt.linear("pooler.dense", d, config.pooler_output_size))
            .transpose()?;
        Ok(Self {
            embeddings: ckpt.embeddings(
                config.num_channels,
                config.image_size,
                config.patch_size,
            )?,
            layers,
            layernorm: ckpt.layer_norm("layernorm")?,
            pooler,
            config: config.clone(),
            compute: DType::F32,
        })
    }

    /// Freezes the encoder (`no_grad`) and stores it as `storage` (see
    /// [`freeze_and_quantize`]).
    ///
    /// ```
    /// use arbitor_models::sidecars::{vision::vit::VitEncoder, Sidecar, SidecarStorage};
    /// use burn::backend::{Autodiff, Flex};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_a");
    /// let vit = VitEncoder::<Autodiff<Flex>>::load(dir, SidecarStorage::Int8, &Default::default()).unwrap();
    /// assert!(vit.report().frozen);
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
    /// # use arbitor_models::sidecars::{vision::vit::VitEncoder, SidecarStorage};
    /// # use burn::{backend::Flex, tensor::Tensor};
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/vit_b");
    /// let vit = VitEncoder::<Flex>::load(dir, SidecarStorage::F32, &Default::default()).unwrap();
    /// // 31 × 43 pixels, patch 6: a 5 × 7 grid, interpolated positions.
    /// let out = vit.forward(Tensor::zeros([1, 3, 31, 43], &Default::default()));
    /// assert_eq!(out.last_hidden_state.dims(), [1, 36, 48]);
    /// ```
    pub fn forward(&self, pixels: Tensor<B, 4>) -> VisionOutput<B> {
        let out_dtype = pixels.dtype();
        let mut x = self.embeddings.forward(pixels.cast(self.compute));
        for layer in &self.layers {
            x = layer.forward(x);
        }
        let x = self.layernorm.forward(x);
        let pooled = self.pooler.as_ref().map(|dense| {
            let [batch, _, d] = x.dims();
            let cls = x.clone().narrow(1, 0, 1).reshape([batch, d]);
            self.config
                .pooler_act
                .forward(dense.forward(cls))
                .cast(out_dtype)
        });
        VisionOutput {
            last_hidden_state: x.cast(out_dtype),
            pooler_output: pooled,
        }
    }
}

impl<B: Backend> Sidecar<B> for VitEncoder<B> {
    fn report(&self) -> SidecarReport {
        sidecar_report("vit", self)
    }
}
