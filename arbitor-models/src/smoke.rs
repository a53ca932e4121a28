//! The component smoke run: every default component built, run on a fixed
//! input and audited, reported in the original's style
//! (`audio_vq_encoder_ok logits=(1, 4, 289), indices=(1, 4)`).

use core::fmt;

use burn::tensor::{Int, Tensor, TensorData};
use burn_ternary::{
    audit::{audit, AuditReport},
    TernaryBackend,
};

use crate::{
    arb::ARBModelConfig,
    audio::AudioVQEncoderConfig,
    graph::GraphConfig,
    memory::MemoryConfig,
    moe::MoEConfig,
    router::OutputRouterConfig,
    sequencer::{MixerKind, SequencerConfig},
    talker::TalkerHeadConfig,
    util::{seeded_normal, shape_text},
    video::VideoHeadConfig,
    vq::VectorQuantizerConfig,
};

/// One component's smoke result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmokeReport {
    /// Component name in snake case (`audio_vq_encoder`).
    pub name: String,
    /// Output shapes, `name_ok key=(dims), ...`.
    pub shapes: String,
    /// The component's audit.
    pub audit: AuditReport,
}

impl fmt::Display for SmokeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.shapes)?;
        write!(f, "{}", self.audit)
    }
}

fn report(name: &str, outputs: &[(&str, Vec<usize>)], audit: AuditReport) -> SmokeReport {
    let parts: Vec<String> = outputs
        .iter()
        .map(|(key, dims)| format!("{key}={}", shape_text(dims)))
        .collect();
    SmokeReport {
        name: name.to_string(),
        shapes: format!("{name}_ok {}", parts.join(", ")),
        audit,
    }
}

/// Width of the standalone mixer components in the smoke run (the default
/// `ARBModel` width).
pub const SMOKE_D_MODEL: usize = 128;

/// Builds every component with its default config, runs it on a fixed
/// input, and returns its output shapes and audit. Audit on an autodiff
/// backend to see whether float tensors would be trained; the ternary counts
/// are the same on any backend.
///
/// ```
/// use burn::backend::Flex;
/// use arbitor_models::smoke::smoke_reports;
///
/// let reports = smoke_reports::<Flex>(&Default::default());
/// assert_eq!(reports[0].shapes, "audio_vq_encoder_ok logits=(1, 4, 289), indices=(1, 4)");
/// for report in &reports {
///     println!("{report}");
///     assert!(report.audit.is_pure_ternary());
/// }
/// ```
pub fn smoke_reports<B: TernaryBackend>(device: &B::Device) -> Vec<SmokeReport> {
    let d = SMOKE_D_MODEL;
    let hidden = || seeded_normal::<B, 3>([2, 8, d], 1, device);
    let mut reports = Vec::new();

    let encoder = AudioVQEncoderConfig::new().init::<B>(device);
    let out = encoder.forward(seeded_normal::<B, 3>([1, 16, 16], 2, device));
    reports.push(report(
        "audio_vq_encoder",
        &[
            ("logits", out.logits.dims().to_vec()),
            ("indices", out.indices.dims().to_vec()),
        ],
        audit::<B, _>(&encoder),
    ));

    let video = VideoHeadConfig::new().init::<B>(device);
    let out = video.generate(seeded_normal::<B, 2>([1, 128], 3, device), 0);
    reports.push(report(
        "video_head",
        &[("latents", out.latents.dims().to_vec())],
        audit::<B, _>(&video),
    ));

    let talker = TalkerHeadConfig::new().init::<B>(device);
    let out = talker.forward(seeded_normal::<B, 3>([1, 4, 128], 4, device), 10);
    reports.push(report(
        "talker_head",
        &[("tokens", out.tokens.dims().to_vec())],
        audit::<B, _>(&talker),
    ));

    let router = OutputRouterConfig::new(d).init::<B>(device);
    let out = router.forward(hidden(), false);
    reports.push(report(
        "output_router",
        &[
            ("text_logits", out.text_logits.dims().to_vec()),
            ("gates", out.gates.dims().to_vec()),
            ("video_cond", out.video_cond.dims().to_vec()),
            ("talker_cond", out.talker_cond.dims().to_vec()),
        ],
        audit::<B, _>(&router),
    ));

    let vq = VectorQuantizerConfig::new(256, d).init::<B>(device);
    let out = vq.forward(hidden());
    reports.push(report(
        "vq",
        &[
            ("quantized", out.quantized.dims().to_vec()),
            ("indices", out.indices.dims().to_vec()),
        ],
        audit::<B, _>(&vq),
    ));

    let graph = GraphConfig::new(d).init::<B>(device);
    let out = graph.forward(hidden());
    reports.push(report(
        "graph",
        &[("hidden", out.dims().to_vec())],
        audit::<B, _>(&graph),
    ));

    let memory = MemoryConfig::new(d).init::<B>(device);
    let out = memory.forward(hidden());
    reports.push(report(
        "memory",
        &[("hidden", out.dims().to_vec())],
        audit::<B, _>(&memory),
    ));

    let moe = MoEConfig::new(d, 128).init::<B>(device);
    let out = moe.forward(hidden());
    reports.push(report(
        "moe",
        &[
            ("hidden", out.output.dims().to_vec()),
            ("experts", out.experts.dims().to_vec()),
        ],
        audit::<B, _>(&moe),
    ));

    for (name, kind) in [
        ("sequencer_attention", MixerKind::Attention),
        ("sequencer_recurrent", MixerKind::Recurrent),
    ] {
        let block = SequencerConfig::new(d, 256)
            .with_kind(kind)
            .init::<B>(device);
        let out = block.forward(hidden());
        reports.push(report(
            name,
            &[("hidden", out.dims().to_vec())],
            audit::<B, _>(&block),
        ));
    }

    let model = ARBModelConfig::new().init::<B>(device);
    let text = b"To be, or not to be";
    let ids: Vec<i64> = (0..16).map(|i| text[i % 8 + (i / 8) * 9] as i64).collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [2, 8]), device);
    let out = model.forward(ids, false);
    let (video, talker) = model
        .heads(&out, 0, 10, false)
        .unwrap_or_else(|err| panic!("ARBModel heads: {err}"));
    reports.push(report(
        "arb_model",
        &[
            ("logits", out.logits.dims().to_vec()),
            ("indices", out.indices.dims().to_vec()),
            ("latents", video.latents.dims().to_vec()),
            ("tokens", talker.tokens.dims().to_vec()),
        ],
        audit::<B, _>(&model),
    ));
    reports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::AD;

    #[test]
    fn every_component_reports_its_default_shapes_and_is_pure_ternary() {
        let reports = smoke_reports::<AD>(&Default::default());
        let shapes: Vec<&str> = reports.iter().map(|r| r.shapes.as_str()).collect();
        assert_eq!(
            shapes,
            [
                "audio_vq_encoder_ok logits=(1, 4, 289), indices=(1, 4)",
                "video_head_ok latents=(1, 16, 1, 32, 32)",
                "talker_head_ok tokens=(1, 10)",
                "output_router_ok text_logits=(2, 8, 297), gates=(2, 8, 3), video_cond=(2, 128), talker_cond=(2, 8, 128)",
                "vq_ok quantized=(2, 8, 128), indices=(2, 8)",
                "graph_ok hidden=(2, 8, 128)",
                "memory_ok hidden=(2, 8, 128)",
                "moe_ok hidden=(2, 8, 128), experts=(2, 8, 2)",
                "sequencer_attention_ok hidden=(2, 8, 128)",
                "sequencer_recurrent_ok hidden=(2, 8, 128)",
                "arb_model_ok logits=(2, 8, 297), indices=(2, 8), latents=(2, 16, 1, 32, 32), tokens=(2, 10)",
            ]
        );
        for report in &reports {
            println!("{report}");
            assert!(report.audit.is_pure_ternary(), "{report}");
            assert!(report.audit.logical_ternary_weights > 0, "{report}");
            let text = report.to_string();
            assert!(text.starts_with(&report.shapes));
            for key in [
                "trainable float params",
                "frozen float params",
                "float buffers",
            ] {
                let line = text.lines().find(|l| l.starts_with(key)).unwrap();
                assert!(line.ends_with(": 0"), "{line}");
            }
        }
    }
}
