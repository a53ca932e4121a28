//! CubeCL kernels for the ternary update on `CubeBackend` (CUDA, WGPU).
//!
//! Three launches per weight:
//! 1. [`row_stats_kernel`]: one cube per row reads the gradient once
//!    (coalesced) and the packed trits, and writes `Σ_k G·T` and `Σ_k G²`;
//! 2. [`finalize_kernel`]: one cube reduces those `[rows]` statistics into
//!    the gradient normalizers and the scale-code steps, and writes the new
//!    scale codes (a first version did this part in ~15 small Burn ops,
//!    which cost ≈ 0.18 ms of launches per weight on the H200);
//! 3. [`update_kernel`]: one unit per packed trit word (16 weights, 4 memory
//!    words) reads the gradient, trits and memory, draws the rounding noise
//!    from the counter hash, applies the step, carries and clamp, and writes
//!    the new packed words.
//!
//! All three take flat `Array` arguments (every operand is contiguous and
//! the row widths follow from `cols`): CubeCL sends a `Tensor` argument's
//! shape and strides with every launch, on CUDA as a host-to-device copy
//! (about 4 µs of host time per launch on the H200 machine).
//!
//! The reference instead unpacks trits and memory into `[rows, cols]` float
//! tensors, uploads a host-drawn noise tensor and runs ~25 element-wise ops.
//! The update cannot live in the weight-gradient matmul's epilogue: the
//! normalizer needs the whole gradient first, and a weight used more than once
//! gets its gradients summed by autodiff before the optimizer sees them.

use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{cast, into_contiguous},
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

use crate::{
    packing::{MEMORY_PER_WORD, SCALE_CODE_RANGE, TRITS_PER_WORD},
    types::{GradNormalization, NoiseKey, UpdateHyper, UPDATE_THRESHOLD},
};

/// Units per cube of the row-statistics kernel.
const STATS_UNITS: usize = 128;
/// Units of the single-cube finalize kernel.
const FINALIZE_UNITS: usize = 256;
/// `LN2_PER_CODE` as the `f32` the reference multiplies by.
const LN2_PER_CODE_F32: f32 = crate::ops::update::LN2_PER_CODE as f32;

/// `lowbias32`, the same function as `ops::update::hash32` (wrapping `u32` arithmetic).
#[cube]
fn hash32(x: u32) -> u32 {
    let x = (x ^ (x >> 16u32)) * 0x7FEB_352Du32;
    let x = (x ^ (x >> 15u32)) * 0x846C_A68Bu32;
    x ^ (x >> 16u32)
}

/// The same number as `ops::update::counter_uniform`: 24 bits, exact in `f32`.
#[cube]
fn counter_uniform<F: Float>(key0: u32, key1: u32, counter: u32) -> F {
    let h = hash32(hash32(counter ^ key0) + key1);
    F::cast_from(h >> 8u32) * F::new(1.0 / 16_777_216.0)
}

/// Trit `j` of a packed word as a signed integer.
#[cube]
fn trit_of(word: u32, j: u32) -> i32 {
    let code = (word >> (2 * j)) & 3u32;
    i32::cast_from(code & 1u32) - i32::cast_from(code >> 1u32)
}

/// Per-row `Σ_k G·T` and `Σ_k G²`: cube `r` owns row `r`, its units stride
/// over the columns (coalesced gradient reads) and reduce in shared memory.
#[cube(launch)]
fn row_stats_kernel<F: Float>(
    grad: &Array<F>,
    trits: &Array<u32>,
    dot: &mut Array<F>,
    sum_sq: &mut Array<F>,
    cols: u32,
    #[comptime] units: usize,
    #[define(F)] _dtype: StorageType,
) {
    let row = crate::ops::launch::wrapped_cube();
    let unit = UNIT_POS_X as usize;
    let rows = dot.len();
    let cols = usize::cast_from(cols);
    let mut acc_dot = F::new(0.0);
    let mut acc_sq = F::new(0.0);
    if row < rows {
        let g_offset = row * cols;
        let t_offset = row * ((cols + comptime!(TRITS_PER_WORD - 1)) / TRITS_PER_WORD);
        let mut c = unit;
        while c < cols {
            let g = grad[g_offset + c];
            let t = trit_of(trits[t_offset + c / 16], (c % 16) as u32);
            acc_dot += g * F::cast_from(t);
            acc_sq += g * g;
            c += units;
        }
    }
    let mut shared_dot = SharedMemory::<F>::new(units);
    let mut shared_sq = SharedMemory::<F>::new(units);
    shared_dot[unit] = acc_dot;
    shared_sq[unit] = acc_sq;
    sync_cube();
    // One unit adds the partial sums: `units` adds, negligible next to a row.
    if unit == 0 && row < rows {
        let mut total_dot = F::new(0.0);
        let mut total_sq = F::new(0.0);
        for p in 0..units {
            total_dot += shared_dot[p];
            total_sq += shared_sq[p];
        }
        dot[row] = total_dot;
        sum_sq[row] = total_sq;
    }
}

/// One unit per packed trit word: the memory step `⌊clamp(g / rms · lr_theta,
/// ±θ) + u⌋`, the trit carries and the memory clamp for its 16 weights (the
/// reference's arithmetic, in the same order).
#[cube(launch)]
fn update_kernel<F: Float>(
    grad: &Array<F>,
    trits: &Array<u32>,
    memory: &Array<u32>,
    rms: &Array<F>,
    trits_out: &mut Array<u32>,
    memory_out: &mut Array<u32>,
    cols: u32,
    lr_theta: f32,
    key0: u32,
    key1: u32,
    #[comptime] theta: i32,
    #[define(F)] _dtype: StorageType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= trits_out.len() {
        terminate!();
    }
    let cols = usize::cast_from(cols);
    let words = (cols + comptime!(TRITS_PER_WORD - 1)) / TRITS_PER_WORD;
    let memory_words = (cols + comptime!(MEMORY_PER_WORD - 1)) / MEMORY_PER_WORD;
    let row = pos / words;
    let word_col = pos % words;
    let base = word_col * 16;
    let g_offset = row * cols;
    let r = rms[row];
    let lr_theta = F::cast_from(lr_theta);
    let limit = F::cast_from(theta);
    let tword = trits[row * words + word_col];
    let mut new_trits = 0u32;

    #[unroll]
    for q in 0..4u32 {
        let mword_col = word_col * 4 + q as usize;
        if mword_col < memory_words {
            let m_index = row * memory_words + mword_col;
            let mword = memory[m_index];
            let mut new_memory = 0u32;
            #[unroll]
            for b in 0..4u32 {
                let j = q * 4 + b;
                let c = base + j as usize;
                if c < cols {
                    let g = grad[g_offset + c];
                    let step = F::clamp(g / r * lr_theta, -limit, limit);
                    let u = counter_uniform::<F>(key0, key1, (row * cols + c) as u32);
                    let delta = i32::cast_from(F::floor(step + u));
                    // Sign-extend byte `b` of the memory word.
                    let byte = i32::cast_from((mword >> (8 * b)) & 255u32);
                    let old = byte - (byte >> 7u32) * 256;
                    let t = trit_of(tword, j);
                    let mut m = old - delta;
                    let mut t_new = t;
                    if m > theta && t < 1 {
                        t_new = t + 1;
                        m -= theta;
                    } else if m < -theta && t > -1 {
                        t_new = t - 1;
                        m += theta;
                    }
                    m = i32::clamp(m, -theta, theta);
                    new_memory |= (u32::cast_from(m) & 255u32) << (8 * b);
                    let code = select(t_new > 0, 1u32, select(t_new < 0, 2u32, 0u32));
                    new_trits |= code << (2 * j);
                }
            }
            memory_out[m_index] = new_memory;
        }
    }
    trits_out[row * words + word_col] = new_trits;
}

/// One cube for the whole weight: the normalizers (whole-tensor reductions
/// over the row statistics) and the new scale codes. Writes the gradient
/// normalizer of every row into `rms` and `clamp(code − ⌊step + u⌋, lo, hi)`
/// into `codes_out`, with `step = clamp(ĝ_code · scale_lr, −1, 1)`.
#[cube(launch)]
fn finalize_kernel<F: Float>(
    dot: &Array<F>,
    sum_sq: &Array<F>,
    codes: &Array<i32>,
    rms: &mut Array<F>,
    codes_out: &mut Array<i32>,
    scale_lr: f32,
    cols: f32,
    key0: u32,
    key1: u32,
    #[comptime] per_row: bool,
    #[comptime] units: usize,
    #[comptime] lo: i32,
    #[comptime] hi: i32,
    #[define(F)] _dtype: StorageType,
) {
    let unit = UNIT_POS_X as usize;
    let rows = dot.len();
    let ln2_per_code = F::new(LN2_PER_CODE_F32);
    let mut acc_sq = F::new(0.0);
    let mut acc_code = F::new(0.0);
    let mut r = unit;
    while r < rows {
        let scale = F::exp(F::cast_from(codes[r]) * ln2_per_code);
        let grad_code = dot[r] * scale * ln2_per_code;
        acc_code += grad_code * grad_code;
        acc_sq += sum_sq[r];
        r += units;
    }
    let mut partial = SharedMemory::<F>::new(comptime!(2 * units));
    partial[unit] = acc_sq;
    partial[units + unit] = acc_code;
    sync_cube();
    if unit == 0 {
        let mut total_sq = F::new(0.0);
        let mut total_code = F::new(0.0);
        for p in 0..units {
            total_sq += partial[p];
            total_code += partial[units + p];
        }
        partial[0] = total_sq;
        partial[units] = total_code;
    }
    sync_cube();
    let rows_f = F::cast_from(rows as u32);
    let cols = F::cast_from(cols);
    let tiny = F::new(1e-30);
    let total_rms = F::sqrt(partial[0] / (rows_f * cols)) + tiny;
    let code_rms = F::sqrt(partial[units] / rows_f) + tiny;
    let scale_lr = F::cast_from(scale_lr);
    let mut r = unit;
    while r < rows {
        if comptime!(per_row) {
            rms[r] = F::sqrt(sum_sq[r] / cols) + tiny;
        } else {
            rms[r] = total_rms;
        }
        let scale = F::exp(F::cast_from(codes[r]) * ln2_per_code);
        let grad_code = dot[r] * scale * ln2_per_code;
        let step = F::clamp(grad_code / code_rms * scale_lr, F::new(-1.0), F::new(1.0));
        let u = counter_uniform::<F>(key0, key1, r as u32);
        let delta = i32::cast_from(F::floor(step + u));
        codes_out[r] = i32::clamp(codes[r] - delta, lo, hi);
        r += units;
    }
}

/// `(Σ_k G·T, Σ_k G²)` per row of `grad: [rows, cols]` (f32).
pub fn row_stats<R: CubeRuntime>(
    grad: &CubeTensor<R>,
    trits: &CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let rows = grad.meta.shape()[0];
    let dot = crate::ops::launch::empty_on(grad, Shape::new([rows]), DType::F32);
    let sum_sq = crate::ops::launch::empty_on(grad, Shape::new([rows]), DType::F32);
    if rows == 0 {
        return (dot, sum_sq);
    }
    row_stats_kernel::launch::<R>(
        &grad.client,
        crate::ops::launch::wrapped_grid(rows),
        CubeDim::new_1d(STATS_UNITS as u32),
        grad.clone().into_array_arg(),
        trits.clone().into_array_arg(),
        dot.clone().into_array_arg(),
        sum_sq.clone().into_array_arg(),
        grad.meta.shape()[1] as u32,
        STATS_UNITS,
        DType::F32.into(),
    );
    (dot, sum_sq)
}

/// Gradient as contiguous f32, packed words as contiguous i32.
pub fn prepare<R: CubeRuntime>(
    grad: CubeTensor<R>,
    trits: CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>) {
    (
        into_contiguous(cast(grad, DType::F32)),
        into_contiguous(cast(trits, DType::I32)),
    )
}

/// New packed trits and memory from the f32 gradient and the row normalizers `rms: [rows]`.
pub fn update_words<R: CubeRuntime>(
    grad: &CubeTensor<R>,
    trits: CubeTensor<R>,
    memory: CubeTensor<R>,
    rms: CubeTensor<R>,
    hyper: UpdateHyper,
    key: NoiseKey,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let memory = into_contiguous(cast(memory, DType::I32));
    let rms = into_contiguous(cast(rms, DType::F32));
    let trits_out = crate::ops::launch::empty_on(&trits, trits.meta.shape().clone(), DType::I32);
    let memory_out = crate::ops::launch::empty_on(&memory, memory.meta.shape().clone(), DType::I32);
    let units = trits.meta.shape().num_elements();
    if units == 0 {
        return (trits_out, memory_out);
    }
    let client = grad.client.clone();
    let cube_dim = CubeDim::new(&client, units);
    let theta = UPDATE_THRESHOLD;
    update_kernel::launch::<R>(
        &client,
        calculate_cube_count_elemwise(&client, units, cube_dim),
        cube_dim,
        grad.clone().into_array_arg(),
        trits.into_array_arg(),
        memory.into_array_arg(),
        rms.into_array_arg(),
        trits_out.clone().into_array_arg(),
        memory_out.clone().into_array_arg(),
        grad.meta.shape()[1] as u32,
        // Rounded to f32 first, as the reference rounds its scalar.
        (hyper.lr * theta as f64) as f32,
        key.memory[0],
        key.memory[1],
        theta,
        DType::F32.into(),
    );
    (trits_out, memory_out)
}

/// The per-row gradient normalizers `[rows]` and the new scale codes, from
/// the row statistics, in one single-cube launch.
pub fn finalize<R: CubeRuntime>(
    dot: &CubeTensor<R>,
    sum_sq: &CubeTensor<R>,
    codes: CubeTensor<R>,
    cols: usize,
    hyper: UpdateHyper,
    key: NoiseKey,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let codes = into_contiguous(cast(codes, DType::I32));
    let rows = codes.meta.shape().num_elements();
    let rms = crate::ops::launch::empty_on(&codes, Shape::new([rows]), DType::F32);
    let codes_out = crate::ops::launch::empty_on(&codes, Shape::new([rows]), DType::I32);
    if rows == 0 {
        return (rms, codes_out);
    }
    finalize_kernel::launch::<R>(
        &codes.client.clone(),
        CubeCount::Static(1, 1, 1),
        CubeDim::new_1d(FINALIZE_UNITS as u32),
        dot.clone().into_array_arg(),
        sum_sq.clone().into_array_arg(),
        codes.into_array_arg(),
        rms.clone().into_array_arg(),
        codes_out.clone().into_array_arg(),
        hyper.scale_lr as f32,
        cols as f32,
        key.scale[0],
        key.scale[1],
        matches!(hyper.normalization, GradNormalization::Row),
        FINALIZE_UNITS,
        SCALE_CODE_RANGE.0,
        SCALE_CODE_RANGE.1,
        DType::F32.into(),
    );
    (rms, codes_out)
}
