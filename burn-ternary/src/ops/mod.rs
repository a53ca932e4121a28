//! One folder per ternary op: `reference.rs` (Burn tensor ops, the test
//! oracle and the default on every backend), `backward.rs` (the `Autodiff<B>`
//! implementation) and `tests.rs` (reference vs a dense `f64` computation).
//!
//! The files sit at two levels of the crate's layering (see the crate
//! docs): `reference.rs`, `update/host.rs` and the helpers here use only
//! [`crate::types`] and [`crate::packing`], and the backend trait's default
//! bodies call them; `backward.rs` and `autodiff.rs` use the backend trait.
//! The tensor-level entry points are in [`crate::functional`].

pub mod act_quant;
pub mod attention;
mod autodiff;
pub mod conv1d;
pub mod denoise;
pub mod embedding;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod launch;
pub mod matmul;
pub mod relu2_gate;
pub mod rms_norm;
pub mod rope;
pub mod scale;
pub mod update;

use burn::tensor::{
    backend::Backend,
    ops::{FloatTensor, IntTensor},
    Int, Tensor, TensorPrimitive,
};

use crate::{packing::unpack_trits_tensor, types::TernaryPrimitive};

pub(crate) fn float<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

pub(crate) fn int<B: Backend, const D: usize>(t: IntTensor<B>) -> Tensor<B, D, Int> {
    Tensor::from_primitive(t)
}

pub(crate) fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// The dense `[rows, cols]` matrix `diag(scale) · T` of a ternary weight.
pub fn dense_weight<B: Backend>(weight: &TernaryPrimitive<B>) -> Tensor<B, 2> {
    let trits = unpack_trits_tensor(int::<B, 2>(weight.trits.clone()), weight.cols).float();
    trits * float::<B, 1>(weight.scale.clone()).reshape([weight.rows, 1])
}

#[cfg(test)]
pub(crate) mod test_util;
