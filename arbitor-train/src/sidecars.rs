//! The sidecar half of `arbitor audit`: loads the `[sidecars]` of a run
//! config, reports each apart from the ternary core, and decides what fails
//! `--strict`.
//!
//! Sidecars are audited on the training backend (`Autodiff<Flex>`), where
//! whether a parameter requires a gradient is observable. Burn's autodiff
//! backend cannot quantize, so `storage = "int8"` is reported there as the
//! frozen-bf16 fallback (with the reason); on an inference backend (Flex,
//! NdArray) the same weights are int8.

use burn::{
    module::{Module, ModuleMapper, Param},
    tensor::{backend::Backend, Tensor},
};
use burn_ternary::audit::AuditReport;

use arbitor_models::sidecars::{
    codec::TinyNeuralCodec,
    json::JsonConfig,
    moonshine::MoonshineEncoder,
    resolve_storage, sidecar_report,
    vae::PigVae,
    vision::{dinov2::Dinov2Encoder, vit::VitEncoder},
    SidecarError, SidecarReport, SidecarStorage,
};

use crate::config::{SidecarStorageKind, SidecarsSection};

/// One audited sidecar: its report and how its storage was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditedSidecar {
    /// What it holds.
    pub report: SidecarReport,
    /// The backend's storage decision (`flex: int8 supported`, or the fallback and why).
    pub decision: String,
}

impl From<SidecarStorageKind> for SidecarStorage {
    fn from(kind: SidecarStorageKind) -> Self {
        match kind {
            SidecarStorageKind::Int8 => SidecarStorage::Int8,
            SidecarStorageKind::Bf16 => SidecarStorage::Bf16,
            SidecarStorageKind::F32 => SidecarStorage::F32,
        }
    }
}

/// Marks every float parameter as requiring a gradient (the `trainable = true`
/// demonstration switch of `[sidecars]`).
struct Unfreeze;

impl<B: Backend> ModuleMapper<B> for Unfreeze {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(true)
    }
}

fn report_of<B: Backend, M: Module<B>>(name: &str, module: M, trainable: bool) -> SidecarReport {
    let module = if trainable {
        module.map(&mut Unfreeze)
    } else {
        module
    };
    sidecar_report(name, &module)
}

/// Loads every sidecar `section` lists on backend `B` and reports it, in the
/// order vae, codec, moonshine, vision. The vision directory is a
/// transformers `Dinov2Model` or `ViTModel`, chosen by its `config.json`
/// `model_type` (`dinov2` or `vit`).
///
/// ```
/// use arbitor_train::{config::SidecarsSection, sidecars::audit_sidecars};
/// use burn::backend::{Autodiff, Flex};
///
/// let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../arbitor-models/tests/fixtures/sidecars");
/// let section = SidecarsSection {
///     codec: Some(format!("{fixtures}/codec_289").into()),
///     ..Default::default()
/// };
/// let audited = audit_sidecars::<Autodiff<Flex>>(&section, &Default::default()).unwrap();
/// assert_eq!(audited[0].report.name, "codec");
/// assert!(audited[0].report.frozen);
/// ```
pub fn audit_sidecars<B: Backend>(
    section: &SidecarsSection,
    device: &B::Device,
) -> Result<Vec<AuditedSidecar>, SidecarError> {
    let trainable = section.trainable;
    // A trainable sidecar keeps f32 (quantized or bf16 weights are not trained).
    let storage = if trainable {
        SidecarStorage::F32
    } else {
        section.storage.into()
    };
    let decision = resolve_storage::<B>(storage, device).reason;
    let mut out = Vec::new();
    let mut push = |report: SidecarReport| {
        out.push(AuditedSidecar {
            report,
            decision: decision.clone(),
        })
    };
    if let Some(dir) = &section.vae {
        push(report_of(
            "pig_vae",
            PigVae::<B>::load(dir, storage, device)?,
            trainable,
        ));
    }
    if let Some(dir) = &section.codec {
        push(report_of(
            "codec",
            TinyNeuralCodec::<B>::load(dir, storage, device)?,
            trainable,
        ));
    }
    if let Some(dir) = &section.moonshine {
        push(report_of(
            "moonshine",
            MoonshineEncoder::<B>::load(dir, storage, device)?,
            trainable,
        ));
    }
    if let Some(dir) = &section.vision {
        let config = JsonConfig::load(&dir.join("config.json"))?;
        let model_type = config.str_or("model_type", "")?.to_string();
        let report = match model_type.as_str() {
            "dinov2" => report_of(
                "vision",
                Dinov2Encoder::<B>::load(dir, storage, device)?,
                trainable,
            ),
            "vit" => report_of(
                "vision",
                VitEncoder::<B>::load(dir, storage, device)?,
                trainable,
            ),
            other => {
                return Err(config.error(
                    "model_type",
                    format!("`{other}`: the vision sidecar loads `dinov2` or `vit`"),
                ))
            }
        };
        push(report);
    }
    Ok(out)
}

/// What makes `arbitor audit --strict` fail: float state in the ternary
/// core, and any sidecar that is not frozen. Each message names its cause.
///
/// ```
/// use arbitor_models::sidecars::{SidecarReport, SidecarStorage};
/// use arbitor_train::sidecars::strict_violations;
/// use burn_ternary::audit::AuditReport;
///
/// let core = AuditReport::default();
/// let trainable = SidecarReport {
///     name: "pig_vae".into(),
///     params: 10,
///     storage: SidecarStorage::F32,
///     bytes: 40,
///     frozen: false,
/// };
/// let violations = strict_violations(&core, &[trainable]);
/// assert_eq!(violations.len(), 1);
/// assert!(violations[0].contains("pig_vae"));
/// ```
pub fn strict_violations(core: &AuditReport, sidecars: &[SidecarReport]) -> Vec<String> {
    let mut out = Vec::new();
    if !core.is_pure_ternary() {
        out.push(format!(
            "the ternary core holds float state ({} trainable float params, {} frozen float params, {} float buffers)",
            core.trainable_float_params, core.frozen_float_params, core.float_buffers
        ));
    }
    for report in sidecars.iter().filter(|r| !r.frozen) {
        out.push(format!(
            "sidecar `{}` is trainable ({} float params require gradients); sidecars must be frozen",
            report.name, report.params
        ));
    }
    out
}

/// The whole `arbitor audit` of a run config: the ternary core's audit and,
/// apart from it, every `[sidecars]` entry.
#[derive(Clone, Debug)]
pub struct FullAudit {
    /// The core model (untrained, on `Autodiff<Flex>`).
    pub core: AuditReport,
    /// Its parts, for models built of several networks (see
    /// [`crate::run::audit_config_parts`]).
    pub parts: Vec<(String, AuditReport)>,
    /// The sidecars, in config order.
    pub sidecars: Vec<AuditedSidecar>,
}

impl FullAudit {
    /// What fails `--strict` (see [`strict_violations`]).
    pub fn strict_violations(&self) -> Vec<String> {
        let reports: Vec<SidecarReport> = self.sidecars.iter().map(|s| s.report.clone()).collect();
        strict_violations(&self.core, &reports)
    }
}

impl core::fmt::Display for FullAudit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.core)?;
        if !self.parts.is_empty() {
            writeln!(f, "parts:")?;
            for (name, part) in &self.parts {
                writeln!(
                    f,
                    "  {name:<36} {:>12} logical ternary weights, {:>12} float params",
                    burn_ternary::audit::thousands(part.logical_ternary_weights),
                    burn_ternary::audit::thousands(
                        part.trainable_float_params + part.frozen_float_params
                    )
                )?;
            }
        }
        if self.sidecars.is_empty() {
            return Ok(());
        }
        writeln!(f)?;
        writeln!(
            f,
            "sidecars (imported float networks, apart from the ternary core):"
        )?;
        for sidecar in &self.sidecars {
            writeln!(f, "{}", sidecar.report)?;
            writeln!(f, "    storage decision: {}", sidecar.decision)?;
        }
        Ok(())
    }
}

/// Audits a run config: the core model (`run::audit_config`) and its
/// `[sidecars]`, both on `Autodiff<Flex>`.
///
/// ```
/// use arbitor_train::{config::RunConfig, sidecars::audit_run_config};
///
/// let config = RunConfig::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/quickstart.toml").as_ref()).unwrap();
/// let audit = audit_run_config(&config).unwrap();
/// assert!(audit.sidecars.is_empty());
/// println!("{audit}");
/// ```
pub fn audit_run_config(config: &crate::config::RunConfig) -> Result<FullAudit, String> {
    type B = burn::backend::Autodiff<burn::backend::Flex>;
    let (core, parts) = crate::run::audit_config_parts(config).map_err(|e| e.to_string())?;
    let sidecars = match &config.sidecars {
        Some(section) => audit_sidecars::<B>(section, &Default::default())
            .map_err(|e| format!("sidecar: {e}"))?,
        None => Vec::new(),
    };
    Ok(FullAudit {
        core,
        parts,
        sidecars,
    })
}
