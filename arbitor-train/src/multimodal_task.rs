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

use arbitor_models::arb::ARBModel;
use burn::{
    module::Module,
    nn::loss::CrossEntropyLossConfig,
    tensor::{
        activation::log_softmax, backend::Backend, ElementConversion, Int, Tensor, TensorData,
    },
};
use burn_ternary::{optim::TernaryOptimizer, TernaryAutodiffBackend, TernaryBackend};
use rand::{rngs::SmallRng, Rng};

use crate::{
    audio_task::{self, AudioVqModel},
    config::{ArbSection, AudioSection, ConfigError, RunConfig, TrainSection, VideoSection},
    data::{BatchSource, SeededLoader},
    fit::{Guarded, Head, InnerModel, RunError, Task, TaskModel},
    lm::TextData,
    metrics::TaskOutput,
    speech::{crop, MelFeatures, MelSplit, Utterance},
    video_task::{self, ShapeScenes, VideoBatch},
};

/// The per-step values an `arb-multimodal` run logs besides `Loss`.
pub const HEADS: &[Head] = &[
    Head::new("TextLoss", "nats/byte"),
    Head::new("VqLoss", "codebook + β·commitment"),
    Head::new("BalanceLoss", "MoE balance"),
    Head::new("VideoLoss", "MSE of latents"),
    Head::new("PonderCost", "steps"),
    Head::new("ActSteps", "steps"),
    Head::new("AudioReconLoss", "MSE of log-mel features"),
    Head::new("AudioVqLoss", "codebook + β·commitment"),
    Head::new("NextCodeLoss", "nats/code"),
    Head::new("TalkerLoss", "nats/code"),
    Head::new("CodePerplexity", "codes"),
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
        // A spoken line's window must lie in this source's part of the text,
        // so no validation window starts inside the training text.
        let spoken = rng.random::<f64>() < self.speech_fraction
            && (self.window_range.0..=self.window_range.1).contains(&utterance.text_offset);
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

    fn draw(
        &self,
        rng: &mut SmallRng,
        _index: usize,
        batch: usize,
        device: &B::Device,
    ) -> MultimodalBatch<B> {
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
            video: BatchSource::<B>::draw(&self.scenes, rng, 0, batch, device),
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

/// Builds the model of an `arb-multimodal` config's sections.
pub fn model<B: Backend>(
    arb: &ArbSection,
    audio: &AudioSection,
    video: &VideoSection,
    device: &B::Device,
) -> Result<MultimodalModel<B>, ConfigError> {
    Ok(MultimodalModel {
        arb: arb_core(arb, video, device)?,
        audio: audio_task::model(audio, device)?,
        ponder_weight: video.keys.ponder_weight,
    })
}

/// The ARBModel of `[arb]` with the video head `[video]` shapes,
/// conditioned on the core's width.
pub fn arb_core<B: Backend>(
    arb: &ArbSection,
    video: &VideoSection,
    device: &B::Device,
) -> Result<ARBModel<B>, ConfigError> {
    let bad = |section: &str| {
        let section = section.to_string();
        move |e: burn_ternary::TernaryError| ConfigError {
            path: section.clone(),
            reason: e.to_string(),
        }
    };
    let mut core = arb
        .model
        .clone()
        .with_video_max_steps(video.head.max_steps)
        .try_init(device)
        .map_err(bad("[arb]"))?;
    core.video_head = video_task::head_config(video, arb.model.d_model)
        .try_init(device)
        .map_err(bad("[video]"))?;
    Ok(core)
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

impl<B: TernaryBackend> TaskModel<B> for MultimodalModel<B> {
    type Batch = MultimodalBatch<B>;
    type Output = TaskOutput<B>;

    /// The total loss of a batch and its named parts (validation computes
    /// the same loss, with soft router gates).
    fn loss_and_output(
        &self,
        batch: MultimodalBatch<B>,
        _training: bool,
    ) -> (Tensor<B, 1>, TaskOutput<B>) {
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
        .with_loss()
    }
}

/// `arb-multimodal`: the ARBModel with all its heads and the audio
/// tokenizer, on text, speech and moving shapes.
pub struct MultimodalTask {
    /// `[arb]`.
    pub arb: ArbSection,
    /// `[audio]`.
    pub audio: AudioSection,
    /// `[video]`.
    pub video: VideoSection,
    /// The text.
    pub text: TextData,
    /// The speech features.
    pub speech: MelSplit,
}

impl MultimodalTask {
    /// The task of an `arb-multimodal` config, its text and speech loaded.
    pub fn load(config: &RunConfig) -> Result<Self, RunError> {
        let arb = config.arb()?.clone();
        Ok(Self {
            text: TextData::load(config, arb.keys.seq)?,
            speech: audio_task::load_speech(config)?,
            audio: config.audio()?.clone(),
            video: config.video()?.clone(),
            arb,
        })
    }

    fn source(
        &self,
        range: (usize, usize),
        utterances: &[Utterance],
        features: &[MelFeatures],
        alpha_bar: f64,
    ) -> Arc<MultimodalSource> {
        Arc::new(MultimodalSource {
            text: self.text.text.clone(),
            window_range: range,
            utterances: utterances.to_vec(),
            features: features.to_vec(),
            frames: self.audio.keys.frames,
            downsample: self.audio.downsample(),
            seq: self.arb.keys.seq,
            speech_fraction: self.arb.keys.speech_fraction,
            scenes: ShapeScenes {
                shapes: video_task::shapes(&self.video),
                alpha_bar,
            },
        })
    }
}

impl<B: TernaryAutodiffBackend> Task<B> for MultimodalTask {
    type Model = MultimodalModel<B>;
    type Optim = TernaryOptimizer<Guarded<B, MultimodalModel<B>>, B>;
    type Train = MultimodalSource;
    type Valid = MultimodalSource;

    fn heads(&self) -> &'static [Head] {
        HEADS
    }

    fn loss_unit(&self) -> &'static str {
        "sum of the heads"
    }

    fn model(&self, device: &B::Device) -> Result<MultimodalModel<B>, ConfigError> {
        model(&self.arb, &self.audio, &self.video, device)
    }

    fn optimizer(&self, train: &TrainSection, seed: u64) -> Self::Optim {
        train.ternary_optimizer(seed).init()
    }

    fn tokens_per_example(&self) -> usize {
        self.arb.keys.seq
    }

    fn sources(
        &self,
        model: &MultimodalModel<B>,
    ) -> (Arc<MultimodalSource>, Arc<MultimodalSource>) {
        let (seq, split, len) = (self.arb.keys.seq, self.text.split, self.text.text.len());
        let alpha_bar = video_task::alpha_bar(&model.arb.video_head);
        (
            self.source(
                (0, split - seq - 1),
                &self.speech.train_utterances,
                &self.speech.train,
                alpha_bar,
            ),
            self.source(
                (split, len - seq - 1),
                &self.speech.valid_utterances,
                &self.speech.valid,
                alpha_bar,
            ),
        )
    }

    /// The trained audio codebook over every utterance, and the video head in
    /// inference mode (hard router gates, early exit) on the validation
    /// batches: its ACT steps, its denoising MSE and that of returning the
    /// noisy start unchanged.
    fn measure(
        &self,
        trained: &InnerModel<B, Self>,
        valid: &SeededLoader<B::InnerBackend, MultimodalSource>,
        device: &B::Device,
    ) -> Vec<(String, f64)> {
        let mut measured =
            audio_task::codebook_usage(&trained.audio, &self.audio, &self.speech, device);
        let alpha_bar = video_task::alpha_bar(&trained.arb.video_head);
        let (mut steps, mut loops, mut mse, mut identity, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
        for batch in valid.epoch_batches(0) {
            let out = trained.arb.forward(batch.ids, false);
            identity += (batch.video.start.clone().div_scalar(alpha_bar.sqrt())
                - batch.video.target.clone())
            .powf_scalar(2.0)
            .mean()
            .into_scalar()
            .elem::<f64>();
            let video = video_task::video_loss(
                &trained.arb.video_head,
                out.router.video_cond,
                batch.video.start,
                batch.video.target,
                self.video.keys.ponder_weight,
                false,
            );
            steps += video.act_steps.into_scalar().elem::<f64>();
            mse += video.denoise.into_scalar().elem::<f64>();
            loops += video.loop_steps as f64;
            n += 1;
        }
        let n = n.max(1) as f64;
        measured.push(("act_steps_mean".into(), steps / n));
        measured.push(("inference_loop_steps_mean".into(), loops / n));
        measured.push(("max_steps".into(), self.video.head.max_steps as f64));
        measured.push(("valid_denoise_mse".into(), mse / n));
        measured.push(("baseline_identity_mse".into(), identity / n));
        measured
    }

    fn unigram_entropy(&self) -> Option<f64> {
        Some(self.text.unigram_entropy())
    }
}
