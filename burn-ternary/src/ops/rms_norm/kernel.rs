//! CubeCL kernel for the RMS normalization on `CubeBackend` (CUDA, WGPU):
//! one cube per row; its units stride over the columns for the sum of
//! squares, meet in shared memory, then write the normalized columns. One
//! launch instead of the reference's six.

use burn_cubecl::{kernel::into_contiguous, tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::*;

/// Units per cube (one cube per row).
const UNITS: usize = 256;

/// `out[r, c] = x[r, c] / sqrt(Σ_c x[r, c]² / cols + ε)`, times `gamma[c]`
/// when `has_gamma`.
#[cube(launch)]
fn rms_norm_kernel<F: Float>(
    x: &Array<F>,
    gamma: &Array<F>,
    out: &mut Array<F>,
    rows: u32,
    cols: u32,
    epsilon: f32,
    #[comptime] has_gamma: bool,
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
            let v = x[offset + c];
            local += v * v;
            c += units;
        }
    }
    let sum = crate::ops::launch::cube_total::<F>(local, units, false);
    if row < rows {
        let rms = F::sqrt(sum / F::cast_from(cols) + F::cast_from(epsilon));
        let mut c = unit;
        while c < cols {
            let y = x[offset + c] / rms;
            if has_gamma {
                out[offset + c] = y * gamma[c];
            } else {
                out[offset + c] = y;
            }
            c += units;
        }
    }
}

/// RMS normalization of `x: [rows, cols]`, with `gamma: [cols]` if given
/// (see [`super`]).
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: Option<CubeTensor<R>>,
    epsilon: f64,
) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let has_gamma = gamma.is_some();
    // Without a gain the kernel never reads its gamma argument; x stands in.
    let gamma = gamma.map(into_contiguous).unwrap_or_else(|| x.clone());
    let [rows, cols] = x.meta.shape().dims();
    let out = crate::ops::launch::empty_on(&x, x.meta.shape().clone(), x.dtype);
    if rows == 0 || cols == 0 {
        return out;
    }
    let dtype = x.dtype;
    rms_norm_kernel::launch::<R>(
        &x.client.clone(),
        crate::ops::launch::wrapped_grid(rows),
        CubeDim::new_1d(UNITS as u32),
        x.into_array_arg(),
        gamma.into_array_arg(),
        out.clone().into_array_arg(),
        rows as u32,
        cols as u32,
        epsilon as f32,
        has_gamma,
        UNITS,
        dtype.into(),
    );
    out
}
