//! The activations' limbs of the tensor-core GEMV (see the module docs of
//! `gemv_mma`): their layout in the `mma`'s B fragments, the prepass kernel
//! that writes them to global memory ([`limb_kernel`]), and the fused form's
//! prologue that computes them into shared memory ([`fused_limbs`]).

use cubecl::prelude::*;

use crate::ops::matmul::route::{CHUNK_COLS, LANES, REGS, TILE_N};

/// The activation column (within its chunk) held by byte `i` of B register
/// `reg` of the lanes with `tig` (`lane % 4`) — and, by construction, the
/// column whose trit the A operand decodes into the same `mma` slot: word
/// `4·tig + reg / 4` of the chunk (a lane's four words are contiguous, so the
/// main kernel loads them with one 16-byte load), trit `4i + reg % 4` of it.
/// Both the prepass and the fused prologue place limbs by this function.
#[cube]
fn limb_column(reg: usize, tig: usize, i: usize) -> usize {
    16 * (4 * tig + reg / 4) + 4 * i + reg % 4
}

/// Position of B register `reg` of `lane` for `(tile, chunk)` in the limb
/// buffer: `[tile][chunk][reg / 4][lane][reg % 4]`, so a lane's registers
/// `4j..4j + 4` are one 16-byte vector and a plane's vector loads are
/// contiguous.
#[cube]
pub(super) fn limb_slot(
    tile: usize,
    chunk: usize,
    chunks: usize,
    reg: usize,
    lane: usize,
) -> usize {
    (((tile * chunks + chunk) * 4 + reg / 4) * LANES + lane) * 4 + reg % 4
}

/// The balanced base-256 split `q = l₀ + 2⁸·l₁ + 2¹⁶·l₂` (`|q| ≤ 2^22`, so
/// every limb lies in `[-128, 127]`), as three carriers whose low bytes are
/// the limbs' bytes: `q` itself, `q1 = (q + 128) >> 8` and
/// `l₂ = (q1 + 128) >> 8`. Storing a limb needs only its low byte, so the
/// carriers are what gets packed; [`limbs_of_carriers`] turns them (or sums
/// of them: it is linear) into the limbs' values.
#[cube]
fn limb_carriers(q: i32) -> (i32, i32, i32) {
    let q1 = (q + 128i32) >> 8i32;
    (q, q1, (q1 + 128i32) >> 8i32)
}

/// The limbs `(l₀, l₁, l₂) = (q − 2⁸·q1, q1 − 2⁸·l₂, l₂)` from the carriers
/// of [`limb_carriers`] (or from their sums over a chunk).
#[cube]
fn limbs_of_carriers(q: i32, q1: i32, l2: i32) -> (i32, i32, i32) {
    (q - 256i32 * q1, q1 - 256i32 * l2, l2)
}

/// Prepass: one cube of 16 planes per (chunk, B tile); unit `(lane, reg)`
/// writes B register `reg` of `lane` (four limbs) at [`limb_slot`]. Also
/// writes the sum of each limb column over the chunk and the chunk's
/// dequantization factor `2^(E - 22)`. Spread over 512 units so that each
/// does a handful of loads: with one plane per chunk the prepass was a
/// latency-bound chain of about a thousand instructions (10 µs on the H200
/// for 8192 columns, a third of the GEMV).
#[cube(launch_unchecked)]
pub(super) fn limb_kernel<F: Float>(
    x: &Array<F>,
    limbs: &mut Array<u32>,
    limb_sums: &mut Array<i32>,
    chunk_dequant: &mut Array<f32>,
    cols: u32,
    #[comptime] m: usize,
    #[define(F)] _dtype: StorageType,
) {
    let lane = UNIT_POS_X as usize;
    let reg = UNIT_POS_Y as usize;
    let unit = reg * LANES + lane;
    let chunk = CUBE_POS_X as usize;
    let tile = CUBE_POS_Y as usize;
    let chunks = CUBE_COUNT_X as usize;
    let cols = usize::cast_from(cols);
    let base = chunk * CHUNK_COLS;

    // The chunk's max |x| over all rows: units 0..256 take one column each
    // (every tile computes the same value).
    let mut amax = 0.0f32;
    let col = base + unit;
    if unit < CHUNK_COLS && col < cols {
        #[unroll]
        for r in 0..m {
            let v = f32::cast_from(x[r * cols + col]);
            let a = select(v < 0.0f32, -v, v);
            amax = select(a > amax, a, amax);
        }
    }
    let amax = butterfly_max(amax);
    let mut plane_amax = SharedMemory::<f32>::new(REGS);
    if lane == 0 {
        plane_amax[reg] = amax;
    }
    sync_cube();
    let mut chunk_max = 0.0f32;
    #[unroll]
    for p in 0..comptime!(CHUNK_COLS / LANES) {
        let a = plane_amax[p];
        chunk_max = select(a > chunk_max, a, chunk_max);
    }
    let (quant, dequant) = chunk_factors(chunk_max);

    let g = lane / 4;
    let tig = lane % 4;
    let n = tile * TILE_N + g;
    let r = n / 3;
    let l = (n % 3) as u32;
    let mut sum = 0i32;
    let mut word = 0u32;
    if n < 3 * m {
        #[unroll]
        for i in 0..4usize {
            let col = base + limb_column(reg, tig, i);
            let mut limb = 0i32;
            if col < cols {
                let v = f32::cast_from(x[r * cols + col]);
                let (q, q1, l2) = limb_carriers(i32::cast_from(f32::floor(v * quant + 0.5f32)));
                let (l0, l1, l2) = limbs_of_carriers(q, q1, l2);
                limb = select(l == 0u32, l0, select(l == 1u32, l1, l2));
            }
            sum += limb;
            word |= (u32::cast_from(limb) & 255u32) << comptime!(8 * i as u32);
        }
    }
    limbs[limb_slot(tile, chunk, chunks, reg, lane)] = word;

    // Limb column g's sum: over the four lanes of the group (shuffles), then
    // over the 16 registers (shared memory).
    let sum = sum + plane_shuffle_xor(sum, 1u32);
    let sum = sum + plane_shuffle_xor(sum, 2u32);
    let mut partial = SharedMemory::<i32>::new(comptime!(REGS * TILE_N));
    if tig == 0 {
        partial[reg * TILE_N + g] = sum;
    }
    sync_cube();
    if unit < TILE_N {
        let mut total = 0i32;
        #[unroll]
        for p in 0..REGS {
            total += partial[p * TILE_N + unit];
        }
        limb_sums[(tile * chunks + chunk) * TILE_N + unit] = total;
    }
    if tile == 0 && unit == 0 {
        chunk_dequant[chunk] = dequant;
    }
}

/// Word of B register `reg` of limb column `n` (`< 3m`) for the lanes with
/// `tig`, chunk `c`: `[c][reg][n][tig]`, so that the lanes of a plane reading
/// one register hit consecutive words (no bank conflicts).
#[cube]
pub(super) fn fused_limb_word(
    c: usize,
    reg: usize,
    n: usize,
    tig: usize,
    #[comptime] m: usize,
) -> usize {
    ((c * REGS + reg) * comptime!(3 * m) + n) * 4 + tig
}

/// Word of the sum of limb column `n` over chunk `c` (as `i32` bits).
#[cube]
pub(super) fn fused_sum_word(
    c: usize,
    n: usize,
    #[comptime] m: usize,
    #[comptime] chunks: usize,
) -> usize {
    comptime!(chunks * REGS * 3 * m * 4) + c * comptime!(3 * m) + n
}

/// Word of chunk `c`'s dequantization factor (as `f32` bits).
#[cube]
pub(super) fn fused_dequant_word(
    c: usize,
    #[comptime] m: usize,
    #[comptime] chunks: usize,
) -> usize {
    comptime!(chunks * (REGS * 3 * m * 4 + 3 * m)) + c
}

/// Chunk `c`'s exponent from its largest magnitude: the quantization factor
/// `2^(22 - E)` and the dequantization factor `2^(E - 22)`, with `E` the
/// biased exponent of `chunk_max` clamped so that both are normal floats (a
/// chunk below 2^-105 rounds to zero).
#[cube]
fn chunk_factors(chunk_max: f32) -> (f32, f32) {
    let e = (u32::reinterpret(chunk_max) >> 23u32) & 255u32;
    let e = select(e < 22u32, 22u32, e);
    (
        f32::reinterpret((275u32 - e) << 23u32),
        f32::reinterpret((e - 21u32) << 23u32),
    )
}

/// B register of column set `set` (`0..64`) in the fused prologue: a set is
/// the four columns one B register holds, [`limb_column`]`(reg, tig, 0..4)`.
/// Set `4w + j` holds columns `16w + j + 4i` (`i = 0..4`) of the chunk, in
/// register `4·(w % 4) + j`.
#[cube]
fn set_reg(set: usize) -> usize {
    4 * ((set / 4) % 4) + set % 4
}

/// The `tig` (lane group) whose B register holds column set `set` (see
/// [`set_reg`]).
#[cube]
fn set_tig(set: usize) -> usize {
    set / 16
}

/// The fused kernel's prologue: plane `plane` computes, for each chunk it will
/// stream (`plane, plane + planes, ...`), what the prepass writes to global
/// memory (B registers, limb sums, chunk factor) into `shared`
/// ([`fused_limb_word`] layout). Lane `lane` takes column sets `lane` and
/// `lane + 32` (see [`set_reg`]): the four bytes of one B register each, for
/// every limb of every row, so it packs whole registers without exchanging
/// bytes with other lanes.
///
/// The activations of up to four chunks are loaded before any is used: one
/// chunk at a time, the prologue was a chain of dependent L2 loads and
/// plane reductions per chunk, and cost more than the prepass it replaced.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn fused_limbs<F: Float>(
    x: &Array<F>,
    shared: &mut SharedMemory<u32>,
    cols: usize,
    plane: usize,
    lane: usize,
    #[comptime] m: usize,
    #[comptime] planes: usize,
    #[comptime] chunks: usize,
) {
    #[unroll]
    for first in 0..comptime!(fused_limb_groups(m, planes, chunks)) {
        let mut vals = Array::<f32>::new(comptime!(fused_group_values(m, planes, chunks)));
        fused_limb_loads(x, &mut vals, cols, plane, lane, first, m, planes, chunks);
        fused_limb_group(&vals, shared, plane, lane, first, m, planes, chunks);
    }
}

/// Chunks per load group of [`fused_limbs`]: up to four chunks' activations
/// (for `m = 1`) are loaded before any is used.
fn fused_group_chunks(m: usize, planes: usize, chunks: usize) -> usize {
    (4 / m).clamp(1, chunks.div_ceil(planes))
}

/// Load groups of [`fused_limbs`] per plane.
fn fused_limb_groups(m: usize, planes: usize, chunks: usize) -> usize {
    chunks
        .div_ceil(planes)
        .div_ceil(fused_group_chunks(m, planes, chunks))
}

/// Values a lane loads per load group of [`fused_limbs`] (the length of
/// its `vals`).
fn fused_group_values(m: usize, planes: usize, chunks: usize) -> usize {
    fused_group_chunks(m, planes, chunks) * 8 * m
}

/// The loads of load group `first` of [`fused_limbs`]: this lane's eight
/// columns of every row of each of the group's chunks (clamped loads past
/// the last chunk or column: their values are zeroed or never used).
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_limb_loads<F: Float>(
    x: &Array<F>,
    vals: &mut Array<f32>,
    cols: usize,
    plane: usize,
    lane: usize,
    #[comptime] first: usize,
    #[comptime] m: usize,
    #[comptime] planes: usize,
    #[comptime] chunks: usize,
) {
    let group = comptime!(fused_group_chunks(m, planes, chunks));
    #[unroll]
    for t in 0..group {
        let c = plane + (first * group + t) * planes;
        #[unroll]
        for h in 0..2usize {
            let set = lane + h * LANES;
            #[unroll]
            for i in 0..4usize {
                let col = c * CHUNK_COLS + limb_column(set_reg(set), set_tig(set), i);
                let at = min(col, cols - 1);
                #[unroll]
                for r in 0..m {
                    vals[((t * 2 + h) * 4 + i) * m + r] =
                        select(col < cols, f32::cast_from(x[r * cols + at]), 0.0f32);
                }
            }
        }
    }
}

/// The limbs of load group `first` of [`fused_limbs`] from its loaded
/// `vals` ([`fused_limb_loads`]) into `shared`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_limb_group(
    vals: &Array<f32>,
    shared: &mut SharedMemory<u32>,
    plane: usize,
    lane: usize,
    #[comptime] first: usize,
    #[comptime] m: usize,
    #[comptime] planes: usize,
    #[comptime] chunks: usize,
) {
    let group = comptime!(fused_group_chunks(m, planes, chunks));
    #[unroll]
    for t in 0..group {
        let c = plane + (first * group + t) * planes;
        // Uniform over the plane, so the plane reductions below are safe.
        if c < chunks {
            fused_chunk_limbs(vals, shared, c, lane, comptime!(t * 8 * m), m, chunks);
        }
    }
}

/// The maximum of `value` over the 32 lanes, as five unrolled `xor`
/// shuffles: CubeCL's `plane_max` compiles to a loop with a divergence check
/// per step on CUDA, a serial chain that made the fused prologue slower than
/// the prepass it replaces.
#[cube]
fn butterfly_max(value: f32) -> f32 {
    let mut v = value;
    #[unroll]
    for step in 0..5u32 {
        let other = plane_shuffle_xor(v, comptime!(16u32 >> step));
        v = select(other > v, other, v);
    }
    v
}

/// One chunk of [`fused_limbs`]: the lane's eight columns of every row
/// (`vals[at..at + 8m]`) quantized against the chunk's max |x| and split into
/// limbs: the registers pack the low bytes of the [`limb_carriers`], and the
/// limb sums follow from the carriers' sums.
#[cube]
fn fused_chunk_limbs(
    vals: &Array<f32>,
    shared: &mut SharedMemory<u32>,
    c: usize,
    lane: usize,
    #[comptime] at: usize,
    #[comptime] m: usize,
    #[comptime] chunks: usize,
) {
    let mut amax = 0.0f32;
    #[unroll]
    for k in 0..comptime!(8 * m) {
        let v = vals[at + k];
        let a = select(v < 0.0f32, -v, v);
        amax = select(a > amax, a, amax);
    }
    let (quant, dequant) = chunk_factors(butterfly_max(amax));
    #[unroll]
    for r in 0..m {
        let mut sum_q = 0i32;
        let mut sum_q1 = 0i32;
        let mut sum_l2 = 0i32;
        #[unroll]
        for h in 0..2usize {
            let set = lane + h * LANES;
            let reg = set_reg(set);
            let tig = set_tig(set);
            let mut b0 = 0u32;
            let mut b1 = 0u32;
            let mut b2 = 0u32;
            #[unroll]
            for i in 0..4usize {
                let v = vals[at + (h * 4 + i) * m + r];
                let (q, q1, l2) = limb_carriers(i32::cast_from(f32::floor(v * quant + 0.5f32)));
                sum_q += q;
                sum_q1 += q1;
                sum_l2 += l2;
                let shift = comptime!(8 * i as u32);
                b0 |= (u32::cast_from(q) & 255u32) << shift;
                b1 |= (u32::cast_from(q1) & 255u32) << shift;
                b2 |= (u32::cast_from(l2) & 255u32) << shift;
            }
            shared[fused_limb_word(c, reg, 3 * r, tig, m)] = b0;
            shared[fused_limb_word(c, reg, 3 * r + 1, tig, m)] = b1;
            shared[fused_limb_word(c, reg, 3 * r + 2, tig, m)] = b2;
        }
        // The three sums' butterflies interleaved (independent shuffles).
        #[unroll]
        for step in 0..5u32 {
            let offset = comptime!(16u32 >> step);
            sum_q += plane_shuffle_xor(sum_q, offset);
            sum_q1 += plane_shuffle_xor(sum_q1, offset);
            sum_l2 += plane_shuffle_xor(sum_l2, offset);
        }
        if lane == 0 {
            let (l0, l1, l2) = limbs_of_carriers(sum_q, sum_q1, sum_l2);
            shared[fused_sum_word(c, 3 * r, m, chunks)] = u32::cast_from(l0);
            shared[fused_sum_word(c, 3 * r + 1, m, chunks)] = u32::cast_from(l1);
            shared[fused_sum_word(c, 3 * r + 2, m, chunks)] = u32::cast_from(l2);
        }
    }
    if lane == 0 {
        shared[fused_dequant_word(c, m, chunks)] = u32::reinterpret(dequant);
    }
}

/// The prepass's outputs ([`limb_kernel`]), read by the two-launch form of
/// [`gemv_mma_kernel`]: the B registers at [`limb_slot`], each limb column's
/// sum over each chunk, and each chunk's dequantization factor.
#[derive(CubeLaunch, CubeType)]
pub(super) struct PrepassLimbs {
    pub(super) limbs: Array<Vector<u32, Const<4>>>,
    pub(super) limb_sums: Array<i32>,
    pub(super) chunk_dequant: Array<f32>,
}
