//! Decoding packed trits: the per-trit helpers the FMA kernels share, the
//! dense unpack kernel, and the half-precision tensor-core route built on it
//! (the trits unpacked, row scales folded in, into a transient dense weight
//! of the activation type, then Burn's own matmul, autotuned). The dense
//! weight is laid out so that the matmul's right-hand side is column-major
//! in both directions (measured faster on the H200 than row-major).
//!
//! A trit code `c` decodes branch-free to `(c & 1) - (c >> 1)`: `0b01` is
//! +1, `0b10` is -1, `0b00` (and the unused `0b11`) is 0. Padding trits past
//! `cols` are code 0 by construction, and the kernels never read activations
//! past `cols` either.

use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{
        cast, into_contiguous,
        matmul::{matmul, MatmulStrategy},
    },
    ops::numeric::empty_device_contiguous_dtype,
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::prelude::*;

use crate::ops::launch::empty_on;

/// Trits per packed word (mirrors [`crate::packing::TRITS_PER_WORD`]).
pub(super) const TRITS: usize = 16;

/// Decodes trit `j` of a packed word to `-1`, `0` or `+1` in the float type.
#[cube]
pub(super) fn decode_trit<F: Float>(word: u32, j: u32) -> F {
    let code = (word >> (2 * j)) & 3;
    F::cast_from(code & 1) - F::cast_from(code >> 1)
}
/// `-1.0`, `0.0` or `+1.0` for trit `j` of `word`, with selects only (an
/// int-to-float conversion per trit would run at a quarter of the FMA rate).
#[cube]
pub(super) fn trit_value<F: Float>(word: u32, j: u32) -> F {
    let plus = (word >> (2 * j)) & 1;
    let minus = (word >> (2 * j + 1)) & 1;
    select(plus == 1, F::new(1.0), F::new(0.0)) - select(minus == 1, F::new(1.0), F::new(0.0))
}
/// `out = scale[r] · trit(r, c)` (just `trit(r, c)` unless `scaled`), laid
/// out `[rows, cols]` or, when `transposed`, `[cols, rows]`: one unit per
/// output element, so the stores are coalesced (the 16 units of a word read
/// it from cache).
#[cube(launch)]
fn unpack_kernel<F: Float>(
    trits: &Array<u32>,
    scale: &Array<F>,
    out: &mut Array<F>,
    inner: u32,
    words: u32,
    #[comptime] transposed: bool,
    #[comptime] scaled: bool,
    #[define(F)] _dtype: StorageType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let inner = usize::cast_from(inner);
    let mut r = pos / inner;
    let mut c = pos % inner;
    if comptime!(transposed) {
        r = pos % inner;
        c = pos / inner;
    }
    let word = trits[r * usize::cast_from(words) + c / TRITS];
    let mut value = trit_value::<F>(word, (c % TRITS) as u32);
    if comptime!(scaled) {
        value *= scale[r];
    }
    out[pos] = value;
}

/// The weight as a dense tensor of `dtype`: `W = diag(scale) · T` when
/// `scaled`, else the trits `T` alone; `[rows, cols]`, or `[cols, rows]`
/// (i.e. `Wᵀ` contiguous) when `transposed`.
pub fn unpack_trits<R: CubeRuntime>(
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    dtype: DType,
    transposed: bool,
    scaled: bool,
) -> CubeTensor<R> {
    let trits = packed_words(trits);
    let scale = if scaled {
        scales_like(scale, dtype)
    } else {
        // Not read; any tensor of `dtype` fills the binding.
        empty_on(&trits, Shape::new([1]), dtype)
    };
    let shape = if transposed {
        [cols, rows]
    } else {
        [rows, cols]
    };
    let out = empty_device_contiguous_dtype(
        trits.client.clone(),
        trits.device.clone(),
        Shape::new(shape),
        dtype,
    );
    let elements = rows * cols;
    if elements == 0 {
        return out;
    }
    let client = trits.client.clone();
    let cube_dim = CubeDim::new(&client, elements);
    let cube_count = cubecl::calculate_cube_count_elemwise(&client, elements, cube_dim);
    unpack_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        trits.into_array_arg(),
        scale.into_array_arg(),
        out.clone().into_array_arg(),
        shape[1] as u32,
        cols.div_ceil(TRITS) as u32,
        transposed,
        scaled,
        dtype.into(),
    );
    out
}
/// The half-precision tensor-core route: the trits unpacked (scales folded
/// in) to `a`'s dtype, then Burn's matmul: `a · Wᵀ`, or `a · W` with
/// `input_grad`. The dense right-hand side is column-major either way.
/// `tuned`: Burn's autotuned matmul, else its default kernel (no tuning,
/// which costs seconds for every new shape class on CUDA).
pub fn half_precision_matmul<R: CubeRuntime>(
    a: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    input_grad: bool,
    tuned: bool,
) -> CubeTensor<R> {
    let dtype = a.dtype;
    // Forward: `[rows, cols]` read as `[cols, rows]`; input grad: `[cols, rows]`
    // read as `[rows, cols]`.
    let mut rhs = unpack_trits(trits, scale, rows, cols, dtype, input_grad, true);
    rhs.meta.swap(0, 1);
    matmul(a, rhs, None, matmul_strategy(tuned), dtype)
        .unwrap_or_else(|e| panic!("ternary matmul: Burn's {dtype:?} matmul failed: {e:?}"))
}

/// Burn's autotuned matmul, or with `tuned = false` its default kernel
/// (tensor cores where there are any; no tuning, which costs seconds for
/// every new shape class on CUDA). Shared by both tensor-core routes.
pub(super) fn matmul_strategy(tuned: bool) -> MatmulStrategy {
    if tuned {
        MatmulStrategy::default()
    } else {
        MatmulStrategy::Cube
    }
}

/// Packed trits as contiguous `i32` words (read as `u32` by the kernels).
pub(super) fn packed_words<R: CubeRuntime>(trits: CubeTensor<R>) -> CubeTensor<R> {
    into_contiguous(cast(trits, DType::I32))
}

/// Scales contiguous and in the activation's float type.
pub(super) fn scales_like<R: CubeRuntime>(scale: CubeTensor<R>, dtype: DType) -> CubeTensor<R> {
    into_contiguous(cast(scale, dtype))
}

pub(super) fn empty_output<R: CubeRuntime>(
    like: &CubeTensor<R>,
    shape: [usize; 2],
) -> CubeTensor<R> {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::new(shape),
        like.dtype,
    )
}
