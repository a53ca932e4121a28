//! `TinyNeuralCodec`: a small transposed-convolution audio decoder from
//! talker tokens to a waveform, frozen and lazily built; it can be promoted
//! to a trainable ternary decoder.
//!
//! # Architecture
//!
//! `tokens [batch, T]` → embedding `[batch, T, dim]` → transpose to
//! `[batch, dim, T]` → for each stage `i`: `ConvTranspose1d(c_{i−1} → c_i,
//! kernel k_i, stride s_i, padding p_i)` then SiLU → `Conv1d(c_last → 1,
//! post_kernel, padding post_kernel / 2)` → tanh → `waveform [batch, samples]`,
//! with each stage mapping a length `L` to `(L − 1)·s_i − 2·p_i + k_i`
//! (`k = 2s, p = s/2` gives exactly `L·s`).
//!
//! # Files
//!
//! A codec directory holds `config.json`:
//!
//! ```json
//! {"vocab": 289, "dim": 24, "channels": [24, 16, 8], "kernel_sizes": [8, 4, 4],
//!  "strides": [4, 2, 2], "paddings": [2, 1, 1], "post_kernel": 7, "sample_rate": 16000}
//! ```
//!
//! (all keys required except `sample_rate`, default 16000; an unknown key is
//! an error naming it) and `model.safetensors` with the PyTorch names of the
//! reference module in `scripts/data/make_sidecar_fixtures.py`:
//!
//! | tensor | shape |
//! | --- | --- |
//! | `embed.weight` | `[vocab, dim]` |
//! | `ups.{i}.weight` | `[c_{i−1}, c_i, k_i]` (`c_{−1}` = `dim`) |
//! | `ups.{i}.bias` | `[c_i]` |
//! | `post.weight` | `[1, c_last, post_kernel]` |
//! | `post.bias` | `[1]` |
//!
//! stored as F32, F16 or BF16.
//!
//! # Numerics
//!
//! Measured by `tests/cpu/sidecars_vae_codec.rs` against the PyTorch reference on
//! the committed fixture: the `f32` port matches to 5.8e-7 relative error
//! (max |Δ| / max |reference|, asserted ≤ 1e-4), the int8 port to 2.5e-2
//! (asserted ≤ 5e-2).
//!
//! # Promotion
//!
//! [`TinyNeuralCodec::promote_to_ternary`] gives a [`TernaryCodec`] of the
//! same architecture built on [`TernaryEmbedding`],
//! [`TernaryConvTranspose1d`] and [`TernaryConv1d`], initialized by
//! ternarizing the float weights per row (scale `2^(code/16)` nearest to the
//! row's mean |w|, trits `round(w / scale)` clamped to ±1, the rounding
//! residual kept in the update memory). Ternary layers have no bias, so the
//! biases are dropped: the promoted codec is a trainable starting point that
//! approximates the float one, with no float parameter.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use burn::{
    module::Module,
    nn::{
        conv::{Conv1d, ConvTranspose1d},
        Embedding,
    },
    tensor::{activation::silu, backend::Backend, DType, Int, Tensor},
};
use burn_ternary::{
    nn::{
        TernaryConv1d, TernaryConv1dConfig, TernaryConvTranspose1d, TernaryConvTranspose1dConfig,
        TernaryEmbedding, TernaryWeight,
    },
    packing::{SCALE_CODE_RANGE, SCALE_CODE_STEPS_PER_OCTAVE},
    TernaryBackend,
};

use super::{
    error::{SidecarError, SidecarResult},
    freeze::{freeze_and_quantize, sidecar_report, Sidecar, SidecarReport},
    json::{positive, positive_list, JsonConfig},
    weights::SafetensorsWeights,
    SidecarStorage,
};
use crate::vocab::AUDIO_VOCAB;

/// The weights file name of a codec directory.
pub const CODEC_WEIGHTS_FILE: &str = "model.safetensors";

/// Update-memory units per trit step (burn-ternary's `UPDATE_THRESHOLD`).
const THETA: f32 = 64.0;

/// Configuration of a [`TinyNeuralCodec`] (its `config.json`, see the [module docs](self)).
///
/// ```
/// use arbitor_models::sidecars::codec::CodecConfig;
///
/// let config = CodecConfig::default();
/// assert_eq!(config.vocab, 289);
/// assert_eq!(config.samples(10), Some(160));
/// let json = r#"{"vocab": 8, "dim": 4, "channels": [4], "kernel_sizes": [4],
///     "strides": [2], "paddings": [1], "post_kernel": 3, "hop": 2}"#;
/// let err = CodecConfig::from_json(json, "config.json").unwrap_err();
/// assert!(err.to_string().contains("`hop`"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecConfig {
    /// Token vocabulary (the talker's [`AUDIO_VOCAB`]).
    #[serde(deserialize_with = "positive")]
    pub vocab: usize,
    /// Embedding width.
    #[serde(deserialize_with = "positive")]
    pub dim: usize,
    /// Output channels of each transposed-convolution stage.
    #[serde(deserialize_with = "positive_list")]
    pub channels: Vec<usize>,
    /// Kernel width of each stage.
    #[serde(deserialize_with = "positive_list")]
    pub kernel_sizes: Vec<usize>,
    /// Stride (upsampling factor) of each stage.
    #[serde(deserialize_with = "positive_list")]
    pub strides: Vec<usize>,
    /// Padding of each stage.
    pub paddings: Vec<usize>,
    /// Kernel width of the output convolution (odd).
    #[serde(deserialize_with = "positive")]
    pub post_kernel: usize,
    /// Samples per second of the waveform (metadata; default 16000).
    #[serde(default = "default_sample_rate", deserialize_with = "positive")]
    pub sample_rate: usize,
}

fn default_sample_rate() -> usize {
    16_000
}

impl Default for CodecConfig {
    /// The fixture's architecture: 289 tokens, 16 samples per token.
    fn default() -> Self {
        Self {
            vocab: AUDIO_VOCAB,
            dim: 24,
            channels: vec![24, 16, 8],
            kernel_sizes: vec![8, 4, 4],
            strides: vec![4, 2, 2],
            paddings: vec![2, 1, 1],
            post_kernel: 7,
            sample_rate: 16_000,
        }
    }
}

impl CodecConfig {
    /// Parses `config.json` text; `file` names it in errors.
    ///
    /// ```
    /// use arbitor_models::sidecars::codec::CodecConfig;
    ///
    /// let err = CodecConfig::from_json(r#"{"vocab": 8}"#, "config.json").unwrap_err();
    /// assert!(err.to_string().contains("`dim`"));
    /// ```
    pub fn from_json(text: &str, file: &str) -> SidecarResult<Self> {
        Self::from_config(&JsonConfig::parse(text, file)?)
    }

    /// Reads the config from a parsed [`JsonConfig`] and checks that the
    /// stages agree.
    ///
    /// ```
    /// use arbitor_models::sidecars::{codec::CodecConfig, json::JsonConfig};
    ///
    /// let json = JsonConfig::parse(r#"{"vocab": 8, "dim": 4, "channels": [4], "kernel_sizes": [4],
    ///     "strides": [2], "paddings": [1], "post_kernel": 4}"#, "config.json").unwrap();
    /// let err = CodecConfig::from_config(&json).unwrap_err();
    /// assert!(err.to_string().contains("`post_kernel`: must be odd"));
    /// ```
    pub fn from_config(json: &JsonConfig) -> SidecarResult<Self> {
        let config: Self = json.deserialize()?;
        let n = config.channels.len();
        for (key, len) in [
            ("kernel_sizes", config.kernel_sizes.len()),
            ("strides", config.strides.len()),
            ("paddings", config.paddings.len()),
        ] {
            if len != n {
                return Err(json.error(key, format!("{len} entries, but {n} channels")));
            }
        }
        if config.post_kernel.is_multiple_of(2) {
            return Err(json.error("post_kernel", "must be odd (same-length convolution)"));
        }
        if config.samples(1).is_none() {
            return Err(json.error("paddings", "a single token gives no samples"));
        }
        Ok(config)
    }

    /// Reads `config.json`.
    ///
    /// ```
    /// use arbitor_models::sidecars::codec::CodecConfig;
    ///
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/codec_289/config.json");
    /// assert_eq!(CodecConfig::load(path.as_ref()).unwrap(), CodecConfig::default());
    /// ```
    pub fn load(path: &Path) -> SidecarResult<Self> {
        Self::from_config(&JsonConfig::load(path)?)
    }

    /// Waveform samples for `tokens` tokens, if positive.
    ///
    /// ```
    /// # use arbitor_models::sidecars::codec::CodecConfig;
    /// assert_eq!(CodecConfig::default().samples(3), Some(48));
    /// ```
    pub fn samples(&self, tokens: usize) -> Option<usize> {
        let mut len = tokens;
        for ((k, s), p) in self
            .kernel_sizes
            .iter()
            .zip(&self.strides)
            .zip(&self.paddings)
        {
            len = (len.checked_sub(1)? * s + k).checked_sub(2 * p)?;
            if len == 0 {
                return None;
            }
        }
        Some(len)
    }

    fn stage_inputs(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.dim).chain(self.channels.iter().copied())
    }
}

fn check_tokens<B: Backend>(tokens: &Tensor<B, 2, Int>, vocab: usize) -> SidecarResult<()> {
    let dims = tokens.dims();
    if dims[0] == 0 || dims[1] == 0 {
        return Err(SidecarError::ShapeMismatch {
            tensor: "tokens".into(),
            expected: vec![dims[0].max(1), dims[1].max(1)],
            actual: dims.to_vec(),
        });
    }
    let min: i64 = burn::tensor::ElementConversion::elem(tokens.clone().min().into_scalar());
    let max: i64 = burn::tensor::ElementConversion::elem(tokens.clone().max().into_scalar());
    if min < 0 || max >= vocab as i64 {
        let bad = if min < 0 { min } else { max };
        return Err(SidecarError::Config {
            file: "tokens".into(),
            key: "tokens".into(),
            reason: format!("token id {bad} outside 0..{vocab}"),
        });
    }
    Ok(())
}

/// The frozen float codec (see the [module docs](self)).
///
/// ```
/// use arbitor_models::sidecars::{codec::TinyNeuralCodec, Sidecar, SidecarStorage};
/// use burn::{backend::Flex, tensor::{Int, Tensor}};
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/codec_289");
/// let device = Default::default();
/// let codec = TinyNeuralCodec::<Flex>::load(dir.as_ref(), SidecarStorage::Int8, &device).unwrap();
/// let tokens = Tensor::<Flex, 2, Int>::from_ints([[1, 2, 3, 4]], &device);
/// assert_eq!(codec.decode(tokens).dims(), [1, 64]);
/// assert!(codec.report().frozen);
/// ```
#[derive(Module, Debug)]
pub struct TinyNeuralCodec<B: Backend> {
    embed: Embedding<B>,
    ups: Vec<ConvTranspose1d<B>>,
    post: Conv1d<B>,
    #[module(skip)]
    config: CodecConfig,
}

impl<B: Backend> TinyNeuralCodec<B> {
    /// Loads a codec directory (`config.json`, `model.safetensors`) and
    /// freezes it as `storage`.
    ///
    /// ```
    /// use arbitor_models::sidecars::{codec::TinyNeuralCodec, SidecarStorage};
    /// use burn::backend::Flex;
    ///
    /// let err = TinyNeuralCodec::<Flex>::load("/nonexistent".as_ref(), SidecarStorage::F32, &Default::default())
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("config.json"));
    /// ```
    pub fn load(dir: &Path, storage: SidecarStorage, device: &B::Device) -> SidecarResult<Self> {
        let config = CodecConfig::load(&dir.join("config.json"))?;
        let weights = SafetensorsWeights::open(&dir.join(CODEC_WEIGHTS_FILE))?;
        Ok(freeze_and_quantize(
            Self::from_weights(config, &weights, device)?,
            storage,
        ))
    }

    /// Builds the `f32` codec from a config and weights, not yet frozen.
    ///
    /// ```
    /// use arbitor_models::sidecars::{codec::{CodecConfig, TinyNeuralCodec}, SafetensorsWeights};
    /// use burn::backend::Flex;
    ///
    /// # let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), None).unwrap();
    /// let empty = SafetensorsWeights::from_bytes(bytes, "empty").unwrap();
    /// let err = TinyNeuralCodec::<Flex>::from_weights(CodecConfig::default(), &empty, &Default::default())
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("embed.weight"));
    /// ```
    pub fn from_weights(
        config: CodecConfig,
        weights: &SafetensorsWeights,
        device: &B::Device,
    ) -> SidecarResult<Self> {
        let embed = weights.embedding("embed", config.vocab, config.dim, device)?;
        let mut ups = Vec::new();
        for (i, (c_in, c_out)) in config.stage_inputs().zip(&config.channels).enumerate() {
            ups.push(weights.conv_transpose1d(
                &format!("ups.{i}"),
                c_in,
                *c_out,
                config.kernel_sizes[i],
                config.strides[i],
                config.paddings[i],
                0,
                true,
                device,
            )?);
        }
        let last = *config.channels.last().unwrap_or(&config.dim);
        let post = weights.conv1d(
            "post",
            last,
            1,
            config.post_kernel,
            1,
            config.post_kernel / 2,
            true,
            device,
        )?;
        Ok(Self {
            embed,
            ups,
            post,
            config,
        })
    }

    /// The config.
    ///
    /// ```
    /// # use arbitor_models::sidecars::{codec::TinyNeuralCodec, SidecarStorage};
    /// # use burn::backend::Flex;
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/codec_289");
    /// let codec = TinyNeuralCodec::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &Default::default()).unwrap();
    /// assert_eq!(codec.config().sample_rate, 16_000);
    /// ```
    pub fn config(&self) -> &CodecConfig {
        &self.config
    }

    /// Decodes `tokens [batch, T]` to `waveform [batch, samples]` in `(−1, 1)`,
    /// or says which input is bad (an empty batch, a token outside the vocabulary).
    ///
    /// ```
    /// use arbitor_models::sidecars::{codec::TinyNeuralCodec, SidecarStorage};
    /// use burn::{backend::Flex, tensor::{Int, Tensor}};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/codec_289");
    /// let device = Default::default();
    /// let codec = TinyNeuralCodec::<Flex>::load(dir.as_ref(), SidecarStorage::F32, &device).unwrap();
    /// let bad = Tensor::<Flex, 2, Int>::from_ints([[0, 289]], &device);
    /// assert!(codec.try_decode(bad).unwrap_err().to_string().contains("289"));
    /// ```
    pub fn try_decode(&self, tokens: Tensor<B, 2, Int>) -> SidecarResult<Tensor<B, 2>> {
        check_tokens(&tokens, self.config.vocab)?;
        let mut x = self.embed.forward(tokens).swap_dims(1, 2);
        for up in &self.ups {
            x = silu(up.forward(x));
        }
        let y = self.post.forward(x).tanh();
        let [b, _, n] = y.dims();
        let y = y.reshape([b, n]);
        Ok(if y.dtype() == DType::F32 {
            y
        } else {
            y.cast(DType::F32)
        })
    }

    /// [`try_decode`](Self::try_decode), panicking on bad tokens.
    ///
    /// ```
    /// use arbitor_models::sidecars::{codec::TinyNeuralCodec, SidecarStorage};
    /// use burn::{backend::Flex, tensor::{Int, Tensor}};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/codec_289");
    /// let device = Default::default();
    /// let codec = TinyNeuralCodec::<Flex>::load(dir.as_ref(), SidecarStorage::Bf16, &device).unwrap();
    /// let wave = codec.decode(Tensor::<Flex, 2, Int>::from_ints([[5, 6]], &device));
    /// assert_eq!(wave.dims(), [1, 32]);
    /// ```
    pub fn decode(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        self.try_decode(tokens).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A trainable ternary codec initialized from this one's weights (see
    /// [Promotion](self#promotion)); built on `device`.
    ///
    /// ```
    /// use arbitor_models::sidecars::{codec::TinyNeuralCodec, SidecarStorage};
    /// use burn::{backend::{Autodiff, Flex}, tensor::{Int, Tensor}};
    /// use burn_ternary::audit::audit;
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/codec_289");
    /// let device = Default::default();
    /// let codec = TinyNeuralCodec::<Autodiff<Flex>>::load(dir.as_ref(), SidecarStorage::F32, &device).unwrap();
    /// let ternary = codec.promote_to_ternary(&device);
    /// assert!(audit(&ternary).is_pure_ternary());
    /// let wave = ternary.forward(Tensor::<Autodiff<Flex>, 2, Int>::from_ints([[1, 2]], &device));
    /// assert_eq!(wave.dims(), [1, 32]);
    /// ```
    pub fn promote_to_ternary(&self, device: &B::Device) -> TernaryCodec<B> {
        let host = |t: Tensor<B, 2>| -> Vec<f32> {
            let t = if matches!(t.dtype(), DType::QFloat(_)) {
                t.dequantize()
            } else {
                t
            };
            t.cast(DType::F32)
                .into_data()
                .convert::<f32>()
                .into_vec()
                .expect("f32 host data")
        };
        let c = &self.config;
        let embed = TernaryEmbedding {
            weight: ternarize(&host(self.embed.weight.val()), c.vocab, c.dim, device),
        };
        let ups = self
            .ups
            .iter()
            .enumerate()
            .map(|(i, up)| {
                let [c_in, c_out, k] = up.weight.dims();
                let flat = host(up.weight.val().reshape([c_in, c_out * k]));
                let mut layer = TernaryConvTranspose1dConfig::new(c_in, c_out, k)
                    .with_stride(c.strides[i])
                    .with_padding(c.paddings[i])
                    .init(device);
                layer.weight = ternarize(&flat, c_in, c_out * k, device);
                layer
            })
            .collect();
        let [_, last, k] = self.post.weight.dims();
        let mut post = TernaryConv1dConfig::new(last, 1, k)
            .with_padding(k / 2)
            .init(device);
        post.weight = ternarize(
            &host(self.post.weight.val().reshape([1, last * k])),
            1,
            last * k,
            device,
        );
        TernaryCodec {
            embed,
            ups,
            post,
            vocab: c.vocab,
        }
    }
}

impl<B: Backend> Sidecar<B> for TinyNeuralCodec<B> {
    fn report(&self) -> SidecarReport {
        sidecar_report("codec", self)
    }
}

/// Ternarizes a row-major `[rows, cols]` float matrix per row (see [Promotion](self#promotion)).
fn ternarize<B: Backend>(
    values: &[f32],
    rows: usize,
    cols: usize,
    device: &B::Device,
) -> TernaryWeight<B> {
    let steps = SCALE_CODE_STEPS_PER_OCTAVE as f32;
    let mut trits = Vec::with_capacity(values.len());
    let mut memory = Vec::with_capacity(values.len());
    let mut codes = Vec::with_capacity(rows);
    for row in values.chunks(cols) {
        let mean = row.iter().map(|v| v.abs()).sum::<f32>() / cols.max(1) as f32;
        let code = (mean.max(1e-12).log2() * steps)
            .round()
            .clamp(SCALE_CODE_RANGE.0 as f32, SCALE_CODE_RANGE.1 as f32) as i32;
        let scale = (code as f32 / steps).exp2();
        codes.push(code);
        for v in row {
            let ratio = v / scale;
            let trit = ratio.round().clamp(-1.0, 1.0);
            trits.push(trit as i8);
            memory.push(((ratio - trit) * THETA).round().clamp(-THETA, THETA) as i8);
        }
    }
    TernaryWeight::from_host(&trits, &memory, &codes, rows, cols, device)
        .expect("ternarized values are trits of the stated shape")
}

/// The promoted, trainable codec: the [`TinyNeuralCodec`] architecture on
/// ternary layers, with no bias and no float parameter.
///
/// ```
/// use arbitor_models::sidecars::codec::{CodecConfig, TernaryCodec};
/// use burn::{backend::Flex, tensor::{Int, Tensor}};
///
/// let device = Default::default();
/// let codec = TernaryCodec::<Flex>::init(&CodecConfig::default(), &device);
/// let wave = codec.forward(Tensor::<Flex, 2, Int>::from_ints([[0, 1, 2]], &device));
/// assert_eq!(wave.dims(), [1, 48]);
/// ```
#[derive(Module, Debug)]
pub struct TernaryCodec<B: Backend> {
    /// Token embedding.
    pub embed: TernaryEmbedding<B>,
    /// Transposed-convolution stages.
    pub ups: Vec<TernaryConvTranspose1d<B>>,
    /// Output convolution to one channel.
    pub post: TernaryConv1d<B>,
    /// Token vocabulary.
    pub vocab: usize,
}

impl<B: Backend> TernaryCodec<B> {
    /// A freshly initialized ternary codec of architecture `config`.
    ///
    /// ```
    /// # use arbitor_models::sidecars::codec::{CodecConfig, TernaryCodec};
    /// # use burn::backend::Flex;
    /// let codec = TernaryCodec::<Flex>::init(&CodecConfig::default(), &Default::default());
    /// assert_eq!(codec.ups.len(), 3);
    /// ```
    pub fn init(config: &CodecConfig, device: &B::Device) -> Self {
        let embed =
            burn_ternary::nn::TernaryEmbeddingConfig::new(config.vocab, config.dim).init(device);
        let ups = config
            .stage_inputs()
            .zip(&config.channels)
            .enumerate()
            .map(|(i, (c_in, c_out))| {
                TernaryConvTranspose1dConfig::new(c_in, *c_out, config.kernel_sizes[i])
                    .with_stride(config.strides[i])
                    .with_padding(config.paddings[i])
                    .init(device)
            })
            .collect();
        let last = *config.channels.last().unwrap_or(&config.dim);
        let post = TernaryConv1dConfig::new(last, 1, config.post_kernel)
            .with_padding(config.post_kernel / 2)
            .init(device);
        Self {
            embed,
            ups,
            post,
            vocab: config.vocab,
        }
    }
}

impl<B: TernaryBackend> TernaryCodec<B> {
    /// Decodes `tokens [batch, T]` to `[batch, samples]`, or says which input is bad.
    ///
    /// ```
    /// # use arbitor_models::sidecars::codec::{CodecConfig, TernaryCodec};
    /// # use burn::{backend::Flex, tensor::{Int, Tensor}};
    /// let device = Default::default();
    /// let codec = TernaryCodec::<Flex>::init(&CodecConfig::default(), &device);
    /// assert!(codec.try_forward(Tensor::<Flex, 2, Int>::from_ints([[300]], &device)).is_err());
    /// ```
    pub fn try_forward(&self, tokens: Tensor<B, 2, Int>) -> SidecarResult<Tensor<B, 2>> {
        check_tokens(&tokens, self.vocab)?;
        let ternary = |e: burn_ternary::TernaryError| SidecarError::Config {
            file: "ternary codec".into(),
            key: "tokens".into(),
            reason: e.to_string(),
        };
        let mut x = self
            .embed
            .try_forward(tokens)
            .map_err(ternary)?
            .swap_dims(1, 2);
        for up in &self.ups {
            x = silu(up.try_forward(x).map_err(ternary)?);
        }
        let y = self.post.try_forward(x).map_err(ternary)?.tanh();
        let [b, _, n] = y.dims();
        Ok(y.reshape([b, n]))
    }

    /// [`try_forward`](Self::try_forward), panicking on bad tokens.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        self.try_forward(tokens).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A codec that is built on first use: holds the directory, storage and
/// device, and loads the weights the first time [`decode`](Self::decode) (or
/// [`get`](Self::get)) is called.
///
/// ```
/// use arbitor_models::sidecars::{codec::LazyCodec, SidecarStorage};
/// use burn::{backend::Flex, tensor::{Int, Tensor}};
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sidecars/codec_289");
/// let device = Default::default();
/// let mut codec = LazyCodec::<Flex>::new(dir, SidecarStorage::Int8, Default::default());
/// assert!(!codec.is_built());
/// let wave = codec.decode(Tensor::<Flex, 2, Int>::from_ints([[7, 8, 9]], &device)).unwrap();
/// assert_eq!(wave.dims(), [1, 48]);
/// assert!(codec.is_built());
/// ```
#[derive(Debug)]
pub struct LazyCodec<B: Backend> {
    dir: PathBuf,
    storage: SidecarStorage,
    device: B::Device,
    codec: Option<TinyNeuralCodec<B>>,
}

impl<B: Backend> LazyCodec<B> {
    /// A codec to be loaded from `dir` on first use.
    pub fn new(dir: impl Into<PathBuf>, storage: SidecarStorage, device: B::Device) -> Self {
        Self {
            dir: dir.into(),
            storage,
            device,
            codec: None,
        }
    }

    /// Whether the codec has been built.
    pub fn is_built(&self) -> bool {
        self.codec.is_some()
    }

    /// The codec, loading it first if needed (a load error is returned and
    /// the next call tries again).
    ///
    /// ```
    /// use arbitor_models::sidecars::{codec::LazyCodec, SidecarStorage};
    /// use burn::backend::Flex;
    ///
    /// let mut codec = LazyCodec::<Flex>::new("/nonexistent", SidecarStorage::Int8, Default::default());
    /// assert!(codec.get().is_err());
    /// assert!(!codec.is_built());
    /// ```
    pub fn get(&mut self) -> SidecarResult<&TinyNeuralCodec<B>> {
        if self.codec.is_none() {
            self.codec = Some(TinyNeuralCodec::load(
                &self.dir,
                self.storage,
                &self.device,
            )?);
        }
        Ok(self.codec.as_ref().expect("just built"))
    }

    /// Decodes `tokens [batch, T]`, building the codec on first use.
    pub fn decode(&mut self, tokens: Tensor<B, 2, Int>) -> SidecarResult<Tensor<B, 2>> {
        self.get()?.try_decode(tokens)
    }

    /// The trainable ternary codec initialized from the stored weights
    /// (builds the float codec first if needed).
    pub fn promote_to_ternary(&mut self) -> SidecarResult<TernaryCodec<B>> {
        let device = self.device.clone();
        Ok(self.get()?.promote_to_ternary(&device))
    }
}
