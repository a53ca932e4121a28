//! CubeCL kernel for the rotary embedding on `CubeBackend` (CUDA, WGPU): one
//! unit per output element reads its own value, its rotation partner and
//! the two table entries. One launch instead of the reference's six.

use burn_cubecl::{kernel::into_contiguous, tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::*;

/// Units per cube.
const UNITS: u32 = 256;

/// `out = x · cos[p] + rotate_half(x) · sin[p]` per element of a
/// token-major `[batch, n, heads, head_dim]` tensor, `p = start + token`.
#[cube(launch)]
fn rope_kernel<F: Float>(
    x: &Array<F>,
    cos: &Array<F>,
    sin: &Array<F>,
    out: &mut Array<F>,
    len: u32,
    n: u32,
    heads: u32,
    head_dim: u32,
    start: u32,
    #[define(F)] _dtype: StorageType,
) {
    let i = ABSOLUTE_POS;
    let len = usize::cast_from(len);
    if i < len {
        let d = usize::cast_from(head_dim);
        let half = d / 2;
        let j = i % d;
        let token = (i / (d * usize::cast_from(heads))) % usize::cast_from(n);
        let t = (usize::cast_from(start) + token) * d + j;
        let rotated = if j < half {
            F::new(0.0) - x[i + half]
        } else {
            x[i - half]
        };
        out[i] = x[i] * cos[t] + rotated * sin[t];
    }
}

/// Rotary embedding of `x: [batch, n, heads, head_dim]` at positions
/// `start..start + n` (see [`super`]).
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    cos: CubeTensor<R>,
    sin: CubeTensor<R>,
    start: usize,
) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let (cos, sin) = (into_contiguous(cos), into_contiguous(sin));
    let [_, n, heads, head_dim] = x.meta.shape().dims();
    let out = crate::ops::launch::empty_on(&x, x.meta.shape().clone(), x.dtype);
    let len = x.meta.shape().num_elements();
    if len == 0 {
        return out;
    }
    let cubes = len.div_ceil(UNITS as usize) as u32;
    // Cubes beyond 65535 wrap into the second grid dimension (ABSOLUTE_POS
    // counts across both).
    let (gx, gy) = (cubes.min(65_535), cubes.div_ceil(65_535));
    let dtype = x.dtype;
    rope_kernel::launch::<R>(
        &x.client.clone(),
        CubeCount::Static(gx, gy, 1),
        CubeDim::new_1d(UNITS),
        x.into_array_arg(),
        cos.into_array_arg(),
        sin.into_array_arg(),
        out.clone().into_array_arg(),
        len as u32,
        n as u32,
        heads as u32,
        head_dim as u32,
        start as u32,
        dtype.into(),
    );
    out
}
