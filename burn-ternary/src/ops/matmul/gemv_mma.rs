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
//! Trit decode. A trit with code `c` (`0b01` = +1, `0b10` = -1, `0b00` = 0)
//! becomes `u = 1 + (c & 1) - (c >> 1) ∈ {0, 1, 2}`, computed for all 16 trits
//! of a word in three integer operations without carries between fields. The
//! `mma` then computes `Σ u·l = Σ t·l + Σ l`; the accumulator starts at
//! `-Σ l` (the chunk's limb sums, from the prepass), so the result is exact.
//! Four trits at positions `j, j + 4, j + 8, j + 12` of a word sit in the four
//! bytes of `(u >> 2j) & 0x03030303`: one shift and one mask per four trits.
//! The order in which the reduction visits the columns is free as long as the
//! A and B operands agree, so the prepass writes the limbs in exactly the
//! order the trits decode in (see [`limb_column`]).
//!
//! Launches: a prepass ([`limb_kernel`], one plane per chunk and B tile)
//! writes the limbs in the B-fragment register layout, the limb sums and the
//! chunk exponents; the main kernel ([`gemv_mma_kernel`]) streams the packed
//! trits. A cube owns `16 · row_tiles` output rows; its planes split the
//! chunks and add their partial sums through shared memory at the end.

use burn::tensor::{DType, Shape};
use burn_cubecl::{ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor, CubeRuntime};
use cubecl::{
    cmma::MmaDefinition,
    features::MmaConfig,
    ir::{ElemType, IntKind},
    prelude::*,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Largest `m` served by the tensor-core GEMV (three B tiles of eight limb
/// columns).
pub const MMA_GEMV_MAX_M: usize = 8;

/// Packed words per row in one chunk of the reduction.
const CHUNK_WORDS: usize = 16;
/// Columns of the reduction per chunk (one shared exponent per chunk).
pub const CHUNK_COLS: usize = CHUNK_WORDS * 16;
/// B-fragment registers per lane per chunk and B tile: 4 word groups ×
/// 2 `mma` steps × 2 registers.
const REGS: usize = 16;
/// Lanes of a plane; the `mma` fragment layout assumes 32.
const LANES: usize = 32;
/// Limb columns per B tile (`n` of `m16n8k32`).
const TILE_N: usize = 8;

static ENABLED: AtomicBool = AtomicBool::new(true);
static ROW_TILES: AtomicUsize = AtomicUsize::new(0);
static TARGET_PLANES: AtomicUsize = AtomicUsize::new(0);

/// Benchmark knob: row tiles per cube (1 or 2) and the number of planes the
/// launch aims for (0 = the built-in choice for either).
#[doc(hidden)]
pub fn tune_tensor_core_gemv(row_tiles: usize, target_planes: usize) {
    ROW_TILES.store(row_tiles, Ordering::Relaxed);
    TARGET_PLANES.store(target_planes, Ordering::Relaxed);
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
fn b_tiles(m: usize) -> usize {
    (3 * m).div_ceil(TILE_N)
}

/// The activation column (within its chunk) held by byte `i` of B register
/// `(q, s, b)` of the lanes with `tig` (`lane % 4`) — and, by construction,
/// the column whose trit the A operand decodes into the same `mma` slot:
/// word `4q + tig` of the chunk, trit `4i + 2s + b` of that word.
#[cube]
fn limb_column(q: usize, s: usize, b: usize, tig: usize, i: usize) -> usize {
    16 * (4 * q + tig) + 4 * i + 2 * s + b
}

/// Limb `l` (0, 1 or 2) of the balanced base-256 split of `q`
/// (`|q| ≤ 2^22`, so every limb lies in `[-128, 127]`).
#[cube]
fn limb_of(q: i32, l: u32) -> i32 {
    let l0 = ((q + 128i32) & 255i32) - 128i32;
    let q1 = (q - l0) / 256i32;
    let l1 = ((q1 + 128i32) & 255i32) - 128i32;
    let l2 = (q1 - l1) / 256i32;
    select(l == 0u32, l0, select(l == 1u32, l1, l2))
}

/// `1 + (c & 1) - (c >> 1)` for each of the 16 two-bit codes of `word`
/// (`0`, `1`, `2` for trits -1, 0, +1), no carries between fields.
#[cube]
fn offset_codes(word: u32) -> u32 {
    (word & 0x5555_5555u32) + 0x5555_5555u32 - ((word >> 1u32) & 0x5555_5555u32)
}

/// Prepass: one plane per (chunk, B tile). Writes the chunk's limbs in the
/// B-fragment layout (`limbs[((tile·chunks + chunk)·16 + reg)·32 + lane]`,
/// so the main kernel's loads are coalesced), the sum of each limb column
/// over the chunk and the chunk's dequantization factor `2^(E - 22)`.
#[cube(launch)]
fn limb_kernel<F: Float>(
    x: &Tensor<F>,
    limbs: &mut Tensor<u32>,
    limb_sums: &mut Tensor<i32>,
    chunk_dequant: &mut Tensor<f32>,
    #[comptime] m: usize,
    #[define(F)] _dtype: StorageType,
) {
    let lane = UNIT_POS_X as usize;
    let chunk = CUBE_POS_X as usize;
    let tile = CUBE_POS_Y as usize;
    let chunks = CUBE_COUNT_X as usize;
    let cols = x.shape(1);
    let x_stride = x.stride(0);
    let base = chunk * CHUNK_COLS;

    // The chunk's max |x| over all rows (every tile computes the same value).
    let mut amax = 0.0f32;
    #[unroll]
    for r in 0..m {
        #[unroll]
        for j in 0..8usize {
            let col = base + lane * 8 + j;
            if col < cols {
                let v = f32::cast_from(x[r * x_stride + col]);
                let a = select(v < 0.0f32, -v, v);
                amax = select(a > amax, a, amax);
            }
        }
    }
    let amax = plane_max(amax);
    // Biased exponent e of max |x| (max < 2^(e - 126)); clamped so that both
    // factors below are normal floats (a chunk below 2^-105 rounds to zero).
    let e = (u32::reinterpret(amax) >> 23u32) & 255u32;
    let e = select(e < 22u32, 22u32, e);
    let quant = f32::reinterpret((275u32 - e) << 23u32);
    let dequant = f32::reinterpret((e - 21u32) << 23u32);

    let g = lane / 4;
    let tig = lane % 4;
    let n = tile * TILE_N + g;
    let active = n < 3 * m;
    let r = n / 3;
    let l = (n % 3) as u32;
    let mut sum = 0i32;
    #[unroll]
    for q in 0..4usize {
        #[unroll]
        for s in 0..2usize {
            #[unroll]
            for b in 0..2usize {
                let mut reg = 0u32;
                if active {
                    #[unroll]
                    for i in 0..4usize {
                        let col = base + limb_column(q, s, b, tig, i);
                        let mut limb = 0i32;
                        if col < cols {
                            let v = f32::cast_from(x[r * x_stride + col]);
                            limb = limb_of(i32::cast_from(f32::floor(v * quant + 0.5f32)), l);
                        }
                        sum += limb;
                        reg |= (u32::cast_from(limb) & 255u32) << comptime!(8 * i as u32);
                    }
                }
                let reg_index = comptime!(q * 4 + s * 2 + b);
                limbs[((tile * chunks + chunk) * REGS + reg_index) * LANES + lane] = reg;
            }
        }
    }

    let mut partial = SharedMemory::<i32>::new(LANES);
    partial[lane] = sum;
    sync_cube();
    if tig == 0 {
        limb_sums[(tile * chunks + chunk) * TILE_N + g] =
            partial[lane] + partial[lane + 1] + partial[lane + 2] + partial[lane + 3];
    }
    if tile == 0 && lane == 0 {
        chunk_dequant[chunk] = dequant;
    }
}

/// Loads word `4q + tig` (q = 0..3) of chunk `c` of rows `g` and `g + 8` of
/// each row tile into `dst[(rt·2 + half)·4 + q]` (0 past the matrix).
#[cube]
#[allow(clippy::too_many_arguments)]
fn load_chunk_words(
    trits: &Tensor<u32>,
    dst: &mut Array<u32>,
    c: usize,
    chunks: usize,
    row0: usize,
    g: usize,
    tig: usize,
    #[comptime] row_tiles: usize,
) {
    let rows = trits.shape(0);
    let words = trits.shape(1);
    let t_stride = trits.stride(0);
    #[unroll]
    for rt in 0..row_tiles {
        #[unroll]
        for half in 0..2usize {
            let row = row0 + rt * 16 + g + half * 8;
            #[unroll]
            for q in 0..4usize {
                let w = c * CHUNK_WORDS + 4 * q + tig;
                let mut word = 0u32;
                if c < chunks && w < words && row < rows {
                    word = trits[row * t_stride + w];
                }
                dst[(rt * 2 + half) * 4 + q] = word;
            }
        }
    }
}

/// Main pass: a cube of `planes` planes owns `16 · row_tiles` output rows;
/// plane `p` takes chunks `p, p + planes, ...`. Per chunk a lane (group `g`,
/// thread-in-group `tig`) loads word `4q + tig` (q = 0..3) of rows `g` and
/// `g + 8` of each row tile (each load instruction reads 16 contiguous bytes
/// of 8 rows), decodes them into A fragments and runs 8 `mma` per B tile
/// into an int32 accumulator that starts at minus the limb sums. The chunk's
/// result is scaled to `f32` (`2^(E-22) · 2^(8·limb)`) and accumulated.
/// Finally the planes' sums go through shared memory and one unit per
/// (row, activation row) adds planes and limbs and applies the row scale.
#[cube(launch)]
fn gemv_mma_kernel<F: Float>(
    limbs: &Tensor<u32>,
    limb_sums: &Tensor<i32>,
    chunk_dequant: &Tensor<f32>,
    trits: &Tensor<u32>,
    scale: &Tensor<F>,
    out: &mut Tensor<F>,
    #[comptime] m: usize,
    #[comptime] row_tiles: usize,
    #[comptime] planes: usize,
    #[define(F)] _dtype: StorageType,
) {
    let tiles = comptime!(b_tiles(m));
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let g = lane / 4;
    let tig = lane % 4;
    let rows = out.shape(1);
    let chunks = chunk_dequant.shape(0);
    let row0 = CUBE_POS_X as usize * comptime!(16 * row_tiles);
    let def = MmaDefinition::<i8, i8, i32>::new(16usize, 8usize, 32usize);

    // 2^(8·limb) for this lane's two accumulator columns of each tile.
    let mut col_factor = Array::<f32>::new(comptime!(tiles * 2));
    #[unroll]
    for tile in 0..tiles {
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
    let mut acc = Array::<f32>::new(comptime!(row_tiles * tiles * 4));
    #[unroll]
    for k in 0..comptime!(row_tiles * tiles * 4) {
        acc[k] = 0.0f32;
    }

    // The next chunk's words are loaded before the current chunk is
    // computed, so every plane keeps one chunk of loads in flight.
    let mut current = Array::<u32>::new(comptime!(row_tiles * 8));
    let mut next = Array::<u32>::new(comptime!(row_tiles * 8));
    load_chunk_words(trits, &mut current, plane, chunks, row0, g, tig, row_tiles);
    let mut c = plane;
    while c < chunks {
        load_chunk_words(
            trits,
            &mut next,
            c + planes,
            chunks,
            row0,
            g,
            tig,
            row_tiles,
        );
        let dequant = chunk_dequant[c];
        let mut b_regs = Array::<u32>::new(comptime!(tiles * REGS));
        let mut sums = Array::<i32>::new(comptime!(tiles * 2));
        #[unroll]
        for tile in 0..tiles {
            let active = tile * TILE_N + g < 3 * m;
            #[unroll]
            for reg in 0..REGS {
                let mut v = 0u32;
                if active {
                    v = limbs[((tile * chunks + c) * REGS + reg) * LANES + lane];
                }
                b_regs[tile * REGS + reg] = v;
            }
            #[unroll]
            for j in 0..2usize {
                sums[tile * 2 + j] = limb_sums[(tile * chunks + c) * TILE_N + 2 * tig + j];
            }
        }
        #[unroll]
        for rt in 0..row_tiles {
            let mut ua = Array::<u32>::new(4usize);
            let mut ub = Array::<u32>::new(4usize);
            #[unroll]
            for q in 0..4usize {
                ua[q] = offset_codes(current[rt * 8 + q]);
                ub[q] = offset_codes(current[rt * 8 + 4 + q]);
            }
            #[unroll]
            for tile in 0..tiles {
                let mut cacc = Array::<Vector<i32, Const<2>>>::new(2usize);
                let mut init = Vector::<i32, Const<2>>::new(-sums[tile * 2]);
                init[1usize] = -sums[tile * 2 + 1];
                cacc[0usize] = init;
                cacc[1usize] = init;
                #[unroll]
                for q in 0..4usize {
                    #[unroll]
                    for s in 0..2usize {
                        let shift = comptime!(4 * s as u32);
                        let mut a = Array::<Vector<i8, Const<4>>>::new(4usize);
                        a[0usize] =
                            Vector::<i8, Const<4>>::reinterpret((ua[q] >> shift) & 0x0303_0303u32);
                        a[1usize] =
                            Vector::<i8, Const<4>>::reinterpret((ub[q] >> shift) & 0x0303_0303u32);
                        a[2usize] = Vector::<i8, Const<4>>::reinterpret(
                            (ua[q] >> (shift + 2u32)) & 0x0303_0303u32,
                        );
                        a[3usize] = Vector::<i8, Const<4>>::reinterpret(
                            (ub[q] >> (shift + 2u32)) & 0x0303_0303u32,
                        );
                        let mut b = Array::<Vector<i8, Const<4>>>::new(2usize);
                        let reg = comptime!(q * 4 + s * 2);
                        b[0usize] = Vector::<i8, Const<4>>::reinterpret(b_regs[tile * REGS + reg]);
                        b[1usize] =
                            Vector::<i8, Const<4>>::reinterpret(b_regs[tile * REGS + reg + 1]);
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
        #[unroll]
        for k in 0..comptime!(row_tiles * 8) {
            current[k] = next[k];
        }
        c += planes;
    }

    // acc[(rt·tiles + tile)·4 + half·2 + j] of lane (g, tig) is output row
    // `16·rt + g + 8·half`, limb column `tile·8 + 2·tig + j`.
    let per_plane = comptime!(row_tiles * tiles * 4 * LANES);
    let mut partial = SharedMemory::<f32>::new(comptime!(planes * row_tiles * tiles * 4 * LANES));
    #[unroll]
    for k in 0..comptime!(row_tiles * tiles * 4) {
        partial[plane * per_plane + k * LANES + lane] = acc[k];
    }
    sync_cube();

    let mut item = plane * LANES + lane;
    while item < comptime!(16 * row_tiles * m) {
        let local = item / m;
        let r = item % m;
        let row = row0 + local;
        if row < rows {
            let rt = local / 16;
            let within = local % 16;
            let gg = within % 8;
            let half = within / 8;
            let mut sum = 0.0f32;
            #[unroll]
            for l in 0..3usize {
                let n = 3 * r + l;
                let tile = n / TILE_N;
                let col = n % TILE_N;
                let k = (rt * tiles + tile) * 4 + half * 2 + col % 2;
                let source = gg * 4 + col / 2;
                #[unroll]
                for p in 0..planes {
                    sum += partial[p * per_plane + k * LANES + source];
                }
            }
            out[r * out.stride(0) + row] = F::cast_from(sum * f32::cast_from(scale[row]));
        }
        item += comptime!(planes * LANES);
    }
}

/// `x: [m, cols]` (contiguous, `m ≤ 8`) times the packed trits
/// `[rows, ceil(cols / 16)]` with row `scale` (in `x`'s float type), on the
/// int8 tensor cores. Call only where [`supported`] holds.
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
) -> CubeTensor<R> {
    let m = x.meta.shape()[0];
    let client = x.client.clone();
    let device = x.device.clone();
    let out = empty_device_contiguous_dtype(
        client.clone(),
        device.clone(),
        Shape::new([m, rows]),
        x.dtype,
    );
    let chunks = cols.div_ceil(CHUNK_COLS);
    let tiles = b_tiles(m);
    let limbs = empty_device_contiguous_dtype(
        client.clone(),
        device.clone(),
        Shape::new([tiles * chunks * REGS * LANES]),
        DType::U32,
    );
    let limb_sums = empty_device_contiguous_dtype(
        client.clone(),
        device.clone(),
        Shape::new([tiles * chunks * TILE_N]),
        DType::I32,
    );
    let chunk_dequant =
        empty_device_contiguous_dtype(client.clone(), device, Shape::new([chunks]), DType::F32);
    let dtype = x.dtype;
    limb_kernel::launch::<R>(
        &client,
        CubeCount::Static(chunks as u32, tiles as u32, 1),
        CubeDim::new_1d(LANES as u32),
        x.into_tensor_arg(),
        limbs.clone().into_tensor_arg(),
        limb_sums.clone().into_tensor_arg(),
        chunk_dequant.clone().into_tensor_arg(),
        m,
        dtype.into(),
    );

    // Planes in flight cover memory latency: aim for about 8192 over the
    // whole grid, at most 8 per cube, never more planes than chunks.
    // Measured on the H200 (`gemv_tuning`): two row tiles per cube share the
    // B registers best with one B tile (m <= 2); with three tiles (m = 8)
    // the registers of one row tile allow more planes in flight.
    let row_tiles = match ROW_TILES.load(Ordering::Relaxed) {
        0 => {
            if tiles == 1 {
                2
            } else {
                1
            }
        }
        n => n.clamp(1, 2),
    };
    let target = match TARGET_PLANES.load(Ordering::Relaxed) {
        0 => 8192,
        n => n,
    };
    let cubes = rows.div_ceil(16 * row_tiles);
    let wanted = target.div_ceil(cubes).next_power_of_two();
    let planes = wanted.clamp(1, 8).min(chunks.next_power_of_two()).max(1);
    gemv_mma_kernel::launch::<R>(
        &client,
        CubeCount::Static(cubes as u32, 1, 1),
        CubeDim::new_2d(LANES as u32, planes as u32),
        limbs.into_tensor_arg(),
        limb_sums.into_tensor_arg(),
        chunk_dequant.into_tensor_arg(),
        trits.into_tensor_arg(),
        scale.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        m,
        row_tiles,
        planes,
        dtype.into(),
    );
    out
}
