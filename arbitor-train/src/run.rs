//! `arbitor train`: a config-driven run on Burn's `Learner`, with atomic
//! checkpoints, exact resume, a NaN guard, a metrics CSV, a loss curve and a
//! `summary.toml`. One machinery for every [`ModelKind`]: each kind brings its
//! data, model and step types ([`crate::lm`], [`crate::audio_task`],
//! [`crate::video_task`], [`crate::multimodal_task`]) and this module runs
//! them.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use burn::{
    backend::Flex,
    data::dataloader::DataLoader,
    lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig,
    module::{AutodiffModule, Module},
    optim::{AdamWConfig, Optimizer},
    record::Recorder,
    tensor::backend::{AutodiffBackend, Backend},
    train::{
        metric::{Adaptor, LearningRateMetric, LossInput, LossMetric},
        ExecutionStrategy, InferenceStep, Interrupter, ItemLazy, Learner, MultiDeviceOptim,
        SupervisedTraining, TrainStep, TrainingStrategy,
    },
};
use burn_ternary::{audit::AuditReport, optim::TernaryOptimizerConfig, TernaryAutodiffBackend};
use serde::Serialize;

use crate::{
    config::{BackendKind, ConfigError, DataParallel, ModelKind, RunConfig},
    data::{ByteWindowLoader, WindowSpec},
    data_parallel::CollectiveDataParallel,
    lm::{dense_model, install_loss_guard, loss_guard_tripped, ternary_model},
    loader::DataError,
    logger::EpochFileLogger,
    metrics::{ScalarMetric, ScalarsInput},
    plot,
    progress::LineRenderer,
    quickstart::unigram_entropy,
    recorder::AtomicMpkRecorder,
    speech::{MelSplit, SpeechSet},
    throughput::TokensPerSecondMetric,
};

/// What `arbitor train` was asked to do.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The run config.
    pub config: PathBuf,
    /// Backend override (`--backend`).
    pub backend: Option<BackendKind>,
    /// Resume from the run directory's last checkpoint.
    pub resume: bool,
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The training text could not be read or is too short.
    #[error("data file {path}: {reason}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The run directory does not fit the request.
    #[error("run directory {dir}: {reason}")]
    RunDir {
        /// The directory.
        dir: String,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint could not be read.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The loss stopped being finite.
    #[error("{message}; the last good checkpoint ({last}) is untouched")]
    Diverged {
        /// The guard's message.
        message: String,
        /// The last checkpoint, in words.
        last: String,
    },
    /// The backend is not compiled in.
    #[error("backend `{0:?}` is not compiled in: rebuild with `--features {feature}`", feature = format!("{:?}", .0).to_lowercase())]
    Backend(BackendKind),
}

impl From<DataError> for RunError {
    fn from(e: DataError) -> Self {
        RunError::Data {
            path: e.path,
            reason: e.reason,
        }
    }
}

/// `(epoch, mean train value, mean validation value)` of one logged metric.
pub type Curve = Vec<(usize, f64, f64)>;

/// What a finished run measured.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The run directory.
    pub dir: PathBuf,
    /// The model kind.
    pub kind: ModelKind,
    /// `(epoch, mean train loss, mean validation loss)` of the total loss,
    /// for every epoch logged.
    pub curve: Curve,
    /// The same per named part of the loss (every head's loss) and per-step
    /// measure (codebook perplexity, ACT steps), in logging order.
    pub heads: Vec<(String, Curve)>,
    /// End-of-run measurements of the trained model (codebook usage, ACT
    /// steps, baselines), in reporting order.
    pub measured: Vec<(String, f64)>,
    /// Unigram entropy of the validation text (nats), for the kinds with text.
    pub unigram_entropy: Option<f64>,
    /// Audit of the trained model.
    pub audit: AuditReport,
    /// Training throughput over this invocation: predicted bytes per second
    /// for the byte-level models, examples per second for the others.
    pub tokens_per_second: f64,
    /// Wall time of this invocation's training, export and measurements (s).
    pub seconds: f64,
}

impl RunSummary {
    /// Validation loss of the last epoch (nats).
    pub fn final_val_loss(&self) -> f64 {
        self.curve.last().map(|c| c.2).unwrap_or(f64::NAN)
    }

    /// The curve of a named head or measure.
    pub fn head(&self, name: &str) -> Option<&Curve> {
        self.heads.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// An end-of-run measurement by name.
    pub fn measured(&self, name: &str) -> Option<f64> {
        self.measured
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// The end-of-run report `arbitor train` prints (without the audit table).
    pub fn report(&self) -> String {
        let mut out = format!("run directory: {}\n", self.dir.display());
        if self.kind.is_byte_mlp() {
            out += "epoch  train loss  valid loss  valid bits/byte\n";
            for (epoch, train, valid) in &self.curve {
                out += &format!(
                    "{epoch:>5}  {train:>10.4}  {valid:>10.4}  {:>15.4}\n",
                    valid / core::f64::consts::LN_2
                );
            }
        } else {
            out += "epoch  train loss  valid loss";
            for (name, _) in &self.heads {
                out += &format!("  {name:>w$}", w = name.len().max(10));
            }
            out += "   (heads: validation means)\n";
            for (i, (epoch, train, valid)) in self.curve.iter().enumerate() {
                out += &format!("{epoch:>5}  {train:>10.4}  {valid:>10.4}");
                for (name, curve) in &self.heads {
                    let v = curve
                        .iter()
                        .find(|c| c.0 == self.curve[i].0)
                        .map(|c| c.2)
                        .unwrap_or(f64::NAN);
                    out += &format!("  {v:>w$.4}", w = name.len().max(10));
                }
                out += "\n";
            }
        }
        if let Some(unigram) = self.unigram_entropy {
            out += &format!("unigram entropy of the validation bytes: {unigram:.4} nats\n");
        }
        out += &format!("final validation loss: {:.4}\n", self.final_val_loss());
        for (name, value) in &self.measured {
            out += &format!("{name}: {value:.4}\n");
        }
        let unit = if self.kind.is_byte_mlp() {
            "bytes/s"
        } else {
            "examples/s"
        };
        out += &format!(
            "throughput: {:.0} {unit}; wall time {:.1} s\n",
            self.tokens_per_second, self.seconds
        );
        out
    }
}

/// What a run kind's training hands back to [`train`].
pub(crate) struct Trained {
    /// Audit of the trained model.
    pub audit: AuditReport,
    /// Names of the per-step metrics it logged besides `Loss`.
    pub heads: &'static [&'static str],
    /// End-of-run measurements.
    pub measured: Vec<(String, f64)>,
    /// Items counted by the throughput, per example.
    pub items_per_example: usize,
    /// Unigram entropy of the validation text, if the kind has text.
    pub unigram_entropy: Option<f64>,
}

const CHECKPOINTS: &str = "checkpoint";
const FINGERPRINT: &str = "model.fingerprint";

/// The epochs with a complete checkpoint (model, optimizer and scheduler), newest last.
pub fn checkpoint_epochs(dir: &Path) -> Vec<usize> {
    let checkpoints = dir.join(CHECKPOINTS);
    let Ok(entries) = std::fs::read_dir(&checkpoints) else {
        return Vec::new();
    };
    let mut epochs: Vec<usize> = entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("model-")?
                .strip_suffix(".mpk")?
                .parse()
                .ok()
        })
        .filter(|e| {
            ["optim", "scheduler"]
                .iter()
                .all(|p| checkpoints.join(format!("{p}-{e}.mpk")).exists())
        })
        .collect();
    epochs.sort();
    epochs
}

/// The data a run reads, loaded before the run directory is touched.
pub(crate) enum RunData {
    /// Text bytes and the start of the validation tail.
    Text { text: Vec<u8>, split: usize },
    /// Log-mel features of the speech set.
    Speech(MelSplit),
    /// Synthetic moving shapes (nothing to load).
    Shapes,
    /// Text and speech.
    Multimodal {
        text: Vec<u8>,
        split: usize,
        speech: MelSplit,
    },
}

/// Reads the text of `data.path`; it must hold more than `context + 1`
/// bytes on both sides of the validation split.
fn load_text(config: &RunConfig, context: usize) -> Result<(Vec<u8>, usize), RunError> {
    let path = config.data.path.clone().unwrap_or_default();
    let data_path = path.display().to_string();
    let text = std::fs::read(&path).map_err(|e| RunError::Data {
        path: data_path.clone(),
        reason: e.to_string(),
    })?;
    let split = ((text.len() as f64) * (1.0 - config.data.val_fraction)) as usize;
    if split <= context + 1 || text.len() - split <= context + 1 {
        return Err(RunError::Data {
            path: data_path,
            reason: format!(
                "{} bytes is too short for a context of {}",
                text.len(),
                context
            ),
        });
    }
    Ok((text, split))
}

/// Reads the speech set of `data.speech` and computes its features.
fn load_speech(config: &RunConfig) -> Result<MelSplit, RunError> {
    let dir = config.data.speech.clone().unwrap_or_default();
    let set = SpeechSet::load(&dir)?;
    Ok(MelSplit::new(
        &set,
        config.data.val_fraction,
        config.audio_section().n_mels,
    ))
}

fn load_data(config: &RunConfig) -> Result<RunData, RunError> {
    Ok(match config.model.kind {
        ModelKind::TernaryByteMlp | ModelKind::DenseByteMlp => {
            let (text, split) = load_text(config, config.model.byte_mlp()?.context)?;
            RunData::Text { text, split }
        }
        ModelKind::AudioVq => RunData::Speech(load_speech(config)?),
        ModelKind::VideoHead => RunData::Shapes,
        ModelKind::ArbMultimodal => {
            let (text, split) = load_text(config, config.arb_section().seq)?;
            RunData::Multimodal {
                text,
                split,
                speech: load_speech(config)?,
            }
        }
    })
}

/// Runs `arbitor train`.
pub fn train(options: &TrainOptions) -> Result<RunSummary, RunError> {
    let config = RunConfig::load(&options.config)?;
    let backend = options.backend.unwrap_or(config.run.backend);
    let data = load_data(&config)?;
    let dir = config.run.dir.clone();
    let resume_epoch = prepare_dir(&config, &dir, options.resume)?;
    match backend {
        BackendKind::Cpu => {
            // Flex has one CPU device; `devices = [0, 0]` runs two data-parallel workers on it.
            let devices = vec![Default::default(); config.run.devices.len().max(1)];
            fit::<burn::backend::Autodiff<burn::backend::Flex>>(
                &config,
                data,
                resume_epoch,
                devices,
            )
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            let devices = vec![Default::default(); config.run.devices.len().max(1)];
            fit::<burn::backend::Autodiff<burn::backend::Wgpu>>(
                &config,
                data,
                resume_epoch,
                devices,
            )
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            let devices = match config.run.devices.as_slice() {
                [] => vec![Default::default()],
                ids => ids
                    .iter()
                    .map(|i| burn::backend::cuda::CudaDevice::new(*i))
                    .collect(),
            };
            fit::<burn::backend::Autodiff<burn::backend::Cuda>>(
                &config,
                data,
                resume_epoch,
                devices,
            )
        }
        #[allow(unreachable_patterns)]
        other => Err(RunError::Backend(other)),
    }
}

/// The audit of the model a config builds (untrained), on the CPU backend
/// with autodiff, so trainable float parameters show.
pub fn audit_config(config: &RunConfig) -> Result<AuditReport, RunError> {
    type B = burn::backend::Autodiff<Flex>;
    let device = Default::default();
    use burn_ternary::audit::audit;
    Ok(match config.model.kind {
        ModelKind::TernaryByteMlp => {
            config.model.byte_mlp()?;
            audit(&ternary_model::<B>(&config.model, &device))
        }
        ModelKind::DenseByteMlp => {
            config.model.byte_mlp()?;
            audit(&dense_model::<B>(&config.model, &device))
        }
        ModelKind::AudioVq => audit(&crate::audio_task::model::<B>(
            &config.audio_section(),
            &device,
        )?),
        ModelKind::VideoHead => audit(&crate::video_task::model::<B>(
            &config.video_section(),
            &device,
        )?),
        ModelKind::ArbMultimodal => audit(&crate::multimodal_task::model::<B>(config, &device)?),
    })
}

/// Checks the run directory against the request; returns the epoch to resume from.
fn prepare_dir(config: &RunConfig, dir: &Path, resume: bool) -> Result<Option<usize>, RunError> {
    let err = |reason: String| RunError::RunDir {
        dir: dir.display().to_string(),
        reason,
    };
    let fingerprint_path = dir.join(FINGERPRINT);
    let existing = checkpoint_epochs(dir);
    if !resume {
        if !existing.is_empty() {
            return Err(err(format!(
                "holds checkpoints (epochs {existing:?}); pass --resume to continue it, or set another run.dir"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        std::fs::write(&fingerprint_path, config.model_fingerprint())
            .map_err(|e| err(e.to_string()))?;
        return Ok(None);
    }
    let Some(&last) = existing.last() else {
        return Err(err("has no complete checkpoint to resume from".into()));
    };
    let recorded = std::fs::read_to_string(&fingerprint_path)
        .map_err(|e| err(format!("{FINGERPRINT}: {e}")))?;
    if recorded != config.model_fingerprint() {
        return Err(err(format!(
            "its checkpoints are of a different model ({recorded}); this config builds {}",
            config.model_fingerprint()
        )));
    }
    Ok(Some(last))
}

fn fit<B: TernaryAutodiffBackend>(
    config: &RunConfig,
    data: RunData,
    resume_epoch: Option<usize>,
    devices: Vec<B::Device>,
) -> Result<RunSummary, RunError> {
    B::seed(&devices[0], config.run.seed);
    let started = Instant::now();
    let trained = match data {
        RunData::Text { text, split } => {
            fit_text::<B>(config, text, split, resume_epoch, &devices)?
        }
        RunData::Speech(speech) => {
            crate::audio_task::fit::<B>(config, &speech, resume_epoch, &devices)?
        }
        RunData::Shapes => crate::video_task::fit::<B>(config, resume_epoch, &devices)?,
        RunData::Multimodal {
            text,
            split,
            speech,
        } => {
            crate::multimodal_task::fit::<B>(config, text, split, &speech, resume_epoch, &devices)?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let t = &config.train;
    let epochs_run = t.epochs - resume_epoch.unwrap_or(0);
    let dir = &config.run.dir;
    let curve = read_curve(dir, t.epochs);
    let heads: Vec<(String, Curve)> = trained
        .heads
        .iter()
        .map(|name| (name.to_string(), read_metric_curve(dir, name, t.epochs)))
        .collect();
    let dir_error = |reason: String| RunError::RunDir {
        dir: dir.display().to_string(),
        reason,
    };
    if config.model.kind.is_byte_mlp() {
        plot::write_metrics(dir, &curve).map_err(dir_error)?;
    } else {
        plot::write_metrics_with_heads(dir, &curve, &heads).map_err(dir_error)?;
    }
    let examples = epochs_run * t.steps_per_epoch * t.grad_accumulation * t.batch;
    let summary = RunSummary {
        dir: dir.clone(),
        kind: config.model.kind,
        curve,
        heads,
        measured: trained.measured,
        unigram_entropy: trained.unigram_entropy,
        audit: trained.audit,
        tokens_per_second: (examples * trained.items_per_example) as f64 / seconds,
        seconds,
    };
    write_summary(&summary).map_err(dir_error)?;
    Ok(summary)
}

/// The byte-level language models on a text.
fn fit_text<B: TernaryAutodiffBackend>(
    config: &RunConfig,
    text: Vec<u8>,
    split: usize,
    resume_epoch: Option<usize>,
    devices: &[B::Device],
) -> Result<Trained, RunError> {
    let device = devices[0].clone();
    let context = config.model.byte_mlp()?.context;
    let val_text = text[split..].to_vec();
    let unigram = unigram_entropy(&val_text);
    let t = &config.train;
    let train_loader = ByteWindowLoader::<B>::new(
        Arc::new(text[..split].to_vec()),
        WindowSpec {
            context,
            batch: t.batch,
            batches: t.steps_per_epoch * t.grad_accumulation,
            seed: config.run.seed,
        },
        resume_epoch.unwrap_or(0),
        false,
        device.clone(),
    );
    let valid_loader = ByteWindowLoader::<B::InnerBackend>::new(
        Arc::new(val_text),
        WindowSpec {
            context,
            batch: t.batch,
            batches: t.eval_batches,
            seed: config.run.seed ^ 0x5eed,
        },
        0,
        true,
        device.clone(),
    );
    let (train_loader, valid_loader) = (Arc::new(train_loader), Arc::new(valid_loader));
    let audit = match config.model.kind {
        ModelKind::DenseByteMlp => {
            let model = dense_model::<B>(&config.model, &device);
            let optim = AdamWConfig::new().init();
            let trained = launch(
                config,
                model,
                optim,
                train_loader,
                valid_loader,
                resume_epoch,
                devices,
                &[],
            )?;
            let mut audit = export(config, &trained)?;
            // The inner (non-autodiff) model cannot show trainability; the dense
            // baseline trains every float parameter.
            audit.trainable_float_params = audit.frozen_float_params;
            audit.frozen_float_params = 0;
            audit
        }
        _ => {
            let model = ternary_model::<B>(&config.model, &device);
            let optim = TernaryOptimizerConfig::new()
                .with_seed(config.run.seed)
                .init();
            let trained = launch(
                config,
                model,
                optim,
                train_loader,
                valid_loader,
                resume_epoch,
                devices,
                &[],
            )?;
            export(config, &trained)?
        }
    };
    Ok(Trained {
        audit,
        heads: &[],
        measured: Vec::new(),
        items_per_example: 1,
        unigram_entropy: Some(unigram),
    })
}

/// Writes the trained model to `<run dir>/model.safetensors` (atomically) and audits it.
pub(crate) fn export<B: Backend, M: Module<B>>(
    config: &RunConfig,
    trained: &M,
) -> Result<AuditReport, RunError> {
    burn_ternary::io::save_safetensors(trained, config.run.dir.join("model.safetensors")).map_err(
        |e| RunError::RunDir {
            dir: config.run.dir.display().to_string(),
            reason: e.to_string(),
        },
    )?;
    Ok(burn_ternary::audit::audit(trained))
}

/// Trains `model` with Burn's `Learner` under the run's schedule,
/// checkpointing, resume, NaN guard, progress display and data parallelism;
/// logs `Loss`, the learning rate and every named part in `heads` (see
/// [`ScalarMetric`]) for both splits. Returns the trained inference model.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch<B, M, O>(
    config: &RunConfig,
    model: M,
    optim: O,
    train_loader: Arc<dyn DataLoader<B, M::Input>>,
    valid_loader: Arc<dyn DataLoader<B::InnerBackend, <M::InnerModule as InferenceStep>::Input>>,
    resume_epoch: Option<usize>,
    devices: &[B::Device],
    heads: &[&'static str],
) -> Result<M::InnerModule, RunError>
where
    B: AutodiffBackend<InnerBackend: burn_ternary::TernaryBackend>,
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
    <M::Output as ItemLazy>::ItemSync: Adaptor<LossInput<Flex>> + Adaptor<ScalarsInput>,
    <<M::InnerModule as InferenceStep>::Output as ItemLazy>::ItemSync:
        Adaptor<LossInput<Flex>> + Adaptor<ScalarsInput>,
    O: Optimizer<M, B> + 'static,
{
    let t = &config.train;
    let dir = &config.run.dir;
    let device = &devices[0];
    if let Some(epoch) = resume_epoch {
        // Read every file of the checkpoint before the Learner does, so a
        // corrupt or truncated one is reported by name instead of panicking.
        let recorder = AtomicMpkRecorder::default();
        let path = dir.join(CHECKPOINTS).join(format!("model-{epoch}"));
        let check = |result: Result<(), burn::record::RecorderError>, path: &Path| {
            result.map_err(|e| RunError::Checkpoint {
                path: path.with_extension("mpk").display().to_string(),
                reason: format!(
                    "cannot be loaded ({e}); it is corrupt, truncated or from another model"
                ),
            })
        };
        check(
            model
                .clone()
                .load_file(path.clone(), &recorder, device)
                .map(|_| ()),
            &path,
        )?;
        let path = dir.join(CHECKPOINTS).join(format!("optim-{epoch}"));
        check(
            Recorder::<B>::load::<O::Record>(&recorder, path.with_extension("mpk"), device)
                .map(|_| ()),
            &path,
        )?;
    }
    let scheduler = CosineAnnealingLrSchedulerConfig::new(t.lr, t.epochs * t.steps_per_epoch)
        .with_min_lr(t.lr * 0.1)
        .init()
        .map_err(|reason| {
            RunError::Config(ConfigError {
                path: "train.lr".into(),
                reason,
            })
        })?;
    let interrupter = Interrupter::new();
    install_loss_guard(interrupter.clone());
    let mut training = SupervisedTraining::new(dir, train_loader, valid_loader)
        .with_metric_logger(EpochFileLogger::new(dir, resume_epoch.unwrap_or(0)))
        .metric_train_numeric(LossMetric::<Flex>::new())
        .metric_valid_numeric(LossMetric::<Flex>::new())
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(TokensPerSecondMetric::new(t.batch))
        .with_file_checkpointer(AtomicMpkRecorder::default())
        .with_interrupter(interrupter)
        .renderer(LineRenderer::new((t.steps_per_epoch / 5).max(1)))
        .num_epochs(t.epochs)
        .summary();
    for name in heads {
        training = training
            .metric_train_numeric(ScalarMetric::new(name))
            .metric_valid_numeric(ScalarMetric::new(name));
    }
    if t.grad_accumulation > 1 {
        training = training.grads_accumulation(t.grad_accumulation);
    }
    if let Some(epoch) = resume_epoch {
        training = training.checkpoint(epoch);
    }
    if devices.len() > 1 {
        training = training.with_training_strategy(match config.run.data_parallel {
            DataParallel::Collective => {
                TrainingStrategy::Custom(Arc::new(CollectiveDataParallel::new(devices.to_vec())))
            }
            // Burn's multi-device strategy: the gradients of all devices are
            // summed on the first one before the ternary update.
            DataParallel::MainDevice => {
                ExecutionStrategy::multi(devices.to_vec(), MultiDeviceOptim::OptimMainDevice).into()
            }
        });
    }
    let result = training.launch(Learner::new(model, optim, scheduler));
    if let Some(message) = loss_guard_tripped() {
        let last = checkpoint_epochs(dir)
            .last()
            .map(|e| format!("epoch {e} in {}", dir.join(CHECKPOINTS).display()))
            .unwrap_or_else(|| "none was written yet".into());
        return Err(RunError::Diverged { message, last });
    }
    Ok(result.model)
}

/// Mean train and validation loss per epoch, read from the Learner's logs.
pub fn read_curve(dir: &Path, epochs: usize) -> Curve {
    read_metric_curve(dir, "Loss", epochs)
}

/// Mean train and validation value of the metric `name` per epoch, read
/// from the Learner's logs (`<dir>/{train,valid}/epoch-N/<name>.log`).
pub fn read_metric_curve(dir: &Path, name: &str, epochs: usize) -> Curve {
    let mean = |split: &str, epoch: usize| -> Option<f64> {
        let text = std::fs::read_to_string(
            dir.join(split)
                .join(format!("epoch-{epoch}"))
                .join(format!("{name}.log")),
        )
        .ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter_map(|l| l.split(',').next()?.trim().parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    (1..=epochs)
        .filter_map(|e| Some((e, mean("train", e)?, mean("valid", e)?)))
        .collect()
}

/// `summary.toml`: what the end-of-run report says, machine-readable.
#[derive(Serialize)]
struct SummaryFile {
    kind: String,
    epochs: usize,
    wall_seconds: f64,
    throughput_per_second: f64,
    loss: CurveEnds,
    heads: BTreeMap<String, CurveEnds>,
    measured: BTreeMap<String, f64>,
    audit: AuditFile,
}

#[derive(Serialize)]
struct CurveEnds {
    first_train: f64,
    last_train: f64,
    first_valid: f64,
    last_valid: f64,
}

#[derive(Serialize)]
struct AuditFile {
    ternary_tensors: usize,
    logical_ternary_weights: usize,
    ternary_state_bytes: usize,
    trainable_float_params: usize,
    frozen_float_params: usize,
    float_buffers: usize,
}

impl CurveEnds {
    fn of(curve: &Curve) -> Self {
        let first = curve.first().copied().unwrap_or((0, f64::NAN, f64::NAN));
        let last = curve.last().copied().unwrap_or((0, f64::NAN, f64::NAN));
        Self {
            first_train: first.1,
            last_train: last.1,
            first_valid: first.2,
            last_valid: last.2,
        }
    }
}

/// Writes `<run dir>/summary.toml`.
fn write_summary(summary: &RunSummary) -> Result<(), String> {
    let mut measured: BTreeMap<String, f64> = summary.measured.iter().cloned().collect();
    if let Some(unigram) = summary.unigram_entropy {
        measured.insert("unigram_entropy".into(), unigram);
    }
    let a = &summary.audit;
    let file = SummaryFile {
        kind: summary.kind.name().to_string(),
        epochs: summary.curve.last().map(|c| c.0).unwrap_or(0),
        wall_seconds: summary.seconds,
        throughput_per_second: summary.tokens_per_second,
        loss: CurveEnds::of(&summary.curve),
        heads: summary
            .heads
            .iter()
            .map(|(n, c)| (n.clone(), CurveEnds::of(c)))
            .collect(),
        measured,
        audit: AuditFile {
            ternary_tensors: a.ternary_tensors,
            logical_ternary_weights: a.logical_ternary_weights,
            ternary_state_bytes: a.ternary_state_bytes,
            trainable_float_params: a.trainable_float_params,
            frozen_float_params: a.frozen_float_params,
            float_buffers: a.float_buffers,
        },
    };
    let text = toml::to_string(&file).map_err(|e| format!("summary.toml: {e}"))?;
    std::fs::write(summary.dir.join("summary.toml"), text).map_err(|e| format!("summary.toml: {e}"))
}
