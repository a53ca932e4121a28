//! Message passing over the tokens of a sequence.

use burn::{
    config::Config,
    module::Module,
    tensor::{
        activation::{gelu, sigmoid},
        backend::Backend,
        Tensor,
    },
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    layers::{ArbLinear, LayerKind},
    util::{check_width, or_panic, positive, rms_norm, window_mask_after},
};

/// Configuration of a [`Graph`].
#[derive(Config, Debug)]
pub struct GraphConfig {
    /// Model width (node features).
    pub d_model: usize,
    /// Width of the edge-scoring projections.
    #[config(default = 32)]
    pub d_edge: usize,
    /// Each token is linked to itself and the `window − 1` tokens before it.
    #[config(default = 4)]
    pub window: usize,
    /// Rounds of message passing (weights shared across rounds).
    #[config(default = 2)]
    pub rounds: usize,
    /// Which layers it is built from.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl GraphConfig {
    /// Builds the layer, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<Graph<B>> {
        positive("d_model", self.d_model)?;
        positive("d_edge", self.d_edge)?;
        positive("window", self.window)?;
        positive("rounds", self.rounds)?;
        let (d, e) = (self.d_model, self.d_edge);
        Ok(Graph {
            source: self.layers.linear(d, e, device)?,
            target: self.layers.linear(d, e, device)?,
            message: self.layers.linear(d, d, device)?,
            update: self.layers.linear(d, d, device)?,
            window: self.window,
            rounds: self.rounds,
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Graph<B> {
        or_panic(self.try_init(device))
    }
}

/// Message passing over a token graph: node `i` is linked to nodes
/// `j ∈ [i − window + 1, i]` (causal). Each round, with `n = rms(h)`:
/// edge gates `e_ij = σ(⟨target(n_i), source(n_j)⟩ / √d_edge)` on the links,
/// the gated mean of the messages `message(n_j)`, and the residual update
/// `h ← h + update(gelu(agg))`. Unlike attention, the gates are independent
/// sigmoids, so a node can take in several neighbours fully or none.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::graph::GraphConfig;
///
/// let device = Default::default();
/// let graph = GraphConfig::new(16).init::<Flex>(&device);
/// assert_eq!(graph.forward(Tensor::<Flex, 3>::ones([2, 6, 16], &device)).dims(), [2, 6, 16]);
/// ```
#[derive(Module, Debug)]
pub struct Graph<B: Backend> {
    /// Edge-score projection of the sending node.
    pub source: ArbLinear<B>,
    /// Edge-score projection of the receiving node.
    pub target: ArbLinear<B>,
    /// Message projection.
    pub message: ArbLinear<B>,
    /// Node update projection.
    pub update: ArbLinear<B>,
    /// Link window (itself included).
    pub window: usize,
    /// Rounds of message passing.
    pub rounds: usize,
}

impl<B: TernaryBackend> Graph<B> {
    /// Runs message passing over `x: [batch, seq, d_model]`, or reports a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        // The whole sequence is the new positions of an empty cache.
        self.try_forward_cached(x, &mut Vec::new())
    }

    /// Runs message passing over the new positions `x: [batch, n, d_model]`
    /// of a sequence, given the normed inputs of each round's last
    /// `window − 1` earlier positions in `cache` (one entry per round, empty
    /// at the start), and
    /// updates it: the outputs [`try_forward`](Self::try_forward) gives these
    /// positions over the whole sequence.
    pub fn try_forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: &mut Vec<Option<Tensor<B, 3>>>,
    ) -> TernaryResult<Tensor<B, 3>> {
        let [d_model, _] = self.update.dims();
        check_width("x", &x, d_model)?;
        let [batch, n, _] = x.dims();
        let d_edge = self.source.dims()[0];
        let device = x.device();
        let mut h = x;
        for round in 0..self.rounds {
            let normed = rms_norm(h.clone());
            cache.resize(self.rounds, None);
            let all = match &cache[round] {
                Some(earlier) => Tensor::cat(vec![earlier.clone(), normed.clone()], 1),
                None => normed.clone(),
            };
            let total = all.dims()[1];
            let m = total - n;
            let links = window_mask_after::<B>(m, n, self.window, &device)
                .reshape([1, n, total])
                .expand([batch, n, total]);
            let src = self.source.try_forward(all.clone())?;
            let dst = self.target.try_forward(normed)?;
            let scores = dst.matmul(src.swap_dims(1, 2)) / (d_edge as f64).sqrt();
            let gates = sigmoid(scores) * links;
            let norm = gates.clone().sum_dim(2).add_scalar(1e-6);
            let agg = gates.matmul(self.message.try_forward(all.clone())?) / norm;
            h = h + self.update.try_forward(gelu(agg))?;
            let keep = total.min(self.window.saturating_sub(1));
            cache[round] = (keep > 0).then(|| all.narrow(1, total - keep, keep));
        }
        Ok(h)
    }

    /// Runs message passing over `x: [batch, seq, d_model]`.
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
    fn shapes_audit_train_step_and_locality() {
        let c = GraphConfig::new(16).with_window(2).with_rounds(1);
        let graph = c.init::<AD>(&Default::default());
        assert_audit(&graph, 2 * 16 * 32 + 2 * 16 * 16);
        let x = randn([1, 6, 16], 1);
        let y = graph.forward(x.clone());
        assert_eq!(y.dims(), [1, 6, 16]);
        // With a window of 2 and one round, changing token 2 only affects outputs 2 and 3.
        let x2 = Tensor::cat(
            vec![
                x.clone().narrow(1, 0, 2),
                randn([1, 1, 16], 2),
                x.clone().narrow(1, 3, 3),
            ],
            1,
        );
        let y2 = graph.forward(x2);
        for t in 0..6 {
            let a: Vec<f32> = y.clone().narrow(1, t, 1).into_data().to_vec().unwrap();
            let b: Vec<f32> = y2.clone().narrow(1, t, 1).into_data().to_vec().unwrap();
            let same = a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-5);
            assert_eq!(same, !(2..=3).contains(&t), "position {t}");
        }
        train_step(graph, |m| m.forward(x.clone()).powf_scalar(2.0).mean(), &[]);
    }
}
