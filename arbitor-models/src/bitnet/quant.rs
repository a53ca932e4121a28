//! Per-token absmax quantization of a ternary linear's input to int8, as
//! upstream BitNet b1.58 does before every BitLinear (transformers' BitNet
//! `ActQuant`): burn-ternary's
//! [`quantize_activations`](burn_ternary::functional::quantize_activations),
//! one kernel on CUDA and WGPU.

use burn::tensor::Tensor;
use burn_ternary::{functional::quantize_activations, TernaryBackend};

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
