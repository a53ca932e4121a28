//! The streamed form of the tensor-core GEMV (`gemv_mma.rs`): every cube
//! puts all of its packed trits in flight at once, into shared memory
//! through Hopper's tensor memory accelerator, and consumes them in the
//! order they land.
//!
//! Why: the register-fed kernel keeps one or two chunks in flight per plane,
//! and a plane's chunk is complete only when its last load lands; with every
//! request queued at once the chunks complete near the end of the stream, so
//! the decode and `mma` (2.0–2.5 µs at the issue's shapes, m = 1) ran after
//! it instead of under it (KERNEL_NOTES, nineteenth round). Here a cube
//! owns `16 · row_tiles` whole rows, about one cube per SM, and splits its
//! columns into at most [`MAX_STAGES`] stages, each a power-of-two range of
//! chunks of all its rows with its own barrier. One unit per row tile
//! issues one tensor-map load (a `16 × 16·stage_chunks`-word box) per stage
//! up front, in stage order, so DRAM serves them roughly in that order;
//! the limb prologue then runs while they fly; then the planes wait for
//! stage 0, multiply it, wait for stage 1, and so on: the arithmetic of a
//! stage overlaps the arrival of the later ones.
//!
//! Plane `(row_tiles / plane_tiles) · p + group` multiplies the
//! `plane_tiles` row tiles of its group against chunks
//! `p, p + chunk_planes, ...` of each stage, with the decode and `mma` of
//! `gemv_mma.rs`; at the end the `chunk_planes` planes of each group add
//! their partial sums through shared memory.
//!
//! Status (round 20, H200, m = 1): correct, and its stream alone (copies,
//! barriers, epilogue) takes 7.0 / 6.8 / 6.8 µs at the issue's three
//! shapes, 62–65% of a same-size copy; but the limb prologue and the
//! arithmetic, at one cube of 16 warps per SM, add 2–3 and about 4 µs that
//! the stream does not hide (13.3 / 12.7 / 14.3 µs in all, against the
//! register-fed kernel's 10.0 / 10.0 / 10.7), so it is off by default
//! ([`set_streamed_gemv`]). Round 21: issuing the prologue's first
//! activation loads before the copies (they queued behind the trits) and
//! giving every plane all row tiles with its own chunks' limbs, at four
//! stages (knob bits 4 and 5), brought it to 10.7 / 9.4 / 11.4 µs, faster
//! than the register-fed kernel at 4096 × 14336 only. Round 22 measured
//! why the arithmetic is not hidden: a cube's column stages, all in
//! flight, land together in the last fifth of the stream
//! (`scripts/stage_arrival.py`); stages of whole row tiles land in order,
//! but in this kernel they gained at most 0.4 µs and were taken out again
//! (KERNEL_NOTES, twenty-second round).
//!
//! Taken, when on, on devices with the tensor memory accelerator (sm_90) where the
//! rows are 16-byte aligned (`ceil(cols / 16)` a multiple of 4, which the
//! tensor map needs) and the cube's trits (whole boxes) and the limbs of
//! all chunks fit in the opt-in shared memory of one cube; elsewhere the
//! register-fed kernel runs.

use burn_cubecl::{tensor::CubeTensor, CubeRuntime};
use cubecl::features::Tma;
use cubecl::prelude::barrier::{copy_async, Barrier};
use cubecl::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::gemv_mma_kernel::{
    b_tiles, early_values, fill_col_factors, fold_words, fused_b_operands, fused_limb_loads,
    fused_limbs, fused_words, limb_partial, mma_chunk, CHUNK_COLS, LANES, REGS, TRIT_BYTES,
};

/// Most stages (barriers) per cube.
pub(crate) const MAX_STAGES: usize = 8;
/// Most planes per cube.
const MAX_PLANES: usize = 16;
/// Most chunks per stage: a tensor-map box side is at most 256 elements.
const MAX_STAGE_CHUNKS: usize = 16;
/// Most row tiles one plane multiplies when every plane takes all of the
/// cube's (knob bit 4): each adds eight trit words and four accumulators
/// per B tile to a lane's registers.
pub(crate) const MAX_OWN_TILES: usize = 8;

/// The largest power of two `<= n` (`n >= 1`).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

/// Shared memory left unused below the device's opt-in maximum, in bytes
/// (the barriers and the runtime's own).
const SHARED_MARGIN: usize = 1024;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LAUNCHES: AtomicUsize = AtomicUsize::new(0);
static STAGES: AtomicUsize = AtomicUsize::new(0);
static AHEAD: AtomicUsize = AtomicUsize::new(0);
static VARIANT: AtomicUsize = AtomicUsize::new(0);

/// Measurement knob: the most stages per cube (1 to 16; 0 = the built-in
/// [`MAX_STAGES`]), the stages whose copies are issued before the limb
/// prologue (the rest are issued one per stage consumed, that many stages
/// ahead; 0 = all up front) and which parts to leave out (bit 0: the decode
/// and `mma`, each chunk's words XOR-folded instead; bit 1: the limb
/// prologue; the output is then wrong, for ncu only; bit 2: the copies as
/// 16-byte `cp.async` per unit instead of one tensor-map load per row tile
/// and stage; bit 3: two row tiles per plane where the cube's count is
/// even; bit 4: every plane multiplies all of the cube's row tiles, up to
/// [`MAX_OWN_TILES`], and computes the limbs of its own chunks, with no cube
/// barrier between the prologue and the first stage; bit 5: the prologue's
/// first activation loads issued before the copies, so that they do not
/// queue behind the cube's trits).
#[doc(hidden)]
pub fn tune_streamed_gemv(stages: usize, ahead: usize, variant: usize) {
    STAGES.store(stages.min(16), Ordering::Relaxed);
    AHEAD.store(ahead, Ordering::Relaxed);
    VARIANT.store(variant & 63, Ordering::Relaxed);
}

/// Turns the streamed form of the tensor-core GEMV on or off for this
/// process (off by default). On, `m <= 8` forwards on CUDA devices with the
/// tensor memory accelerator (sm_90) take it where the rows are 16-byte
/// aligned (`ceil(cols / 16)` a multiple of 4) and a cube's trits and limbs
/// fit in shared memory; elsewhere the register-fed kernel runs. It is off
/// by default because at the issue's shapes on the H200 it is slower than
/// the register-fed kernel: 12.7–14.3 against 10.0–10.7 µs at m = 1
/// (KERNEL_NOTES, twentieth round).
///
/// ```
/// burn_ternary::set_streamed_gemv(true);
/// // ... forwards that may take the streamed form ...
/// burn_ternary::set_streamed_gemv(false);
/// ```
pub fn set_streamed_gemv(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Test counter: launches of the streamed GEMV in this process, so that a
/// check can show which shapes took it.
#[doc(hidden)]
pub fn streamed_gemv_launches() -> usize {
    LAUNCHES.load(Ordering::Relaxed)
}

/// Launch shape of the streamed GEMV for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    row_tiles: usize,
    /// Row tiles each plane multiplies against one set of B operands.
    plane_tiles: usize,
    /// Each plane computes the limbs of the chunks it multiplies (one plane
    /// group); otherwise the cube computes all limbs before any `mma`.
    own_limbs: bool,
    chunk_planes: usize,
    stage_chunks: usize,
    stages: usize,
    chunks: usize,
}

impl Plan {
    /// The launch shape for `m` activation rows against `rows × cols`, on a
    /// device with `sms` SMs and `max_shared` bytes of shared memory per
    /// cube, with the knobs' `variant` bits and most stages (0: the
    /// built-in [`MAX_STAGES`]) of [`tune_streamed_gemv`]; `None` where it
    /// does not fit or the rows are not 16-byte aligned.
    fn new(
        m: usize,
        rows: usize,
        cols: usize,
        sms: usize,
        max_shared: usize,
        variant: usize,
        max_stages: usize,
    ) -> Option<Self> {
        let row_words = cols.div_ceil(16);
        if m == 0 || rows == 0 || !row_words.is_multiple_of(4) {
            return None;
        }
        let chunks = cols.div_ceil(CHUNK_COLS);
        // About one cube per SM: the fewest row tiles per cube that keep the
        // grid within one wave.
        let row_tiles = rows.div_ceil(16).div_ceil(sms.max(1)).max(1);
        if row_tiles > MAX_PLANES {
            return None;
        }
        // Every plane takes all row tiles and its own chunks' limbs (knob bit
        // 4): the B operands of a chunk serve every row tile, and no plane
        // waits for another's prologue.
        let own_limbs = variant & 16 == 16 && row_tiles <= MAX_OWN_TILES;
        // Otherwise two row tiles per plane (knob bit 3) share each chunk's B
        // operands and give the `mma` chain a second, independent one.
        let plane_tiles = if own_limbs {
            row_tiles
        } else if variant & 8 == 8 && row_tiles.is_multiple_of(2) {
            2
        } else {
            1
        };
        // Powers of two: a stage's tensor-map box is `16 × 16·stage_chunks`
        // words, and box sides are powers of two.
        let chunk_planes = prev_power_of_two(MAX_PLANES / (row_tiles / plane_tiles))
            .min(prev_power_of_two(chunks))
            .max(1);
        let max_stages = match max_stages {
            0 => MAX_STAGES,
            n => n,
        };
        // A stage of fewer chunks than planes is multiplied by some of the
        // planes only (those whose chunks it holds); otherwise every plane
        // takes the same number of each stage's chunks.
        let stage_chunks = if own_limbs {
            chunks.div_ceil(max_stages).next_power_of_two()
        } else {
            chunk_planes
                * chunks
                    .div_ceil(max_stages * chunk_planes)
                    .next_power_of_two()
        };
        if stage_chunks > MAX_STAGE_CHUNKS {
            return None;
        }
        let stages = chunks.div_ceil(stage_chunks);
        let plan = Self {
            row_tiles,
            plane_tiles,
            own_limbs,
            chunk_planes,
            stage_chunks,
            stages,
            chunks,
        };
        (plan.shared_bytes(m) + SHARED_MARGIN <= max_shared).then_some(plan)
    }

    fn planes(&self) -> usize {
        self.row_tiles / self.plane_tiles * self.chunk_planes
    }

    /// Words of the `u32` shared memory: the limbs, then the planes' partial
    /// sums.
    fn scratch_words(&self, m: usize) -> usize {
        fused_words(m, self.chunks) + self.planes() * self.plane_tiles * b_tiles(m) * 4 * LANES
    }

    /// Vectors of the trits' shared memory: per stage, `16 · row_tiles`
    /// rows of `4 · stage_chunks` vectors (whole boxes, also for a last
    /// stage with fewer chunks).
    fn trit_vectors(&self) -> usize {
        self.stages * 16 * self.row_tiles * 4 * self.stage_chunks
    }

    fn shared_bytes(&self, m: usize) -> usize {
        self.scratch_words(m) * 4 + self.trit_vectors() * 16 + 8 * self.stages
    }
}

/// The streamed GEMV's launch shape for `x: [m, cols]` against `rows`
/// packed rows, if it applies to this call (on, 16-byte aligned rows, fits
/// in the device's shared memory).
pub(crate) fn plan<R: CubeRuntime>(x: &CubeTensor<R>, rows: usize, cols: usize) -> Option<Plan> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let client = &x.client;
    // The tensor map needs Hopper's tensor memory accelerator (the per-unit
    // `cp.async` knob also takes it as an argument).
    let features = &client.properties().features;
    if !features.tma.contains(Tma::Base) || !features.copy_async {
        return None;
    }
    Plan::new(
        x.meta.shape()[0],
        rows,
        cols,
        super::sm_count(client),
        client.properties().hardware.max_shared_memory_size,
        VARIANT.load(Ordering::Relaxed),
        STAGES.load(Ordering::Relaxed),
    )
}

/// Launches the streamed GEMV with `plan` (from [`plan`]) for `x: [m, cols]`
/// (contiguous) against the packed `trits` (contiguous
/// `[rows, ceil(cols / 16)]`) and row `scale` into `out: [m, rows]`.
pub(crate) fn forward_into<R: CubeRuntime>(
    plan: Plan,
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    out: CubeTensor<R>,
) {
    let m = x.meta.shape()[0];
    let client = x.client.clone();
    let cubes = rows.div_ceil(16 * plan.row_tiles);
    let dtype = x.dtype;
    let scale_dtype = scale.dtype;
    LAUNCHES.fetch_add(1, Ordering::Relaxed);
    // One box per row tile and stage: 16 rows of the stage's words (rows and
    // words past the matrix arrive as zeros).
    let trits_map = TensorMapArg::new(
        TiledArgs {
            tile_size: cubecl::zspace::Shape::new([16, 16 * plan.stage_chunks]),
        },
        trits.clone().into_tensor_arg(),
        u32::as_type_native_unchecked(),
    );
    // SAFETY: the copies read whole 16-byte vectors of rows below `rows` and
    // vectors below the row's width (guarded); activation reads are clamped
    // into the row (`fused_limbs`); shared-memory indices are below the
    // sizes `Plan` allocates from the same `chunks`, `row_tiles` and planes;
    // output rows are guarded.
    unsafe {
        gemv_mma_stream_kernel::launch_unchecked::<R>(
            &client,
            CubeCount::Static(cubes as u32, 1, 1),
            CubeDim::new_2d(LANES as u32, plan.planes() as u32),
            4,
            x.into_array_arg(),
            trits.into_array_arg(),
            trits_map,
            scale.into_array_arg(),
            out.into_array_arg(),
            TRIT_BYTES,
            rows as u32,
            cols as u32,
            m,
            plan.row_tiles,
            plan.plane_tiles,
            plan.chunk_planes,
            plan.stage_chunks,
            plan.stages,
            plan.chunks,
            plan.scratch_words(m),
            plan.own_limbs,
            AHEAD.load(Ordering::Relaxed).min(plan.stages),
            VARIANT.load(Ordering::Relaxed),
            dtype.into(),
            scale_dtype.into(),
        );
    }
}

/// Issues this unit's share of stage `stage`'s copies (chunks `first ..
/// first + count` of the cube's rows, into the stage's part of `stash`:
/// `16 · row_tiles` rows of `4 · stage_chunks` vectors) and arrives on the
/// stage's barrier, which completes once every copy has landed. By default
/// unit `rt < row_tiles` loads row tile `rt`'s box of the stage through the
/// tensor map (Hopper's tensor memory accelerator; the barrier counts its
/// bytes); with `per_unit`, every unit copies 16-byte pieces with `cp.async`
/// (each an instruction that waits for room in the SM's load queue, so with
/// every stage issued up front the units stall here for most of the stream:
/// round 20, call 2).
#[cube]
#[allow(clippy::too_many_arguments)]
fn issue_stage<N: Size>(
    trits: &Array<Vector<u32, N>>,
    trits_map: &TensorMap<u32, Tiled>,
    stash: &mut SharedMemory<Vector<u32, N>>,
    barrier: &Shared<Barrier>,
    rows: usize,
    row_vectors: usize,
    row0: usize,
    unit: usize,
    #[comptime] stage: usize,
    #[comptime] stage_chunks: usize,
    #[comptime] chunks: usize,
    #[comptime] row_tiles: usize,
    #[comptime] threads: usize,
    #[comptime] per_unit: bool,
) {
    let first = comptime!(stage * stage_chunks);
    let count = comptime!(stage_chunks.min(chunks - stage * stage_chunks));
    let stage_vectors = comptime!(4 * stage_chunks);
    let base = comptime!(stage * 16 * row_tiles * stage_vectors);
    if comptime!(per_unit) {
        let per_row = comptime!(4 * count);
        let mut piece = unit;
        while piece < comptime!(16 * row_tiles * per_row) {
            let r = piece / per_row;
            let j = piece % per_row;
            let v = comptime!(4 * first) + j;
            let row = row0 + r;
            if row < rows && v < row_vectors {
                let at = row * row_vectors + v;
                let to = base + r * stage_vectors + j;
                copy_async(
                    &trits.slice(at, at + 1),
                    &mut stash.slice_mut(to, to + 1),
                    4u32,
                );
            }
            piece += threads;
        }
        barrier.commit_copy_async();
        let _token = barrier.arrive();
    } else {
        let box_vectors = comptime!(16 * stage_vectors);
        let mut bytes = 0u32;
        if unit < row_tiles {
            let to = base + unit * box_vectors;
            barrier.tma_load_2d(
                trits_map,
                &mut stash.slice_mut(to, to + box_vectors),
                i32::cast_from(row0 + unit * 16),
                comptime!(16 * first) as i32,
            );
            bytes = comptime!(16 * box_vectors) as u32;
        }
        let _token = barrier.arrive_and_expect_tx(1u32, bytes);
    }
}

/// The streamed GEMV (see the module docs). `trits` is the packed matrix as
/// 16-byte vectors (`N = 4`), rows 16-byte aligned.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn gemv_mma_stream_kernel<F: Float, S: Float, N: Size>(
    x: &Array<F>,
    trits: &Array<Vector<u32, N>>,
    trits_map: &TensorMap<u32, Tiled>,
    scale: &Array<S>,
    out: &mut Array<F>,
    trit_mask: u32,
    rows: u32,
    cols: u32,
    #[comptime] m: usize,
    #[comptime] row_tiles: usize,
    #[comptime] plane_tiles: usize,
    #[comptime] chunk_planes: usize,
    #[comptime] stage_chunks: usize,
    #[comptime] stages: usize,
    #[comptime] chunks: usize,
    #[comptime] scratch_words: usize,
    #[comptime] own_limbs: bool,
    #[comptime] ahead: usize,
    #[comptime] variant: usize,
    #[define(F)] _dtype: StorageType,
    #[define(S)] _scale_dtype: StorageType,
) {
    let tiles = comptime!(b_tiles(m));
    let plane_groups = comptime!(row_tiles / plane_tiles);
    let planes = comptime!(plane_groups * chunk_planes);
    let per_plane = comptime!(plane_tiles * tiles * 4);
    let threads = comptime!(planes * LANES);
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let unit = plane * LANES + lane;
    let g = lane / 4;
    let tig = lane % 4;
    let rows = usize::cast_from(rows);
    let cols = usize::cast_from(cols);
    let row_vectors = cols.div_ceil(64);
    let row0 = CUBE_POS_X as usize * comptime!(16 * row_tiles);

    let mut scratch = SharedMemory::<u32>::new(scratch_words);
    let stage_vectors = comptime!(4 * stage_chunks);
    let stage_size = comptime!(16 * row_tiles * stage_vectors);
    // 128-byte aligned: the tensor memory accelerator's destination.
    let mut stash =
        SharedMemory::<Vector<u32, N>>::new_aligned(comptime!(stages * stage_size), 128usize);
    let mut barriers = Sequence::<Shared<Barrier>>::new();
    #[unroll]
    for _s in 0..stages {
        barriers.push(Barrier::shared_uninit());
    }
    if unit == 0 {
        #[unroll]
        for s in 0..stages {
            barriers.index(s).init_manual(comptime!(threads as u32));
        }
        // The tensor-map loads complete on the barriers through the async
        // proxy.
        sync_async_proxy_shared();
    }
    sync_cube();

    // Knob bit 5: the prologue's first loads go out before the copies (the
    // activations are read by every cube; behind 128 KB of trits per SM
    // they would arrive late in the stream).
    let prologue = comptime!(variant & 2 == 0);
    let early = comptime!(prologue && variant & 32 == 32);
    let mut early_vals = Array::<f32>::new(comptime!(early_values(m, planes, chunks, early)));
    if comptime!(early) {
        fused_limb_loads(
            x,
            &mut early_vals,
            cols,
            plane,
            lane,
            0usize,
            m,
            planes,
            chunks,
        );
    }

    // The copies of the first `ahead` stages (all, with 0), in stage order.
    let up_front = comptime!(if ahead == 0 { stages } else { ahead });
    #[unroll]
    for s in 0..up_front {
        issue_stage(
            trits,
            trits_map,
            &mut stash,
            barriers.index(s),
            rows,
            row_vectors,
            row0,
            unit,
            s,
            stage_chunks,
            chunks,
            row_tiles,
            threads,
            comptime!(variant & 4 == 4),
        );
    }

    // Plane `plane` computes the limbs of chunks `plane, plane + planes,
    // ...`: with own limbs (one plane group) exactly the chunks it
    // multiplies, so only its own lanes need to see them; otherwise every
    // plane group reads every chunk's.
    if comptime!(prologue) {
        fused_limbs(
            x,
            &early_vals,
            &mut scratch,
            cols,
            plane,
            lane,
            m,
            planes,
            chunks,
            early,
        );
    }
    if comptime!(own_limbs) {
        sync_plane();
    } else {
        sync_cube();
    }

    let mut col_factor = Array::<f32>::new(comptime!(tiles * 2));
    fill_col_factors(&mut col_factor, tig, m);
    let mut acc = Array::<f32>::new(per_plane);
    #[unroll]
    for k in 0..per_plane {
        acc[k] = 0.0f32;
    }
    let mut words = Array::<u32>::new(comptime!(8 * plane_tiles));
    let mut b_regs = Array::<u32>::new(comptime!(tiles * REGS));
    let mut sums = Array::<i32>::new(comptime!(tiles * 2));
    let group = plane % plane_groups;
    let p = plane / plane_groups;
    // This lane's first vector in a stage: row `g` of the plane's first row
    // tile, vector `tig` of a chunk.
    let top = (group * comptime!(16 * plane_tiles) + g) * stage_vectors + tig;
    #[unroll]
    for s in 0..stages {
        if comptime!(ahead > 0 && s + ahead < stages) {
            issue_stage(
                trits,
                trits_map,
                &mut stash,
                barriers.index(comptime!(s + ahead)),
                rows,
                row_vectors,
                row0,
                unit,
                comptime!(s + ahead),
                stage_chunks,
                chunks,
                row_tiles,
                threads,
                comptime!(variant & 4 == 4),
            );
        }
        let start = comptime!(s * stage_chunks);
        let end = comptime!(((s + 1) * stage_chunks).min(chunks));
        // The plane's first chunk at or after the stage's first (`≡ p` mod
        // `chunk_planes`, both powers of two); a plane with no chunk in this
        // stage does not wait for it.
        let mut c = start + (p + comptime!(chunk_planes - start % chunk_planes)) % chunk_planes;
        if c < end {
            barriers.index(s).wait_parity(0u32);
        }
        while c < end {
            #[unroll]
            for t in 0..plane_tiles {
                #[unroll]
                for half in 0..2usize {
                    let v = stash[comptime!(s * stage_size)
                        + top
                        + comptime!((2 * t + half) * 8 * stage_vectors)
                        + 4 * (c - comptime!(s * stage_chunks))];
                    #[unroll]
                    for e in 0..4usize {
                        words[(t * 2 + half) * 4 + e] = v[e];
                    }
                }
            }
            if comptime!(variant & 1 == 1) {
                // Measurement only: wait for the words, no arithmetic.
                fold_words(&words, &mut acc, 0usize, comptime!(8 * plane_tiles));
            } else {
                let dequant =
                    fused_b_operands(&scratch, &mut b_regs, &mut sums, c, lane, m, chunks);
                mma_chunk(
                    &b_regs,
                    &sums,
                    dequant,
                    &words,
                    &col_factor,
                    &mut acc,
                    trit_mask,
                    0usize,
                    m,
                    plane_tiles,
                    false,
                );
            }
            c += chunk_planes;
        }
    }

    // Partial sums after the limbs: plane `w`'s accumulator `k` of lane `l`
    // at `sums_at + (w · per_plane + k) · 32 + l`.
    let sums_at = comptime!(fused_words(m, chunks));
    #[unroll]
    for k in 0..per_plane {
        scratch[sums_at + (plane * per_plane + k) * LANES + lane] = u32::reinterpret(acc[k]);
    }
    sync_cube();

    // acc[(t·tiles + tile)·4 + half·2 + j] of lane (g, tig) of a plane of
    // group `grp` was row `16·(grp·plane_tiles + t) + g + 8·half`, limb
    // column `tile·8 + 2·tig + j`.
    let mut item = unit;
    while item < comptime!(16 * row_tiles * m) {
        let local = item / m;
        let r = item % m;
        let row = row0 + local;
        if row < rows {
            let rt = local / 16;
            let grp = rt / plane_tiles;
            let t = rt % plane_tiles;
            let mut sum = 0.0f32;
            #[unroll]
            for l in 0..3usize {
                let (k, source) = limb_partial(t, local % 16, r, l, tiles);
                #[unroll]
                for q in 0..chunk_planes {
                    let w = q * plane_groups + grp;
                    sum +=
                        f32::reinterpret(scratch[sums_at + (w * per_plane + k) * LANES + source]);
                }
            }
            out[r * rows + row] = F::cast_from(sum * f32::cast_from(scale[row]));
        }
        item += threads;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fits_the_issue_shapes_on_an_h200() {
        // 132 SMs, 227 KiB of opt-in shared memory per cube.
        let h200 = |rows, cols| Plan::new(1, rows, cols, 132, 232_448, 0, 0);
        let p = h200(8192, 8192).expect("8192 × 8192");
        assert_eq!(
            (p.row_tiles, p.chunk_planes, p.stage_chunks, p.stages),
            (4, 4, 4, 8)
        );
        let p = h200(14336, 4096).expect("14336 rows × 4096 columns");
        assert_eq!(
            (p.row_tiles, p.chunk_planes, p.stage_chunks, p.stages),
            (7, 2, 2, 8)
        );
        let p = h200(4096, 14336).expect("4096 rows × 14336 columns");
        assert_eq!(
            (p.row_tiles, p.chunk_planes, p.stage_chunks, p.stages),
            (2, 8, 8, 7)
        );
    }

    /// The launch shape of a plan with own limbs: row tiles, row tiles per
    /// plane, planes per row group, chunks per stage, stages.
    fn own_launch(p: &Plan) -> (usize, usize, usize, usize, usize) {
        assert!(p.own_limbs);
        (
            p.row_tiles,
            p.plane_tiles,
            p.chunk_planes,
            p.stage_chunks,
            p.stages,
        )
    }

    #[test]
    fn plan_with_own_limbs_gives_every_plane_all_row_tiles() {
        let h200 = |rows, cols| Plan::new(1, rows, cols, 132, 232_448, 16, 0);
        // 32 chunks over 16 planes, 8 stages of 4 chunks: each stage is
        // multiplied by four planes, against all four row tiles.
        let p = h200(8192, 8192).expect("8192 × 8192");
        assert_eq!(own_launch(&p), (4, 4, 16, 4, 8));
        assert_eq!(p.planes(), 16);
        let p = h200(14336, 4096).expect("14336 rows × 4096 columns");
        assert_eq!(own_launch(&p), (7, 7, 16, 2, 8));
        let p = h200(4096, 14336).expect("4096 rows × 14336 columns");
        assert_eq!(own_launch(&p), (2, 2, 16, 8, 7));
        // More row tiles than a plane holds: the cube's planes split them.
        let p = Plan::new(1, 16 * 9 * 132, 4096, 132, 232_448, 16, 0).expect("9 row tiles");
        assert!(!p.own_limbs);
        assert_eq!(p.plane_tiles, 1);
    }

    #[test]
    fn plan_refuses_unaligned_rows_and_oversized_cubes() {
        // 1100 columns: 69 words per row, not 16-byte aligned.
        assert_eq!(Plan::new(1, 64, 1100, 132, 232_448, 0, 0), None);
        // 64 rows per cube of 32768 columns: 512 KiB of trits.
        assert_eq!(Plan::new(1, 8192, 32768, 132, 232_448, 0, 0), None);
        // m = 8 limbs of 32 chunks: 200 KiB on top of the trits.
        assert_eq!(Plan::new(8, 8192, 8192, 132, 232_448, 0, 0), None);
    }
}
