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

/// Which model a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The ternary byte-level MLP language model (all weights ternary).
    TernaryByteMlp,
    /// The same architecture with dense f32 weights and AdamW: the baseline.
    DenseByteMlp,
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
    /// Device indices for data-parallel training (Burn's multi-device
    /// strategy: each device runs its share of every step, gradients are summed
    /// on the first device, where the ternary optimizer updates the one model
    /// all replicas are forked from). Empty or absent: the default device.
    #[serde(default)]
    pub devices: Vec<usize>,
}

fn default_backend() -> BackendKind {
    BackendKind::Cpu
}

/// `[model]`: the byte-level MLP language model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Ternary or dense.
    pub kind: ModelKind,
    /// Bytes of context.
    pub context: usize,
    /// Width of each byte embedding.
    pub d_embed: usize,
    /// Width of the hidden layers.
    pub hidden: usize,
}

/// `[data]`: the training text.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Path of the text file (relative to the working directory).
    pub path: PathBuf,
    /// Fraction of the text held out for validation (the tail).
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
}

fn default_val_fraction() -> f64 {
    0.1
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
    pub data: DataSection,
    /// `[train]`
    pub train: TrainSection,
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
        let positive = [
            ("model.context", self.model.context),
            ("model.d_embed", self.model.d_embed),
            ("model.hidden", self.model.hidden),
            ("train.epochs", self.train.epochs),
            ("train.steps_per_epoch", self.train.steps_per_epoch),
            ("train.batch", self.train.batch),
            ("train.eval_batches", self.train.eval_batches),
            ("train.grad_accumulation", self.train.grad_accumulation),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError {
                    path: String::new(),
                    reason: format!("`{key}` = 0: must be at least 1"),
                });
            }
        }
        if !(self.train.lr > 0.0 && self.train.lr.is_finite()) {
            return Err(ConfigError {
                path: String::new(),
                reason: format!("`train.lr` = {}: must be a positive number", self.train.lr),
            });
        }
        if !(0.0 < self.data.val_fraction && self.data.val_fraction < 1.0) {
            return Err(ConfigError {
                path: String::new(),
                reason: format!(
                    "`data.val_fraction` = {}: must be between 0 and 1",
                    self.data.val_fraction
                ),
            });
        }
        Ok(())
    }

    /// A fingerprint of everything that shapes the model, to refuse resuming
    /// from a checkpoint made by another config.
    pub fn model_fingerprint(&self) -> String {
        format!(
            "{:?} context={} d_embed={} hidden={}",
            self.model.kind, self.model.context, self.model.d_embed, self.model.hidden
        )
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
