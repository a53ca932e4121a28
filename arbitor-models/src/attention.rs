//! Causal multi-head self-attention with ternary projections.

use burn::{
    config::Config,
    module::Module,
    tensor::{backend::Backend, Tensor},
};
use burn_ternary::{functional::causal_attention, TernaryBackend, TernaryResult};

use crate::{
    layers::{ArbLinear, LayerKind},
    util::{check_width, config_error, or_panic, positive},
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

/// The keys and values of one attention layer for incremental decoding,
/// preallocated `[batch, heads, max_seq, head_dim]` and written in place.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `batch` sequences of at most `max_seq` positions.
    pub fn new(
        batch: usize,
        heads: usize,
        max_seq: usize,
        head_dim: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            keys: Tensor::zeros([batch, heads, max_seq, head_dim], device),
            values: Tensor::zeros([batch, heads, max_seq, head_dim], device),
            len: 0,
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no position.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position.
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Writes `k, v: [batch, heads, n, head_dim]` after the held positions
    /// (dropping the oldest when full) and returns every held key and value.
    fn append(
        &mut self,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> TernaryResult<(Tensor<B, 4>, Tensor<B, 4>)> {
        let [batch, heads, max_seq, head_dim] = self.keys.dims();
        let [kb, kh, n, kd] = k.dims();
        if [kb, kh, kd] != [batch, heads, head_dim] || n > max_seq {
            return Err(crate::util::shape_error(
                "k",
                format!("[{batch}, {heads}, n ≤ {max_seq}, {head_dim}] (the cache's shape)"),
                &k.dims(),
            ));
        }
        if self.len + n > max_seq {
            let drop = self.len + n - max_seq;
            let keep = self.len - drop;
            let slide = |t: &Tensor<B, 4>| {
                let device = t.device();
                Tensor::cat(
                    vec![
                        t.clone().narrow(2, drop, keep),
                        Tensor::zeros([batch, heads, max_seq - keep, head_dim], &device),
                    ],
                    2,
                )
            };
            self.keys = slide(&self.keys);
            self.values = slide(&self.values);
            self.len = keep;
        }
        let range = [0..batch, 0..heads, self.len..self.len + n, 0..head_dim];
        self.keys = self.keys.clone().slice_assign(range.clone(), k);
        self.values = self.values.clone().slice_assign(range, v);
        self.len += n;
        Ok((
            self.keys.clone().narrow(2, 0, self.len),
            self.values.clone().narrow(2, 0, self.len),
        ))
    }
}

impl<B: TernaryBackend> TernaryAttention<B> {
    /// Attends causally over `x: [batch, seq, d_model]`, or reports a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let (q, k, v) = self.project(x)?;
        self.attend(q, k, v, 0)
    }

    /// Attends from the new positions `x: [batch, n, d_model]` to every
    /// position the cache holds and to the new ones (causally), writing the
    /// new keys and values into `cache`: the outputs [`try_forward`](Self::try_forward)
    /// gives these positions over the whole sequence, while it fits the
    /// cache. A full cache slides: the oldest positions are dropped.
    pub fn try_forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: &mut KvCache<B>,
    ) -> TernaryResult<Tensor<B, 3>> {
        let (q, k, v) = self.project(x)?;
        let n = q.dims()[1];
        let (keys, values) = cache.append(k, v)?;
        let total = keys.dims()[2];
        self.attend(q, keys, values, total - n)
    }

    /// Queries `[batch, n, heads, head_dim]` (token-major), keys and values
    /// `[batch, heads, n, head_dim]` of `x: [batch, n, d_model]`, or a width
    /// mismatch.
    #[allow(clippy::type_complexity)]
    fn project(
        &self,
        x: Tensor<B, 3>,
    ) -> TernaryResult<(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>)> {
        let [d_model, _] = self.out.dims();
        check_width("x", &x, d_model)?;
        let [batch, n, _] = x.dims();
        let (h, dh) = (self.n_heads, d_model / self.n_heads);
        let tokens = |t: Tensor<B, 3>| t.reshape([batch, n, h, dh]);
        let heads = |t: Tensor<B, 3>| tokens(t).swap_dims(1, 2);
        Ok((
            tokens(self.query.try_forward(x.clone())?),
            heads(self.key.try_forward(x.clone())?),
            heads(self.value.try_forward(x)?),
        ))
    }

    /// Causal softmax attention of the token-major `q: [batch, n, heads,
    /// head_dim]` at positions `start..start + n` over `keys` and `values`
    /// (`[batch, heads, total, head_dim]`), through the output projection:
    /// `[batch, n, d_model]` ([`causal_attention`], one kernel on CUDA and
    /// WGPU).
    fn attend(
        &self,
        q: Tensor<B, 4>,
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
        start: usize,
    ) -> TernaryResult<Tensor<B, 3>> {
        let [batch, n, h, dh] = q.dims();
        let y = causal_attention(q, keys, values, start, 1.0 / (dh as f64).sqrt()).reshape([
            batch,
            n,
            h * dh,
        ]);
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
