//! `arbitor generate`: sample text from a trained byte-level model.

use std::path::Path;

use burn::tensor::{activation::softmax, Int, Tensor, TensorData};
use burn_ternary::TernaryBackend;
use rand::{rngs::SmallRng, Rng, SeedableRng};

use crate::{
    config::{ModelKind, RunConfig},
    lm::{dense_model, ternary_model},
};

/// Samples `length` bytes after `prompt` from the model exported at
/// `checkpoint` (a run's `model.safetensors`) with the architecture of `config`.
pub fn generate<B: TernaryBackend>(
    config: &RunConfig,
    checkpoint: &Path,
    prompt: &str,
    length: usize,
    temperature: f64,
    seed: u64,
    device: &B::Device,
) -> Result<String, String> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(format!(
            "--temperature {temperature}: must be a positive number"
        ));
    }
    let next_logits: Box<dyn Fn(Tensor<B, 2, Int>) -> Tensor<B, 2>> = match config.model.kind {
        ModelKind::TernaryByteMlp => {
            let model = burn_ternary::io::load_safetensors(
                ternary_model::<B>(&config.model, device),
                checkpoint,
            )
            .map_err(|e| e.to_string())?;
            Box::new(move |x| model.forward(x))
        }
        ModelKind::DenseByteMlp => {
            let model = burn_ternary::io::load_safetensors(
                dense_model::<B>(&config.model, device),
                checkpoint,
            )
            .map_err(|e| e.to_string())?;
            Box::new(move |x| model.forward(x))
        }
        other => {
            return Err(format!(
                "model.kind = \"{}\" does not generate text; `generate` samples from the byte-level models (ternary-byte-mlp, dense-byte-mlp)",
                other.name()
            ))
        }
    };
    let context = config.model.byte_mlp().map_err(|e| e.reason)?.context;
    // Short prompts are left-padded with spaces to fill the context.
    let mut bytes: Vec<u8> =
        std::iter::repeat_n(b' ', context.saturating_sub(prompt.len())).collect();
    bytes.extend(prompt.as_bytes());
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..length {
        let window: Vec<i64> = bytes[bytes.len() - context..]
            .iter()
            .map(|b| *b as i64)
            .collect();
        let x = Tensor::<B, 2, Int>::from_data(TensorData::new(window, [1, context]), device);
        let probs = softmax(next_logits(x) / temperature, 1);
        let probs: Vec<f32> = probs
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| format!("{e:?}"))?;
        bytes.push(sample(&probs, rng.random::<f32>()) as u8);
    }
    let generated = &bytes[context.saturating_sub(prompt.len())..];
    Ok(String::from_utf8_lossy(generated).into_owned())
}

fn sample(probs: &[f32], u: f32) -> usize {
    let mut acc = 0.0;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    probs.len() - 1
}
