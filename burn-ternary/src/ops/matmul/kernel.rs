//! CubeCL kernels for the ternary scale matmul on `CubeBackend` (CUDA, WGPU).
//!
//! All kernels read the packed trits directly (16 per 32-bit word along the
//! reduction dimension of the forward pass, see [`crate::packing`]); no dense
//! copy of the weight is ever made. A trit code `c` decodes branch-free to
//! `(c & 1) - (c >> 1)`: `0b01` is +1, `0b10` is -1, `0b00` (and the unused
//! `0b11`) is 0. Padding trits past `cols` are code 0 by construction, and the
//! kernels never read activations past `cols` either.
//!
//! * [`forward`] (`y = x · Wᵀ`): a GEMV kernel for `m <= GEMV_MAX_M` and a
//!   shared-memory tiled kernel for larger `m`. On CUDA the GEMV is the int8
//!   tensor-core one of `gemv_mma.rs` (`m <= 8` in one pass, `8 < m <= 16`
//!   in two row blocks).
//! * [`input_grad`] (`grad_x = grad_y · W`, the transposed access): a
//!   "GEMV-transposed" kernel for small `m` and the same tiled kernel with the
//!   other trit-tile loader for larger `m`.
//! * Half-precision activations (f16, bf16) with `m >= TENSOR_CORE_MIN_M`
//!   take the tensor-core route instead: [`unpack_trits`] decodes the trits
//!   (exactly, they are -1/0/+1) into a transient dense tile of the activation
//!   type, row scales folded in (rounded to the activation type, well within
//!   half-precision tolerance), and Burn's own matmul (CubeCL's matrix
//!   instructions, autotuned) does the product. The dense tile is laid out so
//!   that the matmul's right-hand side is column-major in both directions
//!   (measured faster on the H200 than row-major).
//! * f32 activations with `m >= TENSOR_CORE_MIN_M` take tensor cores too,
//!   where the device has f16 matrix instructions, without rounding to half
//!   precision: `gemm_split.rs` splits each row into an integer f16 limb and
//!   an f16 remainder (Burn's own f32 matmul runs in TF32, ≈ 3e-4 relative
//!   error on the H200; the split route ≈ 1e-7).
//!
//! Every kernel here takes flat `Array` arguments (the operands are made
//! contiguous first) and its sizes as `u32` scalars: CubeCL sends a
//! `Tensor` argument's shape and strides with every launch, on CUDA as a
//! host-to-device copy of about 4 µs of host time (`launch_cost_benchmarks`).
//!
//! See `burn-ternary/DESIGN.md` for the design discussion.

use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{
        cast, into_contiguous,
        matmul::{matmul, MatmulStrategy},
    },
    ops::numeric::empty_device_contiguous_dtype,
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest number of input rows `m` served by the GEMV kernels; larger
/// batches use the tiled kernel.
pub const GEMV_MAX_M: usize = 16;

/// Smallest `m` for which half-precision activations go through the
/// unpack + tensor-core matmul route (the transient dense weight costs one
/// `rows x cols` write, amortized over `m` rows).
pub const TENSOR_CORE_MIN_M: usize = 64;

/// Trits per packed word (mirrors [`crate::packing::TRITS_PER_WORD`]).
const TRITS: usize = 16;

/// Reduction tile of the tiled kernel: one packed word.
const TILE_K: usize = 16;
/// The tiled kernel's cube is `THREADS_1D x THREADS_1D` units, each owning a
/// `block x block` block of outputs, so an output tile is `THREADS_1D ·
/// block` square.
const THREADS_1D: usize = 16;
static TILED_BLOCK: AtomicUsize = AtomicUsize::new(0);

/// Benchmark and test knob: the register block per unit of the tiled
/// kernel, 1, 2 or 4 (16-, 32- or 64-square output tiles); 0 = the built-in
/// choice (see [`choose_tiled_block`]). Lets the checks and benchmarks run
/// every size in one process.
#[doc(hidden)]
pub fn set_tiled_block(block: usize) {
    TILED_BLOCK.store(block, Ordering::Relaxed);
}

/// The tiled kernel's register block for an `m x n` output: the knob if
/// set, else the largest of 4, 2, 1 whose grid covers more than half the
/// device's SMs (1 if none does; 4 where the runtime reports no SM count),
/// the rule the conv kernels use too.
fn choose_tiled_block<R: CubeRuntime>(client: &ComputeClient<R>, m: usize, n: usize) -> usize {
    let cubes = |block: usize| {
        let tile = THREADS_1D * block;
        m.div_ceil(tile) * n.div_ceil(tile)
    };
    match TILED_BLOCK.load(Ordering::Relaxed) {
        0 => super::largest_block_covering_sms(client, &[4, 2], 1, cubes),
        b if b >= 4 => 4,
        b if b >= 2 => 2,
        _ => 1,
    }
}

/// Decodes trit `j` of a packed word to `-1`, `0` or `+1` in the float type.
#[cube]
fn decode_trit<F: Float>(word: u32, j: u32) -> F {
    let code = (word >> (2 * j)) & 3;
    F::cast_from(code & 1) - F::cast_from(code >> 1)
}

/// `acc[i] += t * x[i * x_stride + col]` for the `m` activation rows.
#[cube]
fn accumulate_column<F: Float>(
    acc: &mut Array<F>,
    x: &Array<F>,
    x_stride: usize,
    col: usize,
    t: F,
    #[comptime] m: usize,
) {
    #[unroll]
    for i in 0..m {
        acc[i] += t * x[i * x_stride + col];
    }
}

/// GEMV forward, `m` (comptime) activation rows.
///
/// A cube is `lanes x rows_per_cube` units; each group of `lanes` units owns
/// one output row (weight row `n`). Lane `l` streams the packed words
/// `l, l + lanes, ...` of row `n`, so each word is read exactly once, decodes
/// its 16 trits and updates `m` accumulators (one per activation row). The
/// lanes' partial sums are added through shared memory and the row scale is
/// applied once at the end.
#[cube(launch)]
fn gemv_forward_kernel<F: Float, S: Float>(
    x: &Array<F>,
    trits: &Array<u32>,
    scale: &Array<S>,
    out: &mut Array<F>,
    rows: u32,
    cols: u32,
    #[comptime] m: usize,
    #[comptime] lanes: usize,
    #[comptime] rows_per_cube: usize,
    #[define(F)] _dtype: StorageType,
    #[define(S)] _scale_dtype: StorageType,
) {
    let lane = UNIT_POS_X as usize;
    let local_row = UNIT_POS_Y as usize;
    let row = CUBE_POS_X as usize * rows_per_cube + local_row;
    let rows = usize::cast_from(rows);
    let cols = usize::cast_from(cols);
    let words = (cols + comptime!(TRITS - 1)) / TRITS;
    let x_stride = cols;
    let full_words = cols / TRITS;

    let mut acc = Array::<F>::new(m);
    #[unroll]
    for i in 0..m {
        acc[i] = F::new(0.0);
    }

    if row < rows {
        let row_offset = row * words;
        let mut w = lane;
        while w < full_words {
            let word = trits[row_offset + w];
            let base = w * TRITS;
            #[unroll]
            for j in 0..TRITS {
                let t = decode_trit::<F>(word, j as u32);
                accumulate_column::<F>(&mut acc, x, x_stride, base + j, t, m);
            }
            w += lanes;
        }
        // The partial last word, if any, belongs to the lane that would read it next.
        if w < words {
            let word = trits[row_offset + w];
            let base = w * TRITS;
            for j in 0..cols - base {
                let t = decode_trit::<F>(word, j as u32);
                accumulate_column::<F>(&mut acc, x, x_stride, base + j, t, m);
            }
        }
    }

    // Lane partial sums go through shared memory; unit `lane` then finishes
    // activation rows `lane, lane + lanes, ...` of its output row.
    let mut partial = SharedMemory::<F>::new(comptime!(m * lanes * rows_per_cube));
    let slot = local_row * m * lanes;
    #[unroll]
    for i in 0..m {
        partial[slot + i * lanes + lane] = acc[i];
    }
    sync_cube();

    if row < rows {
        let s = F::cast_from(scale[row]);
        let mut i = lane;
        while i < m {
            let mut sum = F::new(0.0);
            #[unroll]
            for p in 0..lanes {
                sum += partial[slot + i * lanes + p];
            }
            out[i * rows + row] = sum * s;
            i += lanes;
        }
    }
}

/// Largest `m` served by the plane-reduction GEMV ([`gemv_plane_kernel`]);
/// `m` up to [`GEMV_MAX_M`] keeps the shared-memory GEMV.
pub const GEMV_PLANE_MAX_M: usize = 8;

/// Activation rows per launch of the plane GEMV: more would not fit the
/// per-lane registers (`16·wpl·m` activations + `rb·m` sums) without spilling.
const GEMV_PLANE_GROUP: usize = 4;

/// Launch knobs of the plane GEMV, `[wpl, rb, group, max planes]` (0 = the
/// built-in choice), set by [`tune_plane_gemv`].
static PLANE_TUNE: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

/// Benchmark knob: words per lane per chunk (1, 2 or 4), rows per cube
/// (1 to 32), activation rows per launch (1 to 8) and the most planes per
/// cube of the plane GEMV (the FMA GEMV of devices without int8 tensor
/// cores, such as WGPU's); 0 = the built-in choice for any of them.
#[doc(hidden)]
pub fn tune_plane_gemv(wpl: usize, rb: usize, group: usize, max_planes: usize) {
    for (knob, value) in PLANE_TUNE.iter().zip([wpl, rb, group, max_planes]) {
        knob.store(value, Ordering::Relaxed);
    }
}

/// `-1.0`, `0.0` or `+1.0` for trit `j` of `word`, with selects only (an
/// int-to-float conversion per trit would run at a quarter of the FMA rate).
#[cube]
fn trit_value<F: Float>(word: u32, j: u32) -> F {
    let plus = (word >> (2 * j)) & 1;
    let minus = (word >> (2 * j + 1)) & 1;
    select(plus == 1, F::new(1.0), F::new(0.0)) - select(minus == 1, F::new(1.0), F::new(0.0))
}

/// GEMV forward for `m <= GEMV_PLANE_GROUP` (comptime) activation rows
/// `first_row..first_row + m`, built to stream the packed trits at memory
/// speed (larger `m` up to [`GEMV_PLANE_MAX_M`] is done in groups).
///
/// A cube owns `rb` consecutive output rows and has `planes` planes (warps).
/// The reduction dimension is cut into chunks of `plane_dim * wpl` words;
/// plane `p` takes chunks `p, p + planes, ...`. Per chunk, each lane loads the
/// activations of its `wpl` words (`16 * wpl * m` values, as vectors of `N`
/// where `cols` allows: one load per four columns instead of per column)
/// into registers once and reuses them for all `rb` rows; lane `l` reads words
/// `chunk + q * plane_dim + l`, so every trit load of a plane is one
/// contiguous, coalesced segment. Partial sums stay in registers
/// (`rb * m` per lane) until the end, then `plane_sum` reduces each plane and
/// the planes' results are added through shared memory; the row scale is
/// applied once. Every read is guarded by the explicit bounds below, so the
/// kernel launches unchecked (CubeCL's checks cost a compare, a select and a
/// constant load per access).
#[cube(launch_unchecked)]
fn gemv_plane_kernel<F: Float, S: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    trits: &Array<u32>,
    scale: &Array<S>,
    out: &mut Array<F>,
    rows: u32,
    cols: u32,
    first_row: usize,
    #[comptime] m: usize,
    #[comptime] wpl: usize,
    #[comptime] rb: usize,
    #[comptime] planes: usize,
    #[comptime] nv: usize,
    #[define(F)] _dtype: StorageType,
    #[define(S)] _scale_dtype: StorageType,
) {
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let plane_dim = CUBE_DIM_X as usize;
    let row0 = CUBE_POS_X as usize * rb;
    let rows = usize::cast_from(rows);
    let cols = usize::cast_from(cols);
    let words = (cols + comptime!(TRITS - 1)) / TRITS;
    let t_stride = words;
    let chunk_words = plane_dim * wpl;
    // CubeCL expands no `div_ceil` in kernels.
    #[allow(clippy::manual_div_ceil)]
    let chunks = (words + chunk_words - 1) / chunk_words;

    let mut acc = Array::<F>::new(comptime!(rb * m));
    #[unroll]
    for k in 0..comptime!(rb * m) {
        acc[k] = F::new(0.0);
    }
    let mut xr = Array::<F>::new(comptime!(wpl * TRITS * m));

    let mut c = plane;
    while c < chunks {
        #[unroll]
        for q in 0..wpl {
            let base = (c * chunk_words + q * plane_dim + lane) * TRITS;
            #[unroll]
            for v in 0..comptime!(TRITS / nv) {
                // `cols % nv == 0`, so a vector is either wholly inside or past `cols`.
                let col = base + v * nv;
                #[unroll]
                for i in 0..m {
                    let mut vec = Vector::<F, N>::new(F::new(0.0));
                    if col < cols {
                        vec = x[((first_row + i) * cols + col) / nv];
                    }
                    #[unroll]
                    for e in 0..nv {
                        xr[(q * TRITS + v * nv + e) * m + i] = vec[e];
                    }
                }
            }
        }
        // No branch per row or word: rows past `rows` read the last row
        // (their sums are never written) and words past `words` read as
        // zero, so the compiler may issue every row's loads before the first
        // row's arithmetic (a branch per row made the rows one memory round
        // trip each).
        #[unroll]
        for r in 0..rb {
            let row = clamp_max(row0 + r, rows - 1);
            #[unroll]
            for q in 0..wpl {
                let w = c * chunk_words + q * plane_dim + lane;
                let loaded = trits[row * t_stride + clamp_max(w, words - 1)];
                let word = select(w < words, loaded, 0u32);
                #[unroll]
                for j in 0..TRITS {
                    let t = trit_value::<F>(word, j as u32);
                    #[unroll]
                    for i in 0..m {
                        acc[r * m + i] += t * xr[(q * TRITS + j) * m + i];
                    }
                }
            }
        }
        c += planes;
    }

    let mut partial = SharedMemory::<F>::new(comptime!(planes * rb * m));
    #[unroll]
    for k in 0..comptime!(rb * m) {
        let sum = plane_sum(acc[k]);
        if lane == 0 {
            partial[plane * comptime!(rb * m) + k] = sum;
        }
    }
    sync_cube();

    let mut k = plane * plane_dim + lane;
    while k < comptime!(rb * m) {
        let r = k / m;
        let i = k % m;
        let row = row0 + r;
        if row < rows {
            let mut sum = F::new(0.0);
            #[unroll]
            for p in 0..planes {
                sum += partial[p * comptime!(rb * m) + k];
            }
            out[(first_row + i) * rows + row] = sum * F::cast_from(scale[row]);
        }
        k += plane_dim * planes;
    }
}

/// GEMV input gradient, `grad_x = grad_y · W` for few rows of `grad_y`.
///
/// Unit `(wx, ry)` of cube `(cx, i)` owns packed word column
/// `w = cx * CUBE_DIM_X + wx` (16 output columns) of activation row `i` and
/// the weight rows `ry, ry + CUBE_DIM_Y, ...`; consecutive units read
/// consecutive words of a weight row (coalesced). Each unit keeps 16
/// accumulators; the `CUBE_DIM_Y` partial sums are then added through shared
/// memory, each unit finishing `16 / CUBE_DIM_Y` columns.
#[cube(launch)]
fn gemv_input_grad_kernel<F: Float>(
    grad_y: &Array<F>,
    trits: &Array<u32>,
    scale: &Array<F>,
    out: &mut Array<F>,
    rows: u32,
    cols: u32,
    #[comptime] word_cols: usize,
    #[comptime] row_split: usize,
    #[define(F)] _dtype: StorageType,
) {
    let wx = UNIT_POS_X as usize;
    let ry = UNIT_POS_Y as usize;
    let w = CUBE_POS_X as usize * word_cols + wx;
    let i = CUBE_POS_Y as usize;
    let rows = usize::cast_from(rows);
    let cols = usize::cast_from(cols);
    let words = (cols + comptime!(TRITS - 1)) / TRITS;
    let g_offset = i * rows;
    let t_stride = words;

    let mut acc = Array::<F>::new(TRITS);
    #[unroll]
    for j in 0..TRITS {
        acc[j] = F::new(0.0);
    }
    if w < words {
        let mut r = ry;
        while r < rows {
            let word = trits[r * t_stride + w];
            let g = grad_y[g_offset + r] * scale[r];
            #[unroll]
            for j in 0..TRITS {
                acc[j] += decode_trit::<F>(word, j as u32) * g;
            }
            r += row_split;
        }
    }

    let mut partial = SharedMemory::<F>::new(comptime!(row_split * word_cols * TRITS));
    #[unroll]
    for j in 0..TRITS {
        partial[(ry * word_cols + wx) * TRITS + j] = acc[j];
    }
    sync_cube();

    if w < words {
        let mut j = ry;
        while j < TRITS {
            let col = w * TRITS + j;
            if col < cols {
                let mut sum = F::new(0.0);
                #[unroll]
                for p in 0..row_split {
                    sum += partial[(p * word_cols + wx) * TRITS + j];
                }
                out[i * cols + col] = sum;
            }
            j += row_split;
        }
    }
}

/// Tiled `out[M, N] = A[M, K] · B[K, N]` where `B` is read from packed trits.
///
/// * `transposed == false` (forward): `A = x [m, cols]`, `B[k, n] = T[n, k]`,
///   `out[:, n]` is multiplied by `scale[n]` at the end.
/// * `transposed == true` (input gradient): `A = grad_y [m, rows]`,
///   `B[k, n] = scale[k] · T[k, n]`.
///
/// A cube computes a `tile x tile` output tile (`tile = THREADS_1D · block`)
/// with `THREADS_1D²` units, each owning a `block x block` block (rows
/// `ty + 16a`, columns `tx + 16b`). Per step of
/// `TILE_K = 16` along the reduction, the activation tile and the decoded
/// trit tile are staged in shared memory (k-major), out-of-range entries set
/// to 0, so sizes need not be multiples of the tiles.
#[cube(launch)]
fn tiled_kernel<F: Float>(
    a: &Array<F>,
    trits: &Array<u32>,
    scale: &Array<F>,
    out: &mut Array<F>,
    m_total: u32,
    k_total: u32,
    n_total: u32,
    t_stride: u32,
    #[comptime] transposed: bool,
    #[comptime] block: usize,
    #[define(F)] _dtype: StorageType,
) {
    let tile = comptime!(THREADS_1D * block);
    // Padded leading dimension of the shared tiles (avoids bank conflicts
    // on the transposed stores).
    let tile_ld = comptime!(THREADS_1D * block + 1);
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let tid = ty * THREADS_1D + tx;
    let m0 = CUBE_POS_Y as usize * tile;
    let n0 = CUBE_POS_X as usize * tile;
    let m_total = usize::cast_from(m_total);
    let k_total = usize::cast_from(k_total);
    let n_total = usize::cast_from(n_total);
    let a_stride = k_total;
    let t_stride = usize::cast_from(t_stride);

    let mut a_tile = SharedMemory::<F>::new(comptime!(TILE_K * tile_ld));
    let mut b_tile = SharedMemory::<F>::new(comptime!(TILE_K * tile_ld));

    let block_m = block;
    let block_n = block;
    let loads = comptime!(tile * TILE_K / (THREADS_1D * THREADS_1D));

    let mut acc = Array::<F>::new(comptime!(block_m * block_n));
    #[unroll]
    for q in 0..comptime!(block_m * block_n) {
        acc[q] = F::new(0.0);
    }
    let mut a_reg = Array::<F>::new(block_m);
    let mut b_reg = Array::<F>::new(block_n);

    // CubeCL expands no `div_ceil` in kernels.
    #[allow(clippy::manual_div_ceil)]
    let k_tiles = (k_total + TILE_K - 1) / TILE_K;
    for kt in 0..k_tiles {
        let k0 = kt * TILE_K;

        // Activation tile: element (mm, kk), consecutive units along k.
        #[unroll]
        for q in 0..loads {
            let idx = tid + q * THREADS_1D * THREADS_1D;
            let mm = idx / TILE_K;
            let kk = idx % TILE_K;
            let gm = m0 + mm;
            let gk = k0 + kk;
            let mut v = F::new(0.0);
            if gm < m_total && gk < k_total {
                v = a[gm * a_stride + gk];
            }
            a_tile[kk * tile_ld + mm] = v;
        }

        // Trit tile, decoded (and, for the input gradient, scaled).
        #[unroll]
        for q in 0..loads {
            let idx = tid + q * THREADS_1D * THREADS_1D;
            if comptime!(transposed) {
                // B[k, n] = scale[k] * T[k, n]: one weight row per kk, 4 words per tile row.
                let kk = idx / tile;
                let nn = idx % tile;
                let gk = k0 + kk;
                let gn = n0 + nn;
                let mut v = F::new(0.0);
                if gk < k_total && gn < n_total {
                    let word = trits[gk * t_stride + gn / TRITS];
                    v = decode_trit::<F>(word, (gn % TRITS) as u32) * scale[gk];
                }
                b_tile[kk * tile_ld + nn] = v;
            } else {
                // B[k, n] = T[n, k]: the whole k-tile is word k0 / 16 of weight row n.
                let nn = idx / TILE_K;
                let kk = idx % TILE_K;
                let gn = n0 + nn;
                let mut v = F::new(0.0);
                if gn < n_total {
                    let word = trits[gn * t_stride + kt];
                    v = decode_trit::<F>(word, kk as u32);
                }
                b_tile[kk * tile_ld + nn] = v;
            }
        }
        sync_cube();

        #[unroll]
        for kk in 0..TILE_K {
            #[unroll]
            for p in 0..block_m {
                a_reg[p] = a_tile[kk * tile_ld + ty + p * THREADS_1D];
            }
            #[unroll]
            for p in 0..block_n {
                b_reg[p] = b_tile[kk * tile_ld + tx + p * THREADS_1D];
            }
            #[unroll]
            for p in 0..block_m {
                #[unroll]
                for q in 0..block_n {
                    acc[p * block_n + q] += a_reg[p] * b_reg[q];
                }
            }
        }
        sync_cube();
    }

    #[unroll]
    for p in 0..block_m {
        let gm = m0 + ty + p * THREADS_1D;
        #[unroll]
        for q in 0..block_n {
            let gn = n0 + tx + q * THREADS_1D;
            if gm < m_total && gn < n_total {
                let mut v = acc[p * block_n + q];
                if comptime!(!transposed) {
                    v *= scale[gn];
                }
                out[gm * n_total + gn] = v;
            }
        }
    }
}

/// `out = scale[r] · trit(r, c)` (just `trit(r, c)` unless `scaled`), laid
/// out `[rows, cols]` or, when `transposed`, `[cols, rows]`: one unit per
/// output element, so the stores are coalesced (the 16 units of a word read
/// it from cache).
#[cube(launch)]
fn unpack_kernel<F: Float>(
    trits: &Array<u32>,
    scale: &Array<F>,
    out: &mut Array<F>,
    inner: u32,
    words: u32,
    #[comptime] transposed: bool,
    #[comptime] scaled: bool,
    #[define(F)] _dtype: StorageType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let inner = usize::cast_from(inner);
    let mut r = pos / inner;
    let mut c = pos % inner;
    if comptime!(transposed) {
        r = pos % inner;
        c = pos / inner;
    }
    let word = trits[r * usize::cast_from(words) + c / TRITS];
    let mut value = trit_value::<F>(word, (c % TRITS) as u32);
    if comptime!(scaled) {
        value *= scale[r];
    }
    out[pos] = value;
}

/// The weight as a dense tensor of `dtype`: `W = diag(scale) · T` when
/// `scaled`, else the trits `T` alone; `[rows, cols]`, or `[cols, rows]`
/// (i.e. `Wᵀ` contiguous) when `transposed`.
pub fn unpack_trits<R: CubeRuntime>(
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    dtype: DType,
    transposed: bool,
    scaled: bool,
) -> CubeTensor<R> {
    let trits = packed_words(trits);
    let scale = if scaled {
        scales_like(scale, dtype)
    } else {
        // Not read; any tensor of `dtype` fills the binding.
        super::empty_on(&trits, Shape::new([1]), dtype)
    };
    let shape = if transposed {
        [cols, rows]
    } else {
        [rows, cols]
    };
    let out = empty_device_contiguous_dtype(
        trits.client.clone(),
        trits.device.clone(),
        Shape::new(shape),
        dtype,
    );
    let elements = rows * cols;
    if elements == 0 {
        return out;
    }
    let client = trits.client.clone();
    let cube_dim = CubeDim::new(&client, elements);
    let cube_count = cubecl::calculate_cube_count_elemwise(&client, elements, cube_dim);
    unpack_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        trits.into_array_arg(),
        scale.into_array_arg(),
        out.clone().into_array_arg(),
        shape[1] as u32,
        cols.div_ceil(TRITS) as u32,
        transposed,
        scaled,
        dtype.into(),
    );
    out
}

/// Whether `dtype` activations with `m` rows take the tensor-core route.
pub fn uses_tensor_cores(dtype: DType, m: usize) -> bool {
    matches!(dtype, DType::F16 | DType::BF16) && m >= TENSOR_CORE_MIN_M
}

/// The half-precision tensor-core route: the trits unpacked (scales folded
/// in) to `a`'s dtype, then Burn's matmul: `a · Wᵀ`, or `a · W` with
/// `input_grad`. The dense right-hand side is column-major either way.
/// `tuned`: Burn's autotuned matmul, else its default kernel (no tuning,
/// which costs seconds for every new shape class on CUDA).
pub fn half_precision_matmul<R: CubeRuntime>(
    a: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    input_grad: bool,
    tuned: bool,
) -> CubeTensor<R> {
    let dtype = a.dtype;
    // Forward: `[rows, cols]` read as `[cols, rows]`; input grad: `[cols, rows]`
    // read as `[rows, cols]`.
    let mut rhs = unpack_trits(trits, scale, rows, cols, dtype, input_grad, true);
    rhs.meta.swap(0, 1);
    matmul(a, rhs, None, matmul_strategy(tuned), dtype)
        .unwrap_or_else(|e| panic!("ternary matmul: Burn's {dtype:?} matmul failed: {e:?}"))
}

/// Burn's autotuned matmul, or with `tuned = false` its default kernel
/// (tensor cores where there are any; no tuning, which costs seconds for
/// every new shape class on CUDA). Shared by both tensor-core routes.
pub(super) fn matmul_strategy(tuned: bool) -> MatmulStrategy {
    if tuned {
        MatmulStrategy::default()
    } else {
        MatmulStrategy::Cube
    }
}

/// Packed trits as contiguous `i32` words (read as `u32` by the kernels).
fn packed_words<R: CubeRuntime>(trits: CubeTensor<R>) -> CubeTensor<R> {
    into_contiguous(cast(trits, DType::I32))
}

/// Scales contiguous and in the activation's float type.
pub(super) fn scales_like<R: CubeRuntime>(scale: CubeTensor<R>, dtype: DType) -> CubeTensor<R> {
    into_contiguous(cast(scale, dtype))
}

fn empty_output<R: CubeRuntime>(like: &CubeTensor<R>, shape: [usize; 2]) -> CubeTensor<R> {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::new(shape),
        like.dtype,
    )
}

/// Smallest power of two `>= n`, clamped to `1..=max`.
fn pow2_at_most(n: usize, max: usize) -> usize {
    n.max(1).next_power_of_two().min(max)
}

fn launch_tiled<R: CubeRuntime>(
    a: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    n: usize,
    transposed: bool,
) -> CubeTensor<R> {
    let [m, k] = [a.meta.shape()[0], a.meta.shape()[1]];
    let out = empty_output(&a, [m, n]);
    let dtype = a.dtype;
    // Packed words per weight row: along the reduction (forward) or along
    // the output (input gradient).
    let t_stride = if transposed { n } else { k }.div_ceil(TRITS);
    let block = choose_tiled_block(&a.client, m, n);
    let tile = THREADS_1D * block;
    let cube_count = CubeCount::Static(n.div_ceil(tile) as u32, m.div_ceil(tile) as u32, 1);
    let cube_dim = CubeDim::new_2d(THREADS_1D as u32, THREADS_1D as u32);
    tiled_kernel::launch::<R>(
        &a.client.clone(),
        cube_count,
        cube_dim,
        a.into_array_arg(),
        trits.into_array_arg(),
        scale.into_array_arg(),
        out.clone().into_array_arg(),
        m as u32,
        k as u32,
        n as u32,
        t_stride as u32,
        transposed,
        block,
        dtype.into(),
    );
    out
}

/// Whether the device has plane (warp/subgroup) reductions with one fixed
/// plane size (the kernel lays a plane out as one row of the cube).
fn plane_ops_supported<R: CubeRuntime>(like: &CubeTensor<R>) -> bool {
    let properties = like.client.properties();
    properties
        .features
        .plane
        .contains(cubecl::features::Plane::Ops)
        && properties.hardware.plane_size_min == properties.hardware.plane_size_max
        && properties.hardware.plane_size_max >= 4
}

fn launch_gemv_plane<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
) -> CubeTensor<R> {
    let m = x.meta.shape()[0];
    let out = empty_output(&x, [m, rows]);
    let plane_dim = x.client.properties().hardware.plane_size_max.max(1) as usize;
    let words = cols.div_ceil(TRITS);
    let dtype = x.dtype;
    // Activation vectors of 4 where every row starts on a vector boundary.
    let nv = if cols.is_multiple_of(4) { 4 } else { 1 };
    let knobs = PLANE_TUNE.each_ref().map(|k| k.load(Ordering::Relaxed));
    let group_max = if knobs[2] > 0 {
        knobs[2]
    } else {
        GEMV_PLANE_GROUP
    };
    let mut first_row = 0;
    while first_row < m {
        let group = (m - first_row).min(group_max);
        // Registers per lane: `16 * wpl * group` activations and `rb * group` sums.
        let (wpl, rb) = match group {
            1 => (4, 16),
            2 => (2, 16),
            _ => (1, 8),
        };
        let wpl = if knobs[0] > 0 { knobs[0] } else { wpl };
        let rb = if knobs[1] > 0 { knobs[1] } else { rb };
        let chunks = words.div_ceil(plane_dim * wpl);
        let cubes = rows.div_ceil(rb);
        // One activation row: a plane per chunk, up to 256 lanes. Several:
        // about one wave of planes (`planes_for_one_wave`; 4 per cube where
        // the SM count is unknown), the fastest of 2, 4 and 8 planes on the
        // H200 at the shapes (round 17).
        let planes = if knobs[3] > 0 {
            chunks.clamp(1, knobs[3])
        } else if group > 1 {
            crate::sm_count::planes_for_one_wave(
                super::sm_count(&x.client),
                cubes,
                chunks,
                plane_dim,
                4,
            )
        } else {
            chunks.clamp(1, (256 / plane_dim).max(1))
        };
        // SAFETY: every read and write in the kernel is guarded by the sizes
        // passed here (`rows`, `cols`, and `words` derived from `cols`), and
        // `x`, `trits`, `scale` and `out` are contiguous with those sizes.
        unsafe {
            gemv_plane_kernel::launch_unchecked::<R>(
                &x.client.clone(),
                CubeCount::Static(cubes as u32, 1, 1),
                CubeDim::new_2d(plane_dim as u32, planes as u32),
                nv,
                x.clone().into_array_arg(),
                trits.clone().into_array_arg(),
                scale.clone().into_array_arg(),
                out.clone().into_array_arg(),
                rows as u32,
                cols as u32,
                first_row,
                group,
                wpl,
                rb,
                planes,
                nv,
                dtype.into(),
                scale.dtype.into(),
            );
        }
        first_row += group;
    }
    out
}

/// `x: [m, cols]` to `x · Wᵀ: [m, rows]`, with `trits: [rows, ceil(cols / 16)]`
/// and `scale: [rows]`. Uses the GEMV kernel for `m <= GEMV_MAX_M`, the tiled
/// kernel otherwise.
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let trits = packed_words(trits);
    let m = x.meta.shape()[0];
    debug_assert_eq!(x.meta.shape()[1], cols);
    if m == 0 || rows == 0 {
        return empty_output(&x, [m, rows]);
    }
    if m > GEMV_MAX_M {
        let scale = scales_like(scale, x.dtype);
        return launch_tiled(x, trits, scale, rows, false);
    }
    // The GEMV kernels read the scales in their own float type: a cast would
    // be a second launch per call, as long as the GEMV itself at decode
    // sizes (f16 activations with f32 scales).
    let scale = into_contiguous(scale);
    if super::gemv_mma_kernel::supported(&x, m) {
        return super::gemv_mma_kernel::forward(x, trits, scale, rows, cols);
    }
    if super::gemv_mma_kernel::supported(&x, super::gemv_mma_kernel::MMA_GEMV_MAX_M) {
        // 8 < m <= 16: the tensor-core GEMV in row blocks.
        return super::gemv_mma_kernel::forward_row_blocks(x, trits, scale, rows, cols);
    }
    if m <= GEMV_PLANE_MAX_M && plane_ops_supported(&x) {
        return launch_gemv_plane(x, trits, scale, rows, cols);
    }

    let out = empty_output(&x, [m, rows]);
    let words = cols.div_ceil(TRITS);
    let lanes = pow2_at_most(words, 32);
    let rows_per_cube = 256 / lanes;
    let dtype = x.dtype;
    let scale_dtype = scale.dtype;
    gemv_forward_kernel::launch::<R>(
        &x.client.clone(),
        CubeCount::Static(rows.div_ceil(rows_per_cube) as u32, 1, 1),
        CubeDim::new_2d(lanes as u32, rows_per_cube as u32),
        x.into_array_arg(),
        trits.into_array_arg(),
        scale.into_array_arg(),
        out.clone().into_array_arg(),
        rows as u32,
        cols as u32,
        m,
        lanes,
        rows_per_cube,
        dtype.into(),
        scale_dtype.into(),
    );
    out
}

/// `grad_y: [m, rows]` to `grad_y · W: [m, cols]`. Uses the GEMV-transposed
/// kernel for `m <= GEMV_MAX_M`, the tiled kernel otherwise.
pub fn input_grad<R: CubeRuntime>(
    grad_y: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
) -> CubeTensor<R> {
    let grad_y = into_contiguous(grad_y);
    let trits = packed_words(trits);
    let scale = scales_like(scale, grad_y.dtype);
    let m = grad_y.meta.shape()[0];
    debug_assert_eq!(grad_y.meta.shape()[1], rows);
    if m == 0 || cols == 0 {
        return empty_output(&grad_y, [m, cols]);
    }
    if rows == 0 {
        return burn_cubecl::ops::numeric::zeros_client(
            grad_y.client.clone(),
            grad_y.device.clone(),
            Shape::new([m, cols]),
            grad_y.dtype,
        );
    }
    if m > GEMV_MAX_M {
        return launch_tiled(grad_y, trits, scale, cols, true);
    }

    let out = empty_output(&grad_y, [m, cols]);
    let words = cols.div_ceil(TRITS);
    let word_cols = pow2_at_most(words, 32);
    let row_split = 256 / word_cols;
    let row_split = row_split.min(pow2_at_most(rows, 16));
    let dtype = grad_y.dtype;
    gemv_input_grad_kernel::launch::<R>(
        &grad_y.client.clone(),
        CubeCount::Static(words.div_ceil(word_cols) as u32, m as u32, 1),
        CubeDim::new_2d(word_cols as u32, row_split as u32),
        grad_y.into_array_arg(),
        trits.into_array_arg(),
        scale.into_array_arg(),
        out.clone().into_array_arg(),
        rows as u32,
        cols as u32,
        word_cols,
        row_split,
        dtype.into(),
    );
    out
}
