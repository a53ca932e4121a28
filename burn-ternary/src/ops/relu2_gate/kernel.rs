//! CubeCL kernel for the squared-ReLU gate on `CubeBackend` (CUDA, WGPU):
//! one unit per element, flat `Array` arguments (both operands are made
//! contiguous; a `Tensor` argument would send its shape and strides with
//! every launch).

use burn_cubecl::{kernel::into_contiguous, tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::*;

/// Units per cube.
const UNITS: u32 = 256;

/// `out = max(gate, 0)² · up`.
#[cube(launch)]
fn relu2_gate_kernel<F: Float>(
    gate: &Array<F>,
    up: &Array<F>,
    out: &mut Array<F>,
    len: u32,
    #[define(F)] _dtype: StorageType,
) {
    let i = ABSOLUTE_POS;
    if i < usize::cast_from(len) {
        let g = F::max(gate[i], F::new(0.0));
        out[i] = g * g * up[i];
    }
}

/// `relu(gate)² · up` (see [`super`]).
pub fn forward<R: CubeRuntime>(gate: CubeTensor<R>, up: CubeTensor<R>) -> CubeTensor<R> {
    let (gate, up) = (into_contiguous(gate), into_contiguous(up));
    let out = crate::ops::launch::empty_on(&gate, gate.meta.shape().clone(), gate.dtype);
    let len = gate.meta.shape().num_elements();
    if len == 0 {
        return out;
    }
    let cubes = len.div_ceil(UNITS as usize) as u32;
    // Cubes beyond 65535 wrap into the second grid dimension (ABSOLUTE_POS
    // counts across both).
    let (gx, gy) = (cubes.min(65_535), cubes.div_ceil(65_535));
    let dtype = gate.dtype;
    relu2_gate_kernel::launch::<R>(
        &gate.client.clone(),
        CubeCount::Static(gx, gy, 1),
        CubeDim::new_1d(UNITS),
        gate.into_array_arg(),
        up.into_array_arg(),
        out.clone().into_array_arg(),
        len as u32,
        dtype.into(),
    );
    out
}
