//! f32 activations on half-precision tensor cores, at f32 accuracy: the
//! tensor-core GEMM route for `f32` with `m >= TENSOR_CORE_MIN_M` (where
//! `route::split_f16_applies` says so).
//!
//! Why not Burn's f32 matmul: on tensor cores it runs in TF32 (10 stored
//! mantissa bits), ≈ 3e-4 relative error on the H200, far outside the 1e-5
//! agreement with the reference. The FMA kernels keep that agreement but
//! run at about a fifth of this route's speed on the H200.
//!
//! The split. Each activation row is scaled by a power of two `2^-e` so that
//! its largest magnitude lies in `[2^10, 2^11)`, then written as two f16
//! limbs, `x · 2^-e = h₀ + h₁`: `h₀ = round(x · 2^-e)` is an integer
//! (`|h₀| ≤ 2048`, exact in f16) and `h₁ = f16(x · 2^-e − h₀)` the remainder
//! (`|h₁| ≤ 1/2`, 11 more significant bits). The split loses at most
//! `2^-13`, i.e. `2^-23` of the row's largest magnitude.
//!
//! Why an integer limb, and why the limbs are summed apart: tensor cores
//! accumulate f32 with truncation, about `2^-22` of the accumulator per step
//! (measured: a first version that put both limbs in one reduction, with
//! non-integer `h₀`, had 8.6e-6 relative error at K = 4096 against 9.4e-7
//! for the FMA kernels). Trits times integers are integers, and integer
//! partial sums below `2^24` are exact in f32 (always, for K ≤ 8192), so the
//! `h₀` products sum exactly; the `h₁` products sum to a value `2^11` times
//! smaller, whose truncation errors are negligible. The two limbs are
//! stacked along the rows (`[h₀; h₁]`, `[2m, k]`), so one plain GEMM of
//! twice the rows gives both sums, and [`rescale`] adds them in f32.
//!
//! The GEMM is Burn's autotuned matmul with f16 operands and an f32
//! accumulator and output; the trits are unpacked once to f16 without
//! their scales (`2^(code/16)` is not exact in f16). The rescale applies
//! `2^e` per row and, for the forward pass, the weight's scale per column;
//! for the input gradient the scales multiply `grad_y`'s columns before the
//! split instead.
//!
//! Cost: twice the tensor-core work of the f16 route, plus the split (reads
//! the activations twice, writes the same number of bytes) and the rescale
//! (reads the two partial products, writes the output).

use burn::tensor::{f16, DType, Shape};
use burn_cubecl::{
    kernel::{into_contiguous, matmul::matmul},
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::prelude::*;

use super::unpack::{matmul_strategy, scales_like, unpack_trits};
use crate::ops::launch::empty_on;

/// Units per cube of the split kernel (one cube per activation row).
const SPLIT_UNITS: usize = 256;

/// `y = x · (diag(scale) · T)ᵀ` for f32 `x: [m, cols]` through the f16 limbs
/// (see the module docs). `None` where no matmul kernel of this device takes
/// f16 operands with an f32 output (then the caller keeps the FMA kernels).
/// `tuned`: Burn's autotuned matmul, else its default kernel (see
/// [`limb_product`]).
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    tuned: bool,
) -> Option<CubeTensor<R>> {
    let (limbs, row_factor) = split_rows(into_contiguous(x), None);
    // [rows, cols] contiguous, read as its transpose [cols, rows].
    let mut weight = unpack_trits(trits, scale.clone(), rows, cols, DType::F16, false, false);
    weight.meta.swap(0, 1);
    let product = limb_product(limbs, weight, tuned)?;
    Some(rescale(
        product,
        row_factor,
        Some(scales_like(scale, DType::F32)),
    ))
}

/// `grad_x = grad_y · diag(scale) · T` for f32 `grad_y: [m, rows]` through
/// the f16 limbs of `grad_y · diag(scale)`. `None` and `tuned` as for
/// [`forward`].
pub fn input_grad<R: CubeRuntime>(
    grad_y: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    tuned: bool,
) -> Option<CubeTensor<R>> {
    let scale = scales_like(scale, DType::F32);
    let (limbs, row_factor) = split_rows(into_contiguous(grad_y), Some(scale.clone()));
    // [cols, rows] contiguous, read as its transpose [rows, cols].
    let mut weight = unpack_trits(trits, scale, rows, cols, DType::F16, true, false);
    weight.meta.swap(0, 1);
    let product = limb_product(limbs, weight, tuned)?;
    Some(rescale(product, row_factor, None))
}

/// One cube per row of the contiguous `a: [m, k]`: finds the row's largest
/// magnitude (times `col_scale` when `scaled`), writes the integer limb of
/// the scaled row to `limbs[row, ..]` and the remainder to
/// `limbs[m + row, ..]`, and the factor `2^e` that undoes the scaling to
/// `row_factor[row]`.
#[cube(launch)]
fn split_rows_kernel(
    a: &Array<f32>,
    col_scale: &Array<f32>,
    limbs: &mut Array<f16>,
    row_factor: &mut Array<f32>,
    rows: u32,
    k: u32,
    #[comptime] scaled: bool,
) {
    let row = crate::ops::launch::wrapped_cube();
    let rows = usize::cast_from(rows);
    if row >= rows {
        terminate!();
    }
    let k = usize::cast_from(k);
    let unit = UNIT_POS as usize;
    let base = row * k;

    let mut amax = 0.0f32;
    let mut c = unit;
    while c < k {
        let mut v = a[base + c];
        if comptime!(scaled) {
            v *= col_scale[c];
        }
        let magnitude = select(v < 0.0f32, -v, v);
        // NaNs are skipped here; they still reach the output through the limbs.
        amax = select(magnitude > amax, magnitude, amax);
        c += SPLIT_UNITS;
    }
    let mut partial = SharedMemory::<f32>::new(SPLIT_UNITS);
    partial[unit] = amax;
    sync_cube();
    #[unroll]
    for step in 0..8usize {
        let stride = comptime!(SPLIT_UNITS >> (step + 1));
        if unit < stride {
            let other = partial[unit + stride];
            let mine = partial[unit];
            partial[unit] = select(other > mine, other, mine);
        }
        sync_cube();
    }
    let row_max = partial[0];

    // Biased exponent E of the row maximum: max · 2^(137 - E) ∈ [2^10, 2^11).
    // E ≥ 11 keeps both factors normal (an all-zero row scales harmlessly).
    let e = (u32::reinterpret(row_max) >> 23u32) & 255u32;
    let e = select(e < 11u32, 11u32, e);
    let quant = f32::reinterpret((264u32 - e) << 23u32);
    if unit == 0 {
        row_factor[row] = f32::reinterpret((e - 10u32) << 23u32);
    }

    let high_base = row * k;
    let low_base = (rows + row) * k;
    let mut c = unit;
    while c < k {
        let mut v = a[base + c];
        if comptime!(scaled) {
            v *= col_scale[c];
        }
        let v = v * quant;
        let high = f32::floor(v + 0.5f32);
        limbs[high_base + c] = f16::cast_from(high);
        limbs[low_base + c] = f16::cast_from(v - high);
        c += SPLIT_UNITS;
    }
}

/// `out[r, c] = (sums[r, c] + sums[m + r, c]) · row_factor[r] · col_scale[c]`
/// (`col_scale` only when `scaled`), one unit per element of `out: [m, n]`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn rescale_kernel(
    sums: &Array<f32>,
    row_factor: &Array<f32>,
    col_scale: &Array<f32>,
    out: &mut Array<f32>,
    m: u32,
    cols: u32,
    sums_row_stride: u32,
    sums_col_stride: u32,
    #[comptime] scaled: bool,
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let cols = usize::cast_from(cols);
    let r = pos / cols;
    let c = pos % cols;
    let mut factor = row_factor[r];
    if comptime!(scaled) {
        factor *= col_scale[c];
    }
    // `sums` may be pitched (Burn allocates matmul outputs that way on CUDA).
    let row_stride = usize::cast_from(sums_row_stride);
    let col_stride = usize::cast_from(sums_col_stride);
    let high = sums[r * row_stride + c * col_stride];
    let low = sums[(usize::cast_from(m) + r) * row_stride + c * col_stride];
    out[pos] = (high + low) * factor;
}

/// The two f16 limbs `[2m, k]` (integer parts, then remainders) of the
/// f32 `a: [m, k]` (columns multiplied by `col_scale` first, if
/// given) and each row's factor `2^e`.
fn split_rows<R: CubeRuntime>(
    a: CubeTensor<R>,
    col_scale: Option<CubeTensor<R>>,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let [m, k] = [a.meta.shape()[0], a.meta.shape()[1]];
    let client = a.client.clone();
    let limbs = empty_on(&a, Shape::new([2 * m, k]), DType::F16);
    let row_factor = empty_on(&a, Shape::new([m]), DType::F32);
    // Rows beyond one grid dimension's limit spill into the second.
    let max_x = u16::MAX as usize;
    let count = CubeCount::Static(m.min(max_x) as u32, m.div_ceil(max_x) as u32, 1);
    let scaled = col_scale.is_some();
    let col_scale = col_scale.unwrap_or_else(|| row_factor.clone());
    split_rows_kernel::launch::<R>(
        &client,
        count,
        CubeDim::new_1d(SPLIT_UNITS as u32),
        a.into_array_arg(),
        col_scale.into_array_arg(),
        limbs.clone().into_array_arg(),
        row_factor.clone().into_array_arg(),
        m as u32,
        k as u32,
        scaled,
    );
    (limbs, row_factor)
}

/// The product `[m, n]` from the limbs' sums `[2m, n]`: see [`rescale_kernel`].
fn rescale<R: CubeRuntime>(
    sums: CubeTensor<R>,
    row_factor: CubeTensor<R>,
    col_scale: Option<CubeTensor<R>>,
) -> CubeTensor<R> {
    let [m, n] = [sums.meta.shape()[0] / 2, sums.meta.shape()[1]];
    let client = sums.client.clone();
    let out = empty_on(&sums, Shape::new([m, n]), DType::F32);
    let elements = m * n;
    if elements == 0 {
        return out;
    }
    let cube_dim = CubeDim::new(&client, elements);
    let cube_count = cubecl::calculate_cube_count_elemwise(&client, elements, cube_dim);
    let scaled = col_scale.is_some();
    let col_scale = col_scale.unwrap_or_else(|| row_factor.clone());
    let [row_stride, col_stride] = [sums.meta.strides()[0], sums.meta.strides()[1]];
    // The elements a pitched `[2m, n]` spans: up to its last element.
    let span = (2 * m - 1) * row_stride + (n - 1) * col_stride + 1;
    // SAFETY: `span` elements lie inside `sums`' buffer: its last element
    // is at `span - 1` by its own strides.
    let sums = unsafe { ArrayArg::from_raw_parts_binding(sums.handle.binding(), span) };
    rescale_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        sums,
        row_factor.into_array_arg(),
        col_scale.into_array_arg(),
        out.clone().into_array_arg(),
        m as u32,
        n as u32,
        row_stride as u32,
        col_stride as u32,
        scaled,
    );
    out
}

/// `limbs: [2m, k]` (f16) times `rhs: [k, n]` (f16, any layout) into a new
/// f32 `[2m, n]` with an f32 accumulator, on Burn's autotuned matmul, or
/// with `tuned = false` on its default kernel (tensor cores where there are
/// any; no tuning, which costs seconds for every new shape class on CUDA).
/// `None` if no matmul kernel accepts the operands on this device.
fn limb_product<R: CubeRuntime>(
    limbs: CubeTensor<R>,
    rhs: CubeTensor<R>,
    tuned: bool,
) -> Option<CubeTensor<R>> {
    let out = empty_on(
        &limbs,
        Shape::new([limbs.meta.shape()[0], rhs.meta.shape()[1]]),
        DType::F32,
    );
    matmul(limbs, rhs, Some(out), matmul_strategy(tuned), DType::F32).ok()
}
