//! `model.kind = "audio-vq"`: the [`AudioVQEncoder`] learns a ternary audio
//! codebook on log-mel features of synthesized speech.
//!
//! The encoder's quantized codes go through a ternary [`AudioDecoder`] back
//! to the features, so the codes must carry the audio. The loss is
//! `reconstruction MSE + VQ (codebook + β·commitment) + w · next-code
//! cross-entropy`, the last one training the encoder's vocabulary logits
//! (`out_proj`) to predict the code of the next frame from the current one.
//! Each part, and the batch's code perplexity, is logged per step; at the end
//! the codebook usage (fraction of codes used, perplexity) over the whole
//! training and validation utterances is measured and reported.

use std::sync::Arc;

use arbitor_models::audio::{AudioDecoder, AudioVQEncoder};
use burn::{
    module::Module,
    nn::loss::CrossEntropyLossConfig,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use burn_ternary::{optim::TernaryOptimizer, TernaryAutodiffBackend, TernaryBackend};
use rand::{rngs::SmallRng, Rng};

use crate::{
    config::{AudioSection, ConfigError, RunConfig, TrainSection},
    data::{BatchSource, SeededLoader},
    fit::{Guarded, Head, InnerModel, RunError, Task, TaskModel},
    metrics::{code_usage, histogram, TaskOutput},
    speech::{crop, MelFeatures, MelSplit, SpeechSet},
};

/// The per-step values an `audio-vq` run logs besides `Loss`.
pub const HEADS: &[Head] = &[
    Head::new("ReconLoss", "MSE of log-mel features"),
    Head::new("VqLoss", "codebook + β·commitment"),
    Head::new("NextCodeLoss", "nats/code"),
    Head::new("CodePerplexity", "codes"),
];

/// A batch of log-mel crops, `[batch, n_mels, frames]`.
#[derive(Clone, Debug)]
pub struct AudioBatch<B: Backend> {
    /// The features.
    pub features: Tensor<B, 3>,
}

/// Random crops of `frames` frames from a set of utterances' features.
pub struct SpeechCrops {
    features: Arc<Vec<MelFeatures>>,
    frames: usize,
}

impl SpeechCrops {
    /// Crops of `frames` frames from `features` (at least one utterance).
    pub fn new(features: Vec<MelFeatures>, frames: usize) -> Self {
        Self {
            features: Arc::new(features),
            frames,
        }
    }

    /// One random crop, `[n_mels · frames]`, and the index of its utterance.
    pub fn sample(&self, rng: &mut SmallRng) -> (Vec<f32>, usize) {
        let u = rng.random_range(0..self.features.len());
        let f = &self.features[u];
        let start = rng.random_range(0..=f.frames.saturating_sub(self.frames));
        (crop(f, start, self.frames), u)
    }
}

impl<B: Backend> BatchSource<B> for SpeechCrops {
    type Batch = AudioBatch<B>;

    fn draw(
        &self,
        rng: &mut SmallRng,
        _index: usize,
        batch: usize,
        device: &B::Device,
    ) -> AudioBatch<B> {
        let n_mels = self.features[0].n_mels;
        let mut values = Vec::with_capacity(batch * n_mels * self.frames);
        for _ in 0..batch {
            values.extend(self.sample(rng).0);
        }
        AudioBatch {
            features: Tensor::from_data(
                TensorData::new(values, [batch, n_mels, self.frames]),
                device,
            ),
        }
    }
}

/// The audio VQ encoder with its reconstruction decoder.
#[derive(Module, Debug)]
pub struct AudioVqModel<B: Backend> {
    /// The encoder (convolutions, VQ codebook, vocabulary logits).
    pub encoder: AudioVQEncoder<B>,
    /// The decoder from quantized codes back to features.
    pub decoder: AudioDecoder<B>,
    /// Weight of the next-code cross-entropy.
    pub next_code_weight: f64,
}

/// The parts of the audio loss, each `[1]`.
#[derive(Clone, Debug)]
pub struct AudioLoss<B: Backend> {
    /// `recon + vq + next_code_weight · next_code`.
    pub total: Tensor<B, 1>,
    /// Mean squared reconstruction error of the features.
    pub recon: Tensor<B, 1>,
    /// VQ codebook + commitment loss.
    pub vq: Tensor<B, 1>,
    /// Next-code cross-entropy of the vocabulary logits (nats).
    pub next_code: Tensor<B, 1>,
    /// Perplexity of the batch's codes (no gradient).
    pub perplexity: Tensor<B, 1>,
    /// The code of every encoder frame, `[batch, frames / stride²]`.
    pub indices: Tensor<B, 2, Int>,
}

/// Builds the model of an `[audio]` section.
pub fn model<B: Backend>(
    audio: &AudioSection,
    device: &B::Device,
) -> Result<AudioVqModel<B>, ConfigError> {
    let bad = |e: burn_ternary::TernaryError| ConfigError {
        path: "[audio]".into(),
        reason: e.to_string(),
    };
    Ok(AudioVqModel {
        encoder: audio.encoder.try_init(device).map_err(bad)?,
        decoder: audio.decoder().try_init(device).map_err(bad)?,
        next_code_weight: audio.keys.next_code_weight,
    })
}

/// Perplexity `exp(H)` of the codes in `indices` over `n_codes` codes,
/// computed on the device, `[1]`.
pub fn batch_perplexity<B: Backend>(indices: Tensor<B, 2, Int>, n_codes: usize) -> Tensor<B, 1> {
    let n = indices.shape().num_elements();
    let counts = indices
        .reshape([n])
        .one_hot::<2>(n_codes)
        .float()
        .sum_dim(0)
        .reshape([n_codes]);
    let p = counts / n.max(1) as f64;
    let entropy = (p.clone() * p.add_scalar(1e-12).log()).sum().neg();
    entropy.exp()
}

impl<B: TernaryBackend> AudioVqModel<B> {
    /// Codebook size.
    pub fn n_codes(&self) -> usize {
        self.encoder.vq.codebook.dims()[0]
    }

    /// The audio loss of `features: [batch, n_mels, frames]` (`frames` a
    /// multiple of the encoder's downsampling, at least two codes long).
    pub fn losses(&self, features: Tensor<B, 3>) -> AudioLoss<B> {
        let out = self.encoder.forward(features.clone());
        let recon = self.decoder.forward(out.quantized);
        let recon = (recon - features).powf_scalar(2.0).mean();
        let [batch, codes, vocab] = out.logits.dims();
        let next_code = if codes > 1 {
            let logits = out
                .logits
                .narrow(1, 0, codes - 1)
                .reshape([batch * (codes - 1), vocab]);
            let targets = out
                .indices
                .clone()
                .narrow(1, 1, codes - 1)
                .reshape([batch * (codes - 1)]);
            CrossEntropyLossConfig::new()
                .init(&logits.device())
                .forward(logits, targets)
        } else {
            Tensor::zeros([1], &out.indices.device())
        };
        let total = recon.clone()
            + out.vq_loss.clone()
            + next_code.clone().mul_scalar(self.next_code_weight);
        AudioLoss {
            total,
            recon,
            vq: out.vq_loss,
            next_code,
            perplexity: batch_perplexity(out.indices.clone(), self.n_codes()),
            indices: out.indices,
        }
    }

    /// The codes of whole utterances (each padded to a multiple of
    /// `downsample` frames, in chunks of at most `chunk` frames).
    pub fn codes_of(
        &self,
        features: &[MelFeatures],
        downsample: usize,
        chunk: usize,
        device: &B::Device,
    ) -> Vec<i64> {
        let mut codes = Vec::new();
        for f in features {
            let mut start = 0;
            while start < f.frames {
                let len = (f.frames - start).min(chunk).div_ceil(downsample) * downsample;
                let values = crop(f, start, len);
                let x =
                    Tensor::<B, 3>::from_data(TensorData::new(values, [1, f.n_mels, len]), device);
                let indices = self.encoder.forward(x).indices;
                codes.extend(
                    indices
                        .into_data()
                        .convert::<i64>()
                        .to_vec::<i64>()
                        .unwrap_or_default(),
                );
                start += chunk;
            }
        }
        codes
    }
}

impl<B: TernaryBackend> TaskModel<B> for AudioVqModel<B> {
    type Batch = AudioBatch<B>;
    type Output = TaskOutput<B>;

    fn loss_and_output(
        &self,
        batch: AudioBatch<B>,
        _training: bool,
    ) -> (Tensor<B, 1>, TaskOutput<B>) {
        let l = self.losses(batch.features);
        TaskOutput::new(
            l.total,
            vec![
                ("ReconLoss", l.recon),
                ("VqLoss", l.vq),
                ("NextCodeLoss", l.next_code),
                ("CodePerplexity", l.perplexity),
            ],
        )
        .with_loss()
    }
}

/// Codebook usage of `model` over the utterances of both splits: the
/// fraction of codes used and the perplexity, per split, and the codebook size.
pub fn codebook_usage<B: TernaryBackend>(
    model: &AudioVqModel<B>,
    audio: &AudioSection,
    speech: &MelSplit,
    device: &B::Device,
) -> Vec<(String, f64)> {
    let mut measured = Vec::new();
    for (split, features) in [("valid", &speech.valid), ("train", &speech.train)] {
        let codes = model.codes_of(features, audio.downsample(), 4096, device);
        let (perplexity, used) = code_usage(&histogram(&codes, audio.encoder.n_codes));
        measured.push((format!("codebook_used_fraction_{split}"), used));
        measured.push((format!("codebook_perplexity_{split}"), perplexity));
    }
    measured
}

/// Reads the speech set of `data.speech` and computes its features.
pub fn load_speech(config: &RunConfig) -> Result<MelSplit, RunError> {
    let dir = config.data.speech.clone().unwrap_or_default();
    let set = SpeechSet::load(&dir)?;
    Ok(MelSplit::new(
        &set,
        config.data.val_fraction,
        config.audio()?.encoder.in_channels,
    ))
}

/// `audio-vq`: the audio VQ encoder and its decoder on speech features.
pub struct AudioTask {
    /// `[audio]`.
    pub audio: AudioSection,
    /// The speech features.
    pub speech: MelSplit,
}

impl AudioTask {
    /// The task of an `audio-vq` config, its speech loaded.
    pub fn load(config: &RunConfig) -> Result<Self, RunError> {
        Ok(Self {
            audio: config.audio()?.clone(),
            speech: load_speech(config)?,
        })
    }
}

impl<B: TernaryAutodiffBackend> Task<B> for AudioTask {
    type Model = AudioVqModel<B>;
    type Optim = TernaryOptimizer<Guarded<B, AudioVqModel<B>>, B>;
    type Train = SpeechCrops;
    type Valid = SpeechCrops;

    fn heads(&self) -> &'static [Head] {
        HEADS
    }

    fn loss_unit(&self) -> &'static str {
        "sum of the parts"
    }

    fn model(&self, device: &B::Device) -> Result<AudioVqModel<B>, ConfigError> {
        model(&self.audio, device)
    }

    fn optimizer(&self, train: &TrainSection, seed: u64) -> Self::Optim {
        train.ternary_optimizer(seed).init()
    }

    fn sources(&self, _: &AudioVqModel<B>) -> (Arc<SpeechCrops>, Arc<SpeechCrops>) {
        let frames = self.audio.keys.frames;
        (
            Arc::new(SpeechCrops::new(self.speech.train.clone(), frames)),
            Arc::new(SpeechCrops::new(self.speech.valid.clone(), frames)),
        )
    }

    /// The codebook usage of the trained encoder over every training and
    /// validation utterance.
    fn measure(
        &self,
        trained: &InnerModel<B, Self>,
        _valid: &SeededLoader<B::InnerBackend, SpeechCrops>,
        device: &B::Device,
    ) -> Vec<(String, f64)> {
        let mut measured = codebook_usage(trained, &self.audio, &self.speech, device);
        measured.push(("codebook_size".into(), self.audio.encoder.n_codes as f64));
        measured
    }
}
