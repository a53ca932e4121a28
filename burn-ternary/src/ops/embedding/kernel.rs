//! CubeCL kernel for the packed ternary embedding gather on `CubeBackend`
//! (CUDA, WGPU).
//!
//! One unit per output element `(n, c)`: it reads `ids[n]`, the packed word
//! holding trit `c` of that table row and the row's scale, and writes
//! `scale[id] · T[id, c]`. Consecutive units write consecutive columns
//! (coalesced stores); the 16 units sharing a word read it through the cache.
//! Only the gathered rows are touched; the table is never unpacked.
//!
//! The table gradient (scatter-add of `grad: [n, cols]` into `[rows, cols]`)
//! is sort-free and needs only 32-bit integer atomics (available on every
//! CubeCL target, unlike float atomics): [`link_kernel`] threads the
//! occurrences of each id into a linked list (`heads[id]` swapped atomically,
//! the old head stored in `next[n]`), then [`scatter_sum_kernel`] has one
//! unit per table element `(r, c)` walk row `r`'s list and sum
//! `grad[n, c]` in registers, writing every element exactly once (zero rows
//! included). Reads of `grad` and writes of the output are coalesced along
//! `c`; the summation order within a row follows the atomic order, so it is
//! not bitwise deterministic between runs (within float rounding).
//!
//! The kernels take flat `Array` arguments (their operands made contiguous,
//! the row width as a scalar): CubeCL sends a `Tensor` argument's shape and
//! strides with every launch, on CUDA as a host-to-device copy.

use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{cast, into_contiguous},
    ops::numeric::{empty_device_contiguous_dtype, zeros_client},
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

/// Trits per packed word (mirrors [`crate::packing::TRITS_PER_WORD`]).
const TRITS: usize = 16;

/// `out[n, c] = scale[ids[n]] · T[ids[n], c]`; ids outside `0..rows` give a zero row.
#[cube(launch)]
fn gather_kernel<F: Float, I: Int>(
    ids: &Array<I>,
    trits: &Array<u32>,
    scale: &Array<F>,
    out: &mut Array<F>,
    cols: u32,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let cols = usize::cast_from(cols);
    let words = (cols + comptime!(TRITS - 1)) / TRITS;
    let n = pos / cols;
    let c = pos % cols;
    let id = i32::cast_from(ids[n]);
    let mut v = F::new(0.0);
    // `scale` has one entry per table row.
    if id >= 0 && id < scale.len() as i32 {
        let row = id as usize;
        let word = trits[row * words + c / TRITS];
        let code = (word >> (2 * (c % TRITS) as u32)) & 3;
        v = (F::cast_from(code & 1) - F::cast_from(code >> 1)) * scale[row];
    }
    out[pos] = v;
}

/// Rows `ids: [n]` of the packed table (`trits: [rows, ceil(cols / 16)]`,
/// `scale: [rows]`), `[n, cols]`.
pub fn forward<R: CubeRuntime>(
    ids: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    cols: usize,
) -> CubeTensor<R> {
    let ids = into_contiguous(ids);
    let trits = into_contiguous(cast(trits, DType::I32));
    let scale = into_contiguous(scale);
    let n = ids.meta.shape()[0];
    let out = empty_device_contiguous_dtype(
        scale.client.clone(),
        scale.device.clone(),
        Shape::new([n, cols]),
        scale.dtype,
    );
    let elements = n * cols;
    if elements == 0 {
        return out;
    }
    let client = scale.client.clone();
    let cube_dim = CubeDim::new(&client, elements);
    let cube_count = calculate_cube_count_elemwise(&client, elements, cube_dim);
    let dtypes = [scale.dtype.into(), ids.dtype.into()];
    gather_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        ids.into_array_arg(),
        trits.into_array_arg(),
        scale.into_array_arg(),
        out.clone().into_array_arg(),
        cols as u32,
        dtypes,
    );
    out
}

/// Links occurrence `n` of each id into its row's list: `heads[id]` holds
/// `1 + the last linked n` (0: empty), `next[n]` the previous head.
#[cube(launch)]
fn link_kernel<I: Int>(
    ids: &Array<I>,
    heads: &mut Array<Atomic<u32>>,
    next: &mut Array<u32>,
    #[define(I)] _dtype: StorageType,
) {
    let n = ABSOLUTE_POS;
    if n >= next.len() {
        terminate!();
    }
    let id = i32::cast_from(ids[n]);
    let mut link = 0u32;
    if id >= 0 && id < heads.len() as i32 {
        link = heads[id as usize].swap(n as u32 + 1);
    }
    next[n] = link;
}

/// `out[r, c] = Σ_{n: ids[n] = r} grad[n, c]`, one unit per table element,
/// walking row `r`'s list built by [`link_kernel`].
#[cube(launch)]
fn scatter_sum_kernel<F: Float>(
    grad: &Array<F>,
    heads: &Array<u32>,
    next: &Array<u32>,
    out: &mut Array<F>,
    cols: u32,
    #[define(F)] _dtype: StorageType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let cols = usize::cast_from(cols);
    let r = pos / cols;
    let c = pos % cols;
    let mut sum = F::new(0.0);
    let mut link = heads[r];
    while link != 0 {
        let n = (link - 1) as usize;
        sum += grad[n * cols + c];
        link = next[n];
    }
    out[pos] = sum;
}

/// Scatter-add of `grad: [n, cols]` into a `[rows, cols]` table gradient,
/// rows `ids: [n]`; ids outside `0..rows` contribute nothing.
pub fn weight_grad<R: CubeRuntime>(
    ids: CubeTensor<R>,
    grad: CubeTensor<R>,
    rows: usize,
) -> CubeTensor<R> {
    let grad = into_contiguous(grad);
    let [n, cols] = grad.meta.shape().dims();
    let client = grad.client.clone();
    let device = grad.device.clone();
    let shape = Shape::new([rows, cols]);
    if rows * cols == 0 {
        return empty_device_contiguous_dtype(client, device, shape, grad.dtype);
    }
    if n == 0 {
        return zeros_client(client, device, shape, grad.dtype);
    }
    let heads = zeros_client(
        client.clone(),
        device.clone(),
        Shape::new([rows]),
        DType::U32,
    );
    let next =
        empty_device_contiguous_dtype(client.clone(), device.clone(), Shape::new([n]), DType::U32);
    let cube_dim = CubeDim::new(&client, n);
    let cube_count = calculate_cube_count_elemwise(&client, n, cube_dim);
    let ids = into_contiguous(ids);
    let id_dtype = ids.dtype;
    link_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        ids.into_array_arg(),
        heads.clone().into_array_arg(),
        next.clone().into_array_arg(),
        id_dtype.into(),
    );

    let out = empty_device_contiguous_dtype(client.clone(), device, shape, grad.dtype);
    let elements = rows * cols;
    let cube_dim = CubeDim::new(&client, elements);
    let cube_count = calculate_cube_count_elemwise(&client, elements, cube_dim);
    let dtype = grad.dtype;
    scatter_sum_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        grad.into_array_arg(),
        heads.into_array_arg(),
        next.into_array_arg(),
        out.clone().into_array_arg(),
        cols as u32,
        dtype.into(),
    );
    out
}
