//! Tensor-core GEMV for CUDA: `y = x · (diag(s) · T)ᵀ` for few activation
//! rows on the int8 `mma.sync` instruction (`m16n8k32`, `s8 × s8 → s32`).
//!
//! Why integer tensor cores: the plane GEMV spends about 8 ALU operations per
//! trit (bit extraction, selects, an FMA), so at `m = 1` it runs at about 12%
//! of copy bandwidth. Here one 32-bit `LOP3`/shift pair turns four trits into
//! four int8 lanes of an `mma` operand, about 0.7 integer operations per
//! trit, and the multiply-accumulate runs on the tensor cores.
//!
//! Exactness. The activations are not rounded to int8: each chunk of
//! [`CHUNK_COLS`] columns is put in block floating point (one power-of-two
//! exponent per chunk, shared by the `m` rows, 23 significant bits:
//! `q = round(x · 2^(22 - E))` with `max |x| < 2^E`) and `q` is split into
//! three balanced int8 limbs, `q = l₀ + 2⁸·l₁ + 2¹⁶·l₂`. Each limb of each row
//! is one column of the `mma`'s B operand (`3·m` columns; `m ≤ 8` is three
//! `n = 8` tiles). Trits times limbs accumulate exactly in int32 within a
//! chunk; per chunk the three limb sums are scaled back to `f32` and
//! accumulated. The only rounding besides `f32` accumulation is that of `x` to
//! 23 bits relative to its chunk's maximum, well inside the 1e-5 agreement
//! with the reference.
//!
//! Trit decode. A trit `t` with code `c = (c₁, c₀)` (`0b01` = +1, `0b10` =
//! -1, `0b00` = 0) becomes `u = 2 + t ∈ {1, 2, 3}`, whose bits are
//! `(!c₁, c₀ | c₁)`: for all 16 trits of a word one shift and one
//! three-input logic operation (`LOP3`) of the word and its shift, no
//! carries between fields. The `mma` then computes `Σ u·l = Σ t·l + 2·Σ l`;
//! the accumulator starts at `-2·Σ l` (the chunk's limb sums, from the
//! prologue or the prepass), so the result is exact.
//! Four trits at positions `j, j + 4, j + 8, j + 12` of a word sit in the four
//! bytes of `(u >> 2j) & 0x03030303`: one shift and one mask per four trits.
//! The order in which the reduction visits the columns is free as long as the
//! A and B operands agree, so the prepass writes the limbs in exactly the
//! order the trits decode in (see [`limb_column`]).
//!
//! Launches: one or two. With few chunks (the limbs of all chunks fit in
//! the 48 KiB of static shared memory: `m = 1` up to 15,872 columns, `m = 2`
//! up to 7,936), one launch: each plane of the main kernel
//! ([`gemv_mma_kernel`]) first computes the limbs, limb sums and chunk
//! exponents of the chunks it will stream ([`fused_limbs`]), into shared
//! memory, while the loads of its first trits are in flight. Otherwise a
//! prepass ([`limb_kernel`], one cube of 16 planes per chunk and B tile)
//! writes them to global memory in the B-fragment register layout first.
//! The main kernel streams the packed trits. A cube owns `16 · row_tiles`
//! rows, or several such blocks streamed one after another (row groups, so
//! that the one-launch form's limbs serve more rows); its planes split the
//! chunks, keep the words of their next chunks in flight, and add their
//! partial sums through shared memory at the end. Both launch unchecked (no
//! per-access bounds code in the loop): every index is in bounds by
//! construction (see [`load_chunk_words`]). Both take flat `Array`
//! arguments and the sizes as scalars, not `Tensor`s: CubeCL sends a
//! `Tensor`'s shape and strides with every launch, on CUDA as a pool
//! allocation and a host-to-device copy, which cost about 4 µs of host
//! time per launch on the H200 machine (`launch_cost_benchmarks`: 10.5–13.7
//! µs per launch with `Tensor` arguments, 6.6–8.2 µs with `Array`s), the
//! bound of a stream of decode-size GEMVs.
//!
//! Why the one-launch form: at the sizes of a decode step (8–28 MiB of trits,
//! 4–7 µs at copy speed) the prepass cost a quarter of the device time
//! (mostly launch latency), and in a stream of calls each launch and each
//! allocation costs host time comparable to the whole kernel. Its price is
//! that every cube recomputes the limbs of its chunks (every cube reads
//! the whole activation row, from L2).
//!
//! Measuring: `scripts/profile/ncu_gemv.py` reads both kernels' device time with
//! Nsight Compute; `scripts/profile/cubecl_sass.py` compiles the generated CUDA
//! (from `CUBECL_DEBUG_LOG`) to SASS, which is how the byte-splitting of
//! the A registers (see [`TRIT_BYTES`]) was found.

use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{into_contiguous, slice},
    ops::numeric::empty_device_contiguous_dtype,
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{
    cmma::MmaDefinition,
    features::MmaConfig,
    ir::{ElemType, IntKind},
    prelude::*,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::packing::TRITS_PER_WORD;

/// Largest `m` served by the tensor-core GEMV (three B tiles of eight limb
/// columns).
pub const MMA_GEMV_MAX_M: usize = 8;

/// Packed words per row in one chunk of the reduction.
const CHUNK_WORDS: usize = 16;
/// Columns of the reduction per chunk (one shared exponent per chunk).
pub const CHUNK_COLS: usize = CHUNK_WORDS * 16;
/// B-fragment registers per lane per chunk and B tile: 4 word groups ×
/// 2 `mma` steps × 2 registers.
pub(crate) const REGS: usize = 16;
/// The low two bits of each byte: one trit per int8 lane of an A register.
pub(crate) const TRIT_BYTES: u32 = 0x0303_0303;
/// Lanes of a plane; the `mma` fragment layout assumes 32.
pub(crate) const LANES: usize = 32;
/// Limb columns per B tile (`n` of `m16n8k32`).
const TILE_N: usize = 8;

static ENABLED: AtomicBool = AtomicBool::new(true);
static ROW_TILES: AtomicUsize = AtomicUsize::new(0);
static TARGET_PLANES: AtomicUsize = AtomicUsize::new(0);
static DEPTH: AtomicUsize = AtomicUsize::new(0);
static MAX_PLANES: AtomicUsize = AtomicUsize::new(0);
static FUSED: AtomicBool = AtomicBool::new(true);
static FUSED_SHARED_BYTES: AtomicUsize = AtomicUsize::new(0);
static ROW_GROUPS: AtomicUsize = AtomicUsize::new(0);
static ABLATION: AtomicUsize = AtomicUsize::new(0);
static EARLY_LIMB_LOADS: AtomicBool = AtomicBool::new(false);

/// Benchmark knob: row tiles per cube (1 to 4), the number of planes the
/// launch aims for, the chunks each plane keeps in flight (1 to 3) and the
/// most planes per cube (a power of two, 1 to 16); 0 = the built-in choice
/// for any of them.
#[doc(hidden)]
pub fn tune_tensor_core_gemv(
    row_tiles: usize,
    target_planes: usize,
    depth: usize,
    max_planes: usize,
) {
    ROW_TILES.store(row_tiles, Ordering::Relaxed);
    TARGET_PLANES.store(target_planes, Ordering::Relaxed);
    DEPTH.store(depth, Ordering::Relaxed);
    MAX_PLANES.store(max_planes, Ordering::Relaxed);
}

/// Benchmark and test knob: whether the tensor-core GEMV may compute the
/// activation limbs inside the main kernel (one launch) where they fit in
/// shared memory (on by default), or always runs the prepass (two launches).
#[doc(hidden)]
pub fn set_fused_gemv(enabled: bool) {
    FUSED.store(enabled, Ordering::Relaxed);
}

/// Benchmark and test knob: the most shared memory, in bytes, the one-launch
/// form may use for its limbs (0 = the built-in 48 KiB; always capped at
/// the device's opt-in maximum per cube). Above 48 KiB it also serves
/// `m = 8` at a few thousand columns, at the cost of fewer cubes per SM.
#[doc(hidden)]
pub fn set_fused_gemv_shared_limit(bytes: usize) {
    FUSED_SHARED_BYTES.store(bytes, Ordering::Relaxed);
}

/// Benchmark and test knob: row blocks per cube of the tensor-core GEMV
/// (1 to 8; 0 = the built-in choice: two in the one-launch form where
/// 64-row cubes are more than one wave, else one). With more than one, a cube
/// streams several blocks of `16 · row_tiles` rows one after another against
/// one set of limbs (see `gemv_mma_kernel`); where the shared memory for
/// their partial sums does not fit, fewer.
#[doc(hidden)]
pub fn set_gemv_row_groups(groups: usize) {
    ROW_GROUPS.store(groups, Ordering::Relaxed);
}

/// Measurement knob: which stages the tensor-core GEMV leaves out, to
/// place its device time (the output is then wrong). 0 (the default): none;
/// 1: the decode and `mma` (each chunk's words are XOR-folded instead, so
/// the loads stay); 2: those and the fused prologue.
#[doc(hidden)]
pub fn set_gemv_ablation(mode: usize) {
    ABLATION.store(mode.min(2), Ordering::Relaxed);
}

/// Measurement knob: whether the one-launch form issues its prologue's
/// first activation loads before its first trit loads (off by default).
/// In the streamed form, whose trits are all in flight at once, that order
/// took 0.5–1.9 µs off the m = 1 prologue; here, with a few chunks in
/// flight per plane, it changed nothing measurable (10.3 / 10.0 / 10.7 µs
/// against 10.4 / 10.1 / 10.8 at the shapes; KERNEL_NOTES,
/// twenty-first round).
#[doc(hidden)]
pub fn set_gemv_early_limb_loads(enabled: bool) {
    EARLY_LIMB_LOADS.store(enabled, Ordering::Relaxed);
}

/// Turns the tensor-core GEMV on or off for this process (on by default where
/// the device supports it). Off, `m ≤ 8` forwards on CUDA take the plane GEMV
/// like on WGPU; used by the benchmarks to time both paths in one run.
pub fn set_tensor_core_gemv(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether `m` activation rows on this device take the tensor-core GEMV: the
/// device has int8 `m16n8k32` manual MMA and 32-lane planes (CUDA, sm_80+).
pub fn supported<R: CubeRuntime>(like: &CubeTensor<R>, m: usize) -> bool {
    if m == 0 || m > MMA_GEMV_MAX_M || !ENABLED.load(Ordering::Relaxed) {
        return false;
    }
    let properties = like.client.properties();
    let int8 = ElemType::Int(IntKind::I8);
    properties.features.matmul.mma.contains(&MmaConfig {
        a_type: int8.into(),
        b_type: int8.into(),
        cd_type: ElemType::Int(IntKind::I32).into(),
        m: 16,
        n: 8,
        k: 32,
    }) && properties.hardware.plane_size_min == LANES as u32
        && properties.hardware.plane_size_max == LANES as u32
}

/// Number of `n = 8` B tiles for `m` rows (three limb columns per row).
pub(crate) fn b_tiles(m: usize) -> usize {
    (3 * m).div_ceil(TILE_N)
}

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
fn limb_slot(tile: usize, chunk: usize, chunks: usize, reg: usize, lane: usize) -> usize {
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

/// `2 + t` for each of the 16 two-bit codes of `word` (`1`, `2`, `3` for
/// trits -1, 0, +1): bit 1 of a field is `!c₁`, bit 0 is `c₀ | c₁`, a
/// function of `word`, `word >> 1` and `even = 0x5555_5555` alone. With
/// `even` a run-time value nvcc emits one shift and one three-input `LOP3`
/// (with two literal masks, two `LOP3`s; the earlier `1 + (c & 1) - (c >> 1)`
/// took four instructions).
#[cube]
fn offset_codes(word: u32, even: u32) -> u32 {
    ((word ^ 0xFFFF_FFFFu32) & (even ^ 0xFFFF_FFFFu32)) | ((word | (word >> 1u32)) & even)
}

/// Prepass: one cube of 16 planes per (chunk, B tile); unit `(lane, reg)`
/// writes B register `reg` of `lane` (four limbs) at [`limb_slot`]. Also
/// writes the sum of each limb column over the chunk and the chunk's
/// dequantization factor `2^(E - 22)`. Spread over 512 units so that each
/// does a handful of loads: with one plane per chunk the prepass was a
/// latency-bound chain of about a thousand instructions (10 µs on the H200
/// for 8192 columns, a third of the GEMV).
#[cube(launch_unchecked)]
fn limb_kernel<F: Float>(
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

/// Loads words `4·tig .. 4·tig + 4` of chunk `c` of rows `g` and `g + 8` of
/// each row tile into `dst[at + (rt·2 + half)·4 + q]`: one 16-byte load per row
/// where the rows are 4-word aligned (`N = 4`), four 4-byte loads otherwise.
/// `trits` is the contiguous `[rows, words]` matrix as a flat array.
///
/// Every load is unconditional: chunk, row and word are clamped into the
/// matrix instead of guarded, which keeps predicates, zeroing moves and
/// per-load address arithmetic out of the loop. Clamping is harmless: a
/// clamped chunk (past the plane's last) is never used, a clamped row's
/// output is never written, and a clamped word of the last, partial chunk
/// meets limbs that are zero (columns past `cols` quantize to 0).
#[cube]
#[allow(clippy::too_many_arguments)]
fn load_chunk_words<N: Size>(
    trits: &Array<Vector<u32, N>>,
    dst: &mut Array<u32>,
    rows: usize,
    words: usize,
    c: usize,
    chunks: usize,
    row0: usize,
    g: usize,
    tig: usize,
    #[comptime] at: usize,
    #[comptime] row_tiles: usize,
) {
    let n = trits.vector_size();
    let row_stride = words / n;
    let first = min(c, chunks - 1) * CHUNK_WORDS + 4 * tig;
    #[unroll]
    for j in 0..comptime!(4 / n) {
        let w = min(first + j * n, words - n) / n;
        #[unroll]
        for rt in 0..row_tiles {
            #[unroll]
            for half in 0..2usize {
                let row = min(row0 + rt * 16 + g + half * 8, rows - 1);
                let v = trits[row * row_stride + w];
                #[unroll]
                for e in 0..n {
                    dst[at + (rt * 2 + half) * 4 + j * n + e] = v[e];
                }
            }
        }
    }
}

/// Shared-memory words of the fused kernel's limbs for `chunks` chunks:
/// B registers, limb sums and chunk factors (see [`fused_limb_word`]).
pub(crate) fn fused_words(m: usize, chunks: usize) -> usize {
    chunks * (REGS * 3 * m * 4 + 3 * m + 1)
}

/// Shared-memory words of the main kernel: the fused form's limbs (none
/// after the prepass) and the planes' partial sums, which reuse the limbs'
/// words with one row block and follow them, one set per block, with row
/// groups.
pub(crate) fn gemv_shared_words(
    m: usize,
    fused_chunks: usize,
    planes: usize,
    row_tiles: usize,
    groups: usize,
) -> usize {
    let limbs = fused_words(m, fused_chunks);
    let sums = planes * row_tiles * b_tiles(m) * 4 * LANES;
    if groups > 1 {
        limbs + groups * sums
    } else {
        limbs.max(sums)
    }
}

/// Largest shared-memory footprint of the fused kernel, in 4-byte words:
/// CUDA's 48 KiB of static shared memory per cube.
const FUSED_MAX_WORDS: usize = 12 * 1024;

/// Word of B register `reg` of limb column `n` (`< 3m`) for the lanes with
/// `tig`, chunk `c`: `[c][reg][n][tig]`, so that the lanes of a plane reading
/// one register hit consecutive words (no bank conflicts).
#[cube]
fn fused_limb_word(c: usize, reg: usize, n: usize, tig: usize, #[comptime] m: usize) -> usize {
    ((c * REGS + reg) * comptime!(3 * m) + n) * 4 + tig
}

/// Word of the sum of limb column `n` over chunk `c` (as `i32` bits).
#[cube]
fn fused_sum_word(c: usize, n: usize, #[comptime] m: usize, #[comptime] chunks: usize) -> usize {
    comptime!(chunks * REGS * 3 * m * 4) + c * comptime!(3 * m) + n
}

/// Word of chunk `c`'s dequantization factor (as `f32` bits).
#[cube]
fn fused_dequant_word(c: usize, #[comptime] m: usize, #[comptime] chunks: usize) -> usize {
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
/// With `early`, the first load group's values are `early_vals`, loaded
/// ahead by the caller ([`fused_limb_loads`] with `first = 0`).
#[cube]
#[allow(clippy::too_many_arguments)]
pub(crate) fn fused_limbs<F: Float>(
    x: &Array<F>,
    early_vals: &Array<f32>,
    shared: &mut SharedMemory<u32>,
    cols: usize,
    plane: usize,
    lane: usize,
    #[comptime] m: usize,
    #[comptime] planes: usize,
    #[comptime] chunks: usize,
    #[comptime] early: bool,
) {
    #[unroll]
    for first in 0..comptime!(fused_limb_groups(m, planes, chunks)) {
        if comptime!(early && first == 0) {
            fused_limb_group(early_vals, shared, plane, lane, 0usize, m, planes, chunks);
        } else {
            let mut vals = Array::<f32>::new(comptime!(fused_group_values(m, planes, chunks)));
            fused_limb_loads(x, &mut vals, cols, plane, lane, first, m, planes, chunks);
            fused_limb_group(&vals, shared, plane, lane, first, m, planes, chunks);
        }
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
pub(crate) fn fused_limb_loads<F: Float>(
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
struct PrepassLimbs {
    limbs: Array<Vector<u32, Const<4>>>,
    limb_sums: Array<i32>,
    chunk_dequant: Array<f32>,
}

/// The B operands of chunk `c` for this lane: the B-fragment registers of
/// every B tile, the limb sums its two accumulator columns start from, and the
/// chunk's dequantization factor (returned). From the prepass's buffers, or,
/// in the fused kernel (`prepass` is `None`), from the shared memory that
/// [`fused_limbs`] filled.
#[cube]
#[allow(clippy::too_many_arguments)]
fn chunk_b_operands(
    prepass: &ComptimeOption<PrepassLimbs>,
    shared: &SharedMemory<u32>,
    b_regs: &mut Array<u32>,
    sums: &mut Array<i32>,
    c: usize,
    chunks: usize,
    lane: usize,
    #[comptime] m: usize,
    #[comptime] fused_chunks: usize,
) -> f32 {
    let tiles = comptime!(b_tiles(m));
    let tig = lane % 4;
    #[comptime]
    match &prepass {
        ComptimeOption::Some(prepass) => {
            // Limb slots of inactive columns hold zeros (written by the
            // prepass), so these loads need no guard either.
            #[unroll]
            for tile in 0..tiles {
                let slot = limb_slot(tile, c, chunks, 0usize, lane) / 4;
                #[unroll]
                for j in 0..comptime!(REGS / 4) {
                    let v = prepass.limbs[slot + j * LANES];
                    #[unroll]
                    for e in 0..4usize {
                        b_regs[tile * REGS + 4 * j + e] = v[e];
                    }
                }
                #[unroll]
                for j in 0..2usize {
                    sums[tile * 2 + j] =
                        prepass.limb_sums[(tile * chunks + c) * TILE_N + 2 * tig + j];
                }
            }
            prepass.chunk_dequant[c]
        }
        ComptimeOption::None => fused_b_operands(shared, b_regs, sums, c, lane, m, fused_chunks),
    }
}

/// [`chunk_b_operands`] of the fused form: chunk `c`'s B registers, limb
/// sums and dequantization factor (returned) from the shared memory that
/// [`fused_limbs`] filled for `fused_chunks` chunks.
#[cube]
pub(crate) fn fused_b_operands(
    shared: &SharedMemory<u32>,
    b_regs: &mut Array<u32>,
    sums: &mut Array<i32>,
    c: usize,
    lane: usize,
    #[comptime] m: usize,
    #[comptime] fused_chunks: usize,
) -> f32 {
    let tiles = comptime!(b_tiles(m));
    let tig = lane % 4;
    // Inactive limb columns (n >= 3m) read column 3m - 1: their results are
    // multiplied by a zero column factor.
    let active = comptime!(3 * m);
    #[unroll]
    for tile in 0..tiles {
        let n = min(tile * TILE_N + lane / 4, active - 1);
        #[unroll]
        for reg in 0..REGS {
            b_regs[tile * REGS + reg] = shared[fused_limb_word(c, reg, n, tig, m)];
        }
        #[unroll]
        for j in 0..2usize {
            let n = min(tile * TILE_N + 2 * tig + j, active - 1);
            sums[tile * 2 + j] = i32::cast_from(shared[fused_sum_word(c, n, m, fused_chunks)]);
        }
    }
    f32::reinterpret(shared[fused_dequant_word(c, m, fused_chunks)])
}

/// `2^(8·limb)` for this lane's two accumulator columns of each B tile
/// (`tig = lane % 4`), zero for the inactive columns (`n >= 3m`): the
/// weights that turn a chunk's three limb sums into one value.
#[cube]
pub(crate) fn fill_col_factors(col_factor: &mut Array<f32>, tig: usize, #[comptime] m: usize) {
    #[unroll]
    for tile in 0..comptime!(b_tiles(m)) {
        #[unroll]
        for j in 0..2usize {
            let n = tile * TILE_N + 2 * tig + j;
            let l = n % 3;
            let f = select(
                l == 0usize,
                1.0f32,
                select(l == 1usize, 256.0f32, 65536.0f32),
            );
            col_factor[tile * 2 + j] = select(n < 3 * m, f, 0.0f32);
        }
    }
}

/// Where the partial sum of limb `l` of activation row `r`, for output row
/// `within` (`0..16`) of a plane's row tile `rt`, sits: the accumulator
/// index in a lane's `acc` (`(rt·tiles + tile)·4 + half·2 + j`, see
/// [`mma_chunk`]) and the lane that holds it.
#[cube]
pub(crate) fn limb_partial(
    rt: usize,
    within: usize,
    r: usize,
    l: usize,
    #[comptime] tiles: usize,
) -> (usize, usize) {
    let n = 3 * r + l;
    let col = n % TILE_N;
    let k = (rt * tiles + n / TILE_N) * 4 + (within / 8) * 2 + col % 2;
    (k, (within % 8) * 4 + col / 2)
}

/// Measurement only: XOR-folds `count` words from `words[at..]` into
/// `acc[0]`, so that the loads are waited for but no decode or `mma` runs.
#[cube]
pub(crate) fn fold_words(
    words: &Array<u32>,
    acc: &mut Array<f32>,
    at: usize,
    #[comptime] count: usize,
) {
    let mut fold = 0u32;
    #[unroll]
    for k in 0..count {
        fold ^= words[at + k];
    }
    acc[0] += f32::cast_from(fold & 1u32);
}

/// One chunk of the main pass: decodes `words[at..]` (from
/// [`load_chunk_words`]) into A fragments and adds each row tile's and B
/// tile's `mma` results against the B operands (from [`chunk_b_operands`]),
/// scaled to `f32`, to `acc`.
/// `mask` is [`TRIT_BYTES`], passed at run time: with a literal mask nvcc
/// sees that `(u >> 6) & mask` needs no mask in its top byte, then splits
/// the register into bytes and rebuilds it (six instructions instead of two);
/// the decode's `0x5555_5555` is derived from it for the same reason.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(crate) fn mma_chunk(
    b_regs: &Array<u32>,
    sums: &Array<i32>,
    dequant: f32,
    words: &Array<u32>,
    col_factor: &Array<f32>,
    acc: &mut Array<f32>,
    mask: u32,
    #[comptime] at: usize,
    #[comptime] m: usize,
    #[comptime] row_tiles: usize,
    #[comptime] literal_even: bool,
) {
    let tiles = comptime!(b_tiles(m));
    let def = MmaDefinition::<i8, i8, i32>::new(16usize, 8usize, 32usize);
    // 0x5555_5555 from the run-time mask, so that nvcc keeps it in a register
    // (see `offset_codes`), or as a literal where `literal_even`.
    let mut even = (mask & 0x0101_0101u32) * 0x55u32;
    if comptime!(literal_even) {
        even = 0x5555_5555u32;
    }
    #[unroll]
    for rt in 0..row_tiles {
        let mut ua = Array::<u32>::new(4usize);
        let mut ub = Array::<u32>::new(4usize);
        #[unroll]
        for q in 0..4usize {
            ua[q] = offset_codes(words[at + rt * 8 + q], even);
            ub[q] = offset_codes(words[at + rt * 8 + 4 + q], even);
        }
        #[unroll]
        for tile in 0..tiles {
            let mut cacc = Array::<Vector<i32, Const<2>>>::new(2usize);
            // `Σ u·l = Σ t·l + 2·Σ l` (see `offset_codes`).
            let mut init = Vector::<i32, Const<2>>::new(-2i32 * sums[tile * 2]);
            init[1usize] = -2i32 * sums[tile * 2 + 1];
            cacc[0usize] = init;
            cacc[1usize] = init;
            #[unroll]
            for q in 0..4usize {
                #[unroll]
                for s in 0..2usize {
                    let shift = comptime!(4 * s as u32);
                    let mut a = Array::<Vector<i8, Const<4>>>::new(4usize);
                    a[0usize] = Vector::<i8, Const<4>>::reinterpret((ua[q] >> shift) & mask);
                    a[1usize] = Vector::<i8, Const<4>>::reinterpret((ub[q] >> shift) & mask);
                    a[2usize] =
                        Vector::<i8, Const<4>>::reinterpret((ua[q] >> (shift + 2u32)) & mask);
                    a[3usize] =
                        Vector::<i8, Const<4>>::reinterpret((ub[q] >> (shift + 2u32)) & mask);
                    let mut b = Array::<Vector<i8, Const<4>>>::new(2usize);
                    let reg = comptime!(q * 4 + s * 2);
                    b[0usize] = Vector::<i8, Const<4>>::reinterpret(b_regs[tile * REGS + reg]);
                    b[1usize] = Vector::<i8, Const<4>>::reinterpret(b_regs[tile * REGS + reg + 1]);
                    def.execute_inplace(&a, &b, &mut cacc);
                }
            }
            let top = cacc[0usize];
            let bottom = cacc[1usize];
            let f0 = dequant * col_factor[tile * 2];
            let f1 = dequant * col_factor[tile * 2 + 1];
            let k = (rt * tiles + tile) * 4;
            acc[k] += f32::cast_from(top[0usize]) * f0;
            acc[k + 1] += f32::cast_from(top[1usize]) * f1;
            acc[k + 2] += f32::cast_from(bottom[0usize]) * f0;
            acc[k + 3] += f32::cast_from(bottom[1usize]) * f1;
        }
    }
}

/// Values of the fused form's early activation loads (at least one, so
/// that the array exists in every form).
pub(crate) fn early_values(m: usize, planes: usize, fused_chunks: usize, early: bool) -> usize {
    if early && fused_chunks > 0 {
        fused_group_values(m, planes, fused_chunks)
    } else {
        1
    }
}

/// The fused form's first load group of activations ([`fused_limb_loads`]),
/// issued before the first trit loads where `early`; nothing otherwise or
/// after the prepass.
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_prologue_loads<F: Float>(
    x: &ComptimeOption<Array<F>>,
    early_vals: &mut Array<f32>,
    cols: usize,
    plane: usize,
    lane: usize,
    #[comptime] m: usize,
    #[comptime] planes: usize,
    #[comptime] fused_chunks: usize,
    #[comptime] early: bool,
) {
    #[comptime]
    match x {
        ComptimeOption::Some(x) => {
            if comptime!(early) {
                fused_limb_loads(
                    x,
                    early_vals,
                    cols,
                    plane,
                    lane,
                    0usize,
                    m,
                    planes,
                    fused_chunks,
                );
            }
        }
        ComptimeOption::None => {}
    }
}

/// The fused form's prologue ([`fused_limbs`], its first load group from
/// `early_vals` where `early`, then a plane barrier so that the plane's
/// lanes see each other's limbs); nothing after the prepass.
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_prologue<F: Float>(
    x: &ComptimeOption<Array<F>>,
    early_vals: &Array<f32>,
    shared: &mut SharedMemory<u32>,
    cols: usize,
    plane: usize,
    lane: usize,
    #[comptime] m: usize,
    #[comptime] planes: usize,
    #[comptime] fused_chunks: usize,
    #[comptime] early: bool,
) {
    #[comptime]
    match x {
        ComptimeOption::Some(x) => {
            fused_limbs(
                x,
                early_vals,
                shared,
                cols,
                plane,
                lane,
                m,
                planes,
                fused_chunks,
                early,
            );
            // A plane streams exactly the chunks whose limbs it computed, so
            // its own lanes' writes are all it must see.
            sync_plane();
        }
        ComptimeOption::None => {}
    }
}

/// One work item of the main loop: starts the loads of a later chunk
/// (`load_chunk` of the rows from `load_row0`, into `words[load_at..]`),
/// then multiplies chunk `c` (its words at `words[at..]`) into `acc`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn stream_item<N: Size>(
    trits: &Array<Vector<u32, N>>,
    prepass: &ComptimeOption<PrepassLimbs>,
    shared: &SharedMemory<u32>,
    words: &mut Array<u32>,
    b_regs: &mut Array<u32>,
    sums: &mut Array<i32>,
    col_factor: &Array<f32>,
    acc: &mut Array<f32>,
    trit_mask: u32,
    rows: usize,
    row_words: usize,
    load_chunk: usize,
    load_row0: usize,
    c: usize,
    chunks: usize,
    g: usize,
    tig: usize,
    lane: usize,
    #[comptime] load_at: usize,
    #[comptime] at: usize,
    #[comptime] m: usize,
    #[comptime] row_tiles: usize,
    #[comptime] fused_chunks: usize,
    #[comptime] literal_even: bool,
    #[comptime] ablate: usize,
) {
    load_chunk_words(
        trits, words, rows, row_words, load_chunk, chunks, load_row0, g, tig, load_at, row_tiles,
    );
    if comptime!(ablate > 0) {
        // Measurement only (`set_gemv_ablation`): wait for the words, no math.
        fold_words(words, acc, at, comptime!(row_tiles * 8));
    } else {
        let dequant = chunk_b_operands(
            prepass,
            shared,
            b_regs,
            sums,
            c,
            chunks,
            lane,
            m,
            fused_chunks,
        );
        mma_chunk(
            b_regs,
            sums,
            dequant,
            words,
            col_factor,
            acc,
            trit_mask,
            at,
            m,
            row_tiles,
            literal_even,
        );
    }
}

/// Main pass: a cube of `planes` planes owns `16 · row_tiles` output rows;
/// plane `p` takes chunks `p, p + planes, ...`. Per chunk a lane (group `g`,
/// thread-in-group `tig`) loads words `4·tig + q` (q = 0..3) of rows `g` and
/// `g + 8` of each row tile (16 contiguous bytes per row), decodes them into
/// A fragments and runs 8 `mma` per B tile
/// into an int32 accumulator that starts at minus twice the limb sums. The chunk's
/// result is scaled to `f32` (`2^(E-22) · 2^(8·limb)`) and accumulated.
/// Finally the planes' sums go through shared memory and one unit per
/// (row, activation row) adds planes and limbs and applies the row scale.
///
/// Row groups (`groups > 1`): the cube owns `groups` consecutive blocks of
/// `16 · row_tiles` rows and streams them one after another against the
/// same B operands, so the fused prologue runs once per `groups` blocks
/// (every cube recomputes the limbs of every chunk, so its total cost is
/// `cubes × chunks`). A plane's work items are (block, chunk) pairs in one
/// flat sequence, so the loads in flight run on across blocks; at the end
/// of a block its partial sums go to their own shared-memory slots (after
/// the limbs, which later blocks still read) and the accumulators restart.
///
/// Two forms: after the prepass (`limbs`, `limb_sums`, `chunk_dequant` are
/// `Some`, `x` is `None`), or fused (`x` is `Some`, `fused_chunks` is the
/// number of chunks): each plane first computes the limbs of its own chunks
/// into shared memory ([`fused_limbs`]) while the loads of its first trits
/// are in flight. The fused form saves the prepass launch (its latency and
/// its host cost) at the price of recomputing the limbs in every cube; it is
/// used where they fit in shared memory.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn gemv_mma_kernel<F: Float, S: Float, N: Size>(
    x: &ComptimeOption<Array<F>>,
    prepass: &ComptimeOption<PrepassLimbs>,
    trits: &Array<Vector<u32, N>>,
    scale: &Array<S>,
    out: &mut Array<F>,
    trit_mask: u32,
    rows: u32,
    cols: u32,
    #[comptime] m: usize,
    #[comptime] row_tiles: usize,
    #[comptime] planes: usize,
    #[comptime] depth: usize,
    #[comptime] fused_chunks: usize,
    #[comptime] groups: usize,
    #[comptime] ablate: usize,
    #[comptime] early: bool,
    #[define(F)] _dtype: StorageType,
    #[define(S)] _scale_dtype: StorageType,
) {
    let tiles = comptime!(b_tiles(m));
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let g = lane / 4;
    let tig = lane % 4;
    let rows = usize::cast_from(rows);
    let cols = usize::cast_from(cols);
    // Packed words per row of `trits`.
    let row_words = (cols + comptime!(TRITS_PER_WORD - 1)) / TRITS_PER_WORD;
    let chunks = (row_words + comptime!(CHUNK_WORDS - 1)) / CHUNK_WORDS;
    let group_rows = comptime!(16 * row_tiles);
    let row0 = CUBE_POS_X as usize * comptime!(16 * row_tiles * groups);
    let per_plane = comptime!(row_tiles * tiles * 4 * LANES);
    let acc_len = comptime!(row_tiles * tiles * 4);
    // One block: the partial sums reuse the limbs' words at the end. Row
    // groups: each block's sums get their own words after the limbs.
    let sums_at = comptime!(if groups > 1 {
        fused_words(m, fused_chunks)
    } else {
        0
    });
    let mut shared = SharedMemory::<u32>::new(comptime!(gemv_shared_words(
        m,
        fused_chunks,
        planes,
        row_tiles,
        groups
    )));

    let mut col_factor = Array::<f32>::new(comptime!(tiles * 2));
    fill_col_factors(&mut col_factor, tig, m);
    let mut acc = Array::<f32>::new(comptime!(row_tiles * tiles * 4));
    #[unroll]
    for k in 0..comptime!(row_tiles * tiles * 4) {
        acc[k] = 0.0f32;
    }

    // Each plane keeps the words of its next `depth` chunks in flight while
    // it computes the current one (one chunk ahead left the warps waiting on
    // memory at m = 1 on the H200). `depth + 1` word buffers rotate; the
    // steps are unrolled so that the buffers never move.
    let w = comptime!(row_tiles * 8);
    let mut words = Array::<u32>::new(comptime!((depth + 1) * row_tiles * 8));
    let mut b_regs = Array::<u32>::new(comptime!(tiles * REGS));
    let mut sums = Array::<i32>::new(comptime!(tiles * 2));
    // The prologue's first activation loads ahead of the trits (see
    // `set_gemv_early_limb_loads`).
    let early = comptime!(early && ablate < 2 && fused_chunks > 0);
    let mut early_vals = Array::<f32>::new(comptime!(early_values(m, planes, fused_chunks, early)));
    fused_prologue_loads(
        x,
        &mut early_vals,
        cols,
        plane,
        lane,
        m,
        planes,
        fused_chunks,
        early,
    );
    if comptime!(groups == 1) {
        #[unroll]
        for d in 0..depth {
            load_chunk_words(
                trits,
                &mut words,
                rows,
                row_words,
                plane + d * planes,
                chunks,
                row0,
                g,
                tig,
                comptime!(d * w),
                row_tiles,
            );
        }
        if comptime!(ablate < 2) {
            fused_prologue(
                x,
                &early_vals,
                &mut shared,
                cols,
                plane,
                lane,
                m,
                planes,
                fused_chunks,
                early,
            );
        }
        let mut c = plane;
        while c < chunks {
            #[unroll]
            for step in 0..comptime!(depth + 1) {
                if c < chunks {
                    stream_item(
                        trits,
                        prepass,
                        &shared,
                        &mut words,
                        &mut b_regs,
                        &mut sums,
                        &col_factor,
                        &mut acc,
                        trit_mask,
                        rows,
                        row_words,
                        c + depth * planes,
                        row0,
                        c,
                        chunks,
                        g,
                        tig,
                        lane,
                        comptime!((step + depth) % (depth + 1) * w),
                        comptime!(step * w),
                        m,
                        row_tiles,
                        fused_chunks,
                        // The decode's mask as a literal in the 32-row, one-block launch
                        // (14336 × 4096 on the H200: 10.7 against 11.6 µs in a register,
                        // though ptxas then needs two more registers and 47 more LOP3s;
                        // round 18), in a register elsewhere (8192², 4096 × 14336: 10.1
                        // against 10.2–10.8 µs).
                        comptime!(row_tiles == 2),
                        ablate,
                    );
                    c += planes;
                }
            }
        }
        // In the fused form the partial sums reuse the limbs' shared
        // memory, so every plane must be done with its limbs first.
        if comptime!(fused_chunks > 0) {
            sync_cube();
        }
        #[unroll]
        for k in 0..acc_len {
            shared[plane * per_plane + k * LANES + lane] = u32::reinterpret(acc[k]);
        }
    } else {
        // This plane's chunks per block; work item (block, i) is chunk
        // `plane + i · planes` of block `block`. Items past the last (and
        // every item of a plane without chunks) load clamped words that are
        // never used.
        let mut per_block = 0usize;
        if plane < chunks {
            per_block = (chunks - plane + comptime!(planes - 1)) / planes;
        }
        let items = per_block * groups;
        let mut load_block = 0usize;
        let mut load_i = 0usize;
        #[unroll]
        for d in 0..depth {
            load_chunk_words(
                trits,
                &mut words,
                rows,
                row_words,
                plane + load_i * planes,
                chunks,
                row0 + load_block * group_rows,
                g,
                tig,
                comptime!(d * w),
                row_tiles,
            );
            load_i += 1;
            if load_i >= per_block {
                load_i = 0;
                load_block += 1;
            }
        }
        if comptime!(ablate < 2) {
            fused_prologue(
                x,
                &early_vals,
                &mut shared,
                cols,
                plane,
                lane,
                m,
                planes,
                fused_chunks,
                early,
            );
        }
        let mut block = 0usize;
        let mut i = 0usize;
        let mut item = 0usize;
        while item < items {
            #[unroll]
            for step in 0..comptime!(depth + 1) {
                if item < items {
                    stream_item(
                        trits,
                        prepass,
                        &shared,
                        &mut words,
                        &mut b_regs,
                        &mut sums,
                        &col_factor,
                        &mut acc,
                        trit_mask,
                        rows,
                        row_words,
                        plane + load_i * planes,
                        row0 + load_block * group_rows,
                        plane + i * planes,
                        chunks,
                        g,
                        tig,
                        lane,
                        comptime!((step + depth) % (depth + 1) * w),
                        comptime!(step * w),
                        m,
                        row_tiles,
                        fused_chunks,
                        false,
                        ablate,
                    );
                    load_i += 1;
                    if load_i >= per_block {
                        load_i = 0;
                        load_block += 1;
                    }
                    i += 1;
                    if i == per_block {
                        let slot = sums_at + (block * planes + plane) * per_plane;
                        #[unroll]
                        for k in 0..acc_len {
                            shared[slot + k * LANES + lane] = u32::reinterpret(acc[k]);
                            acc[k] = 0.0f32;
                        }
                        i = 0;
                        block += 1;
                    }
                    item += 1;
                }
            }
        }
        // A plane without chunks still owns its slots: zeros.
        if per_block == 0 {
            for idle_block in 0..groups {
                let slot = sums_at + (idle_block * planes + plane) * per_plane;
                #[unroll]
                for k in 0..acc_len {
                    shared[slot + k * LANES + lane] = 0u32;
                }
            }
        }
    }
    sync_cube();

    // acc[(rt·tiles + tile)·4 + half·2 + j] of lane (g, tig) was output row
    // `16·rt + g + 8·half` of its block, limb column `tile·8 + 2·tig + j`.
    let mut item = plane * LANES + lane;
    while item < comptime!(16 * row_tiles * groups * m) {
        let in_cube = item / m;
        let r = item % m;
        let row = row0 + in_cube;
        if row < rows {
            let base = sums_at + (in_cube / group_rows) * comptime!(planes * per_plane);
            let local = in_cube % group_rows;
            let mut sum = 0.0f32;
            #[unroll]
            for l in 0..3usize {
                let (k, source) = limb_partial(local / 16, local % 16, r, l, tiles);
                #[unroll]
                for p in 0..planes {
                    sum += f32::reinterpret(shared[base + p * per_plane + k * LANES + source]);
                }
            }
            out[r * rows + row] = F::cast_from(sum * f32::cast_from(scale[row]));
        }
        item += comptime!(planes * LANES);
    }
}

/// A contiguous `shape` tensor of `dtype` starting `start_bytes` into
/// `tensor`'s allocation: a view, so a kernel that writes it writes
/// `tensor` in place (the row blocks' outputs, the prepass's scratch parts).
fn view_at<R: CubeRuntime>(
    tensor: &CubeTensor<R>,
    start_bytes: usize,
    shape: Shape,
    dtype: DType,
) -> CubeTensor<R> {
    let total_bytes = tensor.meta.shape().num_elements() * tensor.dtype.size();
    let end_bytes = start_bytes + shape.num_elements() * dtype.size();
    assert!(
        end_bytes <= total_bytes,
        "view_at: bytes {start_bytes}..{end_bytes} outside a {total_bytes}-byte tensor"
    );
    let handle = tensor
        .handle
        .clone()
        .offset_start(start_bytes as u64)
        .offset_end((total_bytes - end_bytes) as u64);
    CubeTensor::new_contiguous(
        tensor.client.clone(),
        tensor.device.clone(),
        shape,
        handle,
        dtype,
    )
}

/// `x: [m, cols]` (contiguous, `m ≤ 8`) times the packed trits
/// `[rows, ceil(cols / 16)]` with row `scale` (contiguous, in any float type:
/// the kernel reads it as it is, so a scale of another type than `x` costs
/// no cast launch per call), on the int8 tensor cores. Call only where
/// [`supported`] holds.
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
) -> CubeTensor<R> {
    let out = empty_output(&x, rows);
    forward_into(x, trits, scale, rows, cols, out.clone());
    out
}

/// `x: [m, cols]` with `m` above [`MMA_GEMV_MAX_M`] (contiguous) on the
/// tensor-core GEMV, in row blocks of at most [`MMA_GEMV_MAX_M`] rows of
/// balanced sizes, each written straight into its rows of one output. Each
/// block streams the packed weight once, so `m = 16` reads it twice; the
/// FMA GEMV it replaces for `8 < m ≤ 16` spends about 8 ALU operations per
/// trit and activation row. Call only where [`supported`] holds for
/// [`MMA_GEMV_MAX_M`] rows.
pub fn forward_row_blocks<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
) -> CubeTensor<R> {
    let m = x.meta.shape()[0];
    let out = empty_output(&x, rows);
    let blocks = m.div_ceil(MMA_GEMV_MAX_M);
    let mut first = 0;
    for block in 0..blocks {
        let end = first + (m - first).div_ceil(blocks - block);
        let x_rows = into_contiguous(slice(x.clone(), &[first..end, 0..cols]));
        let out_rows = view_at(
            &out,
            first * rows * out.dtype.size(),
            Shape::new([end - first, rows]),
            out.dtype,
        );
        forward_into(x_rows, trits.clone(), scale.clone(), rows, cols, out_rows);
        first = end;
    }
    out
}

/// A new contiguous `[m, rows]` output for `x: [m, cols]`.
fn empty_output<R: CubeRuntime>(x: &CubeTensor<R>, rows: usize) -> CubeTensor<R> {
    empty_device_contiguous_dtype(
        x.client.clone(),
        x.device.clone(),
        Shape::new([x.meta.shape()[0], rows]),
        x.dtype,
    )
}

/// [`forward`] into the given contiguous `[m, rows]` output.
fn forward_into<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    out: CubeTensor<R>,
) {
    // The streamed form where it applies (the one-launch form's limbs, all
    // of a cube's trits in shared memory); not under the ablation knob.
    if FUSED.load(Ordering::Relaxed)
        && ABLATION.load(Ordering::Relaxed) == 0
        && let Some(plan) = super::gemv_stream_kernel::plan(&x, rows, cols)
    {
        super::gemv_stream_kernel::forward_into(plan, x, trits, scale, rows, cols, out);
        return;
    }
    let m = x.meta.shape()[0];
    let client = x.client.clone();
    let chunks = cols.div_ceil(CHUNK_COLS);
    let tiles = b_tiles(m);
    let dtype = x.dtype;
    let scale_dtype = scale.dtype;
    let max_shared_words = client.properties().hardware.max_shared_memory_size / 4;
    let fused_limit_words = match FUSED_SHARED_BYTES.load(Ordering::Relaxed) {
        0 => FUSED_MAX_WORDS,
        bytes => bytes / 4,
    }
    .min(max_shared_words);
    let fused = FUSED.load(Ordering::Relaxed) && fused_words(m, chunks) <= fused_limit_words;
    let prepass_buffers = (!fused).then(|| prepass(x.clone(), chunks, tiles));
    let sms = super::sm_count(&client);
    // Launch shape, from H200 sweeps (`--ignored gemv_tuning`,
    // `scripts/profile/ncu_gemv.py` with `NCU_TUNES`): two row tiles per cube share
    // the B fragments; two chunks in flight per plane (one left the warps
    // waiting on memory, three cost occupancy); planes enough to cover
    // memory latency, about 8192 over the grid, at most 8 per cube (16 where
    // cubes ≤ SMs, below) and never more than the chunks.
    //
    // The fastest grids were one wave of 16-plane cubes, about one per SM:
    // every cube recomputes the limbs of all chunks in the one-launch form,
    // so fewer, larger cubes do less of that. Where four row tiles per cube
    // give such a grid (more than half the SMs, none waiting for a second
    // wave: 8192 rows on 132 SMs), the one-launch form takes them, with one
    // chunk in flight (four row tiles with two spill registers):
    // 8192 × 8192, m = 1: 13.0 → 11.4 µs. Where 64-row cubes are more than
    // one wave, two row blocks of 32 rows per cube (row groups) halve the
    // prologue work without the registers: 4096 × 14336 (14336 rows),
    // m = 1: 14.0 → 11.6 µs. Where they would leave half the SMs idle
    // (4096 rows), neither.
    let cubes_of_64_rows = rows.div_ceil(64);
    let few_64_row_cubes = 2 * cubes_of_64_rows <= sms;
    let one_wave_at_4 = !few_64_row_cubes && cubes_of_64_rows <= sms;
    let row_tiles = match ROW_TILES.load(Ordering::Relaxed) {
        0 if fused && one_wave_at_4 => 4,
        0 => 2,
        n => n.clamp(1, 4),
    };
    let depth = match DEPTH.load(Ordering::Relaxed) {
        0 if row_tiles > 2 => 1,
        0 => 2,
        n => n.clamp(1, 3),
    };
    let target = match TARGET_PLANES.load(Ordering::Relaxed) {
        0 => 8192,
        n => n,
    };
    let mut groups = match ROW_GROUPS.load(Ordering::Relaxed) {
        0 if fused && row_tiles == 2 && !few_64_row_cubes => 2,
        0 => 1,
        n => n.clamp(1, 8),
    };
    let cubes = rows.div_ceil(16 * row_tiles * groups);
    let wanted = target.div_ceil(cubes).next_power_of_two();
    // Where every cube has an SM to itself (few rows: 4096 on the H200's
    // 132 SMs), the one-launch form takes up to 16 planes (512 threads of
    // ≤ 120 registers still fit an SM): twice the warps to hide latency and
    // half the prologue per plane (14336 × 4096, m = 1: 13.1 → 11.8 µs).
    // With more cubes 16 planes cost the second cube per SM (8192 rows:
    // 13.1 → 14.5 µs), and the two-launch form (m = 8) has more registers.
    let max_planes = match MAX_PLANES.load(Ordering::Relaxed) {
        0 if fused && cubes <= sms => 16,
        0 => 8,
        n => n.next_power_of_two().clamp(1, 16),
    };
    let planes = wanted
        .clamp(1, max_planes)
        .min(chunks.next_power_of_two())
        .max(1);
    let limb_chunks = if fused { chunks } else { 0 };
    while groups > 1
        && gemv_shared_words(m, limb_chunks, planes, row_tiles, groups) > max_shared_words
    {
        groups -= 1;
    }
    let cubes = rows.div_ceil(16 * row_tiles * groups);
    // Rows of 4-word multiples allow one 16-byte load per row and chunk
    // (`trits` is contiguous, so its row stride is its width).
    let trit_vector = if trits.meta.shape()[1].is_multiple_of(4) {
        4
    } else {
        1
    };
    let (x_arg, prepass_arg, fused_chunks) = match prepass_buffers {
        None => (Some(x.into_array_arg()), None, chunks),
        Some([limbs, limb_sums, chunk_dequant]) => (
            None,
            Some(PrepassLimbsLaunch::new(
                limbs.into_array_arg(),
                limb_sums.into_array_arg(),
                chunk_dequant.into_array_arg(),
            )),
            0,
        ),
    };
    // SAFETY: every access is in bounds by construction: activation reads
    // are clamped into the row (`fused_limbs`), trit reads into the matrix
    // (`load_chunk_words`); limb, sum, shared-memory and output indices are
    // below the sizes allocated from the same `chunks` and `tiles` (checked
    // on 200+ shapes against the reference, both forms,
    // `matmul_forward_small_m_matches_reference`).
    unsafe {
        gemv_mma_kernel::launch_unchecked::<R>(
            &client,
            CubeCount::Static(cubes as u32, 1, 1),
            CubeDim::new_2d(LANES as u32, planes as u32),
            trit_vector,
            x_arg.into(),
            prepass_arg.into(),
            trits.into_array_arg(),
            scale.into_array_arg(),
            out.into_array_arg(),
            TRIT_BYTES,
            rows as u32,
            cols as u32,
            m,
            row_tiles,
            planes,
            depth,
            fused_chunks,
            groups,
            ABLATION.load(Ordering::Relaxed),
            EARLY_LIMB_LOADS.load(Ordering::Relaxed),
            dtype.into(),
            scale_dtype.into(),
        );
    }
}

/// The prepass ([`limb_kernel`]): limbs, limb sums and chunk factors of
/// `x`, as three views of one allocation (one pool allocation instead of
/// three saves host time per call, which is what bounds the shapes
/// in a stream of calls).
fn prepass<R: CubeRuntime>(x: CubeTensor<R>, chunks: usize, tiles: usize) -> [CubeTensor<R>; 3] {
    let m = x.meta.shape()[0];
    let cols = x.meta.shape()[1];
    let client = x.client.clone();
    let limb_words = tiles * chunks * REGS * LANES;
    let sum_words = tiles * chunks * TILE_N;
    let scratch = empty_device_contiguous_dtype(
        client.clone(),
        x.device.clone(),
        Shape::new([limb_words + sum_words + chunks]),
        DType::U32,
    );
    let limbs = view_at(&scratch, 0, Shape::new([limb_words]), DType::U32);
    let limb_sums = view_at(
        &scratch,
        limb_words * 4,
        Shape::new([sum_words]),
        DType::I32,
    );
    let chunk_dequant = view_at(
        &scratch,
        (limb_words + sum_words) * 4,
        Shape::new([chunks]),
        DType::F32,
    );
    let dtype = x.dtype;
    // SAFETY: activation reads are guarded by the column bound; the limb,
    // sum and factor indices are below the sizes allocated above from the
    // same `chunks` and `tiles`.
    unsafe {
        limb_kernel::launch_unchecked::<R>(
            &client,
            CubeCount::Static(chunks as u32, tiles as u32, 1),
            CubeDim::new_2d(LANES as u32, REGS as u32),
            x.into_array_arg(),
            limbs.clone().into_array_arg(),
            limb_sums.clone().into_array_arg(),
            chunk_dequant.clone().into_array_arg(),
            cols as u32,
            m,
            dtype.into(),
        );
    }
    [limbs, limb_sums, chunk_dequant]
}
