//! CubeCL kernel for the per-token activation quantization on `CubeBackend`
//! (CUDA, WGPU): one cube per row; its units stride over the columns for
//! the row's largest magnitude, meet in shared memory, then quantize the
//! same columns. One launch instead of the reference's ten, and one read of
//! the row from memory for the maximum and one for the values.

use burn_cubecl::{kernel::into_contiguous, tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::*;

use super::reference::ABSMAX_FLOOR;

/// Units per cube (one cube per row).
const UNITS: usize = 256;

/// `out[r, c] = clamp(round(x[r, c] · s), −128, 127) / s` with
/// `s = 1 / max(max_c |x[r, c]|, floor) · 127`, the reference's operation
/// order, so both round alike.
#[cube(launch)]
fn act_quant_kernel<F: Float>(
    x: &Array<F>,
    out: &mut Array<F>,
    rows: u32,
    cols: u32,
    floor: f32,
    #[comptime] units: usize,
    #[define(F)] _dtype: StorageType,
) {
    let row = crate::ops::launch::wrapped_cube();
    let unit = UNIT_POS_X as usize;
    let rows = usize::cast_from(rows);
    let cols = usize::cast_from(cols);
    let offset = row * cols;
    let mut local = F::new(0.0);
    if row < rows {
        let mut c = unit;
        while c < cols {
            local = F::max(local, F::abs(x[offset + c]));
            c += units;
        }
    }
    let absmax = crate::ops::launch::cube_total::<F>(local, units, true);
    if row < rows {
        let scale = F::new(1.0) / F::max(absmax, F::cast_from(floor)) * F::new(127.0);
        let mut c = unit;
        while c < cols {
            let q = F::clamp(
                F::round(x[offset + c] * scale),
                F::new(-128.0),
                F::new(127.0),
            );
            out[offset + c] = q / scale;
            c += units;
        }
    }
}

/// Per-token int8 quantization of `x: [rows, cols]` (see [`super`]).
pub fn forward<R: CubeRuntime>(x: CubeTensor<R>) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let [rows, cols] = x.meta.shape().dims();
    let out = crate::ops::launch::empty_on(&x, x.meta.shape().clone(), x.dtype);
    if rows == 0 || cols == 0 {
        return out;
    }
    let dtype = x.dtype;
    act_quant_kernel::launch::<R>(
        &x.client.clone(),
        crate::ops::launch::wrapped_grid(rows),
        CubeDim::new_1d(UNITS as u32),
        x.into_array_arg(),
        out.clone().into_array_arg(),
        rows as u32,
        cols as u32,
        ABSMAX_FLOOR as f32,
        UNITS,
        dtype.into(),
    );
    out
}
