//! Causal multi-head self-attention with ternary projections.

use burn::{
    config::Config,
    module::Module,
    tensor::{activation::softmax, backend::Backend, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    layers::{ArbLinear, LayerKind},
    util::{check_width, config_error, or_panic, positive, window_mask},
};

/// Configuration of a [`TernaryAttention`].
#[derive(Config, Debug)]
pub struct TernaryAttentionConfig {
    /// Model width.
    pub d_model: usize,
    /// Number of heads (must divide `d_model`).
    #[config(default = 4)]
    pub n_heads: usize,
    /// Which layers it is built from.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl TernaryAttentionConfig {
    /// Builds the layer, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<TernaryAttention<B>> {
        positive("d_model", self.d_model)?;
        positive("n_heads", self.n_heads)?;
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(config_error(
                "n_heads",
                self.n_heads,
                &format!("must divide d_model = {}", self.d_model),
            ));
        }
        let proj = || self.layers.linear(self.d_model, self.d_model, device);
        Ok(TernaryAttention {
            query: proj()?,
            key: proj()?,
            value: proj()?,
            out: proj()?,
            n_heads: self.n_heads,
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TernaryAttention<B> {
        or_panic(self.try_init(device))
    }
}

/// Causal multi-head self-attention whose query, key, value and output
/// projections are [`ArbLinear`]s (no biases; ternary unless built with
/// [`LayerKind::Dense`]).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::attention::TernaryAttentionConfig;
///
/// let device = Default::default();
/// let attention = TernaryAttentionConfig::new(16).init::<Flex>(&device);
/// let y = attention.forward(Tensor::<Flex, 3>::ones([2, 5, 16], &device));
/// assert_eq!(y.dims(), [2, 5, 16]);
/// ```
#[derive(Module, Debug)]
pub struct TernaryAttention<B: Backend> {
    /// Query projection.
    pub query: ArbLinear<B>,
    /// Key projection.
    pub key: ArbLinear<B>,
    /// Value projection.
    pub value: ArbLinear<B>,
    /// Output projection.
    pub out: ArbLinear<B>,
    /// Number of heads.
    pub n_heads: usize,
}

impl<B: TernaryBackend> TernaryAttention<B> {
    /// Attends causally over `x: [batch, seq, d_model]`, or reports a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let [d_model, _] = self.out.dims();
        check_width("x", &x, d_model)?;
        let [batch, seq, _] = x.dims();
        let (h, dh) = (self.n_heads, d_model / self.n_heads);
        let heads = |t: Tensor<B, 3>| t.reshape([batch, seq, h, dh]).swap_dims(1, 2);
        let q = heads(self.query.try_forward(x.clone())?);
        let k = heads(self.key.try_forward(x.clone())?);
        let v = heads(self.value.try_forward(x)?);
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt());
        let blocked = window_mask::<B>(seq, seq, &scores.device())
            .equal_elem(0.0)
            .reshape([1, 1, seq, seq])
            .expand([batch, h, seq, seq]);
        let weights = softmax(scores.mask_fill(blocked, -1e9), 3);
        let y = weights
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, seq, d_model]);
        self.out.try_forward(y)
    }

    /// Attends causally over `x: [batch, seq, d_model]`.
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
    fn shapes_audit_train_step_and_causality() {
        let attention = TernaryAttentionConfig::new(16).init::<AD>(&Default::default());
        assert_audit(&attention, 4 * 16 * 16);
        let x = randn([2, 6, 16], 1);
        let y = attention.forward(x.clone());
        assert_eq!(y.dims(), [2, 6, 16]);
        // Changing the last position leaves the earlier outputs unchanged.
        let x2 = Tensor::cat(vec![x.clone().narrow(1, 0, 5), randn([2, 1, 16], 2)], 1);
        let y2 = attention.forward(x2);
        let a: Vec<f32> = y.narrow(1, 0, 5).into_data().to_vec().unwrap();
        let b: Vec<f32> = y2.narrow(1, 0, 5).into_data().to_vec().unwrap();
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-5));
        train_step(
            attention,
            |m| m.forward(x.clone()).powf_scalar(2.0).mean(),
            &[],
        );
    }

    #[test]
    fn heads_must_divide_the_width() {
        let err = TernaryAttentionConfig::new(10)
            .with_n_heads(4)
            .try_init::<AD>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("n_heads"), "{err}");
    }
}
