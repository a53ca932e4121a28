//! A key/value memory read by attention, with ternary key and value tables.

use burn::{
    config::Config,
    module::Module,
    tensor::{activation::softmax, backend::Backend, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    layers::{ArbEmbedding, ArbLinear, LayerKind},
    util::{check_width, or_panic, positive},
};

/// Configuration of a [`Memory`].
#[derive(Config, Debug)]
pub struct MemoryConfig {
    /// Model width.
    pub d_model: usize,
    /// Number of memory slots.
    #[config(default = 64)]
    pub n_slots: usize,
    /// Width of the keys.
    #[config(default = 32)]
    pub d_key: usize,
    /// Which layers it is built from.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl MemoryConfig {
    /// Builds the memory, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<Memory<B>> {
        positive("d_model", self.d_model)?;
        positive("n_slots", self.n_slots)?;
        positive("d_key", self.d_key)?;
        Ok(Memory {
            query: self.layers.linear(self.d_model, self.d_key, device)?,
            keys: self.layers.embedding(self.n_slots, self.d_key, device)?,
            values: self.layers.embedding(self.n_slots, self.d_model, device)?,
            out: self.layers.linear(self.d_model, self.d_model, device)?,
        })
    }

    /// Builds the memory.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Memory<B> {
        or_panic(self.try_init(device))
    }
}

/// A learned key/value memory: each position reads
/// `out(softmax(query(x) · Kᵀ / √d_key) · V)`, where the keys `K` and values
/// `V` are [`ArbEmbedding`]s (read whole through
/// [`table`](ArbEmbedding::table), which trains both).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::memory::MemoryConfig;
///
/// let device = Default::default();
/// let memory = MemoryConfig::new(16).init::<Flex>(&device);
/// assert_eq!(memory.forward(Tensor::<Flex, 3>::ones([2, 3, 16], &device)).dims(), [2, 3, 16]);
/// ```
#[derive(Module, Debug)]
pub struct Memory<B: Backend> {
    /// Query projection.
    pub query: ArbLinear<B>,
    /// Slot keys `[n_slots, d_key]`.
    pub keys: ArbEmbedding<B>,
    /// Slot values `[n_slots, d_model]`.
    pub values: ArbEmbedding<B>,
    /// Output projection.
    pub out: ArbLinear<B>,
}

impl<B: TernaryBackend> Memory<B> {
    /// Attention weights over the slots, `[batch, seq, n_slots]`.
    pub fn try_read_weights(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let [d_model, _] = self.out.dims();
        check_width("x", &x, d_model)?;
        let [batch, seq, _] = x.dims();
        let [n_slots, d_key] = self.keys.dims();
        let q = self.query.try_forward(x)?.reshape([batch * seq, d_key]);
        let keys = self.keys.table(); // [n_slots, d_key]
        let scores = q.matmul(keys.transpose()) / (d_key as f64).sqrt();
        Ok(softmax(scores, 1).reshape([batch, seq, n_slots]))
    }

    /// Reads the memory for `x: [batch, seq, d_model]`, or reports a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let [batch, seq, d_model] = x.dims();
        let [n_slots, _] = self.values.dims();
        let weights = self.try_read_weights(x)?.reshape([batch * seq, n_slots]);
        let values = self.values.table(); // [n_slots, d_model]
        let read = weights.matmul(values).reshape([batch, seq, d_model]);
        self.out.try_forward(read)
    }

    /// Reads the memory for `x: [batch, seq, d_model]`.
    ///
    /// # Panics
    /// If the last dimension of `x` is not `d_model`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        or_panic(self.try_forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn shapes_audit_and_train_step() {
        let c = MemoryConfig::new(16).with_n_slots(10).with_d_key(8);
        let memory = c.init::<AD>(&Default::default());
        assert_audit(&memory, 16 * 8 + 10 * 8 + 10 * 16 + 16 * 16);
        let x = randn([2, 3, 16], 1);
        assert_eq!(memory.forward(x.clone()).dims(), [2, 3, 16]);
        let w: Vec<f32> = memory
            .try_read_weights(x.clone())
            .unwrap()
            .sum_dim(2)
            .into_data()
            .to_vec()
            .unwrap();
        assert!(w.iter().all(|s| (s - 1.0).abs() < 1e-5), "{w:?}");
        train_step(
            memory,
            |m| m.forward(x.clone()).powf_scalar(2.0).mean(),
            &[],
        );
    }
}
