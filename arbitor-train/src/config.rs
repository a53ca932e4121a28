//! Run configuration, read from TOML. The model sections deserialize into
//! the models' own Burn configs (`[model]` into [`ByteMlpConfig`], `[audio]`
//! into [`AudioVQEncoderConfig`], `[video]` into [`VideoHeadConfig`], `[arb]`
//! into [`ARBModelConfig`]), with the configs' own defaults, beside a few
//! keys of the run's own. Unknown keys, missing required keys and wrong
//! types are rejected with the key named.

use std::path::{Path, PathBuf};

use arbitor_models::{
    arb::ARBModelConfig,
    audio::{AudioDecoderConfig, AudioVQEncoderConfig},
    bitnet::BitNetConfig,
    layers::LayerKind,
    video::VideoHeadConfig,
};
use burn_ternary::optim::{GradNormalization, TernaryOptimizerConfig};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::byte_mlp::ByteMlpConfig;

/// Which compute backend a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's `Flex` CPU backend (the default; measured faster than NdArray here).
    Cpu,
    /// Burn's WGPU backend (cargo feature `wgpu`).
    Wgpu,
    /// Burn's CUDA backend (cargo feature `cuda`).
    Cuda,
}

impl BackendKind {
    /// The name `--backend` and `run.backend` use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(format!(
                "unknown backend `{other}` (expected cpu, wgpu or cuda)"
            )),
        }
    }
}

/// How a run with several `run.devices` shares the work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataParallel {
    /// One replica per device; gradients averaged with Burn's collective
    /// all-reduce; every replica runs the same ternary update, and the replicas
    /// are checked bit-identical after every epoch
    /// ([`crate::data_parallel::CollectiveDataParallel`]).
    #[default]
    Collective,
    /// Burn's multi-device strategy: each device computes its share of the
    /// step on a fork of the one model; the gradients are summed on the first
    /// device, where the optimizer updates that model.
    MainDevice,
}

/// Which model a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The ternary byte-level MLP language model (all weights ternary).
    TernaryByteMlp,
    /// The same architecture with dense f32 weights and AdamW: the baseline.
    DenseByteMlp,
    /// The [`AudioVQEncoder`](arbitor_models::audio::AudioVQEncoder) with a
    /// ternary [`AudioDecoder`](arbitor_models::audio::AudioDecoder) on log-mel
    /// features of synthesized speech (`data.speech`, `[audio]`).
    AudioVq,
    /// The [`VideoHead`](arbitor_models::video::VideoHead) denoising synthetic
    /// moving shapes (`[video]`).
    VideoHead,
    /// The [`ARBModel`](arbitor_models::arb::ARBModel) with all its heads on
    /// text (`data.path`), speech (`data.speech`) and moving shapes
    /// (`[arb]`, `[audio]`, `[video]`).
    ArbMultimodal,
    /// The same [`ARBModel`](arbitor_models::arb::ARBModel), ternary, trained
    /// on text alone (`data.path`, `[arb]`; `[video]` shapes its untrained
    /// video head so the model is the one `arb-multimodal` builds), validated
    /// by a full pass over the validation split.
    ArbText,
    /// `arb-text` with the dense twin of the core (float linears and
    /// embeddings, AdamW): the ternary-vs-dense ratio on the real architecture.
    DenseArbText,
    /// A BitNet b1.58 decoder ([`BitNetForCausalLM`](arbitor_models::bitnet::BitNetForCausalLM),
    /// `[bitnet]` holds its [`BitNetConfig`] under transformers' key names;
    /// keys left out take the 2B-4T preset's values; plus `seq`, tokens per
    /// training example). With `[train]` and `data.path`, `arbitor train`
    /// trains its ternary projections on the text (tokenized by
    /// `model.tokenizer`, a Hugging Face `tokenizer.json`, else bytes);
    /// without them the config only serves `arbitor decode-bench` (random
    /// ternary weights).
    Bitnet,
}

impl ModelKind {
    /// The name a config file uses (`model.kind`).
    pub fn name(self) -> &'static str {
        match self {
            Self::TernaryByteMlp => "ternary-byte-mlp",
            Self::DenseByteMlp => "dense-byte-mlp",
            Self::AudioVq => "audio-vq",
            Self::VideoHead => "video-head",
            Self::ArbMultimodal => "arb-multimodal",
            Self::ArbText => "arb-text",
            Self::DenseArbText => "dense-arb-text",
            Self::Bitnet => "bitnet",
        }
    }

    /// Whether a config of this kind may leave `[train]` out (a `bitnet`
    /// config that only serves `arbitor decode-bench`).
    pub fn train_optional(self) -> bool {
        self == Self::Bitnet
    }

    /// Whether the run predicts text (its throughput counts bytes or tokens).
    pub fn has_text(self) -> bool {
        !matches!(self, Self::AudioVq | Self::VideoHead)
    }

    /// Whether this is one of the byte-level MLP language models.
    pub fn is_byte_mlp(self) -> bool {
        matches!(self, Self::TernaryByteMlp | Self::DenseByteMlp)
    }
}

/// `[run]`: where and how.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Directory for checkpoints, logs, metrics and the exported model.
    pub dir: PathBuf,
    /// Backend (`--backend` overrides it).
    #[serde(default = "default_backend")]
    pub backend: BackendKind,
    /// Seed of initialization, data sampling and stochastic rounding.
    #[serde(default)]
    pub seed: u64,
    /// Device indices for data-parallel training: each device trains on an
    /// equal share of every epoch's batches (how the gradients meet is
    /// `data_parallel`). On CUDA these are GPU ordinals; the CPU and WGPU
    /// backends have one device, so `[0, 0]` runs two workers on it. Empty or
    /// absent: the default device.
    #[serde(default)]
    pub devices: Vec<usize>,
    /// With several devices: `"collective"` (default) or `"main-device"`;
    /// see [`DataParallel`].
    #[serde(default)]
    pub data_parallel: DataParallel,
}

fn default_backend() -> BackendKind {
    BackendKind::Cpu
}

/// `[model]`: which model (`kind`), and for the byte-level MLP language
/// models their shape, the keys of [`ByteMlpConfig`] (`context`, `d_embed`,
/// `hidden`: required by those kinds, rejected by the others, whose shapes
/// live in `[audio]`, `[video]`, `[arb]`, `[bitnet]`); for `bitnet`,
/// `tokenizer`, the path of a Hugging Face `tokenizer.json`, and `from`, a
/// Hugging Face BitNet checkpoint directory to start from.
#[derive(Clone, Debug)]
pub struct ModelSection {
    /// Which model.
    pub kind: ModelKind,
    /// The byte-level models' shape (`None` for the other kinds).
    pub byte_mlp: Option<ByteMlpConfig>,
    /// `model.tokenizer` (`bitnet` only): a `tokenizer.json`; the text is
    /// tokenized as bytes without one. With `model.from` and no
    /// `model.tokenizer`, the checkpoint's `tokenizer.json` if it has one.
    pub tokenizer: Option<PathBuf>,
    /// `model.from` (`bitnet` only): a transformers BitNet checkpoint
    /// directory (`config.json`, `model.safetensors` or its shards) whose
    /// weights the model starts from
    /// ([`BitNetForCausalLM::from_hf_dir`](arbitor_models::bitnet::BitNetForCausalLM::from_hf_dir));
    /// its `config.json` gives the `[bitnet]` shape.
    pub from: Option<PathBuf>,
}

impl ModelSection {
    /// The byte-level MLP shape, or an error for the kinds without one.
    pub fn byte_mlp(&self) -> Result<&ByteMlpConfig, ConfigError> {
        self.byte_mlp.as_ref().ok_or_else(|| ConfigError {
            path: String::new(),
            reason: format!(
                "model.kind = \"{}\" is not a byte-level model (no `model.context`)",
                self.kind.name()
            ),
        })
    }
}

/// How `[sidecars]` weights are stored once frozen (`storage = "int8"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SidecarStorageKind {
    /// int8 with Burn's quantization (frozen bf16 or f32 where the backend
    /// cannot quantize, e.g. on autodiff backends).
    #[default]
    Int8,
    /// Frozen bfloat16.
    Bf16,
    /// Frozen f32.
    F32,
}

/// `[sidecars]`: frozen imported networks beside the ternary core, each a
/// directory of upstream files (paths relative to the working directory).
/// All keys are optional; `arbitor audit` loads every listed sidecar and
/// reports it apart from the core (parameters, storage, bytes, frozen).
///
/// ```toml
/// [sidecars]
/// vae = "weights/taef1"         # diffusers AutoencoderTiny: config.json + diffusion_pytorch_model.safetensors
/// codec = "weights/codec"       # TinyNeuralCodec: config.json + model.safetensors
/// moonshine = "weights/moonshine-tiny"  # transformers Moonshine: config.json + model.safetensors
/// vision = "weights/dinov2-small"       # transformers Dinov2Model or ViTModel (by config.json model_type)
/// storage = "int8"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SidecarsSection {
    /// The `pig_vae` directory.
    pub vae: Option<PathBuf>,
    /// The `TinyNeuralCodec` directory.
    pub codec: Option<PathBuf>,
    /// The Moonshine audio encoder directory.
    pub moonshine: Option<PathBuf>,
    /// The Dinov2 / ViT vision encoder directory.
    pub vision: Option<PathBuf>,
    /// Storage of the frozen weights.
    pub storage: SidecarStorageKind,
    /// Leaves every sidecar trainable instead of freezing it. This switch
    /// exists only to demonstrate (and test) `arbitor audit --strict`, which
    /// must then fail naming each trainable sidecar; never set it in a run.
    pub trainable: bool,
}

/// `[data]`: the training data. Absent for `video-head` (its data is synthetic).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Path of the text file (relative to the working directory); byte-level
    /// models and `arb-multimodal`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Folder of the speech set (`speech.pcm` + `index.tsv`, made by
    /// `scripts/data/make_speech_data.py`); `audio-vq` and `arb-multimodal`.
    #[serde(default)]
    pub speech: Option<PathBuf>,
    /// Fraction held out for validation: the tail of the text, the last
    /// utterances of the speech set.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            path: None,
            speech: None,
            val_fraction: default_val_fraction(),
        }
    }
}

fn default_val_fraction() -> f64 {
    0.1
}

/// The keys of `[audio]` that are not the encoder's: the crop length and
/// the parts of the audio model around the encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioKeys {
    /// Mel frames per example (a multiple of `stride²`); shorter utterances
    /// are padded, longer ones cropped at a random place.
    pub frames: usize,
    /// Channels between the decoder's two transposed convolutions
    /// ([`AudioDecoderConfig::hidden`]).
    pub decoder_hidden: usize,
    /// Weight of the next-code cross-entropy of the encoder's vocabulary
    /// logits (0 turns it off).
    pub next_code_weight: f64,
}

impl Default for AudioKeys {
    fn default() -> Self {
        Self {
            frames: 64,
            decoder_hidden: AudioDecoderConfig::new().hidden,
            next_code_weight: 0.1,
        }
    }
}

/// `[audio]` (`audio-vq`, `arb-multimodal`): the keys of the encoder's own
/// [`AudioVQEncoderConfig`] (`in_channels` = mel bins per frame, 25 ms every
/// 10 ms of 16 kHz audio; `hidden`, `kernel_size`, `stride`, `d_code`,
/// `n_codes` (at most 256: the payload ids of the audio vocabulary), `vocab`,
/// `commitment`), with its defaults, plus [`AudioKeys`]. The decoder mirrors
/// the encoder (`d_code`, `stride`, `in_channels`) with `decoder_hidden`
/// channels.
#[derive(Clone, Debug)]
pub struct AudioSection {
    /// The encoder.
    pub encoder: AudioVQEncoderConfig,
    /// The other keys.
    pub keys: AudioKeys,
}

impl AudioSection {
    /// The decoder that mirrors the encoder.
    pub fn decoder(&self) -> AudioDecoderConfig {
        AudioDecoderConfig::new()
            .with_d_code(self.encoder.d_code)
            .with_hidden(self.keys.decoder_hidden)
            .with_out_channels(self.encoder.in_channels)
            .with_stride(self.encoder.stride)
    }

    /// Frames per code (`stride²`).
    pub fn downsample(&self) -> usize {
        self.encoder.stride * self.encoder.stride
    }
}

/// The keys of `[video]` that are not the head's: the moving shapes and the
/// loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoKeys {
    /// Weight of the ACT ponder cost in the loss.
    pub ponder_weight: f64,
    /// Most shapes per scene (each scene has 1 to `shapes`).
    pub shapes: usize,
    /// Frames per clip: scenes are seen at a random frame `0..clip_frames`.
    pub clip_frames: usize,
}

impl Default for VideoKeys {
    fn default() -> Self {
        Self {
            ponder_weight: 0.01,
            shapes: 2,
            clip_frames: 16,
        }
    }
}

/// `[video]` (`video-head`, `arb-multimodal`): the keys of the head's own
/// [`VideoHeadConfig`] (`channels`, `height`, `width`, `hidden`,
/// `kernel_size`, `max_steps`, `fixed_steps`, `halt_threshold`,
/// `beta_start`, `beta_end`, `mode`), with its defaults, plus [`VideoKeys`].
/// `d_cond` and `frames` are set by the run (the conditioning width; one
/// frame per example) and rejected here.
#[derive(Clone, Debug)]
pub struct VideoSection {
    /// The head (its `d_cond` is replaced by the run's conditioning width).
    pub head: VideoHeadConfig,
    /// The other keys.
    pub keys: VideoKeys,
}

/// The keys of `[arb]` that are not the model's: the text examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArbKeys {
    /// Bytes per example.
    pub seq: usize,
    /// Fraction of examples whose text is a spoken line (the talker learns
    /// its audio codes); the others are random text windows.
    pub speech_fraction: f64,
}

impl Default for ArbKeys {
    fn default() -> Self {
        Self {
            seq: 32,
            speech_fraction: 0.5,
        }
    }
}

/// `[arb]` (`arb-multimodal`): the keys of the model's own
/// [`ARBModelConfig`] (`d_model`, `n_layers`, `n_heads`, `mlp_hidden`,
/// `trigram_buckets`, `vq_codes`, `graph_window`, `graph_rounds`,
/// `memory_slots`, `memory_d_key`, `n_experts`, `top_k`, `expert_hidden`,
/// `talker_stride`), with its defaults, plus [`ArbKeys`]. The video head is
/// the one `[video]` shapes, so `video_max_steps` is rejected here.
#[derive(Clone, Debug)]
pub struct ArbSection {
    /// The model (its video head is replaced by `[video]`'s).
    pub model: ARBModelConfig,
    /// The other keys.
    pub keys: ArbKeys,
}

/// The keys of `[bitnet]` that are not transformers' `BitNetConfig`'s: the
/// training examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BitNetKeys {
    /// Tokens per training example (at most `max_position_embeddings`).
    pub seq: usize,
    /// Whether the float parts (token embedding, untied `lm_head`, norm
    /// gains) train too, by AdamW at `train.lr × train.float_lr_ratio`.
    /// Off by default: upstream BitNet fine-tuning leaves them as they are,
    /// and the run then keeps no float optimizer state.
    pub train_float: bool,
}

impl Default for BitNetKeys {
    fn default() -> Self {
        Self {
            seq: 64,
            train_float: false,
        }
    }
}

/// `[train]`: the schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Epochs; a checkpoint is written after each.
    pub epochs: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    /// Examples per step.
    pub batch: usize,
    /// Peak learning rate (cosine decay to 10% over the run).
    pub lr: f64,
    /// Validation batches per epoch.
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    /// Gradient accumulation steps per optimizer step.
    #[serde(default = "default_accumulation")]
    pub grad_accumulation: usize,
    /// How the ternary optimizer normalizes a weight's gradient before it
    /// moves the update memory: `"tensor"` (default) or `"row"`.
    #[serde(default)]
    pub grad_normalization: NormalizationKey,
    /// Whether the ternary optimizer trains the weights' integer scale codes
    /// (default true). `false` freezes them at their initial (or imported)
    /// values, e.g. to keep the one scale per tensor that upstream BitNet's
    /// format stores; the trits and update memory still train.
    #[serde(default = "default_true")]
    pub train_scales: bool,
    /// Learning-rate multiplier of the AdamW that trains a model's float
    /// parameters, where it trains any (`bitnet.train_float`); default 0.01.
    #[serde(default = "default_float_lr_ratio")]
    pub float_lr_ratio: f64,
}

fn default_float_lr_ratio() -> f64 {
    0.01
}

fn default_true() -> bool {
    true
}

/// `[train] grad_normalization`: the ternary optimizer's [`GradNormalization`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizationKey {
    /// By the root mean square of the whole tensor's gradient.
    #[default]
    Tensor,
    /// By each row's own root mean square.
    Row,
}

impl TrainSection {
    /// The ternary optimizer these keys ask for, seeded with the run's `seed`.
    pub fn ternary_optimizer(&self, seed: u64) -> TernaryOptimizerConfig {
        let normalization = match self.grad_normalization {
            NormalizationKey::Tensor => GradNormalization::Tensor,
            NormalizationKey::Row => GradNormalization::Row,
        };
        let config = TernaryOptimizerConfig::new()
            .with_seed(seed)
            .with_normalization(normalization)
            .with_float_lr_ratio(self.float_lr_ratio);
        if self.train_scales {
            config
        } else {
            // A zero step: the codes' stochastic rounding then always floors to 0.
            config.with_scale_lr_ratio(0.0)
        }
    }

    /// The schedule of a config without `[train]` (a decode-only `bitnet`
    /// config): all zeros, never read ([`RunConfig::trains`]).
    pub fn none() -> Self {
        Self {
            epochs: 0,
            steps_per_epoch: 0,
            batch: 0,
            lr: 0.0,
            eval_batches: 0,
            grad_accumulation: 0,
            grad_normalization: NormalizationKey::Tensor,
            train_scales: true,
            float_lr_ratio: default_float_lr_ratio(),
        }
    }
}

fn default_eval_batches() -> usize {
    20
}

fn default_accumulation() -> usize {
    1
}

/// A whole run config file.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// `[run]`
    pub run: RunSection,
    /// `[model]`
    pub model: ModelSection,
    /// `[data]`
    pub data: DataSection,
    /// `[train]` (all zeros when absent, which only a `bitnet` config may be)
    pub train: TrainSection,
    /// Whether the file has `[train]`: every config that `arbitor train`
    /// takes (a `bitnet` config without it serves `decode-bench` only).
    pub trains: bool,
    /// `[audio]` (`audio-vq`, `arb-multimodal`; its defaults when absent)
    pub audio: Option<AudioSection>,
    /// `[video]` (`video-head`, `arb-multimodal`; its defaults when absent)
    pub video: Option<VideoSection>,
    /// `[arb]` (`arb-multimodal`; its defaults when absent)
    pub arb: Option<ArbSection>,
    /// `[bitnet]` (`bitnet`; keys left out take the values of
    /// [`BitNetConfig::b1_58_2b_4t`], the whole preset when absent)
    pub bitnet: Option<BitNetConfig>,
    /// The other keys of `[bitnet]` (`seq`); their defaults for other kinds.
    pub bitnet_keys: BitNetKeys,
    /// `[sidecars]` (optional): frozen imported networks, listed apart from
    /// the ternary core by `arbitor audit`.
    pub sidecars: Option<SidecarsSection>,
}

/// The file as TOML gives it: the model sections as tables, read into the
/// models' own configs by [`model_section`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    run: RunSection,
    model: toml::Table,
    #[serde(default)]
    data: DataSection,
    #[serde(default)]
    train: Option<TrainSection>,
    #[serde(default)]
    audio: Option<toml::Table>,
    #[serde(default)]
    video: Option<toml::Table>,
    #[serde(default)]
    arb: Option<toml::Table>,
    #[serde(default)]
    bitnet: Option<toml::Table>,
    #[serde(default)]
    sidecars: Option<SidecarsSection>,
}

/// A section without keys of its own.
#[derive(Default, Serialize, Deserialize)]
struct NoKeys {}

/// The shape in `config.json` of the checkpoint directory `dir`
/// (`model.from`), or an error naming the file.
fn checkpoint_shape(dir: &Path) -> Result<BitNetConfig, ConfigError> {
    let file = dir.join("config.json");
    let named = |reason: String| ConfigError {
        path: file.display().to_string(),
        reason: format!("`model.from`: {reason}"),
    };
    let text = std::fs::read_to_string(&file).map_err(|e| named(e.to_string()))?;
    BitNetConfig::from_config_json(&text).map_err(|e| named(e.to_string()))
}

fn fail<T>(reason: String) -> Result<T, ConfigError> {
    Err(ConfigError {
        path: String::new(),
        reason,
    })
}

/// Reads section `[name]` into a model's Burn config `C` and the section's
/// other keys `K` (a serde struct whose default lists every key).
///
/// `base` holds `C`'s defaults (`None` when `C` has required fields): every
/// key the section gives replaces the default. A key that neither `K` nor `C`
/// has is rejected with its name, a required key of `C` that is missing
/// likewise, and so is a key of `C` in `derived` (`(key, who sets it)`),
/// which the run sets itself.
fn model_section<K, C>(
    name: &str,
    table: toml::Table,
    base: Option<&C>,
    derived: &[(&str, &str)],
) -> Result<(K, C), ConfigError>
where
    K: Serialize + DeserializeOwned + Default,
    C: Serialize + DeserializeOwned,
{
    for (key, by) in derived {
        if table.contains_key(*key) {
            return fail(format!(
                "`{name}.{key}` is set by the run ({by}); leave it out"
            ));
        }
    }
    let own_keys = toml::Table::try_from(K::default()).expect("the section's keys serialize");
    let (mut own, mut model) = (toml::Table::new(), toml::Table::new());
    for (key, value) in table {
        if own_keys.contains_key(&key) {
            own.insert(key, value);
        } else {
            model.insert(key, value);
        }
    }
    let keys: K = own
        .try_into()
        .or_else(|e: toml::de::Error| fail(format!("`[{name}]`: {}", e.message().trim())))?;
    let given: Vec<String> = model.keys().cloned().collect();
    let mut merged = match base {
        Some(base) => toml::Table::try_from(base).expect("a model config serializes"),
        None => toml::Table::new(),
    };
    let unknown = |known: &toml::Table| {
        given.iter().find(|k| !known.contains_key(*k)).map(|key| {
            let mut expected: Vec<&str> = known
                .keys()
                .chain(own_keys.keys())
                .map(String::as_str)
                .filter(|k| !derived.iter().any(|(d, _)| d == k))
                .collect();
            expected.sort();
            format!(
                "unknown field `{key}` in `[{name}]`, expected one of {}",
                expected.join(", ")
            )
        })
    };
    if base.is_some()
        && let Some(reason) = unknown(&merged)
    {
        return fail(reason);
    }
    let defaults = merged.clone();
    merged.extend(model);
    let config: C = merged.clone().try_into().or_else(|e: toml::de::Error| {
        let message = e.message().trim().to_string();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            return fail(format!(
                "`{name}.{field}` is missing: a required key of `[{name}]`"
            ));
        }
        // Name the key: the first one whose default makes the section
        // deserialize (or, for a required key, whose absence is then all
        // that is wrong).
        let culprit = given.iter().find(|key| {
            let mut table = merged.clone();
            match defaults.get(*key) {
                Some(value) => table.insert(key.to_string(), value.clone()),
                None => table.remove(*key),
            };
            match table.try_into::<C>() {
                Ok(_) => true,
                Err(e) => e.message().trim() == format!("missing field `{key}`"),
            }
        });
        match culprit {
            Some(key) => fail(format!("`{name}.{key}`: {message}")),
            None => fail(format!("`[{name}]`: {message}")),
        }
    })?;
    if let Some(reason) = unknown(&toml::Table::try_from(&config).expect("serializes")) {
        return fail(reason);
    }
    Ok((keys, config))
}

/// A config that could not be used, with the file and the reason.
#[derive(Debug, thiserror::Error)]
#[error("config {path}: {reason}")]
pub struct ConfigError {
    /// The config file.
    pub path: String,
    /// What is wrong (the TOML parser names unknown keys and wrong types).
    pub reason: String,
}

impl RunConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        // An error of another file (`model.from`'s config.json) keeps its path.
        Self::parse(&text).map_err(|e| if e.path.is_empty() { err(e.reason) } else { e })
    }

    /// Reads and checks a config file with `overrides` applied first, each
    /// `SECTION.KEY=VALUE` (`VALUE` in TOML syntax; a bare word is a
    /// string), as `arbitor train --set` gives them: e.g.
    /// `bitnet.hidden_size=64` runs a config's schedule at another shape.
    pub fn load_with_overrides(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Self::load(path);
        }
        let err = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| err(e.message().to_string() + &location(&text, e.span())))?;
        // An error of another file (`model.from`'s config.json) keeps its path.
        Self::parse_with_overrides(table, overrides).map_err(|e| {
            if e.path.is_empty() {
                err(e.reason)
            } else {
                e
            }
        })
    }

    /// The config of a transformers BitNet checkpoint directory on its own
    /// (`arbitor generate --hf`): `model.kind = "bitnet"`, `model.from =
    /// dir` (its `config.json` gives the shape, its `tokenizer.json` the
    /// tokenizer if present), then `overrides` as
    /// [`load_with_overrides`](Self::load_with_overrides) applies them.
    ///
    /// ```no_run
    /// use std::path::Path;
    /// use arbitor_train::config::RunConfig;
    ///
    /// let config = RunConfig::from_hf_dir(Path::new("weights/bitnet-b1.58-2B-4T"), &[]).unwrap();
    /// assert_eq!(config.bitnet().unwrap().hidden_size, 2560);
    /// ```
    pub fn from_hf_dir(dir: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut table = toml::Table::new();
        let section = |pairs: &[(&str, &str)]| {
            toml::Value::Table(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
                    .collect(),
            )
        };
        table.insert("run".into(), section(&[("dir", "runs/hf")]));
        let from = dir.display().to_string();
        table.insert(
            "model".into(),
            section(&[("kind", "bitnet"), ("from", &from)]),
        );
        Self::parse_with_overrides(table, overrides)
    }

    /// Applies `overrides` to a parsed config table, then parses and checks it.
    fn parse_with_overrides(
        mut table: toml::Table,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError {
            path: String::new(),
            reason,
        };
        for spec in overrides {
            apply_override(&mut table, spec).map_err(err)?;
        }
        let text = toml::to_string(&table).map_err(|e| err(e.to_string()))?;
        Self::parse(&text).map_err(|e| {
            if overrides.is_empty() {
                e
            } else {
                ConfigError {
                    reason: format!("{} (after --set {})", e.reason, overrides.join(" --set ")),
                    ..e
                }
            }
        })
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            path: String::new(),
            reason: e.message().to_string() + &location(text, e.span()),
        })?;
        let config = Self::from_raw(raw)?;
        config.validate()?;
        Ok(config)
    }

    fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let mut model = raw.model;
        let Some(kind) = model.remove("kind") else {
            return fail("`model.kind` is missing".into());
        };
        let kind: ModelKind = kind
            .try_into()
            .or_else(|e: toml::de::Error| fail(format!("`model.kind`: {}", e.message().trim())))?;
        let named = kind.name();
        let tokenizer = match model.remove("tokenizer") {
            None => None,
            Some(_) if kind != ModelKind::Bitnet => {
                return fail(format!(
                    "`model.tokenizer` does not apply to model.kind = \"{named}\" (bitnet only; the other text kinds read bytes)"
                ))
            }
            Some(toml::Value::String(path)) => Some(PathBuf::from(path)),
            Some(other) => {
                return fail(format!(
                    "`model.tokenizer`: invalid type: {}, expected a path string (a tokenizer.json)",
                    other.type_str()
                ))
            }
        };
        let from = match model.remove("from") {
            None => None,
            Some(_) if kind != ModelKind::Bitnet => {
                return fail(format!(
                    "`model.from` does not apply to model.kind = \"{named}\" (bitnet only: a Hugging Face BitNet checkpoint directory)"
                ))
            }
            Some(toml::Value::String(path)) => Some(PathBuf::from(path)),
            Some(other) => {
                return fail(format!(
                    "`model.from`: invalid type: {}, expected a path string (a checkpoint directory)",
                    other.type_str()
                ))
            }
        };
        // A checkpoint's own tokenizer serves when none is named.
        let tokenizer = tokenizer.or_else(|| {
            from.as_ref()
                .map(|dir| dir.join("tokenizer.json"))
                .filter(|path| path.is_file())
        });
        let byte_mlp = if kind.is_byte_mlp() {
            let (NoKeys {}, shape) =
                model_section::<NoKeys, ByteMlpConfig>("model", model, None, &[])?;
            Some(shape)
        } else {
            if let Some(key) = model.keys().next() {
                return fail(format!(
                    "`model.{key}` does not apply to model.kind = \"{named}\" (its shape is set in its own sections)"
                ));
            }
            None
        };
        // Which sections each kind reads.
        let (audio, video, arb) = match kind {
            ModelKind::TernaryByteMlp | ModelKind::DenseByteMlp => (false, false, false),
            ModelKind::AudioVq => (true, false, false),
            ModelKind::VideoHead => (false, true, false),
            ModelKind::ArbMultimodal => (true, true, true),
            ModelKind::ArbText | ModelKind::DenseArbText => (false, true, true),
            ModelKind::Bitnet => (false, false, false),
        };
        let bitnet = kind == ModelKind::Bitnet;
        let trains = raw.train.is_some();
        let train = match raw.train {
            Some(train) => train,
            None if !kind.train_optional() => return fail("section `[train]` is missing".into()),
            None => TrainSection::none(),
        };
        for (section, wanted, present) in [
            ("audio", audio, raw.audio.is_some()),
            ("video", video, raw.video.is_some()),
            ("arb", arb, raw.arb.is_some()),
            ("bitnet", bitnet, raw.bitnet.is_some()),
        ] {
            if !wanted && present {
                return fail(format!(
                    "section `[{section}]` does not apply to model.kind = \"{named}\""
                ));
            }
        }
        let audio = audio
            .then(|| {
                let (keys, encoder) = model_section(
                    "audio",
                    raw.audio.unwrap_or_default(),
                    Some(&AudioVQEncoderConfig::new()),
                    &[],
                )?;
                Ok::<_, ConfigError>(AudioSection { encoder, keys })
            })
            .transpose()?;
        let video = video
            .then(|| {
                let (keys, head) = model_section(
                    "video",
                    raw.video.unwrap_or_default(),
                    Some(&VideoHeadConfig::new()),
                    &[
                        ("d_cond", "the width of the conditioning"),
                        ("frames", "one frame per example"),
                    ],
                )?;
                Ok::<_, ConfigError>(VideoSection { head, keys })
            })
            .transpose()?;
        let arb = arb
            .then(|| {
                let (keys, model) = model_section(
                    "arb",
                    raw.arb.unwrap_or_default(),
                    Some(&ARBModelConfig::new()),
                    &[
                        ("video_max_steps", "`video.max_steps`"),
                        ("layers", "`model.kind` (arb-text or dense-arb-text)"),
                    ],
                )?;
                let model = match kind {
                    ModelKind::DenseArbText => model.with_layers(LayerKind::Dense),
                    _ => model,
                };
                Ok::<_, ConfigError>(ArbSection { model, keys })
            })
            .transpose()?;
        let bitnet = bitnet
            .then(|| {
                // Keys left out take the 2B-4T preset's values; with
                // `model.from`, the shape is the checkpoint's.
                let (base, fixed) = match &from {
                    Some(dir) => {
                        let shape = checkpoint_shape(dir)?;
                        let keys =
                            toml::Table::try_from(&shape).expect("a model config serializes");
                        let keys: Vec<String> = keys.keys().cloned().collect();
                        (shape, keys)
                    }
                    None => (BitNetConfig::b1_58_2b_4t(), Vec::new()),
                };
                let fixed: Vec<(&str, &str)> = fixed
                    .iter()
                    .map(|key| (key.as_str(), "the checkpoint's config.json, `model.from`"))
                    .collect();
                let (keys, shape) = model_section::<BitNetKeys, BitNetConfig>(
                    "bitnet",
                    raw.bitnet.unwrap_or_default(),
                    Some(&base),
                    &fixed,
                )?;
                Ok::<_, ConfigError>((shape, keys))
            })
            .transpose()?;
        let (bitnet, bitnet_keys) = match bitnet {
            Some((shape, keys)) => (Some(shape), keys),
            None => (None, BitNetKeys::default()),
        };
        Ok(Self {
            run: raw.run,
            model: ModelSection {
                kind,
                byte_mlp,
                tokenizer,
                from,
            },
            data: raw.data,
            train,
            trains,
            audio,
            video,
            arb,
            bitnet,
            bitnet_keys,
            sidecars: raw.sidecars,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(bitnet) = &self.bitnet {
            // The model's own check names the key.
            bitnet
                .validate()
                .or_else(|e| fail(format!("`[bitnet]`: {e}")))?;
            let (seq, max) = (self.bitnet_keys.seq, bitnet.max_position_embeddings);
            if seq == 0 || seq > max {
                return fail(format!(
                    "`bitnet.seq` = {seq}: must be in 1..={max} (bitnet.max_position_embeddings)"
                ));
            }
            if !self.trains {
                // A decode-bench config: the section is all there is to check.
                if self.data.path.is_some() {
                    return fail(
                        "`data.path` needs `[train]`: without it a bitnet config only serves decode-bench"
                            .into(),
                    );
                }
                return Ok(());
            }
        }
        let mut positive = vec![
            ("train.epochs", self.train.epochs),
            ("train.steps_per_epoch", self.train.steps_per_epoch),
            ("train.batch", self.train.batch),
            ("train.eval_batches", self.train.eval_batches),
            ("train.grad_accumulation", self.train.grad_accumulation),
        ];
        let kind = self.model.kind;
        let named = kind.name();
        if let Some(shape) = &self.model.byte_mlp {
            positive.splice(
                0..0,
                [
                    ("model.context", shape.context),
                    ("model.d_embed", shape.d_embed),
                    ("model.hidden", shape.hidden),
                ],
            );
        }
        // Which data each kind reads.
        let (text, speech) = match kind {
            ModelKind::TernaryByteMlp | ModelKind::DenseByteMlp => (true, false),
            ModelKind::AudioVq => (false, true),
            ModelKind::VideoHead => (false, false),
            ModelKind::ArbMultimodal => (true, true),
            ModelKind::ArbText | ModelKind::DenseArbText | ModelKind::Bitnet => (true, false),
        };
        for (key, wanted, present) in [
            ("data.path", text, self.data.path.is_some()),
            ("data.speech", speech, self.data.speech.is_some()),
        ] {
            if wanted && !present {
                return fail(format!(
                    "`{key}` is missing: model.kind = \"{named}\" needs it"
                ));
            }
            if !wanted && present {
                return fail(format!(
                    "`{key}` does not apply to model.kind = \"{named}\""
                ));
            }
        }
        if let Some(a) = &self.audio {
            let e = &a.encoder;
            positive.extend([
                ("audio.in_channels", e.in_channels),
                ("audio.frames", a.keys.frames),
                ("audio.hidden", e.hidden),
                ("audio.kernel_size", e.kernel_size),
                ("audio.stride", e.stride),
                ("audio.d_code", e.d_code),
                ("audio.n_codes", e.n_codes),
                ("audio.decoder_hidden", a.keys.decoder_hidden),
            ]);
        }
        if let Some(v) = &self.video {
            let h = &v.head;
            positive.extend([
                ("video.channels", h.channels),
                ("video.height", h.height),
                ("video.width", h.width),
                ("video.hidden", h.hidden),
                ("video.kernel_size", h.kernel_size),
                ("video.max_steps", h.max_steps),
                ("video.shapes", v.keys.shapes),
                ("video.clip_frames", v.keys.clip_frames),
            ]);
        }
        if let Some(a) = &self.arb {
            let m = &a.model;
            positive.extend([
                ("arb.d_model", m.d_model),
                ("arb.n_layers", m.n_layers),
                ("arb.n_heads", m.n_heads),
                ("arb.mlp_hidden", m.mlp_hidden),
                ("arb.trigram_buckets", m.trigram_buckets),
                ("arb.vq_codes", m.vq_codes),
                ("arb.memory_slots", m.memory_slots),
                ("arb.memory_d_key", m.memory_d_key),
                ("arb.n_experts", m.n_experts),
                ("arb.top_k", m.top_k),
                ("arb.expert_hidden", m.expert_hidden),
                ("arb.talker_stride", m.talker_stride),
                ("arb.seq", a.keys.seq),
            ]);
        }
        for (key, value) in positive {
            if value == 0 {
                return fail(format!("`{key}` = 0: must be at least 1"));
            }
        }
        if !(self.train.float_lr_ratio >= 0.0 && self.train.float_lr_ratio.is_finite()) {
            return fail(format!(
                "`train.float_lr_ratio` = {}: must be a non-negative number",
                self.train.float_lr_ratio
            ));
        }
        if !(self.train.lr > 0.0 && self.train.lr.is_finite()) {
            return fail(format!(
                "`train.lr` = {}: must be a positive number",
                self.train.lr
            ));
        }
        if !(0.0 < self.data.val_fraction && self.data.val_fraction < 1.0) {
            return fail(format!(
                "`data.val_fraction` = {}: must be between 0 and 1",
                self.data.val_fraction
            ));
        }
        if let Some(a) = &self.audio {
            let (frames, down) = (a.keys.frames, a.downsample());
            if !frames.is_multiple_of(down) {
                return fail(format!(
                    "`audio.frames` = {frames}: must be a multiple of audio.stride² = {down}"
                ));
            }
            if frames / down < 2 {
                return fail(format!(
                    "`audio.frames` = {frames}: must give at least 2 codes (audio.stride² = {down} frames each)"
                ));
            }
            if a.encoder.n_codes > arbitor_models::vocab::PAYLOAD_TOKENS {
                return fail(format!(
                    "`audio.n_codes` = {}: must be at most {} (the payload ids of the audio vocabulary)",
                    a.encoder.n_codes,
                    arbitor_models::vocab::PAYLOAD_TOKENS
                ));
            }
            for (key, value) in [
                ("audio.commitment", a.encoder.commitment),
                ("audio.next_code_weight", a.keys.next_code_weight),
            ] {
                if !(value >= 0.0 && value.is_finite()) {
                    return fail(format!("`{key}` = {value}: must be a non-negative number"));
                }
            }
        }
        if let Some(v) = &self.video {
            if v.head.kernel_size.is_multiple_of(2) {
                return fail(format!(
                    "`video.kernel_size` = {}: must be odd",
                    v.head.kernel_size
                ));
            }
            if !(v.head.halt_threshold > 0.0 && v.head.halt_threshold <= 1.0) {
                return fail(format!(
                    "`video.halt_threshold` = {}: must be in (0, 1]",
                    v.head.halt_threshold
                ));
            }
            if !(v.keys.ponder_weight >= 0.0 && v.keys.ponder_weight.is_finite()) {
                return fail(format!(
                    "`video.ponder_weight` = {}: must be a non-negative number",
                    v.keys.ponder_weight
                ));
            }
        }
        if let Some(a) = &self.arb {
            let m = &a.model;
            if !m.d_model.is_multiple_of(m.n_heads) {
                return fail(format!(
                    "`arb.n_heads` = {}: must divide arb.d_model = {}",
                    m.n_heads, m.d_model
                ));
            }
            if m.top_k > m.n_experts {
                return fail(format!(
                    "`arb.top_k` = {}: must not exceed arb.n_experts = {}",
                    m.top_k, m.n_experts
                ));
            }
            if !(0.0..=1.0).contains(&a.keys.speech_fraction) {
                return fail(format!(
                    "`arb.speech_fraction` = {}: must be between 0 and 1",
                    a.keys.speech_fraction
                ));
            }
        }
        Ok(())
    }

    /// `[audio]` (present in every validated config of a kind that reads it).
    pub fn audio(&self) -> Result<&AudioSection, ConfigError> {
        self.audio.as_ref().ok_or_else(|| missing("audio"))
    }

    /// `[video]` (present in every validated config of a kind that reads it).
    pub fn video(&self) -> Result<&VideoSection, ConfigError> {
        self.video.as_ref().ok_or_else(|| missing("video"))
    }

    /// `[arb]` (present in every validated config of a kind that reads it).
    pub fn arb(&self) -> Result<&ArbSection, ConfigError> {
        self.arb.as_ref().ok_or_else(|| missing("arb"))
    }

    /// `[bitnet]` (present in every validated `bitnet` config).
    pub fn bitnet(&self) -> Result<&BitNetConfig, ConfigError> {
        self.bitnet.as_ref().ok_or_else(|| missing("bitnet"))
    }

    /// A fingerprint of everything that shapes the model, to refuse resuming
    /// from a checkpoint made by another config.
    pub fn model_fingerprint(&self) -> String {
        let fingerprint = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            self.model.kind, self.model.byte_mlp, self.arb, self.audio, self.video
        );
        // Appended only when present, so older runs' fingerprints still match.
        match &self.bitnet {
            Some(bitnet) => match &self.model.from {
                Some(from) => format!(
                    "{fingerprint} {bitnet:?} {:?} {from:?}",
                    self.model.tokenizer
                ),
                None => format!("{fingerprint} {bitnet:?} {:?}", self.model.tokenizer),
            },
            None => fingerprint,
        }
    }
}

/// Sets `SECTION.KEY=VALUE` in a config's table (see
/// [`RunConfig::load_with_overrides`]).
fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), String> {
    let bad = || format!("--set {spec}: expected SECTION.KEY=VALUE, e.g. bitnet.hidden_size=64");
    let (key, value) = spec.split_once('=').ok_or_else(bad)?;
    let (section, name) = key.trim().split_once('.').ok_or_else(bad)?;
    if section.is_empty() || name.is_empty() || name.contains('.') {
        return Err(bad());
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut parsed) => parsed.remove("v").expect("parsed `v`"),
        Err(_) => toml::Value::String(value.to_string()),
    };
    let entry = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(section_table) = entry else {
        return Err(format!("--set {spec}: `{section}` is not a section"));
    };
    section_table.insert(name.to_string(), value);
    Ok(())
}

fn missing(section: &str) -> ConfigError {
    ConfigError {
        path: String::new(),
        reason: format!("section `[{section}]` is missing"),
    }
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[run]
dir = "runs/x"

[model]
kind = "ternary-byte-mlp"
context = 8
d_embed = 16
hidden = 32

[data]
path = "data/tinyshakespeare.txt"

[train]
epochs = 1
steps_per_epoch = 1
batch = 1
lr = 0.05
"#;

    const MULTIMODAL: &str = r#"
[run]
dir = "runs/x"

[model]
kind = "arb-multimodal"

[data]
path = "data/tinyshakespeare.txt"
speech = "data/speech"

[arb]
d_model = 32
graph_window = 8
graph_rounds = 3
seq = 16

[video]
beta_end = 0.3
shapes = 3

[train]
epochs = 1
steps_per_epoch = 1
batch = 1
lr = 0.05
"#;

    fn error(text: &str) -> String {
        RunConfig::parse(text).unwrap_err().reason
    }

    #[test]
    fn every_shipped_config_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                RunConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 7, "{n} configs");
    }

    #[test]
    fn model_sections_reach_every_field_of_the_models_configs() {
        let config = RunConfig::parse(MULTIMODAL).unwrap();
        let arb = config.arb().unwrap();
        assert_eq!(
            (
                arb.model.d_model,
                arb.model.graph_window,
                arb.model.graph_rounds
            ),
            (32, 8, 3)
        );
        // Keys left out take the model config's own defaults.
        assert_eq!(arb.model.n_layers, ARBModelConfig::new().n_layers);
        assert_eq!(
            arb.keys,
            ArbKeys {
                seq: 16,
                ..ArbKeys::default()
            }
        );
        let video = config.video().unwrap();
        assert_eq!(video.head.beta_end, 0.3);
        assert_eq!(video.head.height, VideoHeadConfig::new().height);
        assert_eq!(video.keys.shapes, 3);
        // An absent section is the model config's defaults.
        let audio = config.audio().unwrap();
        assert_eq!(audio.encoder.n_codes, AudioVQEncoderConfig::new().n_codes);
        assert_eq!(audio.decoder().hidden, AudioDecoderConfig::new().hidden);
        let text = RunConfig::parse(TEXT).unwrap();
        assert_eq!(
            text.model.byte_mlp().unwrap(),
            &ByteMlpConfig::new(8, 16, 32)
        );
    }

    #[test]
    fn grad_normalization_reaches_the_ternary_optimizer() {
        let default = RunConfig::parse(TEXT).unwrap();
        assert_eq!(
            default.train.ternary_optimizer(3).normalization,
            GradNormalization::Tensor
        );
        let row =
            RunConfig::parse(&TEXT.replace("lr = 0.05", "lr = 0.05\ngrad_normalization = \"row\""))
                .unwrap();
        let optim = row.train.ternary_optimizer(3);
        assert_eq!(optim.normalization, GradNormalization::Row);
        assert_eq!(optim.seed, 3);
        let bad = error(&TEXT.replace("lr = 0.05", "lr = 0.05\ngrad_normalization = \"column\""));
        assert!(
            bad.starts_with("unknown variant `column`, expected `tensor` or `row` (line"),
            "{bad}"
        );
    }

    #[test]
    fn bad_model_keys_are_named_with_their_section() {
        let unknown = error(&MULTIMODAL.replace("graph_rounds = 3", "graph_round = 3"));
        assert!(
            unknown.starts_with("unknown field `graph_round` in `[arb]`, expected one of")
                && unknown.contains("graph_rounds"),
            "{unknown}"
        );
        assert_eq!(
            error(&TEXT.replace("context = 8\n", "")),
            "`model.context` is missing: a required key of `[model]`"
        );
        let typo = error(&TEXT.replace("hidden = 32", "hidden = 32\nhiden = 3"));
        assert!(
            typo.starts_with("unknown field `hiden` in `[model]`"),
            "{typo}"
        );
        assert!(error(&MULTIMODAL.replace("shapes = 3", "d_cond = 3"))
            .starts_with("`video.d_cond` is set by the run (the width of the conditioning)"));
        assert!(
            error(&MULTIMODAL.replace("seq = 16", "video_max_steps = 3"))
                .starts_with("`arb.video_max_steps` is set by the run")
        );
        let wrong = error(&MULTIMODAL.replace("d_model = 32", "d_model = \"wide\""));
        assert!(
            wrong.starts_with("`arb.d_model`: invalid type: string \"wide\""),
            "{wrong}"
        );
        let wrong = error(&TEXT.replace("hidden = 32", "hidden = -1"));
        assert!(
            wrong.starts_with("`model.hidden`: invalid value"),
            "{wrong}"
        );
    }

    #[test]
    fn overrides_set_keys_and_name_bad_ones() {
        let dir = std::env::temp_dir().join(format!("arbitor-set-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, TEXT).unwrap();
        let set = |o: &[&str]| {
            RunConfig::load_with_overrides(
                &path,
                &o.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        let c = set(&[
            "model.hidden=64",
            "run.dir=runs/y",
            "train.lr=0.5",
            "data.val_fraction=0.2",
        ])
        .unwrap();
        assert_eq!(c.model.byte_mlp().unwrap().hidden, 64);
        assert_eq!(c.run.dir, PathBuf::from("runs/y"));
        assert_eq!((c.train.lr, c.data.val_fraction), (0.5, 0.2));
        let bad = set(&["model.hidden"]).unwrap_err().to_string();
        assert!(
            bad.contains("--set model.hidden: expected SECTION.KEY=VALUE"),
            "{bad}"
        );
        let typo = set(&["model.hiden=3"]).unwrap_err().to_string();
        assert!(
            typo.contains("unknown field `hiden` in `[model]`")
                && typo.contains("(after --set model.hiden=3)"),
            "{typo}"
        );
        let section = set(&["run.dir.x=3"]).unwrap_err().to_string();
        assert!(section.contains("expected SECTION.KEY=VALUE"), "{section}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bitnet_sections_read_transformers_keys() {
        let text = r#"
[run]
dir = "runs/x"

[model]
kind = "bitnet"

[bitnet]
hidden_size = 48
num_hidden_layers = 2
num_attention_heads = 6
num_key_value_heads = 2
quantize_activations = false
"#;
        let config = RunConfig::parse(text).unwrap();
        let bitnet = config.bitnet().unwrap();
        assert_eq!((bitnet.hidden_size, bitnet.num_key_value_heads), (48, 2));
        assert!(!bitnet.quantize_activations);
        // Keys left out take the 2B-4T preset's values.
        let preset = BitNetConfig::b1_58_2b_4t();
        assert_eq!(bitnet.vocab_size, preset.vocab_size);
        assert_eq!(bitnet.rope_theta, preset.rope_theta);
        assert!(!config.trains);
        assert_eq!(config.bitnet_keys.seq, BitNetKeys::default().seq);
        let typo = error(&text.replace("hidden_size", "hidden_sise"));
        assert!(
            typo.starts_with("unknown field `hidden_sise` in `[bitnet]`"),
            "{typo}"
        );
        let heads = error(&text.replace("num_key_value_heads = 2", "num_key_value_heads = 4"));
        assert!(heads.contains("num_key_value_heads"), "{heads}");
        // Training needs the text, and the examples must fit the positions.
        let train =
            format!("{text}\n[train]\nepochs = 1\nsteps_per_epoch = 1\nbatch = 1\nlr = 0.1\n");
        let no_data = error(&train);
        assert!(no_data.contains("`data.path` is missing"), "{no_data}");
        let with_data = train.replace(
            "[bitnet]",
            "[data]\npath = \"data/tinyshakespeare.txt\"\n\n[bitnet]\nseq = 32",
        );
        let trains = RunConfig::parse(&with_data).unwrap();
        assert!(trains.trains && trains.train.train_scales);
        assert_eq!(trains.bitnet_keys.seq, 32);
        let long = error(&with_data.replace("seq = 32", "seq = 5000"));
        assert!(
            long.starts_with("`bitnet.seq` = 5000: must be in 1..=4096"),
            "{long}"
        );
        let data_only = error(&format!("{text}\n[data]\npath = \"x.txt\"\n"));
        assert!(
            data_only.contains("`data.path` needs `[train]`"),
            "{data_only}"
        );
        // `train_scales = false` freezes the scale codes: a zero scale step.
        let frozen =
            RunConfig::parse(&with_data.replace("lr = 0.1", "lr = 0.1\ntrain_scales = false"))
                .unwrap();
        assert_eq!(frozen.train.ternary_optimizer(0).scale_lr_ratio, 0.0);
        assert!(trains.train.ternary_optimizer(0).scale_lr_ratio > 0.0);
        let tokenizer = RunConfig::parse(&with_data.replace(
            "kind = \"bitnet\"",
            "kind = \"bitnet\"\ntokenizer = \"data/tokenizer/tokenizer.json\"",
        ))
        .unwrap();
        assert_eq!(
            tokenizer.model.tokenizer.as_deref(),
            Some(Path::new("data/tokenizer/tokenizer.json"))
        );
        assert_ne!(tokenizer.model_fingerprint(), trains.model_fingerprint());
        let wrong =
            error(&with_data.replace("kind = \"bitnet\"", "kind = \"bitnet\"\ntokenizer = 3"));
        assert!(
            wrong.starts_with("`model.tokenizer`: invalid type: integer"),
            "{wrong}"
        );
        let elsewhere = error(&TEXT.replace("hidden = 32", "hidden = 32\ntokenizer = \"t.json\""));
        assert!(
            elsewhere.starts_with("`model.tokenizer` does not apply"),
            "{elsewhere}"
        );
        let arb = error(&format!("{text}\n[arb]\nd_model = 8\n"));
        assert!(arb.contains("`[arb]` does not apply"), "{arb}");
        // The trainable kinds still need `[train]`.
        let missing = error(&TEXT.replace(
            "[train]\nepochs = 1\nsteps_per_epoch = 1\nbatch = 1\nlr = 0.05\n",
            "",
        ));
        assert!(missing.contains("`[train]` is missing"), "{missing}");
    }
}
