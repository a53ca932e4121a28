//! [`BitNetMlp`]: the gated relu² MLP of a BitNet decoder layer.

use burn::{
    module::{Module, Param},
    nn::{RmsNorm, RmsNormConfig},
    tensor::{activation::relu, backend::Backend, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryLinear, TernaryLinearConfig, TernaryResult};

use super::{
    config::BitNetConfig,
    quant::{maybe_quantize, unscale, weight_scales},
};

/// The MLP of one BitNet decoder layer (transformers' `BitNetMLP`, same
/// parameter names): `down_proj(ffn_sub_norm(relu(gate_proj(x))² ·
/// up_proj(x)))`, ternary projections without biases.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::bitnet::{BitNetConfig, BitNetMlp};
///
/// let device = Default::default();
/// let mlp = BitNetMlp::<Flex>::new(&BitNetConfig::new(24, 40, 1, 6, 2, 30), &device).unwrap();
/// assert_eq!(mlp.try_forward(Tensor::ones([2, 3, 24], &device)).unwrap().dims(), [2, 3, 24]);
/// ```
#[derive(Module, Debug)]
pub struct BitNetMlp<B: Backend> {
    /// Gate projection `[intermediate, hidden]`.
    pub gate_proj: TernaryLinear<B>,
    /// Up projection `[intermediate, hidden]`.
    pub up_proj: TernaryLinear<B>,
    /// Down projection `[hidden, intermediate]`.
    pub down_proj: TernaryLinear<B>,
    /// RMS norm of the gated product before `down_proj`.
    pub ffn_sub_norm: RmsNorm<B>,
    /// Whether the projections' inputs are quantized to int8 per token.
    pub quantize_activations: bool,
    /// Upstream's per-tensor float scales of `gate_proj`, `up_proj`,
    /// `down_proj` in this order (transformers' `weight_scale`), frozen; each
    /// projection's output is divided by its own. Present when
    /// [`BitNetConfig::weight_scales`].
    pub weight_scale: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> BitNetMlp<B> {
    /// Builds the MLP with random ternary weights, or names an invalid config value.
    pub fn new(config: &BitNetConfig, device: &B::Device) -> TernaryResult<Self> {
        config.validate()?;
        let (d, i) = (config.hidden_size, config.intermediate_size);
        Ok(Self {
            gate_proj: TernaryLinearConfig::new(d, i).try_init(device)?,
            up_proj: TernaryLinearConfig::new(d, i).try_init(device)?,
            down_proj: TernaryLinearConfig::new(i, d).try_init(device)?,
            ffn_sub_norm: RmsNormConfig::new(i)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
                .no_grad(),
            quantize_activations: config.quantize_activations,
            weight_scale: weight_scales(3, config.weight_scales, device),
        })
    }
}

impl<B: TernaryBackend> BitNetMlp<B> {
    /// Applies the MLP to `x: [batch, seq, hidden]`, or names a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        // gate and up read the same input, quantized once.
        let xq = maybe_quantize(x, self.quantize_activations);
        let ws = &self.weight_scale;
        let gate = unscale(self.gate_proj.try_forward(xq.clone())?, ws, 0);
        let up = unscale(self.up_proj.try_forward(xq)?, ws, 1);
        let h = self.ffn_sub_norm.forward(relu(gate).powi_scalar(2) * up);
        let y = self
            .down_proj
            .try_forward(maybe_quantize(h, self.quantize_activations))?;
        Ok(unscale(y, ws, 2))
    }
}
