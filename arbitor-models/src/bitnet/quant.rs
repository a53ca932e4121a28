//! Per-token absmax quantization of a ternary linear's input to int8, as
//! upstream BitNet b1.58 does before every BitLinear (transformers' BitNet
//! `ActQuant`): burn-ternary's
//! [`quantize_activations`](burn_ternary::functional::quantize_activations),
//! one kernel on CUDA and WGPU.

use burn::{nn::RmsNorm, tensor::Tensor};
use burn_ternary::{
    functional::{quantize_activations, rms_norm},
    TernaryBackend,
};

/// `norm` applied to `x` by burn-ternary's fused RMS norm (one kernel on
/// CUDA and WGPU, Burn's `RmsNorm` formula).
pub(crate) fn apply_norm<B: TernaryBackend, const D: usize>(
    norm: &RmsNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    rms_norm(x, Some(norm.gamma.val()), norm.epsilon)
}

/// `norm` applied to `x / c` for a host scalar `c > 0`, without dividing:
/// `RMSNorm(x / c, ε) = RMSNorm(x, ε·c²)` exactly (the gain multiplies the
/// normalized vector), so an upstream scale in front of a norm costs no
/// kernel.
pub(crate) fn apply_norm_of_scaled<B: TernaryBackend, const D: usize>(
    norm: &RmsNorm<B>,
    x: Tensor<B, D>,
    c: f64,
) -> Tensor<B, D> {
    rms_norm(x, Some(norm.gamma.val()), norm.epsilon * c * c)
}

/// `x` quantized when `enabled`, else `x` itself.
pub(crate) fn maybe_quantize<B: TernaryBackend, const D: usize>(
    x: Tensor<B, D>,
    enabled: bool,
) -> Tensor<B, D> {
    if enabled {
        quantize_activations(x)
    } else {
        x
    }
}
