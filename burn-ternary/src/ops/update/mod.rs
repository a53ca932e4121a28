//! The ternary optimizer's per-weight update, as a backend op: the gradient
//! normalization, the stochastically rounded update-memory step, the trit
//! carries and the scale-code step (the rule is in [`crate::optim`]).
//!
//! The rounding noise is counter-based: entry `i` of a weight draws
//! `u = hash(i, key)` from a [`NoiseKey`] derived from `(seed, step, weight
//! index)`, so every backend (the reference on the host side, the CubeCL
//! kernel on the device) draws the same numbers without a host RNG, without
//! uploading a noise tensor, and a resumed run draws what an uninterrupted
//! one would. The tensor-level entry point is
//! [`functional::ternary_update`](crate::functional::ternary_update).

pub mod host;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;

use burn::tensor::{backend::Backend, Int, Tensor};

// The update's data types live in `crate::types`; re-exported at their old paths.
use crate::{
    packing::{decode_scale_tensor, SCALE_CODE_STEPS_PER_OCTAVE},
    types::GradNormalization,
};

/// `ln 2 / 16`: the derivative of a scale `2^(code/16)` with respect to its
/// code, divided by the scale.
pub(crate) const LN2_PER_CODE: f64 = core::f64::consts::LN_2 / SCALE_CODE_STEPS_PER_OCTAVE as f64;

/// Scale-code steps before rounding, `clamp(ĝ_code · scale_lr, −1, 1)`, from the
/// per-row `Σ_k G·T` (`dot: [rows]`), in Burn ops (the CubeCL `finalize_kernel`
/// computes the same in one launch).
pub(crate) fn code_steps<B: Backend>(
    dot: Tensor<B, 1>,
    scale_code: Tensor<B, 1, Int>,
    scale_lr: f64,
) -> Tensor<B, 1> {
    let scale = decode_scale_tensor(scale_code).cast(dot.dtype());
    let grad_code = dot * scale * LN2_PER_CODE;
    let code_rms = grad_code
        .clone()
        .powf_scalar(2.0)
        .mean()
        .sqrt()
        .add_scalar(1e-30);
    (grad_code / code_rms * scale_lr).clamp(-1.0, 1.0)
}

/// The gradient normalizer per row, `[rows]`, from the per-row `Σ_k G²`
/// (`sum_sq: [rows]`), in Burn ops (see `code_steps`).
pub(crate) fn row_normalizers<B: Backend>(
    sum_sq: Tensor<B, 1>,
    cols: usize,
    normalization: GradNormalization,
) -> Tensor<B, 1> {
    let rows = sum_sq.dims()[0];
    match normalization {
        GradNormalization::Tensor => (sum_sq.sum() / (rows * cols) as f64)
            .sqrt()
            .add_scalar(1e-30)
            .expand([rows]),
        GradNormalization::Row => (sum_sq / cols as f64).sqrt().add_scalar(1e-30),
    }
}
