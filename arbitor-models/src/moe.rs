//! A mixture of ternary experts with a top-k router and a load-balancing loss.

use burn::{
    config::Config,
    module::Module,
    tensor::{
        activation::{gelu, softmax},
        backend::Backend,
        Int, Tensor,
    },
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    layers::{ArbLinear, LayerKind},
    util::{check_width, config_error, or_panic, positive},
};

/// Configuration of a [`MoE`].
#[derive(Config, Debug)]
pub struct MoEConfig {
    /// Model width.
    pub d_model: usize,
    /// Hidden width of each expert.
    pub d_hidden: usize,
    /// Number of experts.
    #[config(default = 4)]
    pub n_experts: usize,
    /// Experts per token.
    #[config(default = 2)]
    pub top_k: usize,
    /// Which layers it is built from.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl MoEConfig {
    /// Builds the layer, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<MoE<B>> {
        positive("d_model", self.d_model)?;
        positive("d_hidden", self.d_hidden)?;
        positive("n_experts", self.n_experts)?;
        positive("top_k", self.top_k)?;
        if self.top_k > self.n_experts {
            return Err(config_error(
                "top_k",
                self.top_k,
                &format!("must not exceed n_experts = {}", self.n_experts),
            ));
        }
        let experts = (0..self.n_experts)
            .map(|_| {
                Ok(Expert {
                    up: self.layers.linear(self.d_model, self.d_hidden, device)?,
                    down: self.layers.linear(self.d_hidden, self.d_model, device)?,
                })
            })
            .collect::<TernaryResult<Vec<_>>>()?;
        Ok(MoE {
            router: self.layers.linear(self.d_model, self.n_experts, device)?,
            experts,
            top_k: self.top_k,
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> MoE<B> {
        or_panic(self.try_init(device))
    }
}

/// One expert of a [`MoE`]: `down(gelu(up(x)))`.
#[derive(Module, Debug)]
pub struct Expert<B: Backend> {
    /// Up-projection.
    pub up: ArbLinear<B>,
    /// Down-projection.
    pub down: ArbLinear<B>,
}

/// What a [`MoE`] returns.
#[derive(Debug, Clone)]
pub struct MoEOutput<B: Backend> {
    /// Mixed expert outputs `[batch, seq, d_model]`.
    pub output: Tensor<B, 3>,
    /// Switch-style load-balancing loss `E · Σ_e f_e · P_e`, `[1]` (1 when balanced).
    pub balance_loss: Tensor<B, 1>,
    /// The chosen experts per token, best first, `[batch, seq, top_k]`.
    pub experts: Tensor<B, 3, Int>,
}

/// A mixture of experts (ternary unless built with [`LayerKind::Dense`]).
/// The router (an [`ArbLinear`]) gives
/// each token a softmax over experts; the `top_k` best are kept and their
/// probabilities renormalized into gates; the output is the gated sum of
/// those experts. The balance loss is `E · Σ_e f_e · P_e`, with `f_e` the
/// share of routing slots that went to expert `e` and `P_e` its mean router
/// probability.
///
/// The experts are evaluated densely and gated (non-selected experts get a
/// gate of exactly 0), which is the fastest form at the small widths of the
/// default configs.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::moe::MoEConfig;
///
/// let device = Default::default();
/// let moe = MoEConfig::new(16, 32).init::<Flex>(&device);
/// let out = moe.forward(Tensor::<Flex, 3>::ones([2, 3, 16], &device));
/// assert_eq!(out.output.dims(), [2, 3, 16]);
/// assert_eq!(out.experts.dims(), [2, 3, 2]);
/// ```
#[derive(Module, Debug)]
pub struct MoE<B: Backend> {
    /// The router, `d_model → n_experts`.
    pub router: ArbLinear<B>,
    /// The experts.
    pub experts: Vec<Expert<B>>,
    /// Experts per token.
    pub top_k: usize,
}

impl<B: TernaryBackend> MoE<B> {
    /// Routes and mixes `x: [batch, seq, d_model]`, or reports a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<MoEOutput<B>> {
        let [n_experts, d_model] = self.router.dims();
        check_width("x", &x, d_model)?;
        let [batch, seq, _] = x.dims();
        let n = batch * seq;
        let flat = x.reshape([n, d_model]);
        let probs = softmax(self.router.try_forward(flat.clone())?, 1); // [n, E]
        let (top, experts) = probs.clone().detach().topk_with_indices(self.top_k, 1);
        let kth = top.narrow(1, self.top_k - 1, 1).expand([n, n_experts]);
        let chosen = probs.clone().detach().greater_equal(kth).float(); // [n, E]
        let gated = probs.clone() * chosen.clone();
        let gates = gated.clone() / gated.sum_dim(1).add_scalar(1e-9);
        let mut output = Tensor::<B, 2>::zeros([n, d_model], &flat.device());
        for (e, expert) in self.experts.iter().enumerate() {
            let y = expert
                .down
                .try_forward(gelu(expert.up.try_forward(flat.clone())?))?;
            output = output + y * gates.clone().narrow(1, e, 1);
        }
        let share = chosen.sum_dim(0) / (n * self.top_k) as f64; // f_e, [1, E]
        let mean_prob = probs.mean_dim(0); // P_e, [1, E]
        let balance_loss = (share * mean_prob).sum().mul_scalar(n_experts as f64);
        Ok(MoEOutput {
            output: output.reshape([batch, seq, d_model]),
            balance_loss,
            experts: experts.reshape([batch, seq, self.top_k]),
        })
    }

    /// Routes and mixes `x: [batch, seq, d_model]`.
    ///
    /// # Panics
    /// If the last dimension of `x` is not `d_model`.
    pub fn forward(&self, x: Tensor<B, 3>) -> MoEOutput<B> {
        or_panic(self.try_forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn shapes_audit_and_train_step() {
        let c = MoEConfig::new(16, 24).with_n_experts(3).with_top_k(2);
        let moe = c.init::<AD>(&Default::default());
        assert_audit(&moe, 16 * 3 + 3 * 2 * 16 * 24);
        let x = randn([2, 8, 16], 1);
        let out = moe.forward(x.clone());
        assert_eq!(out.output.dims(), [2, 8, 16]);
        assert_eq!(out.experts.dims(), [2, 8, 2]);
        // Recompute E · Σ f_e · P_e on the host from the router's
        // probabilities and the experts the forward pass chose.
        let logits = moe.router.forward(x.clone().reshape([16, 16]));
        let probs: Vec<f32> = softmax(logits, 1).into_data().to_vec().unwrap();
        let chosen: Vec<i64> = out
            .experts
            .clone()
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        let (mut share, mut mean_prob) = ([0f32; 3], [0f32; 3]);
        for token in 0..16 {
            for e in 0..3 {
                mean_prob[e] += probs[token * 3 + e] / 16.0;
            }
            for k in 0..2 {
                share[chosen[token * 2 + k] as usize] += 1.0 / 32.0;
            }
        }
        let expected: f32 = 3.0 * (0..3).map(|e| share[e] * mean_prob[e]).sum::<f32>();
        let balance: f32 = out.balance_loss.into_scalar();
        assert!((balance - expected).abs() < 1e-5, "{balance} vs {expected}");
        assert!((0.0..=3.0).contains(&balance), "{balance}");
        train_step(
            moe,
            |m| {
                let out = m.forward(x.clone());
                out.output.powf_scalar(2.0).mean() + out.balance_loss.mul_scalar(0.01)
            },
            &[],
        );
    }

    #[test]
    fn top_one_equals_the_chosen_expert() {
        let moe = MoEConfig::new(8, 8)
            .with_n_experts(3)
            .with_top_k(1)
            .init::<AD>(&Default::default());
        let x = randn([1, 5, 8], 3);
        let out = moe.forward(x.clone());
        let chosen: Vec<i64> = out.experts.into_data().convert::<i64>().to_vec().unwrap();
        let y: Vec<f32> = out.output.into_data().to_vec().unwrap();
        for (t, e) in chosen.iter().enumerate() {
            let expert = &moe.experts[*e as usize];
            let xt = x.clone().narrow(1, t, 1);
            let want: Vec<f32> = expert
                .down
                .forward(gelu(expert.up.forward(xt)))
                .into_data()
                .to_vec()
                .unwrap();
            for (a, b) in want.iter().zip(&y[t * 8..(t + 1) * 8]) {
                assert!((a - b).abs() < 1e-4, "token {t}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn top_k_above_expert_count_is_named() {
        let err = MoEConfig::new(8, 8)
            .with_n_experts(2)
            .with_top_k(3)
            .try_init::<AD>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("top_k"), "{err}");
    }
}
