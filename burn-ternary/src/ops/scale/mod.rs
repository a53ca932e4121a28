//! Decoding a weight's integer scale codes into the float scales the other
//! ops take: `scale = 2^(code / 16)` per row.
//!
//! Every forward of a ternary module decodes its codes once. In Burn ops
//! that is three launches on a GPU backend (int-to-float cast, multiply,
//! `exp`), each of which costs more host time than a decode-size GEMV; the
//! CubeCL kernel (`kernel.rs`) does it in one.

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;

use burn::tensor::{Int, Tensor, TensorPrimitive};

use crate::backend::TernaryBackend;

/// The per-row scales `2^(code / 16)` of the scale codes `codes: [rows]`,
/// through the backend's [`TernaryBackend::ternary_decode_scale`] (one
/// kernel on the CubeCL backends).
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Int, Tensor};
/// use burn_ternary::ops::scale::decode_scale;
///
/// let device = Default::default();
/// let codes = Tensor::<NdArray, 1, Int>::from_ints([0, 16, -32], &device);
/// let scales = decode_scale(codes).into_data().to_vec::<f32>().unwrap();
/// assert!((scales[1] - 2.0).abs() < 1e-6 && (scales[2] - 0.25).abs() < 1e-6);
/// ```
pub fn decode_scale<B: TernaryBackend>(codes: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    Tensor::from_primitive(TensorPrimitive::Float(B::ternary_decode_scale(
        codes.into_primitive(),
    )))
}
