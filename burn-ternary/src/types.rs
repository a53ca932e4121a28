//! Plain data types shared by every layer of the crate: a ternary weight as
//! the ops see it, its trainable state, the convolution geometry, the update
//! op's hyper-parameters and noise keys, and the update threshold.
//!
//! This is the bottom of the crate: it holds data and the pure arithmetic on
//! it, and imports nothing from the rest of the crate. The ops, the backend
//! trait, the layers and the optimizer all build on it.

use burn::{
    backend::autodiff::{checkpoint::strategy::CheckpointStrategy, Autodiff},
    config::Config,
    tensor::{
        backend::Backend,
        ops::{FloatTensor, IntTensor},
        Int, Tensor,
    },
};

/// Update-memory threshold θ: the latent weight is `ℓ = T·θ + M` with
/// `M ∈ [−θ, θ]`, so one trit step is θ memory units.
pub const UPDATE_THRESHOLD: i32 = 64;

/// A ternary weight as the ops see it: logical `[rows, cols]` matrix
/// `W = diag(scale) · T`, with `T` packed 16 trits per `i32` word along `cols`.
#[derive(Clone, Debug)]
pub struct TernaryPrimitive<B: Backend> {
    /// Packed trits, `[rows, ceil(cols / 16)]`, dtype `i32`.
    pub trits: IntTensor<B>,
    /// Decoded per-row scales, `[rows]` (a transient float, derived from the integer codes).
    pub scale: FloatTensor<B>,
    /// Logical number of rows (output features, vocabulary size, output channels).
    pub rows: usize,
    /// Logical number of columns, the reduction dimension.
    pub cols: usize,
}

impl<B: Backend, C: CheckpointStrategy> TernaryPrimitive<Autodiff<B, C>> {
    /// The same weight on the inner backend (trits are never tracked; the
    /// scale is a constant derived from integer codes).
    pub(crate) fn into_inner(self) -> TernaryPrimitive<B> {
        TernaryPrimitive {
            trits: self.trits,
            scale: self.scale.primitive,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// The packed, trainable state of one ternary weight of logical shape
/// `[rows, cols]`, as the update op reads and writes it.
#[derive(Clone, Debug)]
pub struct TernaryState<B: Backend> {
    /// Packed trits, `[rows, ceil(cols / 16)]`, dtype `i32`.
    pub trits: IntTensor<B>,
    /// Packed signed 8-bit update memory, `[rows, ceil(cols / 4)]`, dtype `i32`.
    pub memory: IntTensor<B>,
    /// Scale codes, `[rows]`, dtype `i32`.
    pub scale_code: IntTensor<B>,
}

/// New packed state of one weight after
/// [`ternary_update`](crate::functional::ternary_update).
#[derive(Clone, Debug)]
pub struct UpdatedState<B: Backend> {
    /// Packed trits.
    pub trits: Tensor<B, 2, Int>,
    /// Packed update memory.
    pub memory: Tensor<B, 2, Int>,
    /// Scale codes.
    pub scale_code: Tensor<B, 1, Int>,
}

/// Geometry of a ternary 1-D convolution. The weight is the logical matrix
/// `[out_channels, in_channels * kernel_size]`, column index `c * kernel_size + k`.
///
/// ```
/// use burn_ternary::types::Conv1dGeometry;
///
/// let g = Conv1dGeometry { in_channels: 3, kernel_size: 5, stride: 2, padding: 0, dilation: 1 };
/// assert_eq!(g.output_len(41), Some(19));
/// assert_eq!(g.output_len(4), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dGeometry {
    /// Input channels.
    pub in_channels: usize,
    /// Kernel width.
    pub kernel_size: usize,
    /// Stride between output positions.
    pub stride: usize,
    /// Zero padding on each side of the input.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
}

impl Conv1dGeometry {
    /// Output length of the convolution for an input of `length` positions.
    /// Returns `None` when the (padded) input is shorter than the kernel's reach.
    pub fn output_len(&self, length: usize) -> Option<usize> {
        let reach = self.dilation * (self.kernel_size - 1) + 1;
        let padded = length + 2 * self.padding;
        (padded >= reach).then(|| (padded - reach) / self.stride + 1)
    }

    /// Output length of the *transposed* convolution with this geometry for
    /// an input of `length` positions and `padding_out` extra positions at the
    /// end: `(length − 1)·stride − 2·padding + dilation·(kernel_size − 1) +
    /// padding_out + 1`. Returns `None` when that is not positive.
    ///
    /// ```
    /// use burn_ternary::types::Conv1dGeometry;
    ///
    /// let g = Conv1dGeometry { in_channels: 4, kernel_size: 4, stride: 2, padding: 1, dilation: 1 };
    /// assert_eq!(g.transposed_output_len(10, 0), Some(20));
    /// assert_eq!(g.transposed_output_len(0, 0), None);
    /// ```
    pub fn transposed_output_len(&self, length: usize, padding_out: usize) -> Option<usize> {
        let full = (length.checked_sub(1)?) * self.stride
            + self.dilation * (self.kernel_size - 1)
            + padding_out
            + 1;
        full.checked_sub(2 * self.padding).filter(|len| *len > 0)
    }
}

/// What the fused forward convolution
/// ([`TernaryBackend::ternary_conv1d_fused`](crate::TernaryBackend::ternary_conv1d_fused))
/// does to its result `y: [batch, rows, out_len]` before writing it, in the
/// same launch. `T` is the backend's float tensor primitive.
#[derive(Clone, Debug)]
pub enum ConvEpilogue<T> {
    /// `y` as the convolution gives it.
    Plain,
    /// `y[b, r, o] + context[step, b, r]`: a per-sample bias taken from
    /// `context: [steps, batch, rows]` (e.g. every diffusion step's
    /// conditioning, computed at once and indexed in the kernel: a slice of
    /// one step would be copied where its offset is not aligned).
    AddContext {
        /// Every step's context.
        context: T,
        /// The step this call adds, below `steps`.
        step: usize,
    },
    /// `y + residual`, `residual: [batch, rows, out_len]`.
    AddResidual(T),
    /// The denoise update with `y` as the predicted noise `ε̂`:
    /// `(latent − (1 − α[b])·y) / √α[b]`, `latent: [batch, rows, out_len]`,
    /// `alpha: [batch]`.
    DenoiseStep {
        /// The latent the step updates.
        latent: T,
        /// One `α` per sample.
        alpha: T,
    },
}

impl<T> ConvEpilogue<T> {
    /// The same epilogue with every tensor passed through `f` (e.g. from an
    /// autodiff backend to its inner backend).
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> ConvEpilogue<U> {
        match self {
            Self::Plain => ConvEpilogue::Plain,
            Self::AddContext { context, step } => ConvEpilogue::AddContext {
                context: f(context),
                step,
            },
            Self::AddResidual(t) => ConvEpilogue::AddResidual(f(t)),
            Self::DenoiseStep { latent, alpha } => ConvEpilogue::DenoiseStep {
                latent: f(latent),
                alpha: f(alpha),
            },
        }
    }
}

/// How the weight gradient is normalized before it updates the memory.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum GradNormalization {
    /// Divide by the root mean square of the whole tensor's gradient.
    Tensor,
    /// Divide each row by its own root mean square.
    Row,
}

/// Hyper-parameters of one [`ternary_update`](crate::functional::ternary_update).
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
///
/// Entry `i` of a weight draws `u = hash(i, key)`, so every backend (the
/// reference on the host side, the CubeCL kernel on the device) draws the
/// same numbers without a host RNG, and a resumed run draws what an
/// uninterrupted one would.
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
    /// use burn_ternary::types::NoiseKey;
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
fn hash32(x: u32) -> u32 {
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
