//! The byte-level language models a run can train, with the steps Burn's
//! `Learner` calls: the ternary [`ByteMlp`](crate::quickstart::ByteMlp) and a
//! dense f32 twin of the same shape, the baseline.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Mutex,
};

use burn::{
    module::Module,
    nn::{loss::CrossEntropyLossConfig, Linear, LinearConfig},
    tensor::{
        backend::{AutodiffBackend, Backend},
        Int, Tensor,
    },
    train::{ClassificationOutput, InferenceStep, Interrupter, TrainOutput, TrainStep},
};
use burn_ternary::{TernaryAutodiffBackend, TernaryBackend};

use crate::{
    config::ModelSection,
    data::ByteBatch,
    quickstart::{mlp_head, ByteMlp, QuickstartConfig},
};

/// Stops the run (through the `Learner`'s interrupter) when a loss is not
/// finite, before the optimizer sees its gradient, so no checkpoint is
/// written from a diverged model.
static LOSS_GUARD: Mutex<Option<Interrupter>> = Mutex::new(None);

/// Train steps seen by the guard in this process.
static GUARDED_STEPS: AtomicUsize = AtomicUsize::new(0);

/// Fault injection for the reliability tests: with `ARBITOR_POISON_LOSS_AT_STEP=k`
/// the guard treats the loss of the k-th train step of this process (and later
/// ones) as NaN.
fn poison_at() -> Option<usize> {
    std::env::var("ARBITOR_POISON_LOSS_AT_STEP")
        .ok()?
        .parse()
        .ok()
}

/// Installs the interrupter the loss guard stops.
pub fn install_loss_guard(interrupter: Interrupter) {
    *LOSS_GUARD.lock().expect("loss guard lock") = Some(interrupter);
}

/// The message of the guard, if it stopped the run.
pub fn loss_guard_tripped() -> Option<String> {
    let guard = LOSS_GUARD.lock().expect("loss guard lock");
    guard
        .as_ref()
        .filter(|i| i.should_stop())
        .and_then(|i| i.get_message())
}

/// The train step of every run: back-propagates `loss` (the total loss of
/// `item`) unless it is not finite, in which case the run's interrupter is
/// stopped and an empty gradient is returned, so the optimizer leaves every
/// weight as it is and no checkpoint is written from a diverged model.
pub fn guarded_step<B: AutodiffBackend, M: burn::module::AutodiffModule<B>, T>(
    model: &M,
    loss: Tensor<B, 1>,
    item: T,
) -> TrainOutput<T> {
    let value: f64 = loss.clone().into_scalar().elem();
    let step = GUARDED_STEPS.fetch_add(1, Ordering::SeqCst);
    let poisoned = poison_at().is_some_and(|at| step >= at);
    if !value.is_finite() || poisoned {
        if let Some(interrupter) = LOSS_GUARD.lock().expect("loss guard lock").as_ref() {
            let shown = if poisoned { f64::NAN } else { value };
            interrupter.stop(Some(&format!(
                "training loss became {shown}; run stopped before this update"
            )));
        }
        // An empty gradient: the optimizer leaves every weight as it is.
        let device = loss.device();
        let nothing = Tensor::<B, 1>::zeros([1], &device)
            .require_grad()
            .sum()
            .backward();
        return TrainOutput::new(model, nothing, item);
    }
    TrainOutput::new(model, loss.backward(), item)
}

fn classified_step<B: AutodiffBackend, M: burn::module::AutodiffModule<B>>(
    model: &M,
    item: ClassificationOutput<B>,
) -> TrainOutput<ClassificationOutput<B>> {
    guarded_step(model, item.loss.clone(), item)
}

use burn::tensor::ElementConversion;

fn classification<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> ClassificationOutput<B> {
    let loss = CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits.clone(), targets.clone());
    ClassificationOutput::new(loss, logits, targets)
}

impl<B: TernaryAutodiffBackend> TrainStep for ByteMlp<B> {
    type Input = ByteBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ByteBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        classified_step(
            self,
            classification(self.forward(batch.contexts), batch.targets),
        )
    }
}

impl<B: TernaryBackend> InferenceStep for ByteMlp<B> {
    type Input = ByteBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ByteBatch<B>) -> ClassificationOutput<B> {
        classification(self.forward(batch.contexts), batch.targets)
    }
}

/// The dense twin of [`ByteMlp`]: f32 embedding table and linear layers
/// without bias, the same parameter-free norms; trained with AdamW.
#[derive(Module, Debug)]
pub struct DenseByteMlp<B: Backend> {
    embed: burn::nn::Embedding<B>,
    hidden: Linear<B>,
    hidden2: Linear<B>,
    out: Linear<B>,
}

impl<B: Backend> DenseByteMlp<B> {
    /// Next-byte logits `[batch, 256]` from contexts `[batch, context]`.
    pub fn forward(&self, contexts: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        mlp_head(
            self.embed.forward(contexts),
            |x| self.hidden.forward(x),
            |x| self.hidden2.forward(x),
            |x| self.out.forward(x),
        )
    }
}

impl<B: AutodiffBackend> TrainStep for DenseByteMlp<B> {
    type Input = ByteBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ByteBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        classified_step(
            self,
            classification(self.forward(batch.contexts), batch.targets),
        )
    }
}

impl<B: Backend> InferenceStep for DenseByteMlp<B> {
    type Input = ByteBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ByteBatch<B>) -> ClassificationOutput<B> {
        classification(self.forward(batch.contexts), batch.targets)
    }
}

/// Builds the ternary model of a `[model]` section.
///
/// # Panics
/// If the section lacks `context`, `d_embed` or `hidden` (a validated config
/// of a byte-level kind has them; the message names the missing key).
pub fn ternary_model<B: Backend>(section: &ModelSection, device: &B::Device) -> ByteMlp<B> {
    let shape = section.byte_mlp().unwrap_or_else(|e| panic!("{e}"));
    QuickstartConfig::new()
        .with_context(shape.context)
        .with_d_embed(shape.d_embed)
        .with_hidden(shape.hidden)
        .init_model(device)
}

/// Builds the dense model of a `[model]` section.
///
/// # Panics
/// If the section lacks `context`, `d_embed` or `hidden` (the message names
/// the missing key).
pub fn dense_model<B: Backend>(section: &ModelSection, device: &B::Device) -> DenseByteMlp<B> {
    let shape = section.byte_mlp().unwrap_or_else(|e| panic!("{e}"));
    let linear = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
    DenseByteMlp {
        embed: burn::nn::EmbeddingConfig::new(256, shape.d_embed).init(device),
        hidden: linear(shape.context * shape.d_embed, shape.hidden),
        hidden2: linear(shape.hidden, shape.hidden),
        out: linear(shape.hidden, 256),
    }
}
