//! The one training path of every run: a [`Task`] says what to train (its
//! model, optimizer, data sources, heads and end-of-run measurements) and
//! [`fit`] trains it with Burn's `Learner` — schedule, atomic checkpoints,
//! exact resume, the loss guard, progress, data parallelism — then exports
//! the model, audits and measures it, and writes `metrics.csv`, `steps.csv`,
//! the loss curves and `summary.toml`.
//!
//! Dependency direction: the task modules ([`crate::lm`],
//! [`crate::audio_task`], [`crate::video_task`], [`crate::multimodal_task`])
//! depend on this module; this module depends on none of them.

use std::{
    collections::BTreeMap,
    marker::PhantomData,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Instant,
};

use burn::{
    backend::Flex,
    data::dataloader::DataLoader,
    lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig,
    module::{AutodiffModule, Module, ModuleDisplay},
    optim::Optimizer,
    record::Recorder,
    tensor::{
        backend::{AutodiffBackend, Backend},
        ElementConversion, Tensor,
    },
    train::{
        metric::{Adaptor, LearningRateMetric, LossInput, LossMetric},
        ExecutionStrategy, InferenceStep, Interrupter, ItemLazy, Learner, MultiDeviceOptim,
        SupervisedTraining, TrainOutput, TrainStep, TrainingStrategy,
    },
};
use burn_ternary::{audit::AuditReport, TernaryAutodiffBackend};
use serde::Serialize;

use crate::{
    config::{BackendKind, ConfigError, DataParallel, ModelKind, RunConfig, TrainSection},
    data::{run_loaders, BatchSource, DataError, SeededLoader},
    data_parallel::CollectiveDataParallel,
    logger::{
        read_curve, read_metric_curve, read_series, write_metrics_csv, write_steps_csv, Curve,
        EpochFileLogger, Series,
    },
    metrics::{ScalarMetric, ScalarsInput},
    plot,
    progress::LineRenderer,
    recorder::AtomicMpkRecorder,
    throughput::TokensPerSecondMetric,
};

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The training data could not be read or is too short.
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
    /// The config has no `[train]` section (a decode-only `bitnet` config).
    #[error("model.kind = \"{0}\": this config has no `[train]` section (nor `data.path`), so it only serves `arbitor decode-bench`; add them to train it (e.g. configs/bitnet-tiny-train.toml)")]
    NotTrainable(&'static str),
    /// The tokenizer could not be read, or does not fit the model.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
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

/// A per-step value a task logs besides the total `Loss`: a head's loss or
/// a measure such as codebook perplexity or ACT steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// The metric's name (its log file and CSV column).
    pub name: &'static str,
    /// Its unit, for the plot's axis (empty when it has none).
    pub unit: &'static str,
}

impl Head {
    /// A head named `name`, measured in `unit`.
    pub const fn new(name: &'static str, unit: &'static str) -> Self {
        Self { name, unit }
    }
}

/// What a task's model computes on a batch: the total loss (what the
/// optimizer minimizes, `[1]`) and the step output the metrics read.
pub trait TaskModel<B: Backend>: Module<B> + ModuleDisplay {
    /// The batch type.
    type Batch: Send + 'static;
    /// The step output (the total loss and, for tasks with heads, each
    /// head's value).
    type Output: ItemLazy<ItemSync: Adaptor<LossInput<Flex>> + Adaptor<ScalarsInput>> + 'static;

    /// The total loss and the step output of `batch`; `training` is false
    /// in validation.
    fn loss_and_output(&self, batch: Self::Batch, training: bool) -> (Tensor<B, 1>, Self::Output);
}

/// The trained model of a task, on the inner (non-autodiff) backend.
pub type InnerModel<B, T> = <<T as Task<B>>::Model as AutodiffModule<B>>::InnerModule;

/// A kind of run: what [`fit`] needs to train it. A task is built from the
/// run config and its loaded data before the run directory is touched.
pub trait Task<B: TernaryAutodiffBackend> {
    /// The model it trains.
    type Model: TaskModel<B>
        + AutodiffModule<B, InnerModule: TaskModel<B::InnerBackend>>
        + core::fmt::Display
        + 'static;
    /// The optimizer of the model (inside the loss guard).
    type Optim: Optimizer<Guarded<B, Self::Model>, B> + 'static;
    /// Where the training batches come from.
    type Train: BatchSource<B, Batch = <Self::Model as TaskModel<B>>::Batch>;
    /// Where the validation batches come from.
    type Valid: BatchSource<
        B::InnerBackend,
        Batch = <InnerModel<B, Self> as TaskModel<B::InnerBackend>>::Batch,
    >;

    /// The per-step values logged besides `Loss`.
    fn heads(&self) -> &'static [Head];

    /// The unit of the total loss.
    fn loss_unit(&self) -> &'static str;

    /// Builds the untrained model.
    fn model(&self, device: &B::Device) -> Result<Self::Model, ConfigError>;

    /// Builds the optimizer from the `[train]` keys (`seed`: the run's seed).
    fn optimizer(&self, train: &TrainSection, seed: u64) -> Self::Optim;

    /// The training and validation batch sources (`model`: the untrained
    /// model, for sources that depend on its schedule).
    fn sources(&self, model: &Self::Model) -> (Arc<Self::Train>, Arc<Self::Valid>);

    /// Validation batches per epoch: `train.eval_batches` unless the task
    /// walks its whole split.
    fn valid_batches(&self, config: &RunConfig) -> usize {
        config.train.eval_batches
    }

    /// Tokens per example, for the throughput (1 for tasks without text).
    fn tokens_per_example(&self) -> usize {
        1
    }

    /// The audit of the trained model.
    fn audit(&self, trained: &InnerModel<B, Self>) -> AuditReport {
        burn_ternary::audit::audit(trained)
    }

    /// End-of-run measurements of the trained model (codebook usage, ACT
    /// steps, baselines), in reporting order; `valid` is the run's
    /// validation loader.
    fn measure(
        &self,
        trained: &InnerModel<B, Self>,
        valid: &SeededLoader<B::InnerBackend, Self::Valid>,
        device: &B::Device,
    ) -> Vec<(String, f64)> {
        let _ = (trained, valid, device);
        Vec::new()
    }

    /// Unigram entropy of the validation text (nats), for tasks with text.
    fn unigram_entropy(&self) -> Option<f64> {
        None
    }

    /// The unit of the reported throughput when it is not the kind's usual
    /// one (bytes/s for text, examples/s otherwise).
    fn throughput_unit(&self) -> Option<&'static str> {
        None
    }
}

/// Fault injection for the reliability tests. Its field exists only in
/// builds with debug assertions (what `cargo test` builds), so a release
/// binary cannot inject a fault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultInjection {
    /// Treat the loss of this train step (counted from 0 over all workers
    /// of the run) and of every later one as NaN.
    #[cfg(debug_assertions)]
    pub poison_loss_at_step: Option<usize>,
}

/// Stops the run (through the `Learner`'s interrupter) when a loss is not
/// finite, before the optimizer sees its gradient, so no checkpoint is
/// written from a diverged model. One value per run, shared by every clone
/// of the model (every data-parallel worker).
#[derive(Clone, Default)]
pub struct LossGuard {
    interrupter: Interrupter,
    steps: Arc<AtomicUsize>,
    faults: FaultInjection,
}

impl core::fmt::Debug for LossGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LossGuard")
            .field("steps", &self.steps.load(Ordering::SeqCst))
            .field("tripped", &self.interrupter.should_stop())
            .field("faults", &self.faults)
            .finish()
    }
}

impl LossGuard {
    /// A guard that stops `interrupter`, with `faults` injected.
    pub fn new(interrupter: Interrupter, faults: FaultInjection) -> Self {
        Self {
            interrupter,
            steps: Arc::new(AtomicUsize::new(0)),
            faults,
        }
    }

    /// The guard's message, if it stopped the run.
    pub fn tripped(&self) -> Option<String> {
        self.interrupter
            .should_stop()
            .then(|| self.interrupter.get_message())
            .flatten()
    }

    #[cfg(debug_assertions)]
    fn poisoned(&self, step: usize) -> bool {
        self.faults.poison_loss_at_step.is_some_and(|at| step >= at)
    }

    #[cfg(not(debug_assertions))]
    fn poisoned(&self, _step: usize) -> bool {
        false
    }

    /// The train step: back-propagates `loss` unless it is not finite, in
    /// which case the run's interrupter is stopped and an empty gradient is
    /// returned, so the optimizer leaves every weight as it is.
    pub fn step<B: AutodiffBackend, M: AutodiffModule<B>, T>(
        &self,
        model: &M,
        loss: Tensor<B, 1>,
        item: T,
    ) -> TrainOutput<T> {
        let value: f64 = loss.clone().into_scalar().elem();
        let step = self.steps.fetch_add(1, Ordering::SeqCst);
        let poisoned = self.poisoned(step);
        if !value.is_finite() || poisoned {
            let shown = if poisoned { f64::NAN } else { value };
            self.interrupter.stop(Some(&format!(
                "training loss became {shown}; run stopped before this update"
            )));
            // An empty gradient: the optimizer leaves every weight as it is.
            let nothing = Tensor::<B, 1>::zeros([1], &loss.device())
                .require_grad()
                .sum()
                .backward();
            return TrainOutput::new(model, nothing, item);
        }
        TrainOutput::new(model, loss.backward(), item)
    }
}

/// A task's model inside the run's [`LossGuard`]: what Burn's `Learner`
/// trains. Its train step is the model's loss, guarded; its validation step
/// the model's loss in inference mode.
#[derive(Module, Debug)]
pub struct Guarded<B: Backend, M: Module<B>> {
    /// The task's model.
    pub model: M,
    guard: LossGuard,
    backend: PhantomData<B>,
}

impl<B: Backend, M: Module<B>> Guarded<B, M> {
    /// `model` inside `guard`.
    pub fn new(model: M, guard: LossGuard) -> Self {
        Self {
            model,
            guard,
            backend: PhantomData,
        }
    }
}

impl<B, M> TrainStep for Guarded<B, M>
where
    B: AutodiffBackend,
    M: TaskModel<B> + AutodiffModule<B, InnerModule: ModuleDisplay>,
{
    type Input = M::Batch;
    type Output = M::Output;

    fn step(&self, batch: M::Batch) -> TrainOutput<M::Output> {
        let (loss, output) = self.model.loss_and_output(batch, true);
        self.guard.step(self, loss, output)
    }
}

impl<B: Backend, M: TaskModel<B>> InferenceStep for Guarded<B, M> {
    type Input = M::Batch;
    type Output = M::Output;

    fn step(&self, batch: M::Batch) -> M::Output {
        self.model.loss_and_output(batch, false).1
    }
}

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
    /// The same per head (every head's loss and per-step measure), in
    /// logging order.
    pub heads: Vec<(String, Curve)>,
    /// Per-step train values and per-epoch validation means of the total
    /// loss and of every head, as plotted.
    pub series: Vec<Series>,
    /// End-of-run measurements of the trained model (codebook usage, ACT
    /// steps, baselines), in reporting order.
    pub measured: Vec<(String, f64)>,
    /// Unigram entropy of the validation text (nats), for the kinds with text.
    pub unigram_entropy: Option<f64>,
    /// Audit of the trained model.
    pub audit: AuditReport,
    /// Training throughput over this invocation: predicted bytes (or
    /// tokens) per second for the kinds with text, examples per second for
    /// the others.
    pub tokens_per_second: f64,
    /// The unit of [`tokens_per_second`](Self::tokens_per_second).
    pub throughput_unit: &'static str,
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
            for (epoch, train, valid) in &self.curve {
                out += &format!("{epoch:>5}  {train:>10.4}  {valid:>10.4}");
                for (name, curve) in &self.heads {
                    let v = curve
                        .iter()
                        .find(|c| c.0 == *epoch)
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
        out += &format!(
            "throughput: {:.0} {}; wall time {:.1} s\n",
            self.tokens_per_second, self.throughput_unit, self.seconds
        );
        out += &format!(
            "curves: {} and loss_curve.svg; per-step values: steps.csv\n",
            self.dir.join("loss_curve.png").display()
        );
        out
    }
}

const CHECKPOINTS: &str = "checkpoint";

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

/// Trains `task` under `config` on `devices` (data-parallel when there are
/// several), resuming after `resume_epoch` if given: the one training path
/// of every run kind. Writes the exported model, `metrics.csv`,
/// `steps.csv`, `loss_curve.png`/`.svg` and `summary.toml` into `run.dir`.
pub fn fit<B, T>(
    task: &T,
    config: &RunConfig,
    resume_epoch: Option<usize>,
    devices: &[B::Device],
    faults: FaultInjection,
) -> Result<RunSummary, RunError>
where
    B: TernaryAutodiffBackend,
    T: Task<B>,
{
    let device = devices[0].clone();
    B::seed(&device, config.run.seed);
    let started = Instant::now();
    let model = task.model(&device)?;
    let (train, valid) = task.sources(&model);
    let (train_loader, valid_loader) = run_loaders::<B, _, _>(
        config,
        train,
        valid,
        task.valid_batches(config),
        resume_epoch,
        &device,
    );
    let optim = task.optimizer(&config.train, config.run.seed);
    let interrupter = Interrupter::new();
    let guard = LossGuard::new(interrupter.clone(), faults);
    let heads: Vec<&'static str> = task.heads().iter().map(|h| h.name).collect();
    let trained = launch(
        config,
        Guarded::new(model, guard.clone()),
        optim,
        train_loader,
        valid_loader.clone(),
        resume_epoch,
        devices,
        &heads,
        task.tokens_per_example(),
        interrupter,
        &guard,
    )?
    .model;
    export(config, &trained)?;
    let audit = task.audit(&trained);
    let measured = task.measure(&trained, &valid_loader, &device);
    let seconds = started.elapsed().as_secs_f64();

    let t = &config.train;
    let dir = &config.run.dir;
    let curve = read_curve(dir, t.epochs);
    let head_curves: Vec<(String, Curve)> = heads
        .iter()
        .map(|name| (name.to_string(), read_metric_curve(dir, name, t.epochs)))
        .collect();
    let series: Vec<Series> = std::iter::once(read_series(dir, "Loss", task.loss_unit(), t.epochs))
        .chain(
            task.heads()
                .iter()
                .map(|h| read_series(dir, h.name, h.unit, t.epochs)),
        )
        .collect();
    let dir_error = |reason: String| RunError::RunDir {
        dir: dir.display().to_string(),
        reason,
    };
    write_metrics_csv(dir, &curve, &head_curves, config.model.kind.is_byte_mlp())
        .map_err(dir_error)?;
    write_steps_csv(dir, &series).map_err(dir_error)?;
    plot::write_loss_curves(dir, &run_title(config), &series).map_err(dir_error)?;
    let epochs_run = t.epochs - resume_epoch.unwrap_or(0);
    let examples = epochs_run * t.steps_per_epoch * t.grad_accumulation * t.batch;
    let tokens = examples * task.tokens_per_example();
    let summary = RunSummary {
        dir: dir.clone(),
        kind: config.model.kind,
        curve,
        heads: head_curves,
        series,
        measured,
        unigram_entropy: task.unigram_entropy(),
        audit,
        tokens_per_second: tokens as f64 / seconds,
        throughput_unit: task
            .throughput_unit()
            .unwrap_or(if config.model.kind.has_text() {
                "bytes/s"
            } else {
                "examples/s"
            }),
        seconds,
    };
    write_summary(&summary).map_err(dir_error)?;
    Ok(summary)
}

/// The plot title: the run directory's name and the model kind.
fn run_title(config: &RunConfig) -> String {
    let name = config
        .run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| config.run.dir.display().to_string());
    format!("{name} ({}): loss per step", config.model.kind.name())
}

/// Writes the trained model to `<run dir>/model.safetensors` (atomically).
fn export<B: Backend, M: Module<B>>(config: &RunConfig, trained: &M) -> Result<(), RunError> {
    burn_ternary::io::save_safetensors(trained, config.run.dir.join("model.safetensors")).map_err(
        |e| RunError::RunDir {
            dir: config.run.dir.display().to_string(),
            reason: e.to_string(),
        },
    )
}

/// Trains `model` with Burn's `Learner` under the run's schedule,
/// checkpointing, resume, loss guard, progress display and data parallelism;
/// logs `Loss`, the learning rate and every named part in `heads` (see
/// [`ScalarMetric`]) for both splits. Returns the trained inference model.
#[allow(clippy::too_many_arguments)]
fn launch<B, M, O>(
    config: &RunConfig,
    model: M,
    optim: O,
    train_loader: Arc<dyn DataLoader<B, M::Input>>,
    valid_loader: Arc<dyn DataLoader<B::InnerBackend, <M::InnerModule as InferenceStep>::Input>>,
    resume_epoch: Option<usize>,
    devices: &[B::Device],
    heads: &[&'static str],
    tokens_per_example: usize,
    interrupter: Interrupter,
    guard: &LossGuard,
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
    let mut training = SupervisedTraining::new(dir, train_loader, valid_loader)
        .with_metric_logger(EpochFileLogger::new(dir, resume_epoch.unwrap_or(0)))
        .metric_train_numeric(LossMetric::<Flex>::new())
        .metric_valid_numeric(LossMetric::<Flex>::new())
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(TokensPerSecondMetric::new(t.batch * tokens_per_example))
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
    if let Some(message) = guard.tripped() {
        let last = checkpoint_epochs(dir)
            .last()
            .map(|e| format!("epoch {e} in {}", dir.join(CHECKPOINTS).display()))
            .unwrap_or_else(|| "none was written yet".into());
        return Err(RunError::Diverged { message, last });
    }
    Ok(result.model)
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
