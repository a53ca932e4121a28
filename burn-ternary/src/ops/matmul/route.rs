//! Which kernel computes a ternary matmul on the CubeCL backends, and with
//! which launch shape: [`route`], a pure function of the call's sizes, the
//! device's capabilities ([`DeviceCaps`]) and a [`MatmulPolicy`].
//!
//! Which kernel runs (`x: [m, k]` activations; the forward `x · Wᵀ` with
//! `W: [rows, cols]`, or with `input_grad` the product `grad_y · W`):
//!
//! 1. Nothing to compute (`m = 0`, or no output columns): [`MatmulRoute::Empty`];
//!    an input gradient with `rows = 0`: [`MatmulRoute::Zeros`].
//! 2. f16/bf16 activations with `m >= TENSOR_CORE_MIN_M` (64), both
//!    directions: [`MatmulRoute::UnpackTensorCore`] (the trits unpacked to a
//!    dense half-precision weight, then Burn's autotuned matmul).
//! 3. f32 activations with `m >= 64` where [`F32TensorCores`] says so (by
//!    default: the device has f16 cooperative matrices and the product is
//!    large enough): [`MatmulRoute::SplitF16Gemm`] (two exact f16 limbs per
//!    activation on tensor cores, summed apart in f32).
//! 4. Forward, `m > GEMV_MAX_M` (16): [`MatmulRoute::Tiled`]; input
//!    gradient, `m > 16`: the same tiled kernel with the transposed trit
//!    loader.
//! 5. Forward, `m <= 16` on a device with int8 `mma` (CUDA sm_80+) and
//!    `tensor_core_gemv` on: [`MatmulRoute::TensorCoreGemv`], one launch
//!    block for `m <= MMA_GEMV_MAX_M` (8), two balanced row blocks above;
//!    each block fused (limbs computed in the kernel) where its limbs fit in
//!    48 KiB of shared memory, else a prepass launch first.
//! 6. Forward, `m <= GEMV_PLANE_MAX_M` (8) on a device with plane
//!    operations of one fixed size: [`MatmulRoute::PlaneGemv`], in launches
//!    of up to four activation rows.
//! 7. Any other forward with `m <= 16`: [`MatmulRoute::SharedGemv`] (lanes'
//!    partial sums through shared memory; lavapipe takes it).
//! 8. Input gradient with `m <= 16`: [`MatmulRoute::TransposedGemv`].
//!
//! A split-f16 call for which no matmul kernel of the device takes f16
//! operands falls back to the route of the same call with
//! `f32_tensor_cores: F32TensorCores::Never`.
//!
//! # No process-wide state
//!
//! Nothing here is mutable: the route and every launch shape in it follow
//! from the arguments. The backend op ([`crate::TernaryBackend::ternary_matmul`]
//! on `CubeBackend`) routes with [`MatmulPolicy::default()`]. Tests and
//! benchmarks that need another kernel or launch shape build the
//! [`MatmulRoute`] they want (from [`route`] with another policy, or from the
//! launch rules [`tiled_block`], [`tensor_core_gemv_blocks`] and
//! [`plane_gemv_launches`] with explicit tuning values) and pass it to the
//! doc-hidden `ops::matmul::launch::run`; `launch::product` is the op with
//! an explicit policy. The one device setting left is the SM-count hint
//! ([`crate::set_sm_count_hint`]) for runtimes that do not report it.

use burn::tensor::DType;

use crate::sm_count::{largest_block_covering_sms, planes_for_one_wave};

/// Largest number of input rows `m` served by the GEMV kernels; larger
/// batches use the tiled kernel.
pub const GEMV_MAX_M: usize = 16;

/// Smallest `m` for which half-precision activations go through the
/// unpack + tensor-core matmul route (the transient dense weight costs one
/// `rows x cols` write, amortized over `m` rows), and f32 activations may
/// take the split-f16 route.
pub const TENSOR_CORE_MIN_M: usize = 64;

/// Largest `m` served by one launch block of the tensor-core GEMV (three B
/// tiles of eight limb columns).
pub const MMA_GEMV_MAX_M: usize = 8;

/// Largest `m` served by the plane-reduction GEMV; `m` up to
/// [`GEMV_MAX_M`] keeps the shared-memory GEMV.
pub const GEMV_PLANE_MAX_M: usize = 8;

/// Activation rows per launch of the plane GEMV: more would not fit the
/// per-lane registers (`16·wpl·m` activations + `rb·m` sums) without spilling.
const GEMV_PLANE_GROUP: usize = 4;

/// Trits per packed word (mirrors [`crate::packing::TRITS_PER_WORD`]).
const TRITS: usize = 16;

/// The tiled kernel's cube is `TILED_THREADS x TILED_THREADS` units, each
/// owning a `block x block` block of outputs.
pub(crate) const TILED_THREADS: usize = 16;

/// Packed words per row in one chunk of the tensor-core GEMV's reduction.
pub(crate) const CHUNK_WORDS: usize = 16;
/// Columns of the tensor-core GEMV's reduction per chunk (one shared
/// exponent per chunk).
pub const CHUNK_COLS: usize = CHUNK_WORDS * TRITS;
/// B-fragment registers per lane per chunk and B tile of the tensor-core
/// GEMV: 4 word groups × 2 `mma` steps × 2 registers.
pub(crate) const REGS: usize = 16;
/// Lanes of a plane; the `mma` fragment layout assumes 32.
pub(crate) const LANES: usize = 32;
/// Limb columns per B tile (`n` of `m16n8k32`).
pub(crate) const TILE_N: usize = 8;
/// Largest shared-memory footprint of the fused tensor-core GEMV, in 4-byte
/// words: CUDA's 48 KiB of static shared memory per cube.
const FUSED_MAX_WORDS: usize = 12 * 1024;

/// When `f32` activations with `m >= TENSOR_CORE_MIN_M` take the split-f16
/// tensor-core route instead of the FMA kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum F32TensorCores {
    /// Where the device has f16 × f16 → f32 cooperative matrices (CUDA
    /// sm_70+, WGPU adapters with cooperative-matrix support) and the
    /// product is large enough to pay for the route's four launches: for
    /// the forward pass a weight of at least 2²² entries (2048²) or
    /// `m · k · n ≥ 2³⁰`, for the input gradient at least 2²⁰ entries
    /// (1024²) or `m · k · n ≥ 2²⁹` (the crossovers measured on an H200).
    /// The default.
    #[default]
    Auto,
    /// On every device (Burn's matmul picks a kernel without matrix
    /// instructions where there are none); used by tests on lavapipe.
    Always,
    /// Never: the FMA kernels; used by benchmarks to time both.
    Never,
}

/// The choices [`route`] leaves to its caller; the default is what the
/// backend ops use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulPolicy {
    /// Whether forwards with `m <= 16` may take the int8 tensor-core GEMV
    /// where the device has it (else the plane or shared-memory GEMV, as on
    /// WGPU). On by default.
    pub tensor_core_gemv: bool,
    /// When f32 activations take the split-f16 tensor-core route.
    pub f32_tensor_cores: F32TensorCores,
}

impl Default for MatmulPolicy {
    fn default() -> Self {
        Self {
            tensor_core_gemv: true,
            f32_tensor_cores: F32TensorCores::Auto,
        }
    }
}

/// What a device offers the route and its launch rules (see
/// `launch::device_caps` for how it is read from a CubeCL client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceCaps {
    /// int8 `m16n8k32` manual MMA with 32-lane planes (CUDA, sm_80+).
    pub int8_mma: bool,
    /// f16 × f16 → f32 `16x16x16` cooperative matrices.
    pub f16_mma: bool,
    /// Plane (warp/subgroup) reductions with one fixed plane size of at
    /// least 4.
    pub plane_ops: bool,
    /// Lanes per plane (the largest the device reports, at least 1).
    pub plane_size: usize,
    /// Streaming multiprocessors (0: unknown).
    pub sm_count: usize,
    /// Shared memory per cube, bytes.
    pub max_shared_memory: usize,
}

/// The kernel a ternary matmul runs, with its launch shape. The direction
/// (forward or input gradient) is the `input_grad` argument of [`route`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MatmulRoute {
    /// An empty `[m, n]` output (no element to compute).
    Empty,
    /// An all-zero output (an input gradient through a weight of no rows).
    Zeros,
    /// f16/bf16: the trits unpacked to a dense weight (scales folded in),
    /// then Burn's matmul (autotuned where `tuned`, else its default kernel).
    UnpackTensorCore {
        /// Burn's autotuned matmul (what the ops use).
        tuned: bool,
    },
    /// f32 through two f16 limbs per activation on tensor cores.
    SplitF16Gemm {
        /// Burn's autotuned matmul (what the ops use).
        tuned: bool,
    },
    /// The shared-memory tiled FMA kernel (both directions).
    Tiled {
        /// Register block per unit: 1, 2 or 4 (16-, 32- or 64-square output tiles).
        block: usize,
    },
    /// The int8 tensor-core GEMV (forward), one launch block per entry, each
    /// on its own activation rows.
    TensorCoreGemv(Vec<MmaGemvShape>),
    /// The plane-reduction FMA GEMV (forward), one launch per entry.
    PlaneGemv(Vec<PlaneGemvShape>),
    /// The shared-memory FMA GEMV (forward).
    SharedGemv {
        /// Lanes per output row (a power of two up to 32).
        lanes: usize,
        /// Output rows per cube (`256 / lanes`).
        rows_per_cube: usize,
    },
    /// The GEMV-transposed kernel (input gradient, `m <= 16`).
    TransposedGemv {
        /// Packed word columns per cube (a power of two up to 32).
        word_cols: usize,
        /// Weight rows split over the cube's second dimension.
        row_split: usize,
    },
}

/// Launch shape of one block of the tensor-core GEMV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MmaGemvShape {
    /// First activation row of this block.
    pub first_row: usize,
    /// Activation rows of this block (`1..=MMA_GEMV_MAX_M`).
    pub m: usize,
    /// One launch (limbs computed in the kernel, in shared memory) or two
    /// (a prepass writes them to global memory first).
    pub fused: bool,
    /// Row tiles of 16 rows per cube (1 to 4).
    pub row_tiles: usize,
    /// Chunks each plane keeps in flight (1 to 3).
    pub depth: usize,
    /// Planes per cube.
    pub planes: usize,
    /// Row blocks of `16 · row_tiles` rows each cube streams in turn.
    pub groups: usize,
}

/// Launch shape of one launch of the plane GEMV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlaneGemvShape {
    /// First activation row of this launch.
    pub first_row: usize,
    /// Activation rows of this launch (`1..=GEMV_PLANE_GROUP` by default).
    pub m: usize,
    /// Packed words per lane per chunk (1, 2 or 4).
    pub wpl: usize,
    /// Output rows per cube.
    pub rb: usize,
    /// Planes per cube.
    pub planes: usize,
}

/// Explicit values for the tensor-core GEMV's launch rule
/// ([`tensor_core_gemv_blocks`]); `None` = the built-in choice. For
/// benchmarks and checks of launch shapes other than the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MmaGemvTune {
    /// Allow the one-launch (fused) form where its limbs fit; `false`
    /// always runs the prepass.
    pub fused: bool,
    /// The most shared memory, bytes, the fused form may use (default
    /// 48 KiB; always capped at the device's maximum per cube).
    pub fused_shared_bytes: Option<usize>,
    /// Row tiles per cube (1 to 4).
    pub row_tiles: Option<usize>,
    /// Planes the launch aims for over the whole grid.
    pub target_planes: Option<usize>,
    /// Chunks in flight per plane (1 to 3).
    pub depth: Option<usize>,
    /// Most planes per cube (a power of two, 1 to 16).
    pub max_planes: Option<usize>,
    /// Row groups per cube (1 to 8; fewer where shared memory is short).
    pub groups: Option<usize>,
}

impl Default for MmaGemvTune {
    fn default() -> Self {
        Self {
            fused: true,
            fused_shared_bytes: None,
            row_tiles: None,
            target_planes: None,
            depth: None,
            max_planes: None,
            groups: None,
        }
    }
}

/// Explicit values for the plane GEMV's launch rule
/// ([`plane_gemv_launches`]); `None` = the built-in choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PlaneGemvTune {
    /// Packed words per lane per chunk (1, 2 or 4).
    pub wpl: Option<usize>,
    /// Output rows per cube (1 to 32).
    pub rb: Option<usize>,
    /// Activation rows per launch (1 to 8).
    pub group: Option<usize>,
    /// Most planes per cube.
    pub max_planes: Option<usize>,
}

/// The kernel and launch shape for `m` rows of `dtype` activations against a
/// `rows x cols` ternary weight: the forward `x · Wᵀ` (`x: [m, cols]`), or
/// with `input_grad` the product `grad_y · W` (`grad_y: [m, rows]`). See the
/// module docs for the list.
pub fn route(
    dtype: DType,
    m: usize,
    rows: usize,
    cols: usize,
    input_grad: bool,
    caps: DeviceCaps,
    policy: MatmulPolicy,
) -> MatmulRoute {
    let (inner, outer) = if input_grad {
        (rows, cols)
    } else {
        (cols, rows)
    };
    if rows > 0 && cols > 0 {
        if uses_tensor_cores(dtype, m) {
            return MatmulRoute::UnpackTensorCore { tuned: true };
        }
        if split_f16_applies(dtype, m, inner, outer, input_grad, caps, policy) {
            return MatmulRoute::SplitF16Gemm { tuned: true };
        }
    }
    if input_grad {
        if m == 0 || cols == 0 {
            return MatmulRoute::Empty;
        }
        if rows == 0 {
            return MatmulRoute::Zeros;
        }
        if m > GEMV_MAX_M {
            return MatmulRoute::Tiled {
                block: tiled_block(caps, m, cols),
            };
        }
        let words = cols.div_ceil(TRITS);
        let word_cols = pow2_at_most(words, 32);
        let row_split = (256 / word_cols).min(pow2_at_most(rows, 16));
        return MatmulRoute::TransposedGemv {
            word_cols,
            row_split,
        };
    }
    if m == 0 || rows == 0 {
        return MatmulRoute::Empty;
    }
    if m > GEMV_MAX_M {
        return MatmulRoute::Tiled {
            block: tiled_block(caps, m, rows),
        };
    }
    if policy.tensor_core_gemv && caps.int8_mma {
        return MatmulRoute::TensorCoreGemv(tensor_core_gemv_blocks(
            m,
            rows,
            cols,
            caps,
            MmaGemvTune::default(),
        ));
    }
    if m <= GEMV_PLANE_MAX_M && caps.plane_ops {
        return MatmulRoute::PlaneGemv(plane_gemv_launches(
            m,
            rows,
            cols,
            caps,
            PlaneGemvTune::default(),
        ));
    }
    let lanes = pow2_at_most(cols.div_ceil(TRITS), 32);
    MatmulRoute::SharedGemv {
        lanes,
        rows_per_cube: 256 / lanes,
    }
}

/// Whether `dtype` activations with `m` rows take the half-precision
/// tensor-core route.
pub fn uses_tensor_cores(dtype: DType, m: usize) -> bool {
    matches!(dtype, DType::F16 | DType::BF16) && m >= TENSOR_CORE_MIN_M
}

/// Where [`F32TensorCores::Auto`] takes the split route, `[forward, input
/// grad]`: from this many weight entries (`inner · outer`), whatever `m`...
const SPLIT_MIN_WEIGHT: [u64; 2] = [1 << 22, 1 << 20];
/// ... or from this many multiply-adds (`m · inner · outer`). Below both the
/// route's four launches (split, unpack, matmul, rescale; ≈ 0.07 ms a call
/// on the H200) cost more than the FMA kernel's one.
const SPLIT_MIN_MACS: [u64; 2] = [1 << 30, 1 << 29];

/// Whether `m` rows of `dtype` with a reduction of `inner` and `outer`
/// outputs per row (the input gradient's if `input_grad`) take the
/// split-f16 route.
pub fn split_f16_applies(
    dtype: DType,
    m: usize,
    inner: usize,
    outer: usize,
    input_grad: bool,
    caps: DeviceCaps,
    policy: MatmulPolicy,
) -> bool {
    if dtype != DType::F32 || m < TENSOR_CORE_MIN_M {
        return false;
    }
    match policy.f32_tensor_cores {
        F32TensorCores::Always => true,
        F32TensorCores::Never => false,
        F32TensorCores::Auto => {
            let weight = inner as u64 * outer as u64;
            let direction = input_grad as usize;
            (weight >= SPLIT_MIN_WEIGHT[direction]
                || m as u64 * weight >= SPLIT_MIN_MACS[direction])
                && caps.f16_mma
        }
    }
}

/// The tiled kernel's register block for an `m x n` output: the largest of
/// 4, 2, 1 whose grid covers more than half the device's SMs (1 if none
/// does; 4 where the SM count is unknown), the rule the conv kernels use too.
pub fn tiled_block(caps: DeviceCaps, m: usize, n: usize) -> usize {
    largest_block_covering_sms(caps.sm_count, &[4, 2], 1, |block| {
        let tile = TILED_THREADS * block;
        m.div_ceil(tile) * n.div_ceil(tile)
    })
}

/// Smallest power of two `>= n`, clamped to `1..=max`.
fn pow2_at_most(n: usize, max: usize) -> usize {
    n.max(1).next_power_of_two().min(max)
}

/// Number of `n = 8` B tiles of the tensor-core GEMV for `m` rows (three
/// limb columns per row).
pub(crate) fn b_tiles(m: usize) -> usize {
    (3 * m).div_ceil(TILE_N)
}

/// Shared-memory words of the fused tensor-core GEMV's limbs for `chunks`
/// chunks: B registers, limb sums and chunk factors.
pub(crate) fn fused_words(m: usize, chunks: usize) -> usize {
    chunks * (REGS * 3 * m * 4 + 3 * m + 1)
}

/// Shared-memory words of the tensor-core GEMV's main kernel: the fused
/// form's limbs (none after the prepass) and the planes' partial sums, which
/// reuse the limbs' words with one row block and follow them, one set per
/// block, with row groups.
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

/// The tensor-core GEMV's launch blocks for `m <= GEMV_MAX_M` activation
/// rows: one for `m <= MMA_GEMV_MAX_M`, else row blocks of at most
/// [`MMA_GEMV_MAX_M`] rows of balanced sizes (each streams the whole
/// weight), each with its launch shape ([`tensor_core_gemv_shape`]).
pub fn tensor_core_gemv_blocks(
    m: usize,
    rows: usize,
    cols: usize,
    caps: DeviceCaps,
    tune: MmaGemvTune,
) -> Vec<MmaGemvShape> {
    let blocks = m.div_ceil(MMA_GEMV_MAX_M).max(1);
    let mut first = 0;
    (0..blocks)
        .map(|block| {
            let end = first + (m - first).div_ceil(blocks - block);
            let shape = tensor_core_gemv_shape(first, end - first, rows, cols, caps, tune);
            first = end;
            shape
        })
        .collect()
}

/// The tensor-core GEMV's launch shape for `m <= MMA_GEMV_MAX_M` rows (from
/// `first_row`) against a `rows x cols` weight.
///
/// Two row tiles per cube share the B fragments; two chunks in flight per
/// plane (one left the warps waiting on memory, three cost occupancy);
/// planes enough to cover memory latency, about 8192 over the grid, at most
/// 8 per cube (16 where cubes ≤ SMs) and never more than the chunks (H200
/// sweeps). Where four row tiles per cube give one wave of cubes covering
/// more than half the SMs, the one-launch form takes them, with one chunk in
/// flight (8192 × 8192, m = 1: 13.0 → 11.4 µs). Where 64-row cubes are more
/// than one wave, two row groups of 32 rows per cube halve the prologue
/// work (4096 × 14336, m = 1: 14.0 → 11.6 µs). Where every cube has an SM
/// to itself, the one-launch form takes up to 16 planes (14336 × 4096,
/// m = 1: 13.1 → 11.8 µs).
pub fn tensor_core_gemv_shape(
    first_row: usize,
    m: usize,
    rows: usize,
    cols: usize,
    caps: DeviceCaps,
    tune: MmaGemvTune,
) -> MmaGemvShape {
    let chunks = cols.div_ceil(CHUNK_COLS);
    let max_shared_words = caps.max_shared_memory / 4;
    let fused_limit_words = tune
        .fused_shared_bytes
        .map_or(FUSED_MAX_WORDS, |bytes| bytes / 4)
        .min(max_shared_words);
    let fused = tune.fused && fused_words(m, chunks) <= fused_limit_words;
    let sms = caps.sm_count;
    let cubes_of_64_rows = rows.div_ceil(64);
    let few_64_row_cubes = 2 * cubes_of_64_rows <= sms;
    let one_wave_at_4 = !few_64_row_cubes && cubes_of_64_rows <= sms;
    let row_tiles = match tune.row_tiles {
        None if fused && one_wave_at_4 => 4,
        None => 2,
        Some(n) => n.clamp(1, 4),
    };
    let depth = match tune.depth {
        None if row_tiles > 2 => 1,
        None => 2,
        Some(n) => n.clamp(1, 3),
    };
    let target = tune.target_planes.unwrap_or(8192).max(1);
    let mut groups = match tune.groups {
        None if fused && row_tiles == 2 && !few_64_row_cubes => 2,
        None => 1,
        Some(n) => n.clamp(1, 8),
    };
    let cubes = rows.div_ceil(16 * row_tiles * groups);
    let wanted = target.div_ceil(cubes.max(1)).next_power_of_two();
    let max_planes = match tune.max_planes {
        None if fused && cubes <= sms => 16,
        None => 8,
        Some(n) => n.next_power_of_two().clamp(1, 16),
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
    MmaGemvShape {
        first_row,
        m,
        fused,
        row_tiles,
        depth,
        planes,
        groups,
    }
}

/// The plane GEMV's launches for `m <= GEMV_PLANE_MAX_M` activation rows:
/// groups of up to four rows, each with `wpl` words per lane and `rb` rows
/// per cube by its size (registers per lane: `16 · wpl · group` activations
/// and `rb · group` sums). One activation row: a plane per chunk, up to 256
/// lanes; several: about one wave of planes (`planes_for_one_wave`; 4 per
/// cube where the SM count is unknown), the fastest of 2, 4 and 8 planes on
/// the H200.
pub fn plane_gemv_launches(
    m: usize,
    rows: usize,
    cols: usize,
    caps: DeviceCaps,
    tune: PlaneGemvTune,
) -> Vec<PlaneGemvShape> {
    let plane_dim = caps.plane_size.max(1);
    let words = cols.div_ceil(TRITS);
    let group_max = tune.group.unwrap_or(GEMV_PLANE_GROUP).max(1);
    let mut launches = Vec::new();
    let mut first_row = 0;
    while first_row < m {
        let group = (m - first_row).min(group_max);
        let (wpl, rb) = match group {
            1 => (4, 16),
            2 => (2, 16),
            _ => (1, 8),
        };
        let wpl = tune.wpl.unwrap_or(wpl);
        let rb = tune.rb.unwrap_or(rb);
        let chunks = words.div_ceil(plane_dim * wpl);
        let cubes = rows.div_ceil(rb);
        let planes = if let Some(max) = tune.max_planes {
            chunks.clamp(1, max.max(1))
        } else if group > 1 {
            planes_for_one_wave(caps.sm_count, cubes, chunks, plane_dim, 4)
        } else {
            chunks.clamp(1, (256 / plane_dim).max(1))
        };
        launches.push(PlaneGemvShape {
            first_row,
            m: group,
            wpl,
            rb,
            planes,
        });
        first_row += group;
    }
    launches
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An H200 through CUDA: int8 and f16 `mma`, 32-lane planes, 132 SMs,
    /// 227 KiB of shared memory per cube.
    const H200: DeviceCaps = DeviceCaps {
        int8_mma: true,
        f16_mma: true,
        plane_ops: true,
        plane_size: 32,
        sm_count: 132,
        max_shared_memory: 232_448,
    };
    /// lavapipe: no matrix instructions, no fixed plane size, no SM count.
    const LAVAPIPE: DeviceCaps = DeviceCaps {
        int8_mma: false,
        f16_mma: false,
        plane_ops: false,
        plane_size: 8,
        sm_count: 0,
        max_shared_memory: 32_768,
    };
    /// A GPU through WGPU/Vulkan: 32-lane subgroups, no matrix
    /// instructions, no SM count.
    const VULKAN: DeviceCaps = DeviceCaps {
        int8_mma: false,
        f16_mma: false,
        plane_ops: true,
        plane_size: 32,
        sm_count: 0,
        max_shared_memory: 49_152,
    };

    fn fwd(dtype: DType, m: usize, rows: usize, cols: usize, caps: DeviceCaps) -> MatmulRoute {
        route(dtype, m, rows, cols, false, caps, MatmulPolicy::default())
    }

    fn grad(dtype: DType, m: usize, rows: usize, cols: usize, caps: DeviceCaps) -> MatmulRoute {
        route(dtype, m, rows, cols, true, caps, MatmulPolicy::default())
    }

    fn mma(first_row: usize, m: usize, fused: bool, shape: [usize; 4]) -> MmaGemvShape {
        let [row_tiles, depth, planes, groups] = shape;
        MmaGemvShape {
            first_row,
            m,
            fused,
            row_tiles,
            depth,
            planes,
            groups,
        }
    }

    #[test]
    fn decode_gemv_on_the_h200_is_the_fused_tensor_core_gemv() {
        use DType::{F16, F32};
        // 8192 × 8192, m = 1: four row tiles (128 cubes, one wave), one
        // chunk in flight, 16 planes (every cube has an SM to itself).
        assert_eq!(
            fwd(F32, 1, 8192, 8192, H200),
            MatmulRoute::TensorCoreGemv(vec![mma(0, 1, true, [4, 1, 16, 1])])
        );
        // 14336 × 4096 (rows × cols), m = 1: 16 planes, one block.
        assert_eq!(
            fwd(F32, 1, 4096, 14336, H200),
            MatmulRoute::TensorCoreGemv(vec![mma(0, 1, true, [2, 2, 16, 1])])
        );
        // 4096 × 14336 (14336 rows): two row groups of 32 rows, 8 planes
        // (224 cubes, more than the SMs).
        assert_eq!(
            fwd(F16, 1, 14336, 4096, H200),
            MatmulRoute::TensorCoreGemv(vec![mma(0, 1, true, [2, 2, 8, 2])])
        );
        // m = 8 at 8192 columns: the limbs exceed 48 KiB, two launches.
        assert_eq!(
            fwd(F32, 8, 8192, 8192, H200),
            MatmulRoute::TensorCoreGemv(vec![mma(0, 8, false, [2, 2, 8, 1])])
        );
    }

    #[test]
    fn nine_to_sixteen_rows_take_two_balanced_tensor_core_blocks() {
        let MatmulRoute::TensorCoreGemv(blocks) = fwd(DType::F32, 13, 512, 300, H200) else {
            panic!("m = 13 on the H200 is the tensor-core GEMV");
        };
        let rows: Vec<_> = blocks.iter().map(|b| (b.first_row, b.m)).collect();
        assert_eq!(rows, [(0, 7), (7, 6)]);
        let MatmulRoute::TensorCoreGemv(blocks) = fwd(DType::F32, 16, 512, 300, H200) else {
            panic!("m = 16 on the H200 is the tensor-core GEMV");
        };
        assert_eq!(blocks.iter().map(|b| b.m).collect::<Vec<_>>(), [8, 8]);
        assert!(matches!(
            fwd(DType::F32, 17, 512, 300, H200),
            MatmulRoute::Tiled { .. }
        ));
    }

    #[test]
    fn the_policy_turns_the_tensor_core_gemv_off() {
        let policy = MatmulPolicy {
            tensor_core_gemv: false,
            ..MatmulPolicy::default()
        };
        let route = route(DType::F32, 2, 8192, 8192, false, H200, policy);
        let MatmulRoute::PlaneGemv(launches) = route else {
            panic!("plane GEMV expected, got {route:?}");
        };
        // 512 cubes of 16 rows, 8 chunks of 64 words: 4 planes per cube.
        assert_eq!(
            launches,
            [PlaneGemvShape {
                first_row: 0,
                m: 2,
                wpl: 2,
                rb: 16,
                planes: 4
            }]
        );
        // Above 8 rows the shared-memory GEMV.
        assert_eq!(
            super::route(DType::F32, 12, 100, 40, false, H200, policy),
            MatmulRoute::SharedGemv {
                lanes: 4,
                rows_per_cube: 64
            }
        );
    }

    #[test]
    fn plane_gemv_runs_in_groups_of_four_rows() {
        let MatmulRoute::PlaneGemv(launches) = fwd(DType::F32, 7, 4096, 4096, VULKAN) else {
            panic!("plane GEMV on Vulkan with subgroups");
        };
        let groups: Vec<_> = launches
            .iter()
            .map(|l| (l.first_row, l.m, l.wpl, l.rb, l.planes))
            .collect();
        // Unknown SM count: 4 planes per cube, at most the chunks (8).
        assert_eq!(groups, [(0, 4, 1, 8, 4), (4, 3, 1, 8, 4)]);
        let MatmulRoute::PlaneGemv(launches) = fwd(DType::F32, 1, 4096, 4096, VULKAN) else {
            panic!("plane GEMV on Vulkan with subgroups");
        };
        // One row: a plane per chunk (2 chunks of 128 words).
        assert_eq!(
            (launches[0].wpl, launches[0].rb, launches[0].planes),
            (4, 16, 2)
        );
    }

    #[test]
    fn lavapipe_takes_the_shared_memory_gemv_and_the_tiled_kernel() {
        use DType::F32;
        assert_eq!(
            fwd(F32, 1, 5, 17, LAVAPIPE),
            MatmulRoute::SharedGemv {
                lanes: 2,
                rows_per_cube: 128
            }
        );
        assert_eq!(
            fwd(F32, 16, 70, 1000, LAVAPIPE),
            MatmulRoute::SharedGemv {
                lanes: 32,
                rows_per_cube: 8
            }
        );
        // No SM count: the largest register block.
        assert_eq!(
            fwd(F32, 17, 5, 17, LAVAPIPE),
            MatmulRoute::Tiled { block: 4 }
        );
        assert_eq!(
            grad(F32, 3, 5, 40, LAVAPIPE),
            MatmulRoute::TransposedGemv {
                word_cols: 4,
                row_split: 8
            }
        );
        assert_eq!(
            grad(F32, 300, 5, 40, LAVAPIPE),
            MatmulRoute::Tiled { block: 4 }
        );
    }

    #[test]
    fn the_tiled_block_covers_more_than_half_the_sms() {
        // 8192 × 4096 output: 2048 cubes of 64² cover 132 SMs.
        assert_eq!(tiled_block(H200, 8192, 4096), 4);
        // 64 × 1024: 16 cubes at block 4, 64 at block 2 (< 66), 256 at 1.
        assert_eq!(tiled_block(H200, 64, 1024), 1);
        // 128 × 2048: 64 cubes at block 4, 256 at block 2.
        assert_eq!(tiled_block(H200, 128, 2048), 2);
        assert_eq!(
            fwd(DType::F32, 64, 1024, 64, H200),
            MatmulRoute::Tiled { block: 1 }
        );
    }

    #[test]
    fn half_precision_from_64_rows_takes_the_unpack_route_everywhere() {
        for dtype in [DType::F16, DType::BF16] {
            for caps in [H200, LAVAPIPE] {
                assert_eq!(
                    fwd(dtype, 64, 10, 10, caps),
                    MatmulRoute::UnpackTensorCore { tuned: true }
                );
                assert_eq!(
                    grad(dtype, 100, 10, 10, caps),
                    MatmulRoute::UnpackTensorCore { tuned: true }
                );
            }
            assert!(matches!(
                fwd(dtype, 63, 10, 10, H200),
                MatmulRoute::Tiled { .. }
            ));
        }
        // No weight: nothing to unpack.
        assert_eq!(fwd(DType::F16, 64, 0, 10, H200), MatmulRoute::Empty);
        assert_eq!(grad(DType::F16, 64, 0, 10, H200), MatmulRoute::Zeros);
    }

    #[test]
    fn f32_takes_the_split_route_on_large_products_with_f16_mma() {
        use DType::F32;
        let split = MatmulRoute::SplitF16Gemm { tuned: true };
        // Forward: a 2048² weight, whatever m ≥ 64.
        assert_eq!(fwd(F32, 64, 2048, 2048, H200), split);
        assert!(matches!(
            fwd(F32, 64, 2048, 2047, H200),
            MatmulRoute::Tiled { .. }
        ));
        // ... or 2³⁰ multiply-adds.
        assert_eq!(fwd(F32, 1024, 1024, 1024, H200), split);
        // Input gradient: a 1024² weight or 2²⁹ multiply-adds.
        assert_eq!(grad(F32, 64, 1024, 1024, H200), split);
        assert_eq!(grad(F32, 512, 1024, 1024, H200), split);
        assert!(matches!(
            grad(F32, 64, 1024, 1023, H200),
            MatmulRoute::Tiled { .. }
        ));
        // Never below 64 rows, never without f16 mma under `Auto`.
        assert!(matches!(
            fwd(F32, 63, 4096, 4096, H200),
            MatmulRoute::Tiled { .. }
        ));
        assert!(matches!(
            fwd(F32, 64, 4096, 4096, LAVAPIPE),
            MatmulRoute::Tiled { .. }
        ));
        // `Always` and `Never`.
        let always = MatmulPolicy {
            f32_tensor_cores: F32TensorCores::Always,
            ..MatmulPolicy::default()
        };
        let never = MatmulPolicy {
            f32_tensor_cores: F32TensorCores::Never,
            ..MatmulPolicy::default()
        };
        assert_eq!(route(F32, 64, 3, 5, false, LAVAPIPE, always), split);
        assert!(matches!(
            route(F32, 64, 4096, 4096, false, H200, never),
            MatmulRoute::Tiled { .. }
        ));
    }

    #[test]
    fn empty_products() {
        use DType::F32;
        assert_eq!(fwd(F32, 0, 10, 10, H200), MatmulRoute::Empty);
        assert_eq!(fwd(F32, 3, 0, 10, H200), MatmulRoute::Empty);
        assert_eq!(grad(F32, 0, 10, 10, H200), MatmulRoute::Empty);
        assert_eq!(grad(F32, 3, 10, 0, H200), MatmulRoute::Empty);
        assert_eq!(grad(F32, 3, 0, 10, H200), MatmulRoute::Zeros);
    }

    #[test]
    fn explicit_tuning_values_reach_every_tensor_core_gemv_shape() {
        let two_launch = MmaGemvTune {
            fused: false,
            ..MmaGemvTune::default()
        };
        // The prepass form never takes row groups or 16 planes.
        assert_eq!(
            tensor_core_gemv_shape(0, 1, 14336, 4096, H200, two_launch),
            mma(0, 1, false, [2, 2, 8, 1])
        );
        let groups = MmaGemvTune {
            groups: Some(4),
            ..MmaGemvTune::default()
        };
        assert_eq!(
            tensor_core_gemv_shape(0, 1, 4096, 4096, H200, groups).groups,
            4
        );
        // Row groups shrink where their partial sums do not fit.
        assert_eq!(
            tensor_core_gemv_shape(0, 8, 4096, 4096, LAVAPIPE, groups).groups,
            1
        );
    }
}
