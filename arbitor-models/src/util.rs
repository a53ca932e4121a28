//! Helpers shared by the components: the parameter-free RMS norm, masks,
//! shape text and error constructors.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use burn_ternary::{TernaryBackend, TernaryError, TernaryResult};

/// Parameter-free RMS norm over the last dimension: `x / sqrt(mean(x²) + 1e-6)`.
/// There is no gain, so nothing float is trained. One kernel on CUDA and
/// WGPU ([`burn_ternary::functional::rms_norm`]).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::util::rms_norm;
///
/// let x = Tensor::<Flex, 2>::from_floats([[3.0, -3.0]], &Default::default());
/// let y: Vec<f32> = rms_norm(x).into_data().to_vec().unwrap();
/// assert!((y[0] - 1.0).abs() < 1e-5 && (y[1] + 1.0).abs() < 1e-5);
/// ```
pub fn rms_norm<B: TernaryBackend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    burn_ternary::functional::rms_norm(x, None, 1e-6)
}

/// A `[seq, seq]` float mask with `1` where position `i` may read position
/// `j`: `0 <= i - j < window` (causal, at most `window` positions back,
/// itself included).
///
/// ```
/// use burn::backend::Flex;
/// use arbitor_models::util::window_mask;
///
/// let m: Vec<f32> = window_mask::<Flex>(3, 2, &Default::default()).into_data().to_vec().unwrap();
/// assert_eq!(m, vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
/// ```
pub fn window_mask<B: Backend>(seq: usize, window: usize, device: &B::Device) -> Tensor<B, 2> {
    window_mask_after(0, seq, window, device)
}

/// The rows of [`window_mask`] for `n` new positions after `earlier` ones:
/// `[n, earlier + n]`, row `r` being position `earlier + r` (what
/// incremental decoding reads).
///
/// ```
/// use burn::backend::Flex;
/// use arbitor_models::util::window_mask_after;
///
/// let m: Vec<f32> = window_mask_after::<Flex>(2, 1, 2, &Default::default()).into_data().to_vec().unwrap();
/// assert_eq!(m, vec![0.0, 1.0, 1.0]);
/// ```
pub fn window_mask_after<B: Backend>(
    earlier: usize,
    n: usize,
    window: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let total = earlier + n;
    let values: Vec<f32> = (0..n * total)
        .map(|k| {
            let (i, j) = (earlier + k / total, k % total);
            (j <= i && i - j < window) as u8 as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [n, total]), device)
}

/// A shape as the smoke reports print it: `(1, 4, 289)`.
///
/// ```
/// assert_eq!(arbitor_models::util::shape_text(&[1, 4, 289]), "(1, 4, 289)");
/// ```
pub fn shape_text(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("({})", parts.join(", "))
}

/// An [`TernaryError::InvalidConfig`] naming the key.
pub fn config_error(key: &str, value: impl ToString, reason: &str) -> TernaryError {
    TernaryError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A [`TernaryError::ShapeMismatch`] naming the tensor.
pub fn shape_error(tensor: &str, expected: impl ToString, actual: &[usize]) -> TernaryError {
    TernaryError::ShapeMismatch {
        tensor: tensor.to_string(),
        expected: expected.to_string(),
        actual: actual.to_vec(),
    }
}

/// Checks that a config value is at least 1.
pub fn positive(key: &str, value: usize) -> TernaryResult<()> {
    if value == 0 {
        Err(config_error(key, value, "must be at least 1"))
    } else {
        Ok(())
    }
}

/// Checks that `x` is `[batch, seq, width]` with the given width.
pub fn check_width<B: Backend>(tensor: &str, x: &Tensor<B, 3>, width: usize) -> TernaryResult<()> {
    let dims = x.dims();
    if dims[2] != width {
        return Err(shape_error(tensor, format!("[batch, seq, {width}]"), &dims));
    }
    Ok(())
}

/// Unwraps a result, panicking with the error's message (the
/// `forward`/`init` counterparts of `try_forward`/`try_init`).
pub fn or_panic<T>(result: TernaryResult<T>) -> T {
    result.unwrap_or_else(|err| panic!("{err}"))
}

/// Standard normal values `[...shape]` from a seeded host generator
/// (splitmix64 and Box–Muller): the same values on every backend.
///
/// ```
/// use burn::backend::Flex;
/// use arbitor_models::util::seeded_normal;
///
/// let a = seeded_normal::<Flex, 2>([2, 3], 7, &Default::default());
/// let b = seeded_normal::<Flex, 2>([2, 3], 7, &Default::default());
/// assert_eq!(a.into_data(), b.into_data());
/// ```
pub fn seeded_normal<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: u64,
    device: &B::Device,
) -> Tensor<B, D> {
    let n: usize = shape.iter().product();
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let values: Vec<f32> = (0..n)
        .map(|_| {
            let u1 = uniform().max(1e-12);
            let u2 = uniform();
            ((-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub use burn_ternary::functional::check_ids;
