//! The byte-level MLP language models: the ternary [`ByteMlp`] (the
//! quickstart's model) and its dense f32 twin [`DenseByteMlp`], the baseline.
//!
//! The model reads the previous `context` bytes through a
//! [`TernaryEmbedding`], concatenates them, and predicts the next byte
//! through three [`TernaryLinear`] layers with parameter-free RMS norms.
//! Every weight is ternary; the [`TernaryOptimizer`](burn_ternary::optim::TernaryOptimizer)
//! trains trits, update memory and scale codes directly.

use burn::{
    config::Config,
    module::Module,
    nn::{loss::CrossEntropyLossConfig, Linear, LinearConfig},
    tensor::{activation::relu, backend::Backend, Int, Tensor, TensorPrimitive},
};
use burn_ternary::{
    nn::{TernaryEmbedding, TernaryEmbeddingConfig, TernaryLinear, TernaryLinearConfig},
    ops::rms_norm::reference as rms_norm_reference,
    TernaryBackend,
};

/// The shape of a byte-level MLP language model: `[model]` of the
/// `ternary-byte-mlp` and `dense-byte-mlp` run kinds (every key required).
#[derive(Config, Debug, PartialEq, Eq)]
pub struct ByteMlpConfig {
    /// Bytes of context the model sees.
    pub context: usize,
    /// Width of each byte embedding.
    pub d_embed: usize,
    /// Width of the hidden layers.
    pub hidden: usize,
}

/// A ternary byte-level MLP language model.
#[derive(Module, Debug)]
pub struct ByteMlp<B: Backend> {
    embed: TernaryEmbedding<B>,
    hidden: TernaryLinear<B>,
    hidden2: TernaryLinear<B>,
    out: TernaryLinear<B>,
}

impl ByteMlpConfig {
    /// Builds the ternary model.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ByteMlp<B> {
        ByteMlp {
            embed: TernaryEmbeddingConfig::new(256, self.d_embed).init(device),
            hidden: TernaryLinearConfig::new(self.context * self.d_embed, self.hidden).init(device),
            hidden2: TernaryLinearConfig::new(self.hidden, self.hidden).init(device),
            out: TernaryLinearConfig::new(self.hidden, 256).init(device),
        }
    }

    /// Builds the dense twin (f32 embedding and linear layers without bias).
    pub fn init_dense<B: Backend>(&self, device: &B::Device) -> DenseByteMlp<B> {
        let linear = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        DenseByteMlp {
            embed: burn::nn::EmbeddingConfig::new(256, self.d_embed).init(device),
            hidden: linear(self.context * self.d_embed, self.hidden),
            hidden2: linear(self.hidden, self.hidden),
            out: linear(self.hidden, 256),
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
    let h = relu(norm(hidden(embedded.reshape([batch, context * d]))));
    out(relu(norm(hidden2(h))))
}

/// Parameter-free RMS norm of `[batch, features]` (ε 1e-6), by the
/// reference composition, which runs on every backend (the dense twin's too).
fn norm<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let y = rms_norm_reference::forward::<B>(x.into_primitive().tensor(), None, 1e-6);
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

impl<B: Backend> ByteMlp<B> {
    /// The byte embedding table.
    pub fn embedding(&self) -> &TernaryEmbedding<B> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unigram_entropy_of_uniform_and_constant_bytes() {
        let uniform: Vec<u8> = (0..=255u8).collect();
        assert!((unigram_entropy(&uniform) - 256f64.ln()).abs() < 1e-12);
        assert_eq!(unigram_entropy(b"aaaa"), 0.0);
    }
}
