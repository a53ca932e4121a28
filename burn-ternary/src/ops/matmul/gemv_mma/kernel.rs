//! The tensor-core GEMV's main kernel ([`gemv_mma_kernel`], see the module
//! docs of `gemv_mma`): the packed trits' loads, their decode into the
//! `mma`'s A fragments, the int8 `mma`s against the activations' limbs
//! (from the prepass or the fused prologue of `limbs.rs`), and the final
//! reduction over planes and limbs.

use cubecl::{cmma::MmaDefinition, prelude::*};

use super::limbs::{
    fused_dequant_word, fused_limb_word, fused_limbs, fused_sum_word, limb_slot, PrepassLimbs,
};
use crate::{
    ops::matmul::route::{
        b_tiles, fused_words, gemv_shared_words, CHUNK_WORDS, LANES, REGS, TILE_N,
    },
    packing::TRITS_PER_WORD,
};

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
fn fused_b_operands(
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
fn fill_col_factors(col_factor: &mut Array<f32>, tig: usize, #[comptime] m: usize) {
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
fn limb_partial(
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

/// One chunk of the main pass: decodes `words[at..]` (from
/// [`load_chunk_words`]) into A fragments and adds each row tile's and B
/// tile's `mma` results against the B operands (from [`chunk_b_operands`]),
/// scaled to `f32`, to `acc`.
/// `mask` is [`super::TRIT_BYTES`], passed at run time: with a literal mask nvcc
/// sees that `(u >> 6) & mask` needs no mask in its top byte, then splits
/// the register into bytes and rebuilds it (six instructions instead of two);
/// the decode's `0x5555_5555` is derived from it for the same reason.
#[cube]
#[allow(clippy::too_many_arguments)]
fn mma_chunk(
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

/// The fused form's prologue ([`fused_limbs`], then a plane barrier so that
/// the plane's lanes see each other's limbs); nothing after the prepass.
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_prologue<F: Float>(
    x: &ComptimeOption<Array<F>>,
    shared: &mut SharedMemory<u32>,
    cols: usize,
    plane: usize,
    lane: usize,
    #[comptime] m: usize,
    #[comptime] planes: usize,
    #[comptime] fused_chunks: usize,
) {
    #[comptime]
    match x {
        ComptimeOption::Some(x) => {
            fused_limbs(x, shared, cols, plane, lane, m, planes, fused_chunks);
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
) {
    load_chunk_words(
        trits, words, rows, row_words, load_chunk, chunks, load_row0, g, tig, load_at, row_tiles,
    );
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
pub(super) fn gemv_mma_kernel<F: Float, S: Float, N: Size>(
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
        fused_prologue(x, &mut shared, cols, plane, lane, m, planes, fused_chunks);
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
                        // measured), in a register elsewhere (8192², 4096 × 14336: 10.1
                        // against 10.2–10.8 µs).
                        comptime!(row_tiles == 2),
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
        fused_prologue(x, &mut shared, cols, plane, lane, m, planes, fused_chunks);
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
