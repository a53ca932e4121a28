//! `model.kind = "arb-multimodal"`: the [`ARBModel`] end to end with all its
//! heads, plus the audio VQ encoder that turns speech into the talker's
//! target codes.
//!
//! Every example has three parts:
//! - **text**: `seq` bytes of Tiny Shakespeare and their next bytes. With
//!   probability `arb.speech_fraction` the window starts at a line that is in
//!   the speech set (the talker learns to speak it), otherwise anywhere in the
//!   split's text;
//! - **audio**: the first `audio.frames` log-mel frames of an utterance (the
//!   one spoken in the window when there is one), which the [`AudioVqModel`]
//!   encodes, quantizes and reconstructs; its codes (without gradient) are
//!   the talker's targets: text position `s` of a spoken line of `L` bytes
//!   is aligned linearly with code `⌊(s + ½)/L · frames_u / stride²⌋` of its
//!   utterance (`frames_u` frames long);
//! - **video**: a moving-shapes scene to denoise ([`crate::video_task`]),
//!   conditioned on the router's video conditioning.
//!
//! The total loss is the sum of the head losses: text cross-entropy, core VQ
//! loss, 0.01 · MoE balance, video (denoise MSE plus ponder_weight · ponder),
//! audio (reconstruction plus VQ plus next_code_weight · next code) and the
//! talker cross-entropy over the spoken positions. Every part is logged per
//! step for both splits. Validation computes the same loss (soft router
//! gates).

use std::sync::Arc;

use arbitor_models::arb::{ARBModel, ARBModelConfig};
use burn::{
    module::Module,
    nn::loss::CrossEntropyLossConfig,
    tensor::{
        activation::log_softmax, backend::Backend, ElementConversion, Int, Tensor, TensorData,
    },
    train::{InferenceStep, TrainOutput, TrainStep},
};
use burn_ternary::{optim::TernaryOptimizerConfig, TernaryAutodiffBackend, TernaryBackend};
use rand::{rngs::SmallRng, Rng};

use crate::{
    audio_task::{self, AudioVqModel},
    config::{ConfigError, RunConfig},
    lm::guarded_step,
    loader::{run_loaders, BatchSource},
    metrics::{code_usage, histogram, TaskOutput},
    quickstart::unigram_entropy,
    run::{export, launch, RunError, Trained},
    speech::{crop, MelFeatures, MelSplit, Utterance},
    video_task::{self, ShapeScenes, VideoBatch},
};

/// The per-step values an `arb-multimodal` run logs besides `Loss`.
pub const HEADS: &[&str] = &[
    "TextLoss",
    "VqLoss",
    "BalanceLoss",
    "VideoLoss",
    "PonderCost",
    "ActSteps",
    "AudioReconLoss",
    "AudioVqLoss",
    "NextCodeLoss",
    "TalkerLoss",
    "CodePerplexity",
];

/// A batch of text, speech and video examples.
#[derive(Clone, Debug)]
pub struct MultimodalBatch<B: Backend> {
    /// Byte ids `[batch, seq]`.
    pub ids: Tensor<B, 2, Int>,
    /// Next bytes `[batch, seq]`.
    pub targets: Tensor<B, 2, Int>,
    /// Log-mel features `[batch, n_mels, frames]`.
    pub features: Tensor<B, 3>,
    /// For each text position, the index of its aligned audio code `[batch, seq]`.
    pub talker_code: Tensor<B, 2, Int>,
    /// 1 where the talker is trained (spoken positions), else 0, `[batch, seq]`.
    pub talker_mask: Tensor<B, 2>,
    /// The video part (its `cond` is not used: the router conditions the head).
    pub video: VideoBatch<B>,
}

/// Draws [`MultimodalBatch`]es from one split of the data.
pub struct MultimodalSource {
    text: Arc<Vec<u8>>,
    /// Where random text windows start: `window_range.0..window_range.1`.
    window_range: (usize, usize),
    utterances: Vec<Utterance>,
    features: Vec<MelFeatures>,
    frames: usize,
    downsample: usize,
    seq: usize,
    speech_fraction: f64,
    scenes: ShapeScenes,
}

impl MultimodalSource {
    /// One example's host values: ids, targets, features, talker codes and mask.
    #[allow(clippy::type_complexity)]
    fn example(&self, rng: &mut SmallRng) -> (Vec<i64>, Vec<i64>, Vec<f32>, Vec<i64>, Vec<f32>) {
        let u = rng.random_range(0..self.utterances.len());
        let utterance = &self.utterances[u];
        let features = &self.features[u];
        let spoken = rng.random::<f64>() < self.speech_fraction
            && utterance.text_offset + self.seq < self.text.len();
        let start = if spoken {
            utterance.text_offset
        } else {
            rng.random_range(self.window_range.0..self.window_range.1)
        };
        let window = &self.text[start..start + self.seq + 1];
        let ids = window[..self.seq].iter().map(|b| *b as i64).collect();
        let targets = window[1..].iter().map(|b| *b as i64).collect();
        let codes = self.frames / self.downsample;
        let mut talker_code = vec![0i64; self.seq];
        let mut mask = vec![0f32; self.seq];
        if spoken {
            let line = utterance.text.len().max(1);
            for s in 0..self.seq.min(line) {
                let frame = (s as f64 + 0.5) / line as f64 * features.frames as f64;
                let code = (frame / self.downsample as f64) as usize;
                if code < codes {
                    talker_code[s] = code as i64;
                    mask[s] = 1.0;
                }
            }
        }
        (
            ids,
            targets,
            crop(features, 0, self.frames),
            talker_code,
            mask,
        )
    }
}

impl<B: Backend> BatchSource<B> for MultimodalSource {
    type Batch = MultimodalBatch<B>;

    fn draw(&self, rng: &mut SmallRng, batch: usize, device: &B::Device) -> MultimodalBatch<B> {
        let (mut ids, mut targets, mut features, mut codes, mut mask) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..batch {
            let (i, t, f, c, m) = self.example(rng);
            ids.extend(i);
            targets.extend(t);
            features.extend(f);
            codes.extend(c);
            mask.extend(m);
        }
        let n_mels = self.features[0].n_mels;
        let seq = [batch, self.seq];
        MultimodalBatch {
            ids: Tensor::from_data(TensorData::new(ids, seq), device),
            targets: Tensor::from_data(TensorData::new(targets, seq), device),
            features: Tensor::from_data(
                TensorData::new(features, [batch, n_mels, self.frames]),
                device,
            ),
            talker_code: Tensor::from_data(TensorData::new(codes, seq), device),
            talker_mask: Tensor::from_data(TensorData::new(mask, seq), device),
            video: BatchSource::<B>::draw(&self.scenes, rng, batch, device),
        }
    }
}

/// The ARBModel with the audio VQ encoder and decoder that tokenize speech.
#[derive(Module, Debug)]
pub struct MultimodalModel<B: Backend> {
    /// The core and its heads (its video head is shaped by `[video]`).
    pub arb: ARBModel<B>,
    /// The audio tokenizer: encoder, codebook and reconstruction decoder.
    pub audio: AudioVqModel<B>,
    /// Weight of the video head's ponder cost.
    pub ponder_weight: f64,
}

/// Builds the model of an `arb-multimodal` config.
pub fn model<B: Backend>(
    config: &RunConfig,
    device: &B::Device,
) -> Result<MultimodalModel<B>, ConfigError> {
    let (a, video) = (config.arb_section(), config.video_section());
    let bad = |section: &str| {
        let section = section.to_string();
        move |e: burn_ternary::TernaryError| ConfigError {
            path: section.clone(),
            reason: e.to_string(),
        }
    };
    let mut arb = ARBModelConfig::new()
        .with_d_model(a.d_model)
        .with_n_layers(a.n_layers)
        .with_n_heads(a.n_heads)
        .with_mlp_hidden(a.mlp_hidden)
        .with_trigram_buckets(a.trigram_buckets)
        .with_vq_codes(a.vq_codes)
        .with_memory_slots(a.memory_slots)
        .with_memory_d_key(a.memory_d_key)
        .with_n_experts(a.n_experts)
        .with_top_k(a.top_k)
        .with_expert_hidden(a.expert_hidden)
        .with_talker_stride(a.talker_stride)
        .with_video_max_steps(video.max_steps)
        .try_init(device)
        .map_err(bad("[arb]"))?;
    // The video head as `[video]` shapes it, conditioned on the core's width.
    arb.video_head = video_task::head_config(&video, a.d_model)
        .try_init(device)
        .map_err(bad("[video]"))?;
    Ok(MultimodalModel {
        arb,
        audio: audio_task::model(&config.audio_section(), device)?,
        ponder_weight: video.ponder_weight,
    })
}

/// Masked mean cross-entropy of `logits: [batch, seq, vocab]` against
/// `targets: [batch, seq]` over the positions where `mask` is 1 (0 when
/// there are none), `[1]`.
pub fn masked_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    mask: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [batch, seq, _] = logits.dims();
    let picked = log_softmax(logits, 2)
        .gather(2, targets.unsqueeze_dim::<3>(2))
        .reshape([batch, seq]);
    let count = mask.clone().sum().clamp_min(1.0);
    (picked * mask).sum().neg() / count
}

impl<B: TernaryBackend> MultimodalModel<B> {
    /// The total loss of a batch and its named parts.
    pub fn output(&self, batch: MultimodalBatch<B>) -> TaskOutput<B> {
        let out = self.arb.forward(batch.ids, true);
        let [b, seq, vocab] = out.logits.dims();
        let text = CrossEntropyLossConfig::new()
            .init(&out.logits.device())
            .forward(
                out.logits.clone().reshape([b * seq, vocab]),
                batch.targets.reshape([b * seq]),
            );
        let video = video_task::video_loss(
            &self.arb.video_head,
            out.router.video_cond.clone(),
            batch.video.start,
            batch.video.target,
            self.ponder_weight,
            true,
        );
        let audio = self.audio.losses(batch.features);
        let talker_logits = self
            .arb
            .talker_head
            .forward(out.router.talker_cond.clone(), seq)
            .logits;
        let codes = audio.indices.clone().gather(1, batch.talker_code);
        let talker = masked_cross_entropy(talker_logits, codes, batch.talker_mask);
        let total = text.clone()
            + out.vq_loss.clone()
            + out.balance_loss.clone().mul_scalar(0.01)
            + video.total
            + audio.total
            + talker.clone();
        TaskOutput::new(
            total,
            vec![
                ("TextLoss", text),
                ("VqLoss", out.vq_loss),
                ("BalanceLoss", out.balance_loss),
                ("VideoLoss", video.denoise),
                ("PonderCost", video.ponder),
                ("ActSteps", video.act_steps),
                ("AudioReconLoss", audio.recon),
                ("AudioVqLoss", audio.vq),
                ("NextCodeLoss", audio.next_code),
                ("TalkerLoss", talker),
                ("CodePerplexity", audio.perplexity),
            ],
        )
    }
}

impl<B: TernaryAutodiffBackend> TrainStep for MultimodalModel<B> {
    type Input = MultimodalBatch<B>;
    type Output = TaskOutput<B>;

    fn step(&self, batch: MultimodalBatch<B>) -> TrainOutput<TaskOutput<B>> {
        let out = self.output(batch);
        guarded_step(self, out.loss.clone(), out)
    }
}

impl<B: TernaryBackend> InferenceStep for MultimodalModel<B> {
    type Input = MultimodalBatch<B>;
    type Output = TaskOutput<B>;

    fn step(&self, batch: MultimodalBatch<B>) -> TaskOutput<B> {
        self.output(batch)
    }
}

/// Trains an `arb-multimodal` run; measures the trained audio codebook and
/// the video head's ACT steps (inference mode) on the validation split.
pub(crate) fn fit<B: TernaryAutodiffBackend>(
    config: &RunConfig,
    text: Vec<u8>,
    split: usize,
    speech: &MelSplit,
    resume_epoch: Option<usize>,
    devices: &[B::Device],
) -> Result<Trained, RunError> {
    let device = devices[0].clone();
    let (a, audio, video) = (
        config.arb_section(),
        config.audio_section(),
        config.video_section(),
    );
    let model = model::<B>(config, &device)?;
    let text = Arc::new(text);
    let source = |range: (usize, usize), utterances: &[Utterance], features: &[MelFeatures]| {
        Arc::new(MultimodalSource {
            text: text.clone(),
            window_range: range,
            utterances: utterances.to_vec(),
            features: features.to_vec(),
            frames: audio.frames,
            downsample: audio.stride * audio.stride,
            seq: a.seq,
            speech_fraction: a.speech_fraction,
            scenes: ShapeScenes {
                shapes: video_task::shapes(&video),
                alpha_bar: video_task::alpha_bar(&model.arb.video_head),
            },
        })
    };
    let train_source = source(
        (0, split - a.seq - 1),
        &speech.train_utterances,
        &speech.train,
    );
    let valid_source = source(
        (split, text.len() - a.seq - 1),
        &speech.valid_utterances,
        &speech.valid,
    );
    let (train_loader, valid_loader) =
        run_loaders::<B, _, _>(config, train_source, valid_source, resume_epoch, &device);
    let optim = TernaryOptimizerConfig::new()
        .with_seed(config.run.seed)
        .init();
    let trained = launch(
        config,
        model,
        optim,
        train_loader,
        valid_loader.clone(),
        resume_epoch,
        devices,
        HEADS,
    )?;
    let audit = export(config, &trained)?;
    let mut measured = Vec::new();
    let down = audio.stride * audio.stride;
    for (name, features) in [("valid", &speech.valid), ("train", &speech.train)] {
        let codes = trained.audio.codes_of(features, down, 4096, &device);
        let (perplexity, used) = code_usage(&histogram(&codes, audio.codes));
        measured.push((format!("codebook_used_fraction_{name}"), used));
        measured.push((format!("codebook_perplexity_{name}"), perplexity));
    }
    // The video head in inference mode (hard router gates, early exit).
    let (mut steps, mut loops, mut n) = (0.0, 0.0, 0usize);
    for batch in valid_loader.epoch_batches(0) {
        let out = trained.arb.forward(batch.ids, false);
        let video = video_task::video_loss(
            &trained.arb.video_head,
            out.router.video_cond,
            batch.video.start,
            batch.video.target,
            video.ponder_weight,
            false,
        );
        steps += video.act_steps.into_scalar().elem::<f64>();
        loops += video.loop_steps as f64;
        n += 1;
    }
    measured.push(("act_steps_mean".into(), steps / n.max(1) as f64));
    measured.push(("inference_loop_steps_mean".into(), loops / n.max(1) as f64));
    measured.push(("max_steps".into(), video.max_steps as f64));
    Ok(Trained {
        audit,
        heads: HEADS,
        measured,
        items_per_example: 1,
        unigram_entropy: Some(unigram_entropy(&text[split..])),
    })
}
