//! A gated linear recurrent mixer with ternary projections.

use burn::{
    config::Config,
    module::Module,
    tensor::{activation::sigmoid, backend::Backend, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    layers::{ArbLinear, LayerKind},
    util::{check_width, or_panic, positive},
};

/// Configuration of a [`RecurrentMixer`].
#[derive(Config, Debug)]
pub struct RecurrentMixerConfig {
    /// Model width.
    pub d_model: usize,
    /// Which layers it is built from.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl RecurrentMixerConfig {
    /// Builds the mixer, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<RecurrentMixer<B>> {
        positive("d_model", self.d_model)?;
        let proj = || self.layers.linear(self.d_model, self.d_model, device);
        Ok(RecurrentMixer {
            input: proj()?,
            gate: proj()?,
            out: proj()?,
        })
    }

    /// Builds the mixer.
    ///
    /// # Panics
    /// If `d_model` is zero.
    pub fn init<B: Backend>(&self, device: &B::Device) -> RecurrentMixer<B> {
        or_panic(self.try_init(device))
    }
}

/// A gated linear recurrence over the sequence:
/// `a_t = σ(gate(x_t))`, `h_t = a_t ⊙ h_{t−1} + (1 − a_t) ⊙ input(x_t)`,
/// `y_t = out(h_t)`, with `h_{−1} = 0`. Causal by construction.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::recurrent::RecurrentMixerConfig;
///
/// let device = Default::default();
/// let mixer = RecurrentMixerConfig::new(8).init::<Flex>(&device);
/// assert_eq!(mixer.forward(Tensor::<Flex, 3>::ones([2, 4, 8], &device)).dims(), [2, 4, 8]);
/// ```
#[derive(Module, Debug)]
pub struct RecurrentMixer<B: Backend> {
    /// Input projection (the candidate state).
    pub input: ArbLinear<B>,
    /// Forget-gate projection.
    pub gate: ArbLinear<B>,
    /// Output projection.
    pub out: ArbLinear<B>,
}

impl<B: TernaryBackend> RecurrentMixer<B> {
    /// Mixes `x: [batch, seq, d_model]`, or reports a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let [d_model, _] = self.out.dims();
        check_width("x", &x, d_model)?;
        let [batch, seq, _] = x.dims();
        let a = sigmoid(self.gate.try_forward(x.clone())?);
        let v = self.input.try_forward(x)?;
        let update = (a.clone().neg().add_scalar(1.0)) * v;
        let mut h = Tensor::<B, 3>::zeros([batch, 1, d_model], &a.device());
        let mut states = Vec::with_capacity(seq);
        for t in 0..seq {
            h = a.clone().narrow(1, t, 1) * h + update.clone().narrow(1, t, 1);
            states.push(h.clone());
        }
        self.out.try_forward(Tensor::cat(states, 1))
    }

    /// Mixes `x: [batch, seq, d_model]`.
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
        let mixer = RecurrentMixerConfig::new(12).init::<AD>(&Default::default());
        assert_audit(&mixer, 3 * 12 * 12);
        let x = randn([2, 5, 12], 1);
        let y = mixer.forward(x.clone());
        assert_eq!(y.dims(), [2, 5, 12]);
        let x2 = Tensor::cat(vec![x.clone().narrow(1, 0, 3), randn([2, 2, 12], 2)], 1);
        let a: Vec<f32> = y.narrow(1, 0, 3).into_data().to_vec().unwrap();
        let b: Vec<f32> = mixer
            .forward(x2)
            .narrow(1, 0, 3)
            .into_data()
            .to_vec()
            .unwrap();
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-5));
        train_step(mixer, |m| m.forward(x.clone()).powf_scalar(2.0).mean(), &[]);
    }
}
