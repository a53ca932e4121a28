//! CubeCL kernel for the packed ternary embedding gather on `CubeBackend`
//! (CUDA, WGPU).
//!
//! One unit per output element `(n, c)`: it reads `ids[n]`, the packed word
//! holding trit `c` of that table row and the row's scale, and writes
//! `scale[id] · T[id, c]`. Consecutive units write consecutive columns
//! (coalesced stores); the 16 units sharing a word read it through the cache.
//! Only the gathered rows are touched; the table is never unpacked.

use burn::tensor::{DType, Shape};
use burn_cubecl::{
    kernel::{cast, into_contiguous},
    ops::numeric::empty_device_contiguous_dtype,
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

/// Trits per packed word (mirrors [`crate::packing::TRITS_PER_WORD`]).
const TRITS: usize = 16;

/// `out[n, c] = scale[ids[n]] · T[ids[n], c]`; ids outside `0..rows` give a zero row.
#[cube(launch)]
fn gather_kernel<F: Float, I: Int>(
    ids: &Tensor<I>,
    trits: &Tensor<u32>,
    scale: &Tensor<F>,
    out: &mut Tensor<F>,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let cols = out.shape(1);
    let n = pos / cols;
    let c = pos % cols;
    let id = i32::cast_from(ids[n * ids.stride(0)]);
    let mut v = F::new(0.0);
    if id >= 0 && id < trits.shape(0) as i32 {
        let row = id as usize;
        let word = trits[row * trits.stride(0) + c / TRITS];
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
        ids.into_tensor_arg(),
        trits.into_tensor_arg(),
        scale.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        dtypes,
    );
    out
}
