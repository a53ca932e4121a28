//! `arbitor train`: picks the [`Task`] of the config's `model.kind`, loads
//! its data, checks the run directory, and hands the task to the one
//! training path, [`fit`], on the chosen backend. Also the audit of a
//! config's untrained model (`arbitor audit`).

use std::path::Path;

use burn::backend::Flex;
use burn_ternary::{audit::AuditReport, TernaryAutodiffBackend};

use crate::{
    audio_task::{self, AudioTask},
    bitnet_task::BitNetTask,
    config::{BackendKind, ModelKind, RunConfig},
    fit::{checkpoint_epochs, fit, FaultInjection, RunError, RunSummary, Task},
    lm::{dense_model, ternary_model, DenseLm, TernaryLm},
    multimodal_task::{self, MultimodalTask},
    text_task::{ArbTextTask, DenseArbText, TernaryArbText},
    video_task::{self, VideoTask},
};

/// How `arbitor train` runs a config.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrainOptions {
    /// Backend override (`--backend`); the config's `run.backend` otherwise.
    pub backend: Option<BackendKind>,
    /// Resume from the run directory's last checkpoint.
    pub resume: bool,
    /// Faults injected by the reliability tests (debug builds only).
    pub faults: FaultInjection,
}

const FINGERPRINT: &str = "model.fingerprint";

/// A task of every kind, its data loaded.
enum AnyTask {
    Ternary(TernaryLm),
    Dense(DenseLm),
    Audio(AudioTask),
    Video(VideoTask),
    Multimodal(Box<MultimodalTask>),
    ArbText(Box<TernaryArbText>),
    DenseArbText(Box<DenseArbText>),
    Bitnet(Box<BitNetTask>),
}

impl AnyTask {
    fn load(config: &RunConfig) -> Result<Self, RunError> {
        Ok(match config.model.kind {
            ModelKind::TernaryByteMlp => Self::Ternary(TernaryLm::load(config)?),
            ModelKind::DenseByteMlp => Self::Dense(DenseLm::load(config)?),
            ModelKind::AudioVq => Self::Audio(AudioTask::load(config)?),
            ModelKind::VideoHead => Self::Video(VideoTask::load(config)?),
            ModelKind::ArbMultimodal => Self::Multimodal(Box::new(MultimodalTask::load(config)?)),
            ModelKind::ArbText => {
                Self::ArbText(Box::new(TernaryArbText(ArbTextTask::load(config)?)))
            }
            ModelKind::DenseArbText => {
                Self::DenseArbText(Box::new(DenseArbText(ArbTextTask::load(config)?)))
            }
            ModelKind::Bitnet => Self::Bitnet(Box::new(BitNetTask::load(config)?)),
        })
    }

    fn fit<B: TernaryAutodiffBackend>(
        &self,
        config: &RunConfig,
        resume_epoch: Option<usize>,
        devices: &[B::Device],
        faults: FaultInjection,
    ) -> Result<RunSummary, RunError> {
        fn go<B: TernaryAutodiffBackend, T: Task<B>>(
            task: &T,
            config: &RunConfig,
            resume_epoch: Option<usize>,
            devices: &[B::Device],
            faults: FaultInjection,
        ) -> Result<RunSummary, RunError> {
            fit::<B, T>(task, config, resume_epoch, devices, faults)
        }
        match self {
            Self::Ternary(t) => go::<B, _>(t, config, resume_epoch, devices, faults),
            Self::Dense(t) => go::<B, _>(t, config, resume_epoch, devices, faults),
            Self::Audio(t) => go::<B, _>(t, config, resume_epoch, devices, faults),
            Self::Video(t) => go::<B, _>(t, config, resume_epoch, devices, faults),
            Self::Multimodal(t) => go::<B, _>(t.as_ref(), config, resume_epoch, devices, faults),
            Self::ArbText(t) => go::<B, _>(t.as_ref(), config, resume_epoch, devices, faults),
            Self::DenseArbText(t) => go::<B, _>(t.as_ref(), config, resume_epoch, devices, faults),
            Self::Bitnet(t) => go::<B, _>(t.as_ref(), config, resume_epoch, devices, faults),
        }
    }
}

/// Runs `arbitor train` on a loaded config: loads the data, checks the run
/// directory (a new run refuses one with checkpoints; `resume` needs one
/// made by the same model), and trains on the chosen backend.
pub fn train(config: &RunConfig, options: &TrainOptions) -> Result<RunSummary, RunError> {
    let backend = options.backend.unwrap_or(config.run.backend);
    let task = AnyTask::load(config)?;
    let resume_epoch = prepare_dir(config, &config.run.dir, options.resume)?;
    let faults = options.faults;
    match backend {
        BackendKind::Cpu => {
            // Flex has one CPU device; `devices = [0, 0]` runs two data-parallel workers on it.
            let devices = vec![Default::default(); config.run.devices.len().max(1)];
            task.fit::<burn::backend::Autodiff<Flex>>(config, resume_epoch, &devices, faults)
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            // CubeCL 0.10 keeps compiled WGSL shaders in memory only.
            let _progress =
                kernel_compile_progress(config, "compiled again at each launch on WGPU");
            let devices = vec![Default::default(); config.run.devices.len().max(1)];
            task.fit::<burn::backend::Autodiff<burn::backend::Wgpu>>(
                config,
                resume_epoch,
                &devices,
                faults,
            )
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            let _progress = kernel_compile_progress(config, "cached on disk for the next launch");
            let devices: Vec<_> = match config.run.devices.as_slice() {
                [] => vec![Default::default()],
                ids => ids
                    .iter()
                    .map(|i| burn::backend::cuda::CudaDevice::new(*i))
                    .collect(),
            };
            task.fit::<burn::backend::Autodiff<burn::backend::Cuda>>(
                config,
                resume_epoch,
                &devices,
                faults,
            )
        }
        #[allow(unreachable_patterns)]
        other => Err(RunError::Backend(other)),
    }
}

/// Turns on CubeCL's on-disk kernel cache (used by its CUDA compiler) with
/// its compilation log in the run directory (`kernels.log`), and prints
/// progress from that log while kernels compile, each line ending in `note`.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn kernel_compile_progress(
    config: &RunConfig,
    note: &'static str,
) -> crate::compile_progress::CompileProgress {
    let log = config.run.dir.join("kernels.log");
    if burn_ternary::use_persistent_kernel_cache_with_log(&log) {
        println!("GPU kernels compile at their first use; progress every 10 s");
    }
    crate::compile_progress::CompileProgress::start(log, std::time::Duration::from_secs(10), note)
}

/// The audit of the model a config builds (untrained), on the CPU backend
/// with autodiff, so trainable float parameters show.
pub fn audit_config(config: &RunConfig) -> Result<AuditReport, RunError> {
    Ok(audit_config_parts(config)?.0)
}

/// [`audit_config`] and, for the kinds built of several networks, the audit
/// of each part (`ARBModel`, its `video_head` and `talker_head`, the audio
/// `encoder` and `decoder`), named as in the model.
pub fn audit_config_parts(
    config: &RunConfig,
) -> Result<(AuditReport, Vec<(String, AuditReport)>), RunError> {
    type B = burn::backend::Autodiff<Flex>;
    let device = Default::default();
    use burn_ternary::audit::audit;
    let arb_parts = |arb: &arbitor_models::arb::ARBModel<B>| {
        vec![
            ("ARBModel (core, router and heads)".to_string(), audit(arb)),
            ("  of which video_head".to_string(), audit(&arb.video_head)),
            (
                "  of which talker_head".to_string(),
                audit(&arb.talker_head),
            ),
        ]
    };
    Ok(match config.model.kind {
        ModelKind::TernaryByteMlp => {
            config.model.byte_mlp()?;
            (audit(&ternary_model::<B>(&config.model, &device)), vec![])
        }
        ModelKind::DenseByteMlp => {
            config.model.byte_mlp()?;
            (audit(&dense_model::<B>(&config.model, &device)), vec![])
        }
        ModelKind::AudioVq => (
            audit(&audio_task::model::<B>(config.audio()?, &device)?),
            vec![],
        ),
        ModelKind::VideoHead => (
            audit(&video_task::model::<B>(config.video()?, &device)?),
            vec![],
        ),
        ModelKind::ArbMultimodal => {
            let model = multimodal_task::model::<B>(
                config.arb()?,
                config.audio()?,
                config.video()?,
                &device,
            )?;
            let mut parts = arb_parts(&model.arb);
            parts.push((
                "audio encoder (AudioVQEncoder)".into(),
                audit(&model.audio.encoder),
            ));
            parts.push(("audio decoder".into(), audit(&model.audio.decoder)));
            (audit(&model), parts)
        }
        ModelKind::ArbText | ModelKind::DenseArbText => {
            let model = multimodal_task::arb_core::<B>(config.arb()?, config.video()?, &device)?;
            (audit(&model), arb_parts(&model))
        }
        ModelKind::Bitnet => {
            let model = config.bitnet()?.try_init::<B>(&device).map_err(|e| {
                crate::config::ConfigError {
                    path: String::new(),
                    reason: format!("`[bitnet]`: {e}"),
                }
            })?;
            (audit(&model), vec![])
        }
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
