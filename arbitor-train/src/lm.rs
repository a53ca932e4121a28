//! `model.kind = "ternary-byte-mlp"` and `"dense-byte-mlp"`: the byte-level
//! language models ([`crate::byte_mlp`]) on a text, as [`Task`]s. The
//! quickstart (`configs/quickstart.toml`) is the ternary one.

use std::sync::Arc;

use burn::{
    nn::loss::CrossEntropyLossConfig,
    optim::{adaptor::OptimizerAdaptor, AdamW, AdamWConfig},
    tensor::{backend::Backend, Int, Tensor, TensorData},
    train::ClassificationOutput,
};
use burn_ternary::{
    audit::AuditReport, optim::TernaryOptimizer, TernaryAutodiffBackend, TernaryBackend,
};
use rand::{rngs::SmallRng, Rng};

use crate::{
    byte_mlp::{unigram_entropy, ByteMlp, ByteMlpConfig, DenseByteMlp},
    config::{ConfigError, ModelSection, RunConfig, TrainSection},
    data::BatchSource,
    fit::{Guarded, Head, InnerModel, RunError, Task, TaskModel},
};

/// A batch of contexts `[batch, context]` and next bytes `[batch]`.
#[derive(Clone, Debug)]
pub struct ByteBatch<B: Backend> {
    /// Byte ids of the contexts.
    pub contexts: Tensor<B, 2, Int>,
    /// Byte ids to predict.
    pub targets: Tensor<B, 1, Int>,
}

/// Random windows of `context` bytes (and the byte after each) of a text.
pub struct ByteWindows {
    text: Arc<Vec<u8>>,
    range: (usize, usize),
    context: usize,
}

impl ByteWindows {
    /// Windows of `text[range.0..range.1]`, which must be longer than `context`.
    pub fn new(text: Arc<Vec<u8>>, range: (usize, usize), context: usize) -> Self {
        assert!(
            range.1 - range.0 > context,
            "the text must be longer than the context"
        );
        Self {
            text,
            range,
            context,
        }
    }
}

impl<B: Backend> BatchSource<B> for ByteWindows {
    type Batch = ByteBatch<B>;

    fn draw(
        &self,
        rng: &mut SmallRng,
        _index: usize,
        batch: usize,
        device: &B::Device,
    ) -> ByteBatch<B> {
        let text = &self.text[self.range.0..self.range.1];
        let mut contexts = Vec::with_capacity(batch * self.context);
        let mut targets = Vec::with_capacity(batch);
        for _ in 0..batch {
            let start = rng.random_range(0..text.len() - self.context);
            contexts.extend(text[start..start + self.context].iter().map(|b| *b as i64));
            targets.push(text[start + self.context] as i64);
        }
        ByteBatch {
            contexts: Tensor::from_data(TensorData::new(contexts, [batch, self.context]), device),
            targets: Tensor::from_data(TensorData::new(targets, [batch]), device),
        }
    }
}

fn classification<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> (Tensor<B, 1>, ClassificationOutput<B>) {
    let loss = CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits.clone(), targets.clone());
    (
        loss.clone(),
        ClassificationOutput::new(loss, logits, targets),
    )
}

impl<B: TernaryBackend> TaskModel<B> for ByteMlp<B> {
    type Batch = ByteBatch<B>;
    type Output = ClassificationOutput<B>;

    fn loss_and_output(
        &self,
        batch: ByteBatch<B>,
        _training: bool,
    ) -> (Tensor<B, 1>, ClassificationOutput<B>) {
        classification(self.forward(batch.contexts), batch.targets)
    }
}

impl<B: Backend> TaskModel<B> for DenseByteMlp<B> {
    type Batch = ByteBatch<B>;
    type Output = ClassificationOutput<B>;

    fn loss_and_output(
        &self,
        batch: ByteBatch<B>,
        _training: bool,
    ) -> (Tensor<B, 1>, ClassificationOutput<B>) {
        classification(self.forward(batch.contexts), batch.targets)
    }
}

/// Builds the ternary model of a `[model]` section.
///
/// # Panics
/// If the section is not of a byte-level kind.
pub fn ternary_model<B: Backend>(section: &ModelSection, device: &B::Device) -> ByteMlp<B> {
    section
        .byte_mlp()
        .unwrap_or_else(|e| panic!("{e}"))
        .init(device)
}

/// Builds the dense model of a `[model]` section.
///
/// # Panics
/// If the section is not of a byte-level kind.
pub fn dense_model<B: Backend>(section: &ModelSection, device: &B::Device) -> DenseByteMlp<B> {
    section
        .byte_mlp()
        .unwrap_or_else(|e| panic!("{e}"))
        .init_dense(device)
}

/// The text of `data.path`, split for validation at `split`.
#[derive(Clone, Debug)]
pub struct TextData {
    /// The whole text.
    pub text: Arc<Vec<u8>>,
    /// Start of the validation tail.
    pub split: usize,
}

impl TextData {
    /// Reads `data.path`; it must hold more than `context + 1` bytes on both
    /// sides of the validation split.
    pub fn load(config: &RunConfig, context: usize) -> Result<Self, RunError> {
        let path = config.data.path.clone().unwrap_or_default();
        let data_path = path.display().to_string();
        let text = std::fs::read(&path).map_err(|e| RunError::Data {
            path: data_path.clone(),
            reason: e.to_string(),
        })?;
        let split = ((text.len() as f64) * (1.0 - config.data.val_fraction)) as usize;
        if split <= context + 1 || text.len() - split <= context + 1 {
            return Err(RunError::Data {
                path: data_path,
                reason: format!(
                    "{} bytes is too short for a context of {}",
                    text.len(),
                    context
                ),
            });
        }
        Ok(Self {
            text: Arc::new(text),
            split,
        })
    }

    /// Unigram entropy of the validation tail (nats).
    pub fn unigram_entropy(&self) -> f64 {
        unigram_entropy(&self.text[self.split..])
    }

    fn windows(&self, context: usize) -> (Arc<ByteWindows>, Arc<ByteWindows>) {
        let (text, split) = (self.text.clone(), self.split);
        (
            Arc::new(ByteWindows::new(text.clone(), (0, split), context)),
            Arc::new(ByteWindows::new(text.clone(), (split, text.len()), context)),
        )
    }
}

/// `ternary-byte-mlp`: the ternary [`ByteMlp`] on a text, trained by the
/// [`TernaryOptimizer`].
pub struct TernaryLm {
    /// The model's shape.
    pub shape: ByteMlpConfig,
    /// The text.
    pub data: TextData,
}

/// `dense-byte-mlp`: the dense f32 twin on the same text, trained by AdamW.
pub struct DenseLm {
    /// The model's shape.
    pub shape: ByteMlpConfig,
    /// The text.
    pub data: TextData,
}

impl TernaryLm {
    /// The task of a byte-level config, its text loaded.
    pub fn load(config: &RunConfig) -> Result<Self, RunError> {
        let shape = config.model.byte_mlp()?.clone();
        let data = TextData::load(config, shape.context)?;
        Ok(Self { shape, data })
    }
}

impl DenseLm {
    /// The task of a byte-level config, its text loaded.
    pub fn load(config: &RunConfig) -> Result<Self, RunError> {
        let TernaryLm { shape, data } = TernaryLm::load(config)?;
        Ok(Self { shape, data })
    }
}

impl<B: TernaryAutodiffBackend> Task<B> for TernaryLm {
    type Model = ByteMlp<B>;
    type Optim = TernaryOptimizer<Guarded<B, ByteMlp<B>>, B>;
    type Train = ByteWindows;
    type Valid = ByteWindows;

    fn heads(&self) -> &'static [Head] {
        &[]
    }

    fn loss_unit(&self) -> &'static str {
        "nats/byte"
    }

    fn model(&self, device: &B::Device) -> Result<ByteMlp<B>, ConfigError> {
        Ok(self.shape.init(device))
    }

    fn optimizer(&self, train: &TrainSection, seed: u64) -> Self::Optim {
        train.ternary_optimizer(seed).init()
    }

    fn sources(&self, _: &ByteMlp<B>) -> (Arc<ByteWindows>, Arc<ByteWindows>) {
        self.data.windows(self.shape.context)
    }

    fn unigram_entropy(&self) -> Option<f64> {
        Some(self.data.unigram_entropy())
    }
}

impl<B: TernaryAutodiffBackend> Task<B> for DenseLm {
    type Model = DenseByteMlp<B>;
    type Optim = OptimizerAdaptor<AdamW, Guarded<B, DenseByteMlp<B>>, B>;
    type Train = ByteWindows;
    type Valid = ByteWindows;

    fn heads(&self) -> &'static [Head] {
        &[]
    }

    fn loss_unit(&self) -> &'static str {
        "nats/byte"
    }

    fn model(&self, device: &B::Device) -> Result<DenseByteMlp<B>, ConfigError> {
        Ok(self.shape.init_dense(device))
    }

    fn optimizer(&self, _train: &TrainSection, _seed: u64) -> Self::Optim {
        AdamWConfig::new().init()
    }

    fn sources(&self, _: &DenseByteMlp<B>) -> (Arc<ByteWindows>, Arc<ByteWindows>) {
        self.data.windows(self.shape.context)
    }

    fn audit(&self, trained: &InnerModel<B, Self>) -> AuditReport {
        let mut audit = burn_ternary::audit::audit(trained);
        // The inner (non-autodiff) model cannot show trainability; the dense
        // baseline trains every float parameter.
        audit.trainable_float_params = audit.frozen_float_params;
        audit.frozen_float_params = 0;
        audit
    }

    fn unigram_entropy(&self) -> Option<f64> {
        Some(self.data.unigram_entropy())
    }
}
