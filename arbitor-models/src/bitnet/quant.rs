//! Per-token absmax quantization of a ternary linear's input to int8, as
//! upstream BitNet b1.58 does before every BitLinear.

use burn::tensor::{backend::Backend, Tensor};

/// Rounds every row (the last dimension) of `x` to the int8 grid of its
/// absmax, in float: `round(x · s).clamp(−128, 127) / s` with
/// `s = 127 / max(max|x|, 1e−5)` (transformers' BitNet `ActQuant`; rounding
/// half to even like `torch.round`).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::bitnet::quantize_activations;
///
/// let x = Tensor::<Flex, 2>::from_floats([[1.27, 0.5, -0.0101]], &Default::default());
/// let q: Vec<f32> = quantize_activations(x).into_data().to_vec().unwrap();
/// // The step is 1.27 / 127 = 0.01: 0.5 stays, -0.0101 becomes -0.01.
/// assert!((q[0] - 1.27).abs() < 1e-6 && (q[1] - 0.5).abs() < 1e-6 && (q[2] + 0.01).abs() < 1e-6);
/// ```
pub fn quantize_activations<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let scale = x
        .clone()
        .abs()
        .max_dim(D - 1)
        .clamp_min(1e-5)
        .recip()
        .mul_scalar(127.0);
    (x * scale.clone()).round().clamp(-128.0, 127.0) / scale
}

/// `x` quantized when `enabled`, else `x` itself.
pub(crate) fn maybe_quantize<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    enabled: bool,
) -> Tensor<B, D> {
    if enabled {
        quantize_activations(x)
    } else {
        x
    }
}
