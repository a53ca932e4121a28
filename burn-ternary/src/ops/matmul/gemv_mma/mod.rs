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
//! Files: `limbs.rs` (the activations' limbs: the prepass kernel and the
//! fused prologue), `kernel.rs` (the main kernel: trit loads, decode, `mma`),
//! this file (the launches). The launch shape is a [`MmaGemvShape`] from
//! the route (`super::route::tensor_core_gemv_shape`).
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
//! time per launch on the H200 machine (the bench's `launch_cost_benchmarks`: 10.5–13.7
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
//! Measuring: `scripts/ncu_gemv.py` reads both kernels' device time with
//! Nsight Compute; `scripts/cubecl_sass.py` compiles the generated CUDA
//! (from `CUBECL_DEBUG_LOG`) to SASS, which is how the byte-splitting of
//! the A registers (see [`TRIT_BYTES`]) was found.

use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{into_contiguous, slice},
    ops::numeric::empty_device_contiguous_dtype,
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::prelude::*;

use super::route::{b_tiles, MmaGemvShape, CHUNK_COLS, LANES, MMA_GEMV_MAX_M, REGS, TILE_N};

mod kernel;
mod limbs;

use kernel::gemv_mma_kernel;
use limbs::{limb_kernel, PrepassLimbsLaunch};

/// The low two bits of each byte: one trit per int8 lane of an A register.
pub(crate) const TRIT_BYTES: u32 = 0x0303_0303;

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

/// `x: [m, cols]` (contiguous, `m ≤ 16`) times the packed trits
/// `[rows, ceil(cols / 16)]` with row `scale` (contiguous, in any float type:
/// the kernel reads it as it is, so a scale of another type than `x` costs
/// no cast launch per call), on the int8 tensor cores, one launch block per
/// entry of `blocks` (from `super::route::tensor_core_gemv_blocks`), each
/// on its own activation rows and written straight into its rows of one
/// output. Each block streams the packed weight once, so `m = 16` reads it
/// twice; the FMA GEMV it replaces for `8 < m ≤ 16` spends about 8 ALU
/// operations per trit and activation row. Call only where the device has
/// int8 `mma` (`DeviceCaps::int8_mma`).
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    blocks: &[MmaGemvShape],
) -> CubeTensor<R> {
    let m = x.meta.shape()[0];
    let out = empty_output(&x, rows);
    if let [shape] = blocks
        && shape.first_row == 0
        && shape.m == m
    {
        forward_into(x, trits, scale, rows, cols, out.clone(), *shape);
        return out;
    }
    for shape in blocks {
        let (first, end) = (shape.first_row, shape.first_row + shape.m);
        assert!(
            end <= m && shape.m <= MMA_GEMV_MAX_M,
            "tensor-core GEMV block {shape:?} outside {m} rows"
        );
        let x_rows = into_contiguous(slice(x.clone(), &[first..end, 0..cols]));
        let out_rows = view_at(
            &out,
            first * rows * out.dtype.size(),
            Shape::new([end - first, rows]),
            out.dtype,
        );
        forward_into(
            x_rows,
            trits.clone(),
            scale.clone(),
            rows,
            cols,
            out_rows,
            *shape,
        );
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

/// One launch block of [`forward`] (`x: [shape.m, cols]`) into the given
/// contiguous `[shape.m, rows]` output.
fn forward_into<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    out: CubeTensor<R>,
    shape: MmaGemvShape,
) {
    let m = x.meta.shape()[0];
    debug_assert_eq!(m, shape.m);
    let client = x.client.clone();
    let chunks = cols.div_ceil(CHUNK_COLS);
    let tiles = b_tiles(m);
    let dtype = x.dtype;
    let scale_dtype = scale.dtype;
    let MmaGemvShape {
        fused,
        row_tiles,
        depth,
        planes,
        groups,
        ..
    } = shape;
    let prepass_buffers = (!fused).then(|| prepass(x.clone(), chunks, tiles));
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
            dtype.into(),
            scale_dtype.into(),
        );
    }
}

/// The prepass ([`limb_kernel`]): limbs, limb sums and chunk factors of
/// `x`, as three views of one allocation (one pool allocation instead of
/// three saves host time per call, which is what bounds the decode shapes
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
