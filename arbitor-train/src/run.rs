//! `arbitor train`: a config-driven run on Burn's `Learner`, with atomic
//! checkpoints, exact resume, a NaN guard, a metrics CSV and a loss curve.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use burn::{
    lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig,
    module::{AutodiffModule, Module},
    optim::{AdamWConfig, Optimizer},
    record::Recorder,
    tensor::backend::{AutodiffBackend, Backend},
    train::{
        metric::{LearningRateMetric, LossMetric},
        ClassificationOutput, ExecutionStrategy, InferenceStep, Interrupter, Learner,
        MultiDeviceOptim, SupervisedTraining, TrainStep,
    },
};
use burn_ternary::{audit::AuditReport, optim::TernaryOptimizerConfig, TernaryAutodiffBackend};

use crate::{
    config::{BackendKind, ConfigError, ModelKind, RunConfig},
    data::{ByteBatch, ByteWindowLoader, WindowSpec},
    lm::{dense_model, install_loss_guard, loss_guard_tripped, ternary_model},
    plot,
    progress::LineRenderer,
    quickstart::unigram_entropy,
    recorder::AtomicMpkRecorder,
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

/// What a finished run measured.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The run directory.
    pub dir: PathBuf,
    /// `(epoch, mean train loss, mean validation loss)` for every epoch logged.
    pub curve: Vec<(usize, f64, f64)>,
    /// Unigram entropy of the validation text (nats).
    pub unigram_entropy: f64,
    /// Audit of the trained model.
    pub audit: AuditReport,
    /// Training throughput over this invocation (predicted bytes per second).
    pub tokens_per_second: f64,
}

impl RunSummary {
    /// Validation loss of the last epoch (nats).
    pub fn final_val_loss(&self) -> f64 {
        self.curve.last().map(|c| c.2).unwrap_or(f64::NAN)
    }
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

/// Runs `arbitor train`.
pub fn train(options: &TrainOptions) -> Result<RunSummary, RunError> {
    let config = RunConfig::load(&options.config)?;
    let backend = options.backend.unwrap_or(config.run.backend);
    let data_path = config.data.path.display().to_string();
    let text = std::fs::read(&config.data.path).map_err(|e| RunError::Data {
        path: data_path.clone(),
        reason: e.to_string(),
    })?;
    let split = ((text.len() as f64) * (1.0 - config.data.val_fraction)) as usize;
    if split <= config.model.context + 1 || text.len() - split <= config.model.context + 1 {
        return Err(RunError::Data {
            path: data_path,
            reason: format!(
                "{} bytes is too short for a context of {}",
                text.len(),
                config.model.context
            ),
        });
    }
    let dir = config.run.dir.clone();
    let resume_epoch = prepare_dir(&config, &dir, options.resume)?;
    match backend {
        BackendKind::Cpu => {
            // Flex has one CPU device; `devices = [0, 0]` runs two data-parallel workers on it.
            let devices = vec![Default::default(); config.run.devices.len().max(1)];
            fit::<burn::backend::Autodiff<burn::backend::Flex>>(
                &config,
                text,
                split,
                resume_epoch,
                devices,
            )
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            let devices = vec![Default::default(); config.run.devices.len().max(1)];
            fit::<burn::backend::Autodiff<burn::backend::Wgpu>>(
                &config,
                text,
                split,
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
                text,
                split,
                resume_epoch,
                devices,
            )
        }
        #[allow(unreachable_patterns)]
        other => Err(RunError::Backend(other)),
    }
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
    text: Vec<u8>,
    split: usize,
    resume_epoch: Option<usize>,
    devices: Vec<B::Device>,
) -> Result<RunSummary, RunError> {
    let device = devices[0].clone();
    B::seed(&device, config.run.seed);
    let val_text = text[split..].to_vec();
    let unigram = unigram_entropy(&val_text);
    let t = &config.train;
    let train_loader = ByteWindowLoader::<B>::new(
        Arc::new(text[..split].to_vec()),
        WindowSpec {
            context: config.model.context,
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
            context: config.model.context,
            batch: t.batch,
            batches: t.eval_batches,
            seed: config.run.seed ^ 0x5eed,
        },
        0,
        true,
        device.clone(),
    );
    let (train_loader, valid_loader) = (Arc::new(train_loader), Arc::new(valid_loader));
    let started = Instant::now();
    let audit = match config.model.kind {
        ModelKind::TernaryByteMlp => {
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
                &devices,
            )?;
            export(config, &trained)?
        }
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
                &devices,
            )?;
            let mut audit = export(config, &trained)?;
            // The inner (non-autodiff) model cannot show trainability; the dense
            // baseline trains every float parameter.
            audit.trainable_float_params = audit.frozen_float_params;
            audit.frozen_float_params = 0;
            audit
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let epochs_run = t.epochs - resume_epoch.unwrap_or(0);
    let curve = read_curve(&config.run.dir, t.epochs);
    plot::write_metrics(&config.run.dir, &curve).map_err(|e| RunError::RunDir {
        dir: config.run.dir.display().to_string(),
        reason: e,
    })?;
    Ok(RunSummary {
        dir: config.run.dir.clone(),
        curve,
        unigram_entropy: unigram,
        audit,
        tokens_per_second: (epochs_run * t.steps_per_epoch * t.grad_accumulation * t.batch) as f64
            / seconds,
    })
}

/// Writes the trained model to `<run dir>/model.safetensors` (atomically) and audits it.
fn export<B: Backend, M: Module<B>>(
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

#[allow(clippy::too_many_arguments)]
fn launch<B, M, O>(
    config: &RunConfig,
    model: M,
    optim: O,
    train_loader: Arc<ByteWindowLoader<B>>,
    valid_loader: Arc<ByteWindowLoader<B::InnerBackend>>,
    resume_epoch: Option<usize>,
    devices: &[B::Device],
) -> Result<M::InnerModule, RunError>
where
    B: AutodiffBackend,
    M: TrainStep<Input = ByteBatch<B>, Output = ClassificationOutput<B>>
        + AutodiffModule<B>
        + core::fmt::Display
        + 'static,
    M::InnerModule: InferenceStep<
        Input = ByteBatch<B::InnerBackend>,
        Output = ClassificationOutput<B::InnerBackend>,
    >,
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
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(LearningRateMetric::new())
        .with_file_checkpointer(AtomicMpkRecorder::default())
        .with_interrupter(interrupter)
        .renderer(LineRenderer::new((t.steps_per_epoch / 5).max(1)))
        .num_epochs(t.epochs)
        .summary();
    if t.grad_accumulation > 1 {
        training = training.grads_accumulation(t.grad_accumulation);
    }
    if let Some(epoch) = resume_epoch {
        training = training.checkpoint(epoch);
    }
    if devices.len() > 1 {
        // Burn's own data parallelism: gradients of all devices reach
        // `Optimizer::step_multi`, which sums them before the ternary update.
        training = training.with_training_strategy(
            ExecutionStrategy::multi(devices.to_vec(), MultiDeviceOptim::OptimMainDevice).into(),
        );
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
pub fn read_curve(dir: &Path, epochs: usize) -> Vec<(usize, f64, f64)> {
    let mean = |split: &str, epoch: usize| -> Option<f64> {
        let text = std::fs::read_to_string(
            dir.join(split)
                .join(format!("epoch-{epoch}"))
                .join("Loss.log"),
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
