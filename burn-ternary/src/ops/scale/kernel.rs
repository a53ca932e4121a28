//! CubeCL kernel for the scale decode on `CubeBackend` (CUDA, WGPU): one
//! unit per row computes `exp(code · ln 2 / 16)`, the reference's formula,
//! in one launch instead of the reference's three (cast, multiply, `exp`).
//! Flat `Array` arguments: CubeCL sends a `Tensor` argument's shape and
//! strides with every launch (on CUDA a host-to-device copy), which would
//! cost more host time than this kernel takes.

use burn::tensor::DType;
use burn_cubecl::{
    kernel::{cast, into_contiguous},
    ops::numeric::empty_device_contiguous_dtype,
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

use crate::packing::SCALE_CODE_STEPS_PER_OCTAVE;

/// `scale[i] = exp(codes[i] · ln 2 / 16)`.
#[cube(launch_unchecked)]
fn decode_scale_kernel<F: Float>(
    codes: &Array<i32>,
    scale: &mut Array<F>,
    #[define(F)] _dtype: StorageType,
) {
    let i = ABSOLUTE_POS;
    if i < scale.len() {
        let step = comptime!(core::f32::consts::LN_2 / SCALE_CODE_STEPS_PER_OCTAVE as f32);
        scale[i] = F::cast_from(f32::exp(f32::cast_from(codes[i]) * step));
    }
}

/// The scales `[rows]` of `codes: [rows]` (any integer dtype), in `dtype`.
pub fn decode<R: CubeRuntime>(codes: CubeTensor<R>, dtype: DType) -> CubeTensor<R> {
    let codes = into_contiguous(cast(codes, DType::I32));
    let rows = codes.meta.shape().num_elements();
    let scale = empty_device_contiguous_dtype(
        codes.client.clone(),
        codes.device.clone(),
        codes.meta.shape().clone(),
        dtype,
    );
    if rows == 0 {
        return scale;
    }
    let client = codes.client.clone();
    let cube_dim = CubeDim::new(&client, rows);
    let cube_count = calculate_cube_count_elemwise(&client, rows, cube_dim);
    // SAFETY: the kernel guards its one index by the output's length, and
    // `codes` has as many elements.
    unsafe {
        decode_scale_kernel::launch_unchecked::<R>(
            &client,
            cube_count,
            cube_dim,
            codes.into_array_arg(),
            scale.clone().into_array_arg(),
            dtype.into(),
        );
    }
    scale
}
