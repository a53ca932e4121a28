//! [`BitNetMlp`]: the gated relu² MLP of a BitNet decoder layer.

use burn::{
    module::Module,
    nn::{RmsNorm, RmsNormConfig},
    tensor::{backend::Backend, Tensor},
};
use burn_ternary::{
    functional::relu2_gate, TernaryBackend, TernaryLinear, TernaryLinearConfig, TernaryResult,
};

use super::{
    config::BitNetConfig,
    quant::{apply_norm_of_scaled, maybe_quantize},
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
    /// `down_proj` (transformers' `weight_scale`; each projection's output is
    /// divided by its own), from [`BitNetConfig::weight_scales`]; `None`:
    /// none. `gate`'s and `up`'s fold into the sub-norm's epsilon, only
    /// `down`'s costs a kernel.
    #[module(skip)]
    pub weight_scale: Option<[f32; 3]>,
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
            weight_scale: None,
        })
    }
}

impl<B: TernaryBackend> BitNetMlp<B> {
    /// Applies the MLP to `x: [batch, seq, hidden]`, or names a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        // gate and up read the same input, quantized once.
        let xq = maybe_quantize(x, self.quantize_activations);
        let gated = relu2_gate(
            self.gate_proj.try_forward(xq.clone())?,
            self.up_proj.try_forward(xq)?,
        );
        // relu(g / sg)² · (u / su) = relu(g)² · u / (sg² · su): the
        // sub-norm's epsilon absorbs the factor.
        let [sg, su, sd] = self.weight_scale.unwrap_or([1.0; 3]).map(f64::from);
        let h = apply_norm_of_scaled(&self.ffn_sub_norm, gated, sg * sg * su);
        let y = self
            .down_proj
            .try_forward(maybe_quantize(h, self.quantize_activations))?;
        Ok(match self.weight_scale {
            Some(_) => y.div_scalar(sd),
            None => y,
        })
    }
}
