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
        // The whole sequence, from a zero state.
        self.try_forward_cached(x, &mut None)
    }

    /// Mixes the new positions `x: [batch, n, d_model]` of a sequence whose
    /// earlier positions left the recurrent state `state` (`[batch, 1,
    /// d_model]`, `None` at the start), and updates it: the same outputs as
    /// [`try_forward`](Self::try_forward) over the whole sequence gives for
    /// these positions.
    pub fn try_forward_cached(
        &self,
        x: Tensor<B, 3>,
        state: &mut Option<Tensor<B, 3>>,
    ) -> TernaryResult<Tensor<B, 3>> {
        let [d_model, _] = self.out.dims();
        check_width("x", &x, d_model)?;
        let seq = x.dims()[1];
        let a = sigmoid(self.gate.try_forward(x.clone())?);
        let v = self.input.try_forward(x)?;
        let update = (a.clone().neg().add_scalar(1.0)) * v;
        let (products, states) = linear_scan_products(a, update, seq);
        let states = match state.take() {
            Some(h0) => states + products * h0,
            None => states,
        };
        *state = Some(states.clone().narrow(1, seq - 1, 1));
        self.out.try_forward(states)
    }

    /// Mixes `x: [batch, seq, d_model]`.
    ///
    /// # Panics
    /// If the last dimension of `x` is not `d_model`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        or_panic(self.try_forward(x))
    }
}

/// The states `h_t = a_t · h_{t−1} + u_t` (`h_{−1} = 0`) of every position
/// of `a, u: [batch, seq, d]`, by a parallel prefix scan over the sequence
/// axis: ⌈log₂ seq⌉ rounds of a few whole-tensor ops, where the step-by-step
/// recurrence launches several ops per position (the launches dominated a
/// training step on a GPU).
///
/// Round `d` (1, 2, 4, …) folds each position's pair `(A, U)` with the pair
/// `d` positions earlier: `U_t ← U_t + A_t · U_{t−d}`, `A_t ← A_t · A_{t−d}`.
pub fn linear_scan<B: Backend>(a: Tensor<B, 3>, u: Tensor<B, 3>, seq: usize) -> Tensor<B, 3> {
    linear_scan_products(a, u, seq).1
}

/// [`linear_scan`] and the running products `Π_{s≤t} a_s` of every position
/// (what a state carried in from before the sequence is multiplied by):
/// `(products, states)`.
pub fn linear_scan_products<B: Backend>(
    a: Tensor<B, 3>,
    u: Tensor<B, 3>,
    seq: usize,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let (mut a, mut u) = (a, u);
    let [batch, _, d_model] = u.dims();
    let device = u.device();
    let mut d = 1;
    while d < seq {
        let kept = seq - d;
        let earlier_u = Tensor::cat(
            vec![
                Tensor::zeros([batch, d, d_model], &device),
                u.clone().narrow(1, 0, kept),
            ],
            1,
        );
        let earlier_a = Tensor::cat(
            vec![
                Tensor::ones([batch, d, d_model], &device),
                a.clone().narrow(1, 0, kept),
            ],
            1,
        );
        u = u + a.clone() * earlier_u;
        a = a * earlier_a;
        d *= 2;
    }
    (a, u)
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

    #[test]
    fn the_scan_equals_the_step_by_step_recurrence() {
        for (seq, seed) in [(1, 1), (2, 2), (5, 3), (8, 4), (13, 5), (64, 6)] {
            let a = burn::tensor::activation::sigmoid(randn([2, seq, 3], seed));
            let u = randn([2, seq, 3], seed + 100);
            let got: Vec<f32> = linear_scan(a.clone(), u.clone(), seq)
                .into_data()
                .to_vec()
                .unwrap();
            let a: Vec<f32> = a.into_data().to_vec().unwrap();
            let u: Vec<f32> = u.into_data().to_vec().unwrap();
            for b in 0..2 {
                for c in 0..3 {
                    let mut h = 0f32;
                    for t in 0..seq {
                        let i = (b * seq + t) * 3 + c;
                        h = a[i] * h + u[i];
                        assert!(
                            (got[i] - h).abs() <= 1e-5 * (1.0 + h.abs()),
                            "seq {seq} t {t}: {} vs {h}",
                            got[i]
                        );
                    }
                }
            }
        }
    }
}
