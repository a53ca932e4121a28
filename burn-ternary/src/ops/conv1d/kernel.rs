//! CubeCL kernels for the ternary 1-D convolution on `CubeBackend` (CUDA,
//! WGPU), with implicit im2col: the unfolded `[batch, in_channels · kernel_size,
//! out_len]` tensor of the reference is never materialized. Each kernel
//! gathers the activation tile it needs straight from `x` (or `grad_y`) into
//! shared memory, applying stride, padding (zero fill) and dilation while
//! loading, and decodes the packed trits (16 per word along the weight's
//! `c · kernel_size + k` columns) into the other shared tile.
//!
//! * [`forward`]: `y[b, r, o] = s[r] · Σ_{c,k} T[r, c·K + k] · x[b, c, o·stride + k·dil − pad]`,
//!   a tiled GEMM `[rows] × [batch · out_len]` whose reduction runs over the
//!   packed words of a weight row (one word = one k-tile of 16).
//! * [`input_grad`] (also the transposed convolution's forward):
//!   `gx[b, c, i] = Σ_{r,k} s[r] · T[r, c·K + k] · gy[b, r, o]` with
//!   `o·stride = i + pad − k·dil`, a tiled GEMM `[in_channels] × [batch · length]`
//!   whose reduction runs over (16 weight rows) × (the K taps). Positions that
//!   no output reaches (stride gaps, the tail the stride skipped) get 0.
//!
//! Both take flat `Array` arguments (every operand is made contiguous) and
//! the sizes as scalars, so a launch carries no per-launch shape and stride
//! metadata (a host-to-device copy per launch on CUDA).
//!
//! See `burn-ternary/DESIGN.md`.

use crate::{
    ops::launch::sm_count,
    sm_count::largest_block_covering_sms,
    types::{Conv1dGeometry, ConvEpilogue},
};
use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{cast, into_contiguous},
    ops::numeric::{empty_device_contiguous_dtype, zeros_client},
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::prelude::*;

/// Trits per packed word (mirrors [`crate::packing::TRITS_PER_WORD`]).
const TRITS: usize = 16;
/// Reduction tile: one packed word (forward) or 16 weight rows (input grad).
const TILE_K: usize = 16;
/// A cube is `THREADS_1D × THREADS_1D` units, each owning a `block × block`
/// output block, so an output tile is `THREADS_1D · block` square (channels
/// or weight rows × flattened `batch × position`).
const THREADS_1D: usize = 16;

/// The register block to launch with, 4 (64-square tiles) or 8 (128-square
/// tiles): `block` if given (for checks and benchmarks), else 8 where the
/// block-8 grid (`cubes_at(8)` cubes) covers more than half the device's
/// SMs, else 4. An 8×8 block does 64 FMAs per 16 shared loads against 16
/// per 8, but a quarter of the cubes: on the H200 (132 SMs) block 8 won at
/// 128 to 512 cubes (0.92 → 0.73 ms, input grad s = 1) and lost at 64
/// (0.36 → 0.57 ms, forward s = 4), where half the SMs sat idle.
fn choose_block<R: CubeRuntime>(
    client: &ComputeClient<R>,
    block: Option<usize>,
    cubes_at: impl Fn(usize) -> usize,
) -> usize {
    match block {
        None => largest_block_covering_sms(sm_count(client), &[8], 4, cubes_at),
        Some(b) if b >= 8 => 8,
        Some(_) => 4,
    }
}
/// Largest cube count along one grid dimension accepted everywhere (WGPU).
const MAX_GRID: usize = 65535;

/// Decodes trit `j` of a packed word to `-1`, `0` or `+1` in the float type.
#[cube]
fn decode_trit<F: Float>(word: u32, j: u32) -> F {
    let code = (word >> (2 * j)) & 3;
    F::cast_from(code & 1) - F::cast_from(code >> 1)
}

/// The `block × block` register-blocked product of one 16-deep k-tile of the
/// shared tiles (`a_tile[kk, m]`, `b_tile[kk, n]`, k-major, leading
/// dimension `THREADS_1D · block + 1`).
#[cube]
fn tile_product<F: Float>(
    acc: &mut Array<F>,
    a_tile: &SharedMemory<F>,
    b_tile: &SharedMemory<F>,
    tx: usize,
    ty: usize,
    #[comptime] block: usize,
) {
    let block_m = block;
    let block_n = block;
    let tile_ld = comptime!(THREADS_1D * block + 1);
    let mut a_reg = Array::<F>::new(block_m);
    let mut b_reg = Array::<F>::new(block_n);
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
}

/// The forward convolution's main loop: accumulates, unscaled, the
/// `block × block` outputs of this unit in the output tile at weight rows
/// `r0 ..` and flattened `(b, o)` positions `n0 ..` into `acc`, for
/// [`conv_fused_kernel`] to scale and finish.
#[cube]
#[allow(clippy::too_many_arguments)]
fn conv_forward_accumulate<F: Float>(
    x: &Array<F>,
    trits: &Array<u32>,
    acc: &mut Array<F>,
    r0: usize,
    n0: usize,
    rows: usize,
    channels: usize,
    length: usize,
    out_len: usize,
    n_total: usize,
    kernel_size: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    #[comptime] block: usize,
) {
    let tile = comptime!(THREADS_1D * block);
    let tile_ld = comptime!(THREADS_1D * block + 1);
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let tid = ty * THREADS_1D + tx;
    let ck_total = channels * kernel_size;
    let words = (ck_total + comptime!(TRITS - 1)) / TRITS;
    let t_stride = words;

    let mut a_tile = SharedMemory::<F>::new(comptime!(TILE_K * tile_ld));
    let mut b_tile = SharedMemory::<F>::new(comptime!(TILE_K * tile_ld));
    let loads = comptime!(THREADS_1D * block * TILE_K / (THREADS_1D * THREADS_1D));

    for kt in 0..words {
        // Weight tile A[m, kk] = T[r0 + m, 16 kt + kk]: one word per row.
        #[unroll]
        for q in 0..loads {
            let idx = tid + q * THREADS_1D * THREADS_1D;
            let mm = idx / TILE_K;
            let kk = idx % TILE_K;
            let r = r0 + mm;
            let mut v = F::new(0.0);
            if r < rows {
                v = decode_trit::<F>(trits[r * t_stride + kt], kk as u32);
            }
            a_tile[kk * tile_ld + mm] = v;
        }
        // Activation tile B[kk, n] = x[b, c, o·stride + k·dil − pad], gathered.
        #[unroll]
        for q in 0..loads {
            let idx = tid + q * THREADS_1D * THREADS_1D;
            let kk = idx / tile;
            let nn = idx % tile;
            let ck = kt * TILE_K + kk;
            let n = n0 + nn;
            let mut v = F::new(0.0);
            if ck < ck_total && n < n_total {
                let c = ck / kernel_size;
                let k = ck % kernel_size;
                let b = n / out_len;
                let o = n % out_len;
                let p = o * stride + k * dilation;
                if p >= padding && p - padding < length {
                    v = x[(b * channels + c) * length + p - padding];
                }
            }
            b_tile[kk * tile_ld + nn] = v;
        }
        sync_cube();
        tile_product::<F>(acc, &a_tile, &b_tile, tx, ty, block);
        sync_cube();
    }
}

/// [`ConvEpilogue::Plain`] as the fused kernel's comptime code.
const EPILOGUE_PLAIN: u32 = 0;
/// [`ConvEpilogue::AddContext`].
const EPILOGUE_CONTEXT: u32 = 1;
/// [`ConvEpilogue::AddResidual`].
const EPILOGUE_RESIDUAL: u32 = 2;
/// [`ConvEpilogue::DenoiseStep`].
const EPILOGUE_DENOISE: u32 = 3;

/// The forward convolution, implicit im2col (output tile: weight rows
/// `CUBE_POS_Y · tile ..` × flattened `(b, o)` positions of tile
/// `CUBE_POS_Z · CUBE_COUNT_X + CUBE_POS_X`), with an epilogue (comptime
/// `epilogue`, one of the `EPILOGUE_*` codes; plain: the scaled store) applied to each scaled output `y` before it is
/// written: `+ extra[context_start + b·rows + r]` (context of one step),
/// `+ extra[b, r, o]` (residual) or
/// `(extra[b, r, o] − (1 − alpha[b])·y) / √alpha[b]` (denoise step, `extra`
/// the latent); with comptime `gelu_copy` it also writes `gelu(y)` to
/// `activated`, the next convolution's input, so the GELU runs once per
/// element rather than once per gather (`kernel_size` taps × row tiles).
/// `extra`, `alpha` and `activated` are 1-element placeholders where the
/// comptime options do not read or write them.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn conv_fused_kernel<F: Float>(
    x: &Array<F>,
    trits: &Array<u32>,
    scale: &Array<F>,
    extra: &Array<F>,
    alpha: &Array<F>,
    out: &mut Array<F>,
    activated: &mut Array<F>,
    batch: u32,
    channels: u32,
    length: u32,
    rows: u32,
    out_len: u32,
    kernel_size: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    n_tiles: usize,
    context_start: usize,
    #[comptime] block: usize,
    #[comptime] epilogue: u32,
    #[comptime] gelu_copy: bool,
    #[define(F)] _dtype: StorageType,
) {
    let tile = comptime!(THREADS_1D * block);
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let tile_n = CUBE_POS_Z as usize * CUBE_COUNT_X as usize + CUBE_POS_X as usize;
    if tile_n >= n_tiles {
        terminate!();
    }
    let r0 = CUBE_POS_Y as usize * tile;
    let n0 = tile_n * tile;
    let rows = usize::cast_from(rows);
    let out_len = usize::cast_from(out_len);
    let n_total = usize::cast_from(batch) * out_len;
    let acc_len = comptime!(block * block);
    let mut acc = Array::<F>::new(acc_len);
    #[unroll]
    for q in 0..acc_len {
        acc[q] = F::new(0.0);
    }
    conv_forward_accumulate::<F>(
        x,
        trits,
        &mut acc,
        r0,
        n0,
        rows,
        usize::cast_from(channels),
        usize::cast_from(length),
        out_len,
        n_total,
        kernel_size,
        stride,
        padding,
        dilation,
        block,
    );

    let block_n = block;
    #[unroll]
    for p in 0..block {
        let r = r0 + ty + p * THREADS_1D;
        #[unroll]
        for q in 0..block_n {
            let n = n0 + tx + q * THREADS_1D;
            if r < rows && n < n_total {
                let b = n / out_len;
                let o = n % out_len;
                let at = (b * rows + r) * out_len + o;
                let mut y = acc[p * block_n + q] * scale[r];
                if comptime!(epilogue == EPILOGUE_CONTEXT) {
                    y += extra[context_start + b * rows + r];
                } else if comptime!(epilogue == EPILOGUE_RESIDUAL) {
                    y += extra[at];
                } else if comptime!(epilogue == EPILOGUE_DENOISE) {
                    let a = alpha[b];
                    // Written as the reference's `(latent − ε̂·(1 − α)) / √α`.
                    y = (extra[at] - y * (F::new(1.0) - a)) / F::sqrt(a);
                }
                out[at] = y;
                if comptime!(gelu_copy) {
                    // Burn's exact GELU, `y · (erf(y / √2) + 1) / 2`.
                    activated[at] = y
                        * (F::erf(y * F::new(core::f32::consts::FRAC_1_SQRT_2)) + F::new(1.0))
                        * F::new(0.5);
                }
            }
        }
    }
}

/// Input gradient (transposed convolution), implicit col2im. Output tile:
/// input channels `CUBE_POS_Y · tile ..` × `tile` positions of tile
/// `CUBE_POS_Z · CUBE_COUNT_X + CUBE_POS_X`; the reduction runs over tiles of
/// 16 weight rows and, inside, the `kernel_size` taps.
///
/// Positions are ordered by residue: `n = (b · stride + ρ) · phase_len + j`
/// is input position `i = j · stride + ρ` of sample `b` (`phase_len` =
/// `input_len` for stride 1, else `ceil(input_len / stride)` rounded up to
/// whole tiles, so that a tile never mixes residues). Tap `k` reaches
/// position `i` only if `stride` divides `i + pad − k · dil`, which depends
/// on `ρ` alone: a tile skips the taps that reach none of its positions
/// instead of multiplying zeros (a stride-2 gradient did twice the work).
#[cube(launch_unchecked)]
#[allow(
    clippy::too_many_arguments,
    clippy::manual_div_ceil,
    clippy::manual_is_multiple_of
)] // `div_ceil` and `is_multiple_of` are not cube functions
fn conv_input_grad_kernel<F: Float>(
    grad_y: &Array<F>,
    trits: &Array<u32>,
    scale: &Array<F>,
    out: &mut Array<F>,
    batch: u32,
    channels: u32,
    length: u32,
    rows: u32,
    out_len: u32,
    kernel_size: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    phase_len: usize,
    n_tiles: usize,
    #[comptime] block: usize,
    #[define(F)] _dtype: StorageType,
) {
    let tile = comptime!(THREADS_1D * block);
    let tile_ld = comptime!(THREADS_1D * block + 1);
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let tid = ty * THREADS_1D + tx;
    let tile_n = CUBE_POS_Z as usize * CUBE_COUNT_X as usize + CUBE_POS_X as usize;
    if tile_n >= n_tiles {
        terminate!();
    }
    let c0 = CUBE_POS_Y as usize * tile;
    let n0 = tile_n * tile;
    let channels = usize::cast_from(channels);
    let length = usize::cast_from(length);
    let n_total = usize::cast_from(batch) * stride * phase_len;
    // The tile's residue (one per tile, see above).
    let rho = (n0 / phase_len) % stride;
    let rows = usize::cast_from(rows);
    let out_len = usize::cast_from(out_len);
    let t_stride = (channels * kernel_size + comptime!(TRITS - 1)) / TRITS;

    let mut a_tile = SharedMemory::<F>::new(comptime!(TILE_K * tile_ld));
    let mut b_tile = SharedMemory::<F>::new(comptime!(TILE_K * tile_ld));
    let acc_len = comptime!(block * block);
    let loads = comptime!(THREADS_1D * block * TILE_K / (THREADS_1D * THREADS_1D));
    let mut acc = Array::<F>::new(acc_len);
    #[unroll]
    for q in 0..acc_len {
        acc[q] = F::new(0.0);
    }

    let r_tiles = (rows + TILE_K - 1) / TILE_K;
    for rt in 0..r_tiles {
        for k in 0..kernel_size {
            // `stride` divides `i + pad − k·dil` for every position of the
            // tile or for none (one residue); written without negatives.
            let tap = k * dilation;
            if (rho + padding + stride * tap - tap) % stride == 0 {
                // Weight tile A[rr, c] = s[r] · T[r, c·K + k] (k-major: rr is the reduction).
                #[unroll]
                for q in 0..loads {
                    let idx = tid + q * THREADS_1D * THREADS_1D;
                    let rr = idx / tile;
                    let cc = idx % tile;
                    let r = rt * TILE_K + rr;
                    let c = c0 + cc;
                    let mut v = F::new(0.0);
                    if r < rows && c < channels {
                        let col = c * kernel_size + k;
                        let word = trits[r * t_stride + col / TRITS];
                        v = decode_trit::<F>(word, (col % TRITS) as u32) * scale[r];
                    }
                    a_tile[rr * tile_ld + cc] = v;
                }
                // Gradient tile B[rr, n] = gy[b, r, o] with o·stride = i + pad − k·dil.
                #[unroll]
                for q in 0..loads {
                    let idx = tid + q * THREADS_1D * THREADS_1D;
                    let rr = idx / tile;
                    let nn = idx % tile;
                    let r = rt * TILE_K + rr;
                    let n = n0 + nn;
                    let mut v = F::new(0.0);
                    let b = n / (stride * phase_len);
                    let i = (n % phase_len) * stride + rho;
                    if r < rows && n < n_total && i < length {
                        let reach = i + padding;
                        if reach >= tap {
                            // `stride` divides `reach − tap`: the tile's
                            // residue passed the tap test above.
                            let o = (reach - tap) / stride;
                            if o < out_len {
                                v = grad_y[(b * rows + r) * out_len + o];
                            }
                        }
                    }
                    b_tile[rr * tile_ld + nn] = v;
                }
                sync_cube();
                tile_product::<F>(&mut acc, &a_tile, &b_tile, tx, ty, block);
                sync_cube();
            }
        }
    }

    let block_n = block;
    #[unroll]
    for p in 0..block {
        let c = c0 + ty + p * THREADS_1D;
        #[unroll]
        for q in 0..block_n {
            let n = n0 + tx + q * THREADS_1D;
            let b = n / (stride * phase_len);
            let i = (n % phase_len) * stride + rho;
            if c < channels && n < n_total && i < length {
                out[(b * channels + c) * length + i] = acc[p * block_n + q];
            }
        }
    }
}

/// Grid for `m_tiles × n_tiles` output tiles; `n_tiles` is split over the X
/// and Z dimensions so that no dimension exceeds [`MAX_GRID`].
fn tile_grid(m_tiles: usize, n_tiles: usize) -> CubeCount {
    let x = n_tiles.clamp(1, MAX_GRID);
    let z = n_tiles.div_ceil(x).max(1);
    CubeCount::Static(x as u32, m_tiles as u32, z as u32)
}

fn empty_output<R: CubeRuntime>(like: &CubeTensor<R>, shape: [usize; 3]) -> CubeTensor<R> {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::new(shape),
        like.dtype,
    )
}

fn zeros_output<R: CubeRuntime>(like: &CubeTensor<R>, shape: [usize; 3]) -> CubeTensor<R> {
    zeros_client(
        like.client.clone(),
        like.device.clone(),
        Shape::new(shape),
        like.dtype,
    )
}

/// `x: [batch, in_channels, length]` to `[batch, rows, out_len]`, with
/// `trits: [rows, ceil(in_channels · kernel_size / 16)]` and `scale: [rows]`;
/// `block`: the register block (`None`: the launch rule, see [`choose_block`]).
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    g: Conv1dGeometry,
    block: Option<usize>,
) -> CubeTensor<R> {
    let [batch, channels, length] = x.meta.shape().dims();
    debug_assert_eq!(channels, g.in_channels);
    let out_len = g
        .output_len(length)
        .expect("ternary_conv1d: input shorter than the kernel's reach");
    if batch * out_len == 0 || rows == 0 {
        return empty_output(&x, [batch, rows, out_len]);
    }
    if channels == 0 {
        return zeros_output(&x, [batch, rows, out_len]);
    }
    // The plain epilogue compiles to the bare scaled store.
    fused_forward(x, trits, scale, rows, g, ConvEpilogue::Plain, false, block).0
}

/// [`forward`] with an epilogue and an optional GELU copy in the same launch
/// (see [`crate::TernaryBackend::ternary_conv1d_fused`]): returns
/// `(y, gelu(y) if gelu_copy)`. `block` as for [`forward`].
///
/// # Panics
/// When `x` has no channels (the op's callers reject that shape).
#[allow(clippy::too_many_arguments)]
pub fn fused_forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    g: Conv1dGeometry,
    epilogue: ConvEpilogue<CubeTensor<R>>,
    gelu_copy: bool,
    block: Option<usize>,
) -> (CubeTensor<R>, Option<CubeTensor<R>>) {
    let x = into_contiguous(x);
    let [batch, channels, length] = x.meta.shape().dims();
    debug_assert_eq!(channels, g.in_channels);
    let out_len = g
        .output_len(length)
        .expect("ternary_conv1d_fused: input shorter than the kernel's reach");
    let out = empty_output(&x, [batch, rows, out_len]);
    let activated = gelu_copy.then(|| empty_output(&x, [batch, rows, out_len]));
    let n_total = batch * out_len;
    if n_total == 0 || rows == 0 {
        return (out, activated);
    }
    assert!(channels > 0, "ternary_conv1d_fused: x has no channels");
    let dtype = x.dtype;
    let operand = |t: CubeTensor<R>| into_contiguous(cast(t, dtype));
    // Arguments the comptime options leave unread: one element each, never
    // touched (distinct buffers, so no binding aliases an output).
    let placeholder = || empty_output(&x, [1, 1, 1]);
    let mut context_start = 0;
    let (code, extra, alpha) = match epilogue {
        ConvEpilogue::Plain => (EPILOGUE_PLAIN, placeholder(), placeholder()),
        ConvEpilogue::AddContext { context, step } => {
            context_start = step * batch * rows;
            (EPILOGUE_CONTEXT, operand(context), placeholder())
        }
        ConvEpilogue::AddResidual(r) => (EPILOGUE_RESIDUAL, operand(r), placeholder()),
        ConvEpilogue::DenoiseStep { latent, alpha } => {
            (EPILOGUE_DENOISE, operand(latent), operand(alpha))
        }
    };
    let activated_arg = activated.clone().unwrap_or_else(placeholder);
    let trits = into_contiguous(cast(trits, DType::I32));
    let scale = operand(scale);
    let block = choose_block(&x.client, block, |b| {
        let tile = THREADS_1D * b;
        rows.div_ceil(tile) * n_total.div_ceil(tile)
    });
    let tile = THREADS_1D * block;
    let n_tiles = n_total.div_ceil(tile);
    // SAFETY: the main loop is `forward`'s (same guards); the epilogue reads
    // `extra`, `alpha` and writes `activated` only at the output index of an
    // in-bounds output (row below `rows`, position below `batch · out_len`;
    // for a context, in step `step` of `[steps, batch, rows]`, step < steps),
    // and only under the comptime option that passes them at full size
    // (checked against the reference on 200+ shapes on CUDA and WGPU).
    unsafe {
        conv_fused_kernel::launch_unchecked::<R>(
            &x.client.clone(),
            tile_grid(rows.div_ceil(tile), n_tiles),
            CubeDim::new_2d(THREADS_1D as u32, THREADS_1D as u32),
            x.into_array_arg(),
            trits.into_array_arg(),
            scale.into_array_arg(),
            extra.into_array_arg(),
            alpha.into_array_arg(),
            out.clone().into_array_arg(),
            activated_arg.into_array_arg(),
            batch as u32,
            channels as u32,
            length as u32,
            rows as u32,
            out_len as u32,
            g.kernel_size,
            g.stride,
            g.padding,
            g.dilation,
            n_tiles,
            context_start,
            block,
            code,
            gelu_copy,
            dtype.into(),
        );
    }
    (out, activated)
}

/// `grad_y: [batch, rows, out_len]` to `[batch, in_channels, input_len]`: the
/// input gradient of [`forward`], and the forward pass of the transposed
/// convolution. `block` as for [`forward`].
pub fn input_grad<R: CubeRuntime>(
    grad_y: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    g: Conv1dGeometry,
    input_len: usize,
    block: Option<usize>,
) -> CubeTensor<R> {
    let grad_y = into_contiguous(grad_y);
    let [batch, rows, out_len] = grad_y.meta.shape().dims();
    let channels = g.in_channels;
    if batch * input_len == 0 || channels == 0 {
        return empty_output(&grad_y, [batch, channels, input_len]);
    }
    if rows == 0 {
        return zeros_output(&grad_y, [batch, channels, input_len]);
    }
    let trits = into_contiguous(cast(trits, DType::I32));
    let scale = into_contiguous(cast(scale, grad_y.dtype));
    let out = empty_output(&grad_y, [batch, channels, input_len]);
    // Positions grouped by residue modulo the stride, each group padded to
    // whole tiles (see the kernel).
    let phase_len = |tile: usize| {
        if g.stride == 1 {
            input_len
        } else {
            input_len.div_ceil(g.stride).div_ceil(tile) * tile
        }
    };
    let n_tiles = |tile: usize| (batch * g.stride * phase_len(tile)).div_ceil(tile);
    let block = choose_block(&grad_y.client, block, |b| {
        let tile = THREADS_1D * b;
        channels.div_ceil(tile) * n_tiles(tile)
    });
    let tile = THREADS_1D * block;
    let phase_len = phase_len(tile);
    let n_tiles = n_tiles(tile);
    let dtype = grad_y.dtype;
    // SAFETY: every global access is guarded by its bound (weight row and
    // input channel, hence packed word; sample, output position; output
    // channel and position), and shared-memory indices are below the tiles'
    // comptime sizes by construction (checked against the reference on 200+
    // shapes per block size on CUDA and WGPU).
    unsafe {
        conv_input_grad_kernel::launch_unchecked::<R>(
            &grad_y.client.clone(),
            tile_grid(channels.div_ceil(tile), n_tiles),
            CubeDim::new_2d(THREADS_1D as u32, THREADS_1D as u32),
            grad_y.into_array_arg(),
            trits.into_array_arg(),
            scale.into_array_arg(),
            out.clone().into_array_arg(),
            batch as u32,
            channels as u32,
            input_len as u32,
            rows as u32,
            out_len as u32,
            g.kernel_size,
            g.stride,
            g.padding,
            g.dilation,
            phase_len,
            n_tiles,
            block,
            dtype.into(),
        );
    }
    out
}
