//! Run configuration, read from TOML. Unknown keys and wrong types are
//! rejected with the key named.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
        }
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

/// `[model]`: which model, and the shape of the byte-level MLP language
/// models (`context`, `d_embed` and `hidden` are required by those kinds and
/// rejected by the others, whose shapes live in `[audio]`, `[video]`, `[arb]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Which model.
    pub kind: ModelKind,
    /// Bytes of context (byte-level models).
    #[serde(default)]
    pub context: Option<usize>,
    /// Width of each byte embedding (byte-level models).
    #[serde(default)]
    pub d_embed: Option<usize>,
    /// Width of the hidden layers (byte-level models).
    #[serde(default)]
    pub hidden: Option<usize>,
}

/// The shape of a byte-level MLP language model (from `[model]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteMlpShape {
    /// Bytes of context.
    pub context: usize,
    /// Width of each byte embedding.
    pub d_embed: usize,
    /// Width of the hidden layers.
    pub hidden: usize,
}

impl ModelSection {
    /// The byte-level MLP shape, or the missing key named.
    pub fn byte_mlp(&self) -> Result<ByteMlpShape, ConfigError> {
        let get = |key: &str, value: Option<usize>| {
            value.ok_or_else(|| ConfigError {
                path: String::new(),
                reason: format!(
                    "`model.{key}` is missing: model.kind = \"{}\" needs context, d_embed and hidden",
                    self.kind.name()
                ),
            })
        };
        Ok(ByteMlpShape {
            context: get("context", self.context)?,
            d_embed: get("d_embed", self.d_embed)?,
            hidden: get("hidden", self.hidden)?,
        })
    }
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

/// `[audio]`: log-mel features, the audio VQ encoder, its decoder and the
/// audio loss (`audio-vq`, `arb-multimodal`). Every key has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioSection {
    /// Mel bins per frame (the encoder's input channels); frames are 25 ms
    /// every 10 ms of 16 kHz audio.
    pub n_mels: usize,
    /// Mel frames per example (a multiple of `stride²`); shorter utterances
    /// are padded, longer ones cropped at a random place.
    pub frames: usize,
    /// Channels of the encoder's convolutions.
    pub hidden: usize,
    /// Kernel width of the encoder's convolutions.
    pub kernel_size: usize,
    /// Stride of each encoder convolution and decoder upsampling.
    pub stride: usize,
    /// Width of the codes.
    pub d_code: usize,
    /// Codebook size (at most 256: the payload ids of the audio vocabulary).
    pub codes: usize,
    /// VQ commitment weight β.
    pub commitment: f64,
    /// Channels between the decoder's two transposed convolutions.
    pub decoder_hidden: usize,
    /// Weight of the next-code cross-entropy of the encoder's vocabulary
    /// logits (0 turns it off).
    pub next_code_weight: f64,
}

impl Default for AudioSection {
    fn default() -> Self {
        Self {
            n_mels: 16,
            frames: 64,
            hidden: 32,
            kernel_size: 3,
            stride: 2,
            d_code: 16,
            codes: 256,
            commitment: 0.25,
            decoder_hidden: 32,
            next_code_weight: 0.1,
        }
    }
}

/// `[video]`: the synthetic moving shapes and the video head
/// (`video-head`, `arb-multimodal`). Every key has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoSection {
    /// Latent channels.
    pub channels: usize,
    /// Latent height.
    pub height: usize,
    /// Latent width.
    pub width: usize,
    /// Hidden channels of the denoiser.
    pub hidden: usize,
    /// Kernel width of the denoiser's convolutions (odd).
    pub kernel_size: usize,
    /// Most denoise steps (ACT halts earlier).
    pub max_steps: usize,
    /// ACT halting threshold, in (0, 1].
    pub halt_threshold: f64,
    /// Weight of the ACT ponder cost in the loss.
    pub ponder_weight: f64,
    /// Most shapes per scene (each scene has 1 to `shapes`).
    pub shapes: usize,
    /// Frames per clip: scenes are seen at a random frame `0..clip_frames`.
    pub clip_frames: usize,
}

impl Default for VideoSection {
    fn default() -> Self {
        Self {
            channels: 16,
            height: 16,
            width: 16,
            hidden: 32,
            kernel_size: 3,
            max_steps: 4,
            halt_threshold: 0.99,
            ponder_weight: 0.01,
            shapes: 2,
            clip_frames: 16,
        }
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

/// `[arb]`: the ARBModel core and the text side of `arb-multimodal`. Every
/// key has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArbSection {
    /// Model width.
    pub d_model: usize,
    /// Sequencer blocks (alternating attention and recurrent mixers).
    pub n_layers: usize,
    /// Attention heads (divides `d_model`).
    pub n_heads: usize,
    /// MLP width of the sequencer blocks.
    pub mlp_hidden: usize,
    /// Rows of the hashed-trigram table.
    pub trigram_buckets: usize,
    /// Codes of the VQ bottleneck.
    pub vq_codes: usize,
    /// Memory slots.
    pub memory_slots: usize,
    /// Memory key width.
    pub memory_d_key: usize,
    /// Experts of the MoE.
    pub n_experts: usize,
    /// Experts per token.
    pub top_k: usize,
    /// Hidden width of each expert.
    pub expert_hidden: usize,
    /// Audio tokens per conditioning token of the talker head.
    pub talker_stride: usize,
    /// Bytes per example.
    pub seq: usize,
    /// Fraction of examples whose text is a spoken line (the talker learns
    /// its audio codes); the others are random text windows.
    pub speech_fraction: f64,
}

impl Default for ArbSection {
    fn default() -> Self {
        Self {
            d_model: 64,
            n_layers: 2,
            n_heads: 4,
            mlp_hidden: 128,
            trigram_buckets: 1024,
            vq_codes: 64,
            memory_slots: 32,
            memory_d_key: 16,
            n_experts: 4,
            top_k: 2,
            expert_hidden: 64,
            talker_stride: 3,
            seq: 32,
            speech_fraction: 0.5,
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
}

fn default_eval_batches() -> usize {
    20
}

fn default_accumulation() -> usize {
    1
}

/// A whole run config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// `[run]`
    pub run: RunSection,
    /// `[model]`
    pub model: ModelSection,
    /// `[data]`
    #[serde(default)]
    pub data: DataSection,
    /// `[train]`
    pub train: TrainSection,
    /// `[audio]` (`audio-vq`, `arb-multimodal`; defaults when absent)
    #[serde(default)]
    pub audio: Option<AudioSection>,
    /// `[video]` (`video-head`, `arb-multimodal`; defaults when absent)
    #[serde(default)]
    pub video: Option<VideoSection>,
    /// `[arb]` (`arb-multimodal`; defaults when absent)
    #[serde(default)]
    pub arb: Option<ArbSection>,
    /// `[sidecars]` (optional): frozen imported networks, listed apart from
    /// the ternary core by `arbitor audit`.
    #[serde(default)]
    pub sidecars: Option<SidecarsSection>,
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
        Self::parse(&text).map_err(|e| err(e.reason))
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: RunConfig = toml::from_str(text).map_err(|e| ConfigError {
            path: String::new(),
            reason: e.message().to_string() + &location(text, e.span()),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |reason: String| {
            Err(ConfigError {
                path: String::new(),
                reason,
            })
        };
        let mut positive = vec![
            ("train.epochs", self.train.epochs),
            ("train.steps_per_epoch", self.train.steps_per_epoch),
            ("train.batch", self.train.batch),
            ("train.eval_batches", self.train.eval_batches),
            ("train.grad_accumulation", self.train.grad_accumulation),
        ];
        let kind = self.model.kind;
        let named = kind.name();
        if kind.is_byte_mlp() {
            let shape = self.model.byte_mlp()?;
            positive.splice(
                0..0,
                [
                    ("model.context", shape.context),
                    ("model.d_embed", shape.d_embed),
                    ("model.hidden", shape.hidden),
                ],
            );
        } else {
            for (key, value) in [
                ("context", self.model.context),
                ("d_embed", self.model.d_embed),
                ("hidden", self.model.hidden),
            ] {
                if value.is_some() {
                    return fail(format!(
                        "`model.{key}` does not apply to model.kind = \"{named}\" (its shape is set in its own sections)"
                    ));
                }
            }
        }
        // Which data and sections each kind reads.
        let (text, speech, audio, video, arb) = match kind {
            ModelKind::TernaryByteMlp | ModelKind::DenseByteMlp => {
                (true, false, false, false, false)
            }
            ModelKind::AudioVq => (false, true, true, false, false),
            ModelKind::VideoHead => (false, false, false, true, false),
            ModelKind::ArbMultimodal => (true, true, true, true, true),
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
        for (section, wanted, present) in [
            ("audio", audio, self.audio.is_some()),
            ("video", video, self.video.is_some()),
            ("arb", arb, self.arb.is_some()),
        ] {
            if !wanted && present {
                return fail(format!(
                    "section `[{section}]` does not apply to model.kind = \"{named}\""
                ));
            }
        }
        if audio {
            let a = self.audio_section();
            positive.extend([
                ("audio.n_mels", a.n_mels),
                ("audio.frames", a.frames),
                ("audio.hidden", a.hidden),
                ("audio.kernel_size", a.kernel_size),
                ("audio.stride", a.stride),
                ("audio.d_code", a.d_code),
                ("audio.codes", a.codes),
                ("audio.decoder_hidden", a.decoder_hidden),
            ]);
        }
        if video {
            let v = self.video_section();
            positive.extend([
                ("video.channels", v.channels),
                ("video.height", v.height),
                ("video.width", v.width),
                ("video.hidden", v.hidden),
                ("video.kernel_size", v.kernel_size),
                ("video.max_steps", v.max_steps),
                ("video.shapes", v.shapes),
                ("video.clip_frames", v.clip_frames),
            ]);
        }
        if arb {
            let a = self.arb_section();
            positive.extend([
                ("arb.d_model", a.d_model),
                ("arb.n_layers", a.n_layers),
                ("arb.n_heads", a.n_heads),
                ("arb.mlp_hidden", a.mlp_hidden),
                ("arb.trigram_buckets", a.trigram_buckets),
                ("arb.vq_codes", a.vq_codes),
                ("arb.memory_slots", a.memory_slots),
                ("arb.memory_d_key", a.memory_d_key),
                ("arb.n_experts", a.n_experts),
                ("arb.top_k", a.top_k),
                ("arb.expert_hidden", a.expert_hidden),
                ("arb.talker_stride", a.talker_stride),
                ("arb.seq", a.seq),
            ]);
        }
        for (key, value) in positive {
            if value == 0 {
                return fail(format!("`{key}` = 0: must be at least 1"));
            }
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
        if audio {
            let a = self.audio_section();
            let down = a.stride * a.stride;
            if !a.frames.is_multiple_of(down) {
                return fail(format!(
                    "`audio.frames` = {}: must be a multiple of audio.stride² = {down}",
                    a.frames
                ));
            }
            if a.frames / down < 2 {
                return fail(format!(
                    "`audio.frames` = {}: must give at least 2 codes (audio.stride² = {down} frames each)",
                    a.frames
                ));
            }
            if a.codes > arbitor_models::vocab::PAYLOAD_TOKENS {
                return fail(format!(
                    "`audio.codes` = {}: must be at most {} (the payload ids of the audio vocabulary)",
                    a.codes,
                    arbitor_models::vocab::PAYLOAD_TOKENS
                ));
            }
            for (key, value) in [
                ("audio.commitment", a.commitment),
                ("audio.next_code_weight", a.next_code_weight),
            ] {
                if !(value >= 0.0 && value.is_finite()) {
                    return fail(format!("`{key}` = {value}: must be a non-negative number"));
                }
            }
        }
        if video {
            let v = self.video_section();
            if v.kernel_size.is_multiple_of(2) {
                return fail(format!(
                    "`video.kernel_size` = {}: must be odd",
                    v.kernel_size
                ));
            }
            if !(v.halt_threshold > 0.0 && v.halt_threshold <= 1.0) {
                return fail(format!(
                    "`video.halt_threshold` = {}: must be in (0, 1]",
                    v.halt_threshold
                ));
            }
            if !(v.ponder_weight >= 0.0 && v.ponder_weight.is_finite()) {
                return fail(format!(
                    "`video.ponder_weight` = {}: must be a non-negative number",
                    v.ponder_weight
                ));
            }
        }
        if arb {
            let a = self.arb_section();
            if !a.d_model.is_multiple_of(a.n_heads) {
                return fail(format!(
                    "`arb.n_heads` = {}: must divide arb.d_model = {}",
                    a.n_heads, a.d_model
                ));
            }
            if a.top_k > a.n_experts {
                return fail(format!(
                    "`arb.top_k` = {}: must not exceed arb.n_experts = {}",
                    a.top_k, a.n_experts
                ));
            }
            if !(0.0..=1.0).contains(&a.speech_fraction) {
                return fail(format!(
                    "`arb.speech_fraction` = {}: must be between 0 and 1",
                    a.speech_fraction
                ));
            }
        }
        Ok(())
    }

    /// `[audio]`, or its defaults.
    pub fn audio_section(&self) -> AudioSection {
        self.audio.clone().unwrap_or_default()
    }

    /// `[video]`, or its defaults.
    pub fn video_section(&self) -> VideoSection {
        self.video.clone().unwrap_or_default()
    }

    /// `[arb]`, or its defaults.
    pub fn arb_section(&self) -> ArbSection {
        self.arb.clone().unwrap_or_default()
    }

    /// A fingerprint of everything that shapes the model, to refuse resuming
    /// from a checkpoint made by another config.
    pub fn model_fingerprint(&self) -> String {
        let kind = self.model.kind;
        match kind {
            ModelKind::TernaryByteMlp | ModelKind::DenseByteMlp => format!(
                "{:?} context={} d_embed={} hidden={}",
                kind,
                self.model.context.unwrap_or(0),
                self.model.d_embed.unwrap_or(0),
                self.model.hidden.unwrap_or(0)
            ),
            ModelKind::AudioVq => format!("{kind:?} {:?}", self.audio_section()),
            ModelKind::VideoHead => format!("{kind:?} {:?}", self.video_section()),
            ModelKind::ArbMultimodal => format!(
                "{kind:?} {:?} {:?} {:?}",
                self.arb_section(),
                self.audio_section(),
                self.video_section()
            ),
        }
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
