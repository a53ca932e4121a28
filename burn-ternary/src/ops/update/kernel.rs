//! CubeCL kernels for the ternary update on `CubeBackend` (CUDA, WGPU).
//!
//! Three launches per weight, with two tiny `[rows]` Burn-op sections between
//! them (the normalizers need whole-tensor reductions):
//! 1. [`row_stats_kernel`]: one cube per row reads the gradient once
//!    (coalesced) and the packed trits, and writes `Σ_k G·T` and `Σ_k G²`;
//! 2. [`update_kernel`]: one unit per packed trit word (16 weights, 4 memory
//!    words) reads the gradient, trits and memory, draws the rounding noise
//!    from the counter hash, applies the step, carries and clamp, and writes
//!    the new packed words;
//! 3. [`scale_code_kernel`]: one unit per row rounds its scale-code step.
//!
//! The reference instead unpacks trits and memory into `[rows, cols]` float
//! tensors, uploads a host-drawn noise tensor and runs ~25 element-wise ops.
//! The update cannot live in the weight-gradient matmul's epilogue: the
//! normalizer needs the whole gradient first, and a weight used more than once
//! gets its gradients summed by autodiff before the optimizer sees them.

use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{cast, into_contiguous},
    ops::numeric::empty_device_contiguous_dtype,
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

use crate::{nn::UPDATE_THRESHOLD, packing::SCALE_CODE_RANGE};

use super::{NoiseKey, UpdateHyper};

/// Units per cube of the row-statistics kernel.
const STATS_UNITS: usize = 128;

/// `lowbias32`, the same function as [`super::hash32`] (wrapping `u32` arithmetic).
#[cube]
fn hash32(x: u32) -> u32 {
    let x = (x ^ (x >> 16u32)) * 0x7FEB_352Du32;
    let x = (x ^ (x >> 15u32)) * 0x846C_A68Bu32;
    x ^ (x >> 16u32)
}

/// The same number as [`super::counter_uniform`]: 24 bits, exact in `f32`.
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
    grad: &Tensor<F>,
    trits: &Tensor<u32>,
    dot: &mut Tensor<F>,
    sum_sq: &mut Tensor<F>,
    #[comptime] units: usize,
    #[define(F)] _dtype: StorageType,
) {
    let row = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize;
    let unit = UNIT_POS_X as usize;
    let rows = dot.shape(0);
    let cols = grad.shape(1);
    let mut acc_dot = F::new(0.0);
    let mut acc_sq = F::new(0.0);
    if row < rows {
        let g_offset = row * grad.stride(0);
        let t_offset = row * trits.stride(0);
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
    grad: &Tensor<F>,
    trits: &Tensor<u32>,
    memory: &Tensor<u32>,
    rms: &Tensor<F>,
    trits_out: &mut Tensor<u32>,
    memory_out: &mut Tensor<u32>,
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
    let words = trits.shape(1);
    let memory_words = memory.shape(1);
    let cols = grad.shape(1);
    let row = pos / words;
    let word_col = pos % words;
    let base = word_col * 16;
    let g_offset = row * grad.stride(0);
    let r = rms[row];
    let lr_theta = F::cast_from(lr_theta);
    let limit = F::cast_from(theta);
    let tword = trits[row * trits.stride(0) + word_col];
    let mut new_trits = 0u32;

    #[unroll]
    for q in 0..4u32 {
        let mword_col = word_col * 4 + q as usize;
        if mword_col < memory_words {
            let m_index = row * memory.stride(0) + mword_col;
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
    trits_out[row * trits_out.stride(0) + word_col] = new_trits;
}

/// One unit per row: `code' = clamp(code − ⌊step + u⌋, lo, hi)`.
#[cube(launch)]
fn scale_code_kernel<F: Float>(
    code_step: &Tensor<F>,
    codes: &Tensor<i32>,
    codes_out: &mut Tensor<i32>,
    key0: u32,
    key1: u32,
    #[comptime] lo: i32,
    #[comptime] hi: i32,
    #[define(F)] _dtype: StorageType,
) {
    let row = ABSOLUTE_POS;
    if row >= codes_out.len() {
        terminate!();
    }
    let u = counter_uniform::<F>(key0, key1, row as u32);
    let delta = i32::cast_from(F::floor(code_step[row] + u));
    codes_out[row] = i32::clamp(codes[row] - delta, lo, hi);
}

fn empty<R: CubeRuntime>(like: &CubeTensor<R>, shape: Shape, dtype: DType) -> CubeTensor<R> {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, dtype)
}

/// `(Σ_k G·T, Σ_k G²)` per row of `grad: [rows, cols]` (f32).
pub fn row_stats<R: CubeRuntime>(
    grad: &CubeTensor<R>,
    trits: &CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let rows = grad.meta.shape()[0];
    let dot = empty(grad, Shape::new([rows]), DType::F32);
    let sum_sq = empty(grad, Shape::new([rows]), DType::F32);
    if rows == 0 {
        return (dot, sum_sq);
    }
    // Rows beyond 65535 cubes wrap into the second grid dimension.
    let (x, y) = (rows.min(65_535), rows.div_ceil(65_535));
    row_stats_kernel::launch::<R>(
        &grad.client,
        CubeCount::Static(x as u32, y as u32, 1),
        CubeDim::new_1d(STATS_UNITS as u32),
        grad.clone().into_tensor_arg(),
        trits.clone().into_tensor_arg(),
        dot.clone().into_tensor_arg(),
        sum_sq.clone().into_tensor_arg(),
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
    let trits_out = empty(&trits, trits.meta.shape().clone(), DType::I32);
    let memory_out = empty(&memory, memory.meta.shape().clone(), DType::I32);
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
        grad.clone().into_tensor_arg(),
        trits.into_tensor_arg(),
        memory.into_tensor_arg(),
        rms.into_tensor_arg(),
        trits_out.clone().into_tensor_arg(),
        memory_out.clone().into_tensor_arg(),
        // Rounded to f32 first, as the reference rounds its scalar.
        (hyper.lr * theta as f64) as f32,
        key.memory[0],
        key.memory[1],
        theta,
        DType::F32.into(),
    );
    (trits_out, memory_out)
}

/// New scale codes from the unrounded steps `code_step: [rows]`.
pub fn update_codes<R: CubeRuntime>(
    code_step: CubeTensor<R>,
    codes: CubeTensor<R>,
    key: NoiseKey,
) -> CubeTensor<R> {
    let code_step = into_contiguous(cast(code_step, DType::F32));
    let codes = into_contiguous(cast(codes, DType::I32));
    let out = empty(&codes, codes.meta.shape().clone(), DType::I32);
    let rows = codes.meta.shape().num_elements();
    if rows == 0 {
        return out;
    }
    let client = codes.client.clone();
    let cube_dim = CubeDim::new(&client, rows);
    scale_code_kernel::launch::<R>(
        &client,
        calculate_cube_count_elemwise(&client, rows, cube_dim),
        cube_dim,
        code_step.into_tensor_arg(),
        codes.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        key.scale[0],
        key.scale[1],
        SCALE_CODE_RANGE.0,
        SCALE_CODE_RANGE.1,
        DType::F32.into(),
    );
    out
}
