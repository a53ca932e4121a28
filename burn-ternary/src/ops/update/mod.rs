//! The ternary optimizer's per-weight update, as a backend op: the gradient
//! normalization, the stochastically rounded update-memory step, the trit
//! carries and the scale-code step (the rule is in [`crate::optim`]).
//!
//! The rounding noise is counter-based: entry `i` of a weight draws
//! `u = hash(i, key)` from a [`NoiseKey`] derived from `(seed, step, weight
//! index)`, so every backend (the reference on the host side, the CubeCL
//! kernel on the device) draws the same numbers without a host RNG, without
//! uploading a noise tensor, and a resumed run draws what an uninterrupted
//! one would.

pub mod host;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;

use burn::tensor::{backend::Backend, Int, Tensor};

use crate::{
    backend::{TernaryBackend, TernaryState},
    error::{TernaryError, TernaryResult},
    optim::GradNormalization,
    packing::{decode_scale_tensor, memory_words, trit_words, SCALE_CODE_STEPS_PER_OCTAVE},
};

/// Hyper-parameters of one [`ternary_update`].
#[derive(Clone, Copy, Debug)]
pub struct UpdateHyper {
    /// Learning rate for the trits: expected memory movement per step is
    /// `lr · θ` units for a gradient entry of unit normalized size.
    pub lr: f64,
    /// Learning rate for the scale codes, in code steps.
    pub scale_lr: f64,
    /// Gradient normalization.
    pub normalization: GradNormalization,
}

/// The counter-based noise keys of one update of one weight: one stream for
/// the update memory (counter `row · cols + col`), one for the scale codes
/// (counter `row`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoiseKey {
    /// Key of the update-memory stream.
    pub memory: [u32; 2],
    /// Key of the scale-code stream.
    pub scale: [u32; 2],
}

impl NoiseKey {
    /// The keys of weight number `index` at optimizer step `step` of a run
    /// seeded with `seed` (splitmix64 of the three, so streams are independent).
    ///
    /// ```
    /// use burn_ternary::ops::update::NoiseKey;
    ///
    /// let key = NoiseKey::new(7, 0, 3);
    /// assert_eq!(key, NoiseKey::new(7, 0, 3));
    /// assert_ne!(key, NoiseKey::new(7, 1, 3));
    /// let u = key.memory_uniform(12);
    /// assert!((0.0..1.0).contains(&u));
    /// ```
    pub fn new(seed: u64, step: u64, index: u64) -> Self {
        let z = splitmix64(
            seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03),
        );
        let w = splitmix64(z ^ 0x5851_F42D_4C95_7F2D);
        Self {
            memory: [z as u32, (z >> 32) as u32],
            scale: [w as u32, (w >> 32) as u32],
        }
    }

    /// The memory stream's uniform number in `[0, 1)` for `counter`.
    pub fn memory_uniform(&self, counter: u32) -> f32 {
        counter_uniform(self.memory, counter)
    }

    /// The scale stream's uniform number in `[0, 1)` for `counter`.
    pub fn scale_uniform(&self, counter: u32) -> f32 {
        counter_uniform(self.scale, counter)
    }
}

fn splitmix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32");
/// the kernel computes the same function with wrapping `u32` arithmetic.
pub(crate) fn hash32(x: u32) -> u32 {
    let x = (x ^ (x >> 16)).wrapping_mul(0x7FEB_352D);
    let x = (x ^ (x >> 15)).wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

/// `u = hash(hash(counter ^ k0) + k1) / 2^32`, kept to 24 bits so that it is
/// exact in `f32` and strictly below 1.
pub(crate) fn counter_uniform(key: [u32; 2], counter: u32) -> f32 {
    let h = hash32(hash32(counter ^ key[0]).wrapping_add(key[1]));
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

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

/// New packed state of one weight after [`ternary_update`].
#[derive(Clone, Debug)]
pub struct UpdatedState<B: Backend> {
    /// Packed trits.
    pub trits: Tensor<B, 2, Int>,
    /// Packed update memory.
    pub memory: Tensor<B, 2, Int>,
    /// Scale codes.
    pub scale_code: Tensor<B, 1, Int>,
}

/// One update of a ternary weight from its dense gradient `grad: [rows, cols]`
/// and its packed state (the rule of [`crate::optim`]), on the backend's
/// update op (one fused kernel pass on CUDA and WGPU).
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use burn_ternary::optim::GradNormalization;
/// use burn_ternary::ops::update::{ternary_update, NoiseKey, UpdateHyper};
/// use burn_ternary::packing::{int_tensor, memory_words, trit_words, unpack_memory_tensor};
///
/// let device = Default::default();
/// let (rows, cols) = (2, 5);
/// let zeros = |words| int_tensor::<NdArray, 2>(vec![0; rows * words], [rows, words], &device);
/// let updated = ternary_update(
///     Tensor::<NdArray, 2>::ones([rows, cols], &device),
///     zeros(trit_words(cols)),
///     zeros(memory_words(cols)),
///     int_tensor(vec![0; rows], [rows], &device),
///     UpdateHyper { lr: 0.5, scale_lr: 0.0, normalization: GradNormalization::Tensor },
///     NoiseKey::new(0, 0, 0),
/// )
/// .unwrap();
/// // A positive gradient lowers the memory by ⌊32 + u⌋ = 32 units.
/// let memory = unpack_memory_tensor(updated.memory, cols).into_data().convert::<i64>();
/// let memory = memory.to_vec::<i64>().unwrap();
/// assert!(memory.iter().all(|m| *m == -32));
/// ```
pub fn ternary_update<B: TernaryBackend>(
    grad: Tensor<B, 2>,
    trits: Tensor<B, 2, Int>,
    memory: Tensor<B, 2, Int>,
    scale_code: Tensor<B, 1, Int>,
    hyper: UpdateHyper,
    key: NoiseKey,
) -> TernaryResult<UpdatedState<B>> {
    let [rows, cols] = grad.dims();
    let expect = |name: &'static str, want: Vec<usize>, got: Vec<usize>| {
        if want == got {
            Ok(())
        } else {
            Err(TernaryError::shape(name, format!("{want:?}"), &got))
        }
    };
    expect("trits", vec![rows, trit_words(cols)], trits.dims().to_vec())?;
    expect(
        "memory",
        vec![rows, memory_words(cols)],
        memory.dims().to_vec(),
    )?;
    expect("scale_code", vec![rows], scale_code.dims().to_vec())?;
    let state = B::ternary_update(
        grad.into_primitive().tensor(),
        TernaryState {
            trits: trits.into_primitive(),
            memory: memory.into_primitive(),
            scale_code: scale_code.into_primitive(),
        },
        cols,
        hyper,
        key,
    );
    Ok(UpdatedState {
        trits: Tensor::from_primitive(state.trits),
        memory: Tensor::from_primitive(state.memory),
        scale_code: Tensor::from_primitive(state.scale_code),
    })
}
