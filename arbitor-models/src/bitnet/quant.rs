//! Per-token absmax quantization of a ternary linear's input to int8, as
//! upstream BitNet b1.58 does before every BitLinear (transformers' BitNet
//! `ActQuant`): burn-ternary's
//! [`quantize_activations`](burn_ternary::functional::quantize_activations),
//! one kernel on CUDA and WGPU.

use burn::{
    module::Param,
    tensor::{backend::Backend, Tensor},
};
use burn_ternary::{functional::quantize_activations, TernaryBackend};

/// Upstream's per-tensor float scales of a module's projections, one per
/// projection in declaration order, frozen (see [`BitNetConfig::weight_scales`](super::BitNetConfig::weight_scales)).
pub(crate) fn weight_scales<B: Backend>(
    count: usize,
    enabled: bool,
    device: &B::Device,
) -> Option<Param<Tensor<B, 1>>> {
    enabled.then(|| Param::from_tensor(Tensor::ones([count], device)).set_require_grad(false))
}

/// `y` divided by projection `index`'s upstream scale, when there are scales.
/// The slice is a view and the division one broadcast kernel.
pub(crate) fn unscale<B: Backend, const D: usize>(
    y: Tensor<B, D>,
    scales: &Option<Param<Tensor<B, 1>>>,
    index: usize,
) -> Tensor<B, D> {
    match scales {
        None => y,
        Some(s) => y.div(s.val().slice(index..index + 1).reshape([1; D])),
    }
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
