//! The shared-memory tiled FMA kernel of the ternary matmul, both
//! directions: the forward `x · Wᵀ` for `m > GEMV_MAX_M` (and f32 without the
//! split-f16 route) and the input gradient `grad_y · W` (the transposed
//! access of the packed trits, with the other trit-tile loader).

use burn_cubecl::{tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::*;

use super::{
    route::TILED_THREADS as THREADS_1D,
    unpack::{decode_trit, empty_output, TRITS},
};

/// Reduction tile of the tiled kernel: one packed word.
const TILE_K: usize = 16;

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

/// `a: [m, k]` (contiguous) times the packed trits into a new `[m, n]`: the
/// forward (`n` = weight rows, `scale` applied per output column) or, when
/// `transposed`, the input gradient (`n` = weight columns, `scale` per
/// reduction row); `block` from `super::route::tiled_block`.
pub(super) fn launch<R: CubeRuntime>(
    a: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    n: usize,
    transposed: bool,
    block: usize,
) -> CubeTensor<R> {
    let [m, k] = [a.meta.shape()[0], a.meta.shape()[1]];
    let out = empty_output(&a, [m, n]);
    let dtype = a.dtype;
    // Packed words per weight row: along the reduction (forward) or along
    // the output (input gradient).
    let t_stride = if transposed { n } else { k }.div_ceil(TRITS);
    let block = match block {
        b if b >= 4 => 4,
        b if b >= 2 => 2,
        _ => 1,
    };
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
