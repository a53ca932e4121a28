//! The quickstart: a ternary next-byte model on Tiny Shakespeare.
//!
//! The model reads the previous `context` bytes through a
//! [`TernaryEmbeddingTable`], concatenates them, and predicts the next byte
//! through three [`TernaryScaleTensor`] layers with parameter-free RMS norms.
//! Every weight is ternary; the [`TernaryOptimizer`] trains trits, update
//! memory and scale codes directly.

use std::time::Instant;

use arbitor_models::util::rms_norm;
use burn::{
    config::Config,
    module::{AutodiffModule, Module},
    nn::loss::CrossEntropyLossConfig,
    optim::{GradientsParams, Optimizer},
    tensor::{activation::relu, backend::Backend, Int, Tensor, TensorData},
};
use burn_ternary::{
    audit::{audit, AuditReport},
    nn::{
        TernaryEmbeddingTable, TernaryEmbeddingTableConfig, TernaryScaleTensor,
        TernaryScaleTensorConfig,
    },
    optim::TernaryOptimizerConfig,
    TernaryAutodiffBackend, TernaryBackend,
};
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// Hyper-parameters of the quickstart run.
#[derive(Config, Debug)]
pub struct QuickstartConfig {
    /// Bytes of context the model sees.
    #[config(default = 8)]
    pub context: usize,
    /// Width of each byte embedding.
    #[config(default = 32)]
    pub d_embed: usize,
    /// Width of the hidden layers.
    #[config(default = 512)]
    pub hidden: usize,
    /// Optimizer steps.
    #[config(default = 1500)]
    pub steps: usize,
    /// Examples per step.
    #[config(default = 128)]
    pub batch: usize,
    /// Peak learning rate (the ternary optimizer's trit-step rate).
    #[config(default = 0.05)]
    pub lr: f64,
    /// Seed for data sampling, initialization and stochastic rounding.
    #[config(default = 0)]
    pub seed: u64,
    /// Evaluate every this many steps.
    #[config(default = 250)]
    pub eval_every: usize,
    /// Validation batches per evaluation.
    #[config(default = 40)]
    pub eval_batches: usize,
}

/// A ternary byte-level MLP language model.
#[derive(Module, Debug)]
pub struct ByteMlp<B: Backend> {
    embed: TernaryEmbeddingTable<B>,
    hidden: TernaryScaleTensor<B>,
    hidden2: TernaryScaleTensor<B>,
    out: TernaryScaleTensor<B>,
}

impl QuickstartConfig {
    /// Builds the model.
    pub fn init_model<B: Backend>(&self, device: &B::Device) -> ByteMlp<B> {
        ByteMlp {
            embed: TernaryEmbeddingTableConfig::new(256, self.d_embed).init(device),
            hidden: TernaryScaleTensorConfig::new(self.context * self.d_embed, self.hidden)
                .init(device),
            hidden2: TernaryScaleTensorConfig::new(self.hidden, self.hidden).init(device),
            out: TernaryScaleTensorConfig::new(self.hidden, 256).init(device),
        }
    }
}

/// The byte MLP after its embedding lookup, shared by the ternary model and its
/// dense twin: concatenate the context's embeddings `[batch, context, d]`,
/// then `out(relu(norm(hidden2(relu(norm(hidden(·)))))))`.
pub fn mlp_head<B: Backend>(
    embedded: Tensor<B, 3>,
    hidden: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>,
    hidden2: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>,
    out: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<B, 2> {
    let [batch, context, d] = embedded.dims();
    let h = relu(rms_norm(hidden(embedded.reshape([batch, context * d]))));
    out(relu(rms_norm(hidden2(h))))
}

impl<B: Backend> ByteMlp<B> {
    /// The byte embedding table.
    pub fn embedding(&self) -> &TernaryEmbeddingTable<B> {
        &self.embed
    }
}

impl<B: TernaryBackend> ByteMlp<B> {
    /// Next-byte logits `[batch, 256]` from contexts `[batch, context]`.
    pub fn forward(&self, contexts: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        mlp_head(
            self.embed.forward(contexts),
            |x| self.hidden.forward(x),
            |x| self.hidden2.forward(x),
            |x| self.out.forward(x),
        )
    }

    /// Mean cross-entropy (nats) of the next byte.
    pub fn loss(&self, contexts: Tensor<B, 2, Int>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let logits = self.forward(contexts);
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, targets)
    }
}

/// Samples `batch` (context, next byte) pairs from `data`.
pub fn sample_batch<B: Backend>(
    data: &[u8],
    context: usize,
    batch: usize,
    rng: &mut SmallRng,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 1, Int>) {
    let mut contexts = Vec::with_capacity(batch * context);
    let mut targets = Vec::with_capacity(batch);
    for _ in 0..batch {
        let start = rng.random_range(0..data.len() - context);
        contexts.extend(data[start..start + context].iter().map(|b| *b as i64));
        targets.push(data[start + context] as i64);
    }
    (
        Tensor::from_data(TensorData::new(contexts, [batch, context]), device),
        Tensor::from_data(TensorData::new(targets, [batch]), device),
    )
}

/// Entropy (nats) of the byte distribution of `data`: the loss of the best
/// context-free predictor.
pub fn unigram_entropy(data: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    data.iter().for_each(|b| counts[*b as usize] += 1);
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| *c as f64 / n)
        .map(|p| -p * p.ln())
        .sum()
}

/// One evaluation point of a run.
#[derive(Clone, Debug)]
pub struct EvalPoint {
    /// Optimizer steps taken.
    pub step: usize,
    /// Mean training loss since the previous point (nats).
    pub train_loss: f64,
    /// Validation loss (nats).
    pub val_loss: f64,
}

/// What a quickstart run measured.
#[derive(Clone, Debug)]
pub struct QuickstartReport {
    /// Validation loss before training and at each evaluation.
    pub curve: Vec<EvalPoint>,
    /// Unigram entropy of the validation bytes (nats).
    pub unigram_entropy: f64,
    /// Audit of the trained model.
    pub audit: AuditReport,
    /// Training throughput (predicted bytes per second).
    pub tokens_per_second: f64,
}

impl QuickstartReport {
    /// Validation loss before training.
    pub fn initial_val_loss(&self) -> f64 {
        self.curve.first().map(|p| p.val_loss).unwrap_or(f64::NAN)
    }

    /// Validation loss after training.
    pub fn final_val_loss(&self) -> f64 {
        self.curve.last().map(|p| p.val_loss).unwrap_or(f64::NAN)
    }
}

fn validation_loss<B: TernaryBackend>(
    model: &ByteMlp<B>,
    val: &[u8],
    config: &QuickstartConfig,
    device: &B::Device,
) -> f64 {
    // A fixed validation sample, the same at every evaluation.
    let mut rng = SmallRng::seed_from_u64(0x0005_eed0_f7a1);
    let mut total = 0.0;
    for _ in 0..config.eval_batches {
        let (x, y) = sample_batch::<B>(val, config.context, config.batch, &mut rng, device);
        total += model.loss(x, y).into_scalar().elem::<f64>();
    }
    total / config.eval_batches as f64
}

use burn::tensor::ElementConversion;

/// Trains the quickstart model on `text` (90% train, 10% validation), calling
/// `progress` at each evaluation.
pub fn run<B: TernaryAutodiffBackend>(
    config: &QuickstartConfig,
    text: &[u8],
    device: &B::Device,
    mut progress: impl FnMut(&EvalPoint),
) -> QuickstartReport {
    B::seed(device, config.seed);
    let split = text.len() * 9 / 10;
    let (train, val) = (&text[..split], &text[split..]);
    let mut model = config.init_model::<B>(device);
    let mut optim = TernaryOptimizerConfig::new()
        .with_seed(config.seed)
        .init::<B, ByteMlp<B>>();
    let mut rng = SmallRng::seed_from_u64(config.seed);

    let first = EvalPoint {
        step: 0,
        train_loss: f64::NAN,
        val_loss: validation_loss(&model.valid(), val, config, device),
    };
    progress(&first);
    let mut curve = vec![first];
    let (mut train_sum, mut train_count) = (0.0, 0usize);
    let started = Instant::now();
    for step in 1..=config.steps {
        let (x, y) = sample_batch::<B>(train, config.context, config.batch, &mut rng, device);
        let loss = model.loss(x, y);
        train_sum += loss.clone().into_scalar().elem::<f64>();
        train_count += 1;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        // Linear warm-up over the first 5% of steps, then cosine decay to 10%.
        let warmup = (config.steps / 20).max(1);
        let lr = if step <= warmup {
            config.lr * step as f64 / warmup as f64
        } else {
            let t = (step - warmup) as f64 / (config.steps - warmup).max(1) as f64;
            config.lr * (0.1 + 0.9 * 0.5 * (1.0 + (core::f64::consts::PI * t).cos()))
        };
        model = optim.step(lr, model, grads);
        if step % config.eval_every == 0 || step == config.steps {
            let point = EvalPoint {
                step,
                train_loss: train_sum / train_count as f64,
                val_loss: validation_loss(&model.valid(), val, config, device),
            };
            progress(&point);
            curve.push(point);
            (train_sum, train_count) = (0.0, 0);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    QuickstartReport {
        curve,
        unigram_entropy: unigram_entropy(val),
        audit: audit(&model),
        tokens_per_second: (config.steps * config.batch) as f64 / seconds,
    }
}
