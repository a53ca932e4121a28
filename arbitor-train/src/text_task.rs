//! `model.kind = "arb-text"` and `"dense-arb-text"`: the [`ARBModel`] trained
//! on text alone, ternary (update-memory optimizer) or as its dense twin
//! (float linears and embeddings, AdamW), with the validation loss of a full
//! deterministic pass over the validation split.
//!
//! Training windows of `seq + 1` bytes start anywhere in
//! `[0, split − seq − 1]`, so none reaches the validation text. Validation
//! walks the split in order: windows start at `split + k·seq`, and a last
//! window ending at the text's end scores only the bytes the others left out,
//! so every byte after the split's first is predicted exactly once.

use std::{path::PathBuf, sync::Arc};

use arbitor_models::{arb::ARBModel, generation::Sampler, layers::LayerKind};
use burn::{
    module::Module,
    optim::{adaptor::OptimizerAdaptor, AdamW, AdamWConfig},
    tensor::{backend::Backend, ElementConversion, Int, Tensor, TensorData},
};
use burn_ternary::{
    audit::AuditReport, optim::TernaryOptimizer, TernaryAutodiffBackend, TernaryBackend,
};
use rand::{rngs::SmallRng, Rng};

use crate::{
    config::{ArbSection, ConfigError, RunConfig, TrainSection, VideoSection},
    data::{BatchSource, SeededLoader},
    fit::{Guarded, Head, InnerModel, RunError, Task, TaskModel},
    lm::TextData,
    metrics::TaskOutput,
    multimodal_task::arb_core,
};

/// The per-step values an `arb-text` run logs besides `Loss`.
pub const HEADS: &[Head] = &[
    Head::new("TextLoss", "nats/byte"),
    Head::new("VqLoss", "codebook + β·commitment"),
    Head::new("BalanceLoss", "MoE balance"),
];

/// A batch of text windows: ids, next-byte targets and which positions count.
#[derive(Clone, Debug)]
pub struct TextBatch<B: Backend> {
    /// Byte ids `[batch, seq]`.
    pub ids: Tensor<B, 2, Int>,
    /// The next byte of each position `[batch, seq]`.
    pub targets: Tensor<B, 2, Int>,
    /// 1 where a position is scored, else 0 `[batch, seq]`.
    pub weights: Tensor<B, 2>,
}

/// A token type of a text: bytes, or a tokenizer's ids.
pub trait Token: Copy + Into<i64> + Send + Sync + 'static {}
impl Token for u8 {}
impl Token for u32 {}

fn text_batch<B: Backend, T: Token>(
    text: &[T],
    starts: &[(usize, usize)],
    seq: usize,
    device: &B::Device,
) -> TextBatch<B> {
    let batch = starts.len();
    let (mut ids, mut targets, mut weights) = (
        Vec::with_capacity(batch * seq),
        Vec::with_capacity(batch * seq),
        Vec::with_capacity(batch * seq),
    );
    for &(start, first_scored) in starts {
        let window = &text[start..start + seq + 1];
        ids.extend(window[..seq].iter().map(|t| (*t).into()));
        targets.extend(window[1..].iter().map(|t| (*t).into()));
        weights.extend((0..seq).map(|p| if p >= first_scored { 1f32 } else { 0f32 }));
    }
    TextBatch {
        ids: Tensor::from_data(TensorData::new(ids, [batch, seq]), device),
        targets: Tensor::from_data(TensorData::new(targets, [batch, seq]), device),
        weights: Tensor::from_data(TensorData::new(weights, [batch, seq]), device),
    }
}

/// Random training windows of `seq + 1` tokens (bytes by default) that end
/// at or before `end`.
pub struct TrainWindows<T = u8> {
    text: Arc<Vec<T>>,
    end: usize,
    seq: usize,
}

impl<T> TrainWindows<T> {
    /// Windows of `text[..end]`, which must hold more than `seq + 1` tokens.
    pub fn new(text: Arc<Vec<T>>, end: usize, seq: usize) -> Self {
        assert!(
            end > seq + 1 && end <= text.len(),
            "the text must be longer than a window"
        );
        Self { text, end, seq }
    }
}

impl<B: Backend, T: Token> BatchSource<B> for TrainWindows<T> {
    type Batch = TextBatch<B>;

    fn draw(&self, rng: &mut SmallRng, _: usize, batch: usize, device: &B::Device) -> TextBatch<B> {
        let starts: Vec<(usize, usize)> = (0..batch)
            .map(|_| (rng.random_range(0..=self.end - self.seq - 1), 0))
            .collect();
        text_batch(&self.text, &starts, self.seq, device)
    }
}

/// The validation split `[split, len)` in order (see the module doc): batch
/// `i` holds windows `i·batch ..`; rows past the last window repeat it with
/// no position scored, so every batch has the same shape.
pub struct SplitPass<T = u8> {
    text: Arc<Vec<T>>,
    /// `(start, first scored position)` of every window.
    windows: Vec<(usize, usize)>,
    seq: usize,
}

impl<T> SplitPass<T> {
    /// The pass over `text[split..]` in windows of `seq` predicted tokens.
    pub fn new(text: Arc<Vec<T>>, split: usize, seq: usize) -> Self {
        let len = text.len();
        let full = (len - split - 1) / seq;
        let mut windows: Vec<(usize, usize)> = (0..full).map(|k| (split + k * seq, 0)).collect();
        let covered = split + full * seq + 1; // first byte no window predicts yet
        if covered < len {
            let start = len - seq - 1;
            windows.push((start, covered - start - 1));
        }
        Self { text, windows, seq }
    }

    /// Batches of `batch` windows a pass takes.
    pub fn batches(&self, batch: usize) -> usize {
        self.windows.len().div_ceil(batch)
    }

    /// Tokens (bytes) the pass predicts (each once).
    pub fn scored_bytes(&self) -> usize {
        self.windows.iter().map(|(_, first)| self.seq - first).sum()
    }
}

impl<B: Backend, T: Token> BatchSource<B> for SplitPass<T> {
    type Batch = TextBatch<B>;

    fn draw(
        &self,
        _: &mut SmallRng,
        index: usize,
        batch: usize,
        device: &B::Device,
    ) -> TextBatch<B> {
        let last = *self.windows.last().expect("a split holds one window");
        let starts: Vec<(usize, usize)> = (0..batch)
            .map(|r| {
                self.windows
                    .get(index * batch + r)
                    .copied()
                    .unwrap_or((last.0, self.seq))
            })
            .collect();
        text_batch(&self.text, &starts, self.seq, device)
    }
}

impl<B: TernaryBackend> TaskModel<B> for ARBModel<B> {
    type Batch = TextBatch<B>;
    type Output = TaskOutput<B>;

    fn loss_and_output(
        &self,
        batch: TextBatch<B>,
        _training: bool,
    ) -> (Tensor<B, 1>, TaskOutput<B>) {
        let loss = self
            .text_loss(batch.ids, batch.targets, Some(batch.weights))
            .unwrap_or_else(|e| panic!("arb-text batch: {e}"));
        TaskOutput::new(
            loss.total,
            vec![
                ("TextLoss", loss.text),
                ("VqLoss", loss.vq),
                ("BalanceLoss", loss.balance),
            ],
        )
        .with_loss()
    }
}

/// `arb-text` (ternary) or `dense-arb-text`: the ARBModel on a text.
pub struct ArbTextTask {
    /// `[arb]` (its `layers` set by the kind).
    pub arb: ArbSection,
    /// `[video]`: the shape of the (untrained) video head.
    pub video: VideoSection,
    /// The text.
    pub text: TextData,
    /// The run directory (the sample is written there).
    pub dir: PathBuf,
}

impl ArbTextTask {
    /// The task of an `arb-text` or `dense-arb-text` config, its text loaded.
    pub fn load(config: &RunConfig) -> Result<Self, RunError> {
        let arb = config.arb()?.clone();
        Ok(Self {
            text: TextData::load(config, arb.keys.seq)?,
            video: config.video()?.clone(),
            arb,
            dir: config.run.dir.clone(),
        })
    }

    fn seq(&self) -> usize {
        self.arb.keys.seq
    }

    /// The validation pass of this task.
    pub fn split_pass(&self) -> SplitPass {
        SplitPass::new(self.text.text.clone(), self.text.split, self.seq())
    }

    fn sources(&self) -> (Arc<TrainWindows>, Arc<SplitPass>) {
        (
            Arc::new(TrainWindows::new(
                self.text.text.clone(),
                self.text.split,
                self.seq(),
            )),
            Arc::new(self.split_pass()),
        )
    }

    /// The exact full-pass loss (nats/byte over every scored byte) and a
    /// greedy sample, written to `sample.txt` in the run directory.
    fn measure<B: TernaryBackend>(
        &self,
        trained: &ARBModel<B>,
        valid: &SeededLoader<B, SplitPass>,
    ) -> Vec<(String, f64)> {
        let (mut nats, mut bytes) = (0.0, 0.0);
        for batch in valid.epoch_batches(0) {
            let scored: f64 = batch.weights.clone().sum().into_scalar().elem();
            let loss = trained
                .text_loss(batch.ids, batch.targets, Some(batch.weights))
                .unwrap_or_else(|e| panic!("arb-text validation: {e}"));
            let text: f64 = loss.text.into_scalar().elem();
            nats += text * scored;
            bytes += scored;
        }
        let sampler = Sampler::new(0.8).with_seed(0);
        let sample = sample(trained, b"ROMEO:\n", 200, self.seq(), &sampler);
        let _ = std::fs::write(self.dir.join("sample.txt"), &sample);
        println!(
            "sample (temperature 0.8, seed 0, from \"ROMEO:\\n\"):\n{}",
            String::from_utf8_lossy(&sample)
        );
        vec![
            ("valid_full_pass_nats_per_byte".into(), nats / bytes),
            ("valid_full_pass_bytes".into(), bytes),
        ]
    }
}

/// `prompt` continued by `new` bytes, each drawn by `sampler` from the
/// model's byte distribution predicted from the last `seq` bytes. The window
/// always holds `seq` bytes (newlines before the prompt while it is shorter),
/// so every step runs the same shape and a GPU compiles its kernels once.
pub fn sample<B: TernaryBackend>(
    model: &ARBModel<B>,
    prompt: &[u8],
    new: usize,
    seq: usize,
    sampler: &Sampler,
) -> Vec<u8> {
    let device = model.byte_embed.devices()[0].clone();
    let mut rng = <SmallRng as rand::SeedableRng>::seed_from_u64(sampler.seed);
    let mut window: Vec<u8> = std::iter::repeat_n(b'\n', seq.saturating_sub(prompt.len()))
        .chain(prompt[prompt.len().saturating_sub(seq)..].iter().copied())
        .collect();
    let mut out = prompt.to_vec();
    for _ in 0..new {
        let ids: Vec<i64> = window.iter().map(|b| *b as i64).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, seq]), &device);
        // Only byte ids (0..256) are text.
        let logits = model
            .forward(ids, false)
            .logits
            .narrow(1, seq - 1, 1)
            .narrow(2, 0, 256)
            .reshape([1, 256]);
        let next = sampler.pick(logits, &mut rng)[0];
        out.push(next);
        window.remove(0);
        window.push(next);
    }
    out
}

macro_rules! arb_text_task {
    ($task:ty, $optim:ty, $init:expr) => {
        impl<B: TernaryAutodiffBackend> Task<B> for $task {
            type Model = ARBModel<B>;
            type Optim = $optim;
            type Train = TrainWindows;
            type Valid = SplitPass;

            fn heads(&self) -> &'static [Head] {
                HEADS
            }

            fn loss_unit(&self) -> &'static str {
                "text + VQ + 0.01·balance"
            }

            fn model(&self, device: &B::Device) -> Result<ARBModel<B>, ConfigError> {
                arb_core(&self.0.arb, &self.0.video, device)
            }

            fn optimizer(&self, train: &TrainSection, seed: u64) -> Self::Optim {
                ($init)(train, seed)
            }

            fn sources(&self, _: &ARBModel<B>) -> (Arc<TrainWindows>, Arc<SplitPass>) {
                self.0.sources()
            }

            fn valid_batches(&self, config: &RunConfig) -> usize {
                self.0.split_pass().batches(config.train.batch)
            }

            fn tokens_per_example(&self) -> usize {
                self.0.seq()
            }

            fn audit(&self, trained: &InnerModel<B, Self>) -> AuditReport {
                audit_of(trained, self.0.arb.model.layers)
            }

            fn measure(
                &self,
                trained: &InnerModel<B, Self>,
                valid: &SeededLoader<B::InnerBackend, SplitPass>,
                _device: &B::Device,
            ) -> Vec<(String, f64)> {
                self.0.measure(trained, valid)
            }

            fn unigram_entropy(&self) -> Option<f64> {
                Some(self.0.text.unigram_entropy())
            }
        }
    };
}

/// `arb-text`: the ternary ARBModel trained by the [`TernaryOptimizer`].
pub struct TernaryArbText(pub ArbTextTask);

/// `dense-arb-text`: the dense twin trained by AdamW.
pub struct DenseArbText(pub ArbTextTask);

arb_text_task!(
    TernaryArbText,
    TernaryOptimizer<Guarded<B, ARBModel<B>>, B>,
    |train: &TrainSection, seed| train.ternary_optimizer(seed).init()
);
arb_text_task!(
    DenseArbText,
    OptimizerAdaptor<AdamW, Guarded<B, ARBModel<B>>, B>,
    |_: &TrainSection, _| AdamWConfig::new().with_weight_decay(0.1).init()
);

/// The audit of a trained ARBModel; the inner (non-autodiff) model cannot
/// show trainability, and the dense twin trains every float parameter.
fn audit_of<B: Backend>(trained: &ARBModel<B>, layers: LayerKind) -> AuditReport {
    let mut audit = burn_ternary::audit::audit(trained);
    if layers == LayerKind::Dense {
        audit.trainable_float_params = audit.frozen_float_params;
        audit.frozen_float_params = 0;
    }
    audit
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn the_split_pass_scores_every_validation_byte_once() {
        for (len, split, seq) in [(1000, 900, 16), (1000, 901, 16), (117, 50, 8), (100, 90, 9)] {
            let text: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let pass = SplitPass::new(Arc::new(text), split, seq);
            let mut scored = vec![0u32; len];
            for &(start, first) in &pass.windows {
                assert!(
                    start >= split,
                    "window at {start} starts before the split {split}"
                );
                for p in first..seq {
                    scored[start + p + 1] += 1;
                }
            }
            assert!(scored[..=split].iter().all(|c| *c == 0));
            assert!(
                scored[split + 1..].iter().all(|c| *c == 1),
                "{len} {split} {seq}"
            );
            assert_eq!(pass.scored_bytes(), len - split - 1);
        }
    }

    #[test]
    fn split_pass_batches_are_in_order_and_padded_unscored() {
        let text: Vec<u8> = (0..200u32).map(|i| (i % 200) as u8).collect();
        let pass = SplitPass::new(Arc::new(text), 100, 10);
        assert_eq!(pass.batches(4), pass.windows.len().div_ceil(4));
        let mut rng = rand::SeedableRng::seed_from_u64(0);
        let device = Default::default();
        let last = pass.batches(4) - 1;
        let b: TextBatch<Flex> = pass.draw(&mut rng, last, 4, &device);
        let w: Vec<f32> = b.weights.into_data().to_vec().unwrap();
        let scored: f32 = w.iter().sum();
        let expected: usize = pass.windows[last * 4..].iter().map(|(_, f)| 10 - f).sum();
        assert_eq!(scored as usize, expected);
        let first: TextBatch<Flex> = pass.draw(&mut rng, 0, 4, &device);
        let ids: Vec<i64> = first.ids.into_data().convert::<i64>().to_vec().unwrap();
        assert_eq!(ids[0], 100);
        assert_eq!(ids[10], 110);
    }

    #[test]
    fn training_windows_stay_before_the_split() {
        let text: Vec<u8> = (0..300u32).map(|i| (i % 256) as u8).collect();
        let source = TrainWindows {
            text: Arc::new(text),
            end: 100,
            seq: 16,
        };
        let mut rng = rand::SeedableRng::seed_from_u64(1);
        for i in 0..50 {
            let b: TextBatch<Flex> = source.draw(&mut rng, i, 8, &Default::default());
            let t: Vec<i64> = b.targets.into_data().convert::<i64>().to_vec().unwrap();
            assert!(t.iter().all(|v| *v < 100), "a target past the split: {t:?}");
        }
    }
}
