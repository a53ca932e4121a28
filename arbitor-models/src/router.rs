//! The output router: per-position routing of hidden states to the text
//! logits, the [`VideoHead`](crate::video::VideoHead) and the
//! [`TalkerHead`](crate::talker::TalkerHead).

use burn::{
    config::Config,
    module::Module,
    tensor::{activation::softmax, backend::Backend, Int, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    layers::{ArbLinear, LayerKind},
    util::{check_width, or_panic, positive},
    vocab::TEXT_VOCAB,
};

/// Route index of the text logits.
pub const ROUTE_TEXT: usize = 0;
/// Route index of the video head.
pub const ROUTE_VIDEO: usize = 1;
/// Route index of the talker head.
pub const ROUTE_TALK: usize = 2;
/// Number of routes.
pub const N_ROUTES: usize = 3;

/// Configuration of an [`OutputRouter`].
#[derive(Config, Debug)]
pub struct OutputRouterConfig {
    /// Model width.
    pub d_model: usize,
    /// Text vocabulary ([`TEXT_VOCAB`] = 297).
    #[config(default = "TEXT_VOCAB")]
    pub vocab: usize,
    /// Which layers it is built from.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl OutputRouterConfig {
    /// Builds the router, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<OutputRouter<B>> {
        positive("d_model", self.d_model)?;
        positive("vocab", self.vocab)?;
        Ok(OutputRouter {
            gate: self.layers.linear(self.d_model, N_ROUTES, device)?,
            text_head: self.layers.linear(self.d_model, self.vocab, device)?,
        })
    }

    /// Builds the router.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> OutputRouter<B> {
        or_panic(self.try_init(device))
    }
}

/// What an [`OutputRouter`] returns.
#[derive(Debug, Clone)]
pub struct RouterOutput<B: Backend> {
    /// Text logits `[batch, seq, vocab]`.
    pub text_logits: Tensor<B, 3>,
    /// Route gates `[batch, seq, 3]` (text, video, talk): softmax
    /// probabilities in training, one-hot of the best route in inference.
    pub gates: Tensor<B, 3>,
    /// Best route per position, `[batch, seq]`.
    pub routes: Tensor<B, 2, Int>,
    /// Video conditioning `[batch, d_model]`: the video-gate-weighted mean of the hidden states.
    pub video_cond: Tensor<B, 2>,
    /// Talker conditioning `[batch, seq, d_model]`: hidden states scaled by the talk gate.
    pub talker_cond: Tensor<B, 3>,
}

/// Per-position routing over three outputs: the text logits
/// (`text_head`), the video head and the talker head. A linear `gate`
/// scores the routes per position. In training the gates are a softmax, so
/// the heads' losses train the gate through the conditioning they receive;
/// in inference each position goes to its best route only.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::router::OutputRouterConfig;
///
/// let device = Default::default();
/// let router = OutputRouterConfig::new(16).init::<Flex>(&device);
/// let out = router.forward(Tensor::<Flex, 3>::ones([2, 5, 16], &device), true);
/// assert_eq!(out.text_logits.dims(), [2, 5, 297]);
/// assert_eq!(out.gates.dims(), [2, 5, 3]);
/// assert_eq!(out.video_cond.dims(), [2, 16]);
/// ```
#[derive(Module, Debug)]
pub struct OutputRouter<B: Backend> {
    /// Route scores, `d_model → 3`.
    pub gate: ArbLinear<B>,
    /// Text logits, `d_model → vocab`.
    pub text_head: ArbLinear<B>,
}

impl<B: TernaryBackend> OutputRouter<B> {
    /// Routes `hidden: [batch, seq, d_model]` (`training` picks soft or hard
    /// gates), or reports a width mismatch.
    pub fn try_forward(
        &self,
        hidden: Tensor<B, 3>,
        training: bool,
    ) -> TernaryResult<RouterOutput<B>> {
        check_width("hidden", &hidden, self.gate.dims()[1])?;
        let [batch, seq, d_model] = hidden.dims();
        let probs = softmax(self.gate.try_forward(hidden.clone())?, 2);
        let routes = probs.clone().argmax(2); // [batch, seq, 1]
        let gates = if training {
            probs
        } else {
            routes
                .clone()
                .reshape([batch, seq])
                .one_hot::<3>(N_ROUTES)
                .float()
        };
        let video = gates.clone().narrow(2, ROUTE_VIDEO, 1); // [batch, seq, 1]
        let video_cond =
            (hidden.clone() * video.clone()).sum_dim(1) / video.sum_dim(1).add_scalar(1e-6); // [batch, 1, d_model]
        let talker_cond = hidden.clone() * gates.clone().narrow(2, ROUTE_TALK, 1);
        Ok(RouterOutput {
            text_logits: self.text_head.try_forward(hidden)?,
            gates,
            routes: routes.reshape([batch, seq]),
            video_cond: video_cond.reshape([batch, d_model]),
            talker_cond,
        })
    }

    /// Routes `hidden: [batch, seq, d_model]`.
    ///
    /// # Panics
    /// If the last dimension of `hidden` is not `d_model`.
    pub fn forward(&self, hidden: Tensor<B, 3>, training: bool) -> RouterOutput<B> {
        or_panic(self.try_forward(hidden, training))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn shapes_audit_and_train_step_through_all_routes() {
        let router = OutputRouterConfig::new(16).init::<AD>(&Default::default());
        assert_audit(&router, 16 * 3 + 16 * 297);
        let hidden = randn([2, 5, 16], 1);
        let out = router.forward(hidden.clone(), true);
        assert_eq!(out.text_logits.dims(), [2, 5, 297]);
        assert_eq!(out.gates.dims(), [2, 5, 3]);
        assert_eq!(out.routes.dims(), [2, 5]);
        assert_eq!(out.talker_cond.dims(), [2, 5, 16]);
        assert_eq!(out.video_cond.dims(), [2, 16]);
        train_step(
            router,
            |m| {
                let out = m.forward(hidden.clone(), true);
                out.text_logits.powf_scalar(2.0).mean()
                    + out.video_cond.powf_scalar(2.0).mean()
                    + out.talker_cond.powf_scalar(2.0).mean()
            },
            &[],
        );
    }

    #[test]
    fn inference_gates_are_one_hot_of_the_best_route() {
        let router = OutputRouterConfig::new(8).init::<AD>(&Default::default());
        let hidden = randn([2, 6, 8], 3);
        let soft = router.forward(hidden.clone(), true);
        let hard = router.forward(hidden.clone(), false);
        let routes: Vec<i64> = hard.routes.into_data().convert::<i64>().to_vec().unwrap();
        let probs: Vec<f32> = soft.gates.into_data().to_vec().unwrap();
        let gates: Vec<f32> = hard.gates.into_data().to_vec().unwrap();
        for (i, r) in routes.iter().enumerate() {
            let p = &probs[i * 3..i * 3 + 3];
            let best = (0..3).fold(0, |b, k| if p[k] > p[b] { k } else { b });
            assert_eq!(*r as usize, best);
            for k in 0..3 {
                assert_eq!(gates[i * 3 + k], (k == best) as u8 as f32);
            }
        }
        // Hard talker conditioning keeps exactly the positions routed to the talker.
        let talk: Vec<f32> = hard.talker_cond.into_data().to_vec().unwrap();
        let h: Vec<f32> = hidden.into_data().to_vec().unwrap();
        for (i, r) in routes.iter().enumerate() {
            let keep = *r as usize == ROUTE_TALK;
            for k in 0..8 {
                assert_eq!(talk[i * 8 + k], if keep { h[i * 8 + k] } else { 0.0 });
            }
        }
    }
}
