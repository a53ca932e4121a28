//! `model.kind = "bitnet"` with `[train]`: the BitNet b1.58 decoder
//! ([`BitNetForCausalLM`]) trained on a text as a causal language model, on
//! the one training path ([`crate::fit`]).
//!
//! - **Tokens**: `model.tokenizer` (a Hugging Face `tokenizer.json`, whose
//!   ids must fit `bitnet.vocab_size`), else bytes (`vocab_size` ≥ 256). The
//!   text is split at `1 − data.val_fraction` of its bytes (on a character
//!   boundary) and each side tokenized on its own, so no token spans the split.
//! - **Examples**: random windows of `bitnet.seq + 1` tokens of the training
//!   side ([`TrainWindows`]); validation walks the validation side in order
//!   ([`SplitPass`]), its first `train.eval_batches` batches (the whole side
//!   when it has fewer), the same batches every epoch.
//! - **What trains**: the seven ternary projections of every layer, by the
//!   [`TernaryOptimizer`] (trits and int8 update memory; scale codes too
//!   unless `train.train_scales = false`). The token embedding (and the tied
//!   output projection, or an untied float `lm_head`) and the RMS norms'
//!   gains are float and stay frozen by default, as the model builds them
//!   (`no_grad`), as upstream BitNet fine-tuning leaves them: the run then
//!   has no float optimizer state at all. `bitnet.train_float = true` trains
//!   them too, with the ternary optimizer's AdamW at `train.lr ×
//!   train.float_lr_ratio` (for training from scratch, where random frozen
//!   embeddings bound what the output can express).
//! - **Activations**: with `bitnet.quantize_activations` (default), each
//!   projection's input is quantized per token to int8, with BitNet's
//!   straight-through gradient (`burn_ternary::functional::quantize_activations`).

use std::{path::PathBuf, sync::Arc};

use arbitor_models::{
    bitnet::{BitNetConfig, BitNetForCausalLM},
    generation::Sampler,
};
use burn::{
    module::{Module, ModuleMapper, Param},
    tensor::{
        activation::log_softmax,
        backend::{AutodiffBackend, Backend},
        ElementConversion, Tensor,
    },
};
use burn_ternary::{optim::TernaryOptimizer, TernaryAutodiffBackend, TernaryBackend};

use crate::{
    config::{ConfigError, RunConfig, TrainSection},
    data::SeededLoader,
    fit::{Guarded, Head, InnerModel, RunError, Task, TaskModel},
    metrics::TaskOutput,
    text_task::{SplitPass, TextBatch, TrainWindows},
    tokenizer::TextTokenizer,
};

/// The mean cross-entropy (nats per scored token) of `logits: [batch, seq,
/// vocab]` against `targets: [batch, seq]`, over the positions where
/// `weights` is 1.
pub fn masked_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, burn::tensor::Int>,
    weights: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [batch, seq, _] = logits.dims();
    let picked = log_softmax(logits, 2)
        .gather(2, targets.reshape([batch, seq, 1]))
        .reshape([batch, seq]);
    let scored = weights.clone().sum().clamp_min(1.0);
    (picked * weights).sum().neg() / scored
}

impl<B: TernaryBackend> TaskModel<B> for BitNetForCausalLM<B> {
    type Batch = TextBatch<B>;
    type Output = TaskOutput<B>;

    fn loss_and_output(
        &self,
        batch: TextBatch<B>,
        _training: bool,
    ) -> (Tensor<B, 1>, TaskOutput<B>) {
        // The batch's ids come from the tokenizer, checked against the
        // vocabulary when the task was loaded.
        let logits = self
            .try_forward(batch.ids)
            .unwrap_or_else(|e| panic!("bitnet batch: {e}"));
        TaskOutput::new(
            masked_cross_entropy(logits, batch.targets, batch.weights),
            vec![],
        )
        .with_loss()
    }
}

/// The model of a `bitnet` config before training: the checkpoint of
/// `model.from` when given (a transformers BitNet directory, imported by
/// [`BitNetForCausalLM::from_hf_dir`]), else random weights of the
/// `[bitnet]` shape. Errors name the config key or the checkpoint file.
pub fn bitnet_model<B: Backend>(
    config: &RunConfig,
    device: &B::Device,
) -> Result<BitNetForCausalLM<B>, ConfigError> {
    let shape = config.bitnet()?;
    match &config.model.from {
        Some(dir) => BitNetForCausalLM::from_hf_dir(dir, device).map_err(|e| ConfigError {
            path: dir.display().to_string(),
            reason: format!("`model.from`: {e}"),
        }),
        None => shape.try_init(device).map_err(|e| ConfigError {
            path: String::new(),
            reason: format!("`[bitnet]`: {e}"),
        }),
    }
}

/// The model of a `bitnet` config for inference: [`bitnet_model`] with the
/// weights of `checkpoint` (a run's `model.safetensors`) when given, and no
/// update memory (1 byte per weight that only training reads). A `model.from`
/// checkpoint without a run checkpoint is imported without it
/// ([`BitNetForCausalLM::from_hf_dir_for_inference`]), so it is never
/// allocated. Errors name the config key or the checkpoint file.
pub fn bitnet_inference_model<B: Backend>(
    config: &RunConfig,
    checkpoint: Option<&std::path::Path>,
    device: &B::Device,
) -> Result<BitNetForCausalLM<B>, String> {
    if let (Some(dir), None) = (&config.model.from, checkpoint) {
        config.bitnet().map_err(|e| e.to_string())?;
        return BitNetForCausalLM::from_hf_dir_for_inference(dir, device)
            .map_err(|e| format!("{}: `model.from`: {e}", dir.display()));
    }
    // Dropped before loading, so the checkpoint's memory is skipped, not read.
    let model = burn_ternary::without_update_memory(
        bitnet_model::<B>(config, device).map_err(|e| e.to_string())?,
    );
    match checkpoint {
        Some(path) => burn_ternary::io::load_safetensors(model, path)
            .map_err(|e| format!("checkpoint {}: {e}", path.display())),
        None => Ok(model),
    }
}

/// `bitnet`: a [`BitNetForCausalLM`] trained on `data.path` (see the
/// [module docs](self)).
pub struct BitNetTask {
    /// The run config (the model is built from it by [`bitnet_model`]).
    pub config: RunConfig,
    /// `[bitnet]`: the model's shape.
    pub shape: BitNetConfig,
    /// Tokens per example (`bitnet.seq`).
    pub seq: usize,
    /// How the text became `tokens`.
    pub tokenizer: TextTokenizer,
    /// The training side's tokens, then the validation side's.
    pub tokens: Arc<Vec<u32>>,
    /// Index of the first validation token.
    pub split: usize,
    /// The run directory (the sample is written there).
    pub dir: PathBuf,
    /// Whether the float parts train (`bitnet.train_float`).
    pub train_float: bool,
}

/// Marks every float parameter trainable (the model builds its float parts
/// frozen).
struct Unfreeze;

impl<B: AutodiffBackend> ModuleMapper<B> for Unfreeze {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(true)
    }
}

impl BitNetTask {
    /// The task of a `bitnet` config with `[train]`: reads the tokenizer
    /// (checking that it fits `vocab_size`) and tokenizes the text. Names the
    /// file at fault: a missing `[train]`, an unreadable or non-UTF-8 text,
    /// a tokenizer that does not fit, a side too short for one example.
    pub fn load(config: &RunConfig) -> Result<Self, RunError> {
        if !config.trains {
            return Err(RunError::NotTrainable(config.model.kind.name()));
        }
        let shape = config.bitnet()?.clone();
        let seq = config.bitnet_keys.seq;
        let tokenizer = TextTokenizer::from_option(config.model.tokenizer.as_deref())?;
        tokenizer.check_fits(shape.vocab_size)?;
        let path = config.data.path.clone().unwrap_or_default();
        let name = path.display().to_string();
        let data_error = |reason: String| RunError::Data {
            path: name.clone(),
            reason,
        };
        let text = std::fs::read(&path).map_err(|e| data_error(e.to_string()))?;
        let mut at = ((text.len() as f64) * (1.0 - config.data.val_fraction)) as usize;
        // Not inside a UTF-8 character: move past its continuation bytes.
        while at < text.len() && (text[at] & 0xC0) == 0x80 {
            at += 1;
        }
        let mut tokens = tokenizer.encode_named(&text[..at], &name)?;
        let valid = tokenizer.encode_named(&text[at..], &name)?;
        let split = tokens.len();
        if split <= seq + 1 || valid.len() <= seq + 1 {
            return Err(data_error(format!(
                "{split} training and {} validation tokens ({}) are too short for bitnet.seq = {seq}",
                valid.len(),
                tokenizer.name()
            )));
        }
        tokens.extend(valid);
        Ok(Self {
            config: config.clone(),
            shape,
            seq,
            tokenizer,
            tokens: Arc::new(tokens),
            split,
            dir: config.run.dir.clone(),
            train_float: config.bitnet_keys.train_float,
        })
    }

    /// The in-order pass over the validation tokens.
    pub fn split_pass(&self) -> SplitPass<u32> {
        SplitPass::new(self.tokens.clone(), self.split, self.seq)
    }

    /// Unigram entropy of the validation tokens (nats per token).
    pub fn unigram_entropy(&self) -> f64 {
        let valid = &self.tokens[self.split..];
        let mut counts = std::collections::HashMap::<u32, usize>::new();
        for t in valid {
            *counts.entry(*t).or_default() += 1;
        }
        let n = valid.len() as f64;
        counts
            .values()
            .map(|c| {
                let p = *c as f64 / n;
                -p * p.ln()
            })
            .sum()
    }

    /// The validation loss over every token the validation batches score,
    /// and a sample continuing "ROMEO:\n" (temperature 0.8, seed 0), written
    /// to `sample.txt` in the run directory.
    fn measure<B: TernaryBackend>(
        &self,
        trained: &BitNetForCausalLM<B>,
        valid: &SeededLoader<B, SplitPass<u32>>,
    ) -> Vec<(String, f64)> {
        let (mut nats, mut scored) = (0.0, 0.0);
        for batch in valid.epoch_batches(0) {
            let count: f64 = batch.weights.clone().sum().into_scalar().elem();
            let logits = trained
                .try_forward(batch.ids)
                .unwrap_or_else(|e| panic!("bitnet validation: {e}"));
            let loss: f64 = masked_cross_entropy(logits, batch.targets, batch.weights)
                .into_scalar()
                .elem();
            nats += loss * count;
            scored += count;
        }
        let mut measured = vec![
            ("valid_nats_per_token".to_string(), nats / scored),
            ("valid_scored_tokens".to_string(), scored),
        ];
        let prompt = self
            .tokenizer
            .encode(b"ROMEO:\n")
            .expect("the prompt is UTF-8");
        let new = 48.min(
            self.shape
                .max_position_embeddings
                .saturating_sub(prompt.len()),
        );
        if new > 0 {
            let sampler = Sampler::new(0.8).with_seed(0);
            let generated = trained
                .generate(std::slice::from_ref(&prompt), new, &sampler, |_, _| {})
                .unwrap_or_else(|e| panic!("bitnet sample: {e}"));
            let ids: Vec<u32> = prompt.iter().chain(&generated.tokens[0]).copied().collect();
            // Sampled ids are below vocab_size, which may exceed the tokenizer's ids.
            match self.tokenizer.decode(&ids) {
                Ok(text) => {
                    let _ = std::fs::write(self.dir.join("sample.txt"), &text);
                    println!(
                        "sample (temperature 0.8, seed 0, from \"ROMEO:\\n\"):\n{}",
                        String::from_utf8_lossy(&text)
                    );
                }
                Err(e) => println!("sample not decoded: {e}"),
            }
            measured.push(("sample_tokens_per_s".into(), generated.tokens_per_s));
        }
        measured
    }
}

impl<B: TernaryAutodiffBackend> Task<B> for BitNetTask {
    type Model = BitNetForCausalLM<B>;
    type Optim = TernaryOptimizer<Guarded<B, BitNetForCausalLM<B>>, B>;
    type Train = TrainWindows<u32>;
    type Valid = SplitPass<u32>;

    fn heads(&self) -> &'static [Head] {
        &[]
    }

    fn loss_unit(&self) -> &'static str {
        "nats/token"
    }

    fn model(&self, device: &B::Device) -> Result<BitNetForCausalLM<B>, ConfigError> {
        let model = bitnet_model(&self.config, device)?;
        Ok(if self.train_float {
            model.map(&mut Unfreeze)
        } else {
            model
        })
    }

    fn optimizer(&self, train: &TrainSection, seed: u64) -> Self::Optim {
        train.ternary_optimizer(seed).init()
    }

    fn sources(&self, _: &BitNetForCausalLM<B>) -> (Arc<TrainWindows<u32>>, Arc<SplitPass<u32>>) {
        (
            Arc::new(TrainWindows::new(self.tokens.clone(), self.split, self.seq)),
            Arc::new(self.split_pass()),
        )
    }

    fn valid_batches(&self, config: &RunConfig) -> usize {
        self.split_pass()
            .batches(config.train.batch)
            .min(config.train.eval_batches)
    }

    fn tokens_per_example(&self) -> usize {
        self.seq
    }

    fn audit(&self, trained: &InnerModel<B, Self>) -> burn_ternary::audit::AuditReport {
        let mut audit = burn_ternary::audit::audit(trained);
        // The inner (non-autodiff) model cannot show trainability.
        if self.train_float {
            audit.trainable_float_params = audit.frozen_float_params;
            audit.frozen_float_params = 0;
        }
        audit
    }

    fn measure(
        &self,
        trained: &InnerModel<B, Self>,
        valid: &SeededLoader<B::InnerBackend, SplitPass<u32>>,
        _device: &B::Device,
    ) -> Vec<(String, f64)> {
        let mut measured = self.measure(trained, valid);
        measured.push((
            "unigram_entropy_nats_per_token".into(),
            self.unigram_entropy(),
        ));
        measured
    }

    fn throughput_unit(&self) -> Option<&'static str> {
        Some("tokens/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{
        backend::{Autodiff, Flex},
        optim::{GradientsParams, Optimizer},
        tensor::Int,
    };

    /// Trits and scale codes of every projection.
    fn state(model: &BitNetForCausalLM<Autodiff<Flex>>) -> (Vec<i32>, Vec<i32>) {
        let collected = burn_ternary::visit::collect::<Autodiff<Flex>, _>(model);
        let ints = |t: &Tensor<Autodiff<Flex>, 2, Int>| -> Vec<i32> {
            t.clone().into_data().convert::<i32>().to_vec().unwrap()
        };
        let (mut trits, mut codes) = (Vec::new(), Vec::new());
        for w in &collected.ternary {
            trits.extend(ints(&w.trits.1));
            codes.extend(ints(&w.scale_code.1.clone().unsqueeze()));
        }
        (trits, codes)
    }

    /// `train.train_scales = false` leaves every scale code as it was while
    /// the trits train; by default the codes move too.
    #[test]
    fn train_scales_false_freezes_the_scale_codes() {
        type B = Autodiff<Flex>;
        let device = Default::default();
        let shape = BitNetConfig::new(32, 48, 1, 4, 2, 40).with_max_position_embeddings(16);
        let train = |train_scales: bool| {
            B::seed(&device, 3);
            let mut model = shape.init::<B>(&device);
            let before = state(&model);
            let section = TrainSection {
                train_scales,
                ..TrainSection::none()
            };
            let mut optim = section
                .ternary_optimizer(0)
                .init::<B, BitNetForCausalLM<B>>();
            for step in 0..5 {
                let ids = Tensor::<B, 2, Int>::from_ints([[1, 5, 9, 2, 7, 3, 8, 4]], &device)
                    .add_scalar(step);
                let logits = model.forward(ids.clone().narrow(1, 0, 7));
                let loss = masked_cross_entropy(
                    logits,
                    ids.narrow(1, 1, 7),
                    Tensor::ones([1, 7], &device),
                );
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(0.5, model, grads);
            }
            (before, state(&model))
        };
        let ((trits0, codes0), (trits1, codes1)) = train(false);
        assert_ne!(trits0, trits1, "the trits did not train");
        assert_eq!(codes0, codes1, "a frozen scale code moved");
        let ((_, codes0), (_, codes1)) = train(true);
        assert_ne!(codes0, codes1, "no scale code moved while training them");
    }

    #[test]
    fn masked_cross_entropy_scores_only_weighted_positions() {
        let device = Default::default();
        // Two positions over a vocabulary of 3: the first uniform (ln 3), the
        // second certain of the wrong token, but unscored.
        let logits = Tensor::<Flex, 3>::from_floats([[[0.0, 0.0, 0.0], [0.0, 50.0, 0.0]]], &device);
        let targets = Tensor::<Flex, 2, burn::tensor::Int>::from_ints([[2, 0]], &device);
        let one = masked_cross_entropy(
            logits.clone(),
            targets.clone(),
            Tensor::from_floats([[1.0, 0.0]], &device),
        );
        let v: f64 = one.into_scalar().elem();
        assert!((v - 3f64.ln()).abs() < 1e-6, "{v}");
        let both =
            masked_cross_entropy(logits, targets, Tensor::from_floats([[1.0, 1.0]], &device));
        let v: f64 = both.into_scalar().elem();
        assert!((v - (3f64.ln() + 50.0) / 2.0).abs() < 1e-3, "{v}");
    }
}
