//! The FMA GEMV kernels of the ternary matmul (few activation rows, any
//! device): the plane-reduction GEMV (forward, `m <= GEMV_PLANE_MAX_M`, on
//! devices with plane operations), the shared-memory GEMV (any other forward
//! with `m <= GEMV_MAX_M`, e.g. lavapipe) and the GEMV-transposed kernel (the
//! input gradient for `m <= GEMV_MAX_M`). Each lane streams whole packed
//! words, so every word is read once. Launch shapes come from the route
//! (`super::route`).

use burn_cubecl::{tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::*;

use super::{
    route::PlaneGemvShape,
    unpack::{decode_trit, empty_output, trit_value, TRITS},
};

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
/// GEMV forward for `m` (comptime, up to 4 by default) activation rows
/// `first_row..first_row + m`, built to stream the packed trits at memory
/// speed (larger `m` up to `GEMV_PLANE_MAX_M` is done in launches of groups).
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

/// The plane GEMV of `x: [m, cols]` (contiguous) against the packed trits
/// into a new `[m, rows]`: one launch per entry of `launches` (from
/// `super::route::plane_gemv_launches`), each on its own activation rows.
/// `plane_dim`: the device's plane size.
pub(super) fn plane<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    plane_dim: usize,
    launches: &[PlaneGemvShape],
) -> CubeTensor<R> {
    let m = x.meta.shape()[0];
    let out = empty_output(&x, [m, rows]);
    let dtype = x.dtype;
    // Activation vectors of 4 where every row starts on a vector boundary.
    let nv = if cols.is_multiple_of(4) { 4 } else { 1 };
    for shape in launches {
        assert!(
            shape.first_row + shape.m <= m,
            "plane GEMV launch {shape:?} outside {m} rows"
        );
        let cubes = rows.div_ceil(shape.rb);
        // SAFETY: every read and write in the kernel is guarded by the sizes
        // passed here (`rows`, `cols`, and `words` derived from `cols`), and
        // `x`, `trits`, `scale` and `out` are contiguous with those sizes.
        unsafe {
            gemv_plane_kernel::launch_unchecked::<R>(
                &x.client.clone(),
                CubeCount::Static(cubes as u32, 1, 1),
                CubeDim::new_2d(plane_dim as u32, shape.planes as u32),
                nv,
                x.clone().into_array_arg(),
                trits.clone().into_array_arg(),
                scale.clone().into_array_arg(),
                out.clone().into_array_arg(),
                rows as u32,
                cols as u32,
                shape.first_row,
                shape.m,
                shape.wpl,
                shape.rb,
                shape.planes,
                nv,
                dtype.into(),
                scale.dtype.into(),
            );
        }
    }
    out
}

/// The shared-memory GEMV of `x: [m, cols]` (contiguous, `m <= 16`) against
/// the packed trits into a new `[m, rows]`, `lanes` per output row and
/// `rows_per_cube` rows per cube.
pub(super) fn shared<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    lanes: usize,
    rows_per_cube: usize,
) -> CubeTensor<R> {
    let m = x.meta.shape()[0];
    let out = empty_output(&x, [m, rows]);
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

/// The GEMV-transposed kernel: `grad_y: [m, rows]` (contiguous, `m <= 16`)
/// times the packed trits and `scale` (in `grad_y`'s type) into a new
/// `[m, cols]`, `word_cols` packed word columns per cube and the weight rows
/// split `row_split` ways.
#[allow(clippy::too_many_arguments)]
pub(super) fn transposed<R: CubeRuntime>(
    grad_y: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    word_cols: usize,
    row_split: usize,
) -> CubeTensor<R> {
    let m = grad_y.meta.shape()[0];
    let out = empty_output(&grad_y, [m, cols]);
    let words = cols.div_ceil(TRITS);
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
