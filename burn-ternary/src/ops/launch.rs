//! Small helpers the CubeCL launches of every op share.

use burn::tensor::{DType, Shape};
use burn_cubecl::{ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::{ComputeClient, CubeCount};

/// A new contiguous tensor of `shape` and `dtype` (uninitialized) on `like`'s
/// device.
pub(crate) fn empty_on<R: CubeRuntime>(
    like: &CubeTensor<R>,
    shape: Shape,
    dtype: DType,
) -> CubeTensor<R> {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, dtype)
}

/// Streaming multiprocessors of the client's device (0 where neither the
/// runtime nor [`crate::set_sm_count_hint`] / [`crate::SM_COUNT_ENV`] says): the
/// launch-shape rules of the GEMV, tiled matmul and conv kernels compare
/// their grids with it.
pub(crate) fn sm_count<R: CubeRuntime>(client: &ComputeClient<R>) -> usize {
    crate::sm_count::effective_sm_count(client.properties().hardware.num_streaming_multiprocessors)
}

/// A grid of `cubes` cubes: up to 65,535 along x, the rest wrapping into y
/// (the most one grid dimension takes on every runtime). Kernels number
/// their cube `CUBE_POS_Y · CUBE_COUNT_X + CUBE_POS_X` and skip numbers past
/// `cubes`.
pub(crate) fn wrapped_grid(cubes: usize) -> CubeCount {
    CubeCount::Static(cubes.min(65_535) as u32, cubes.div_ceil(65_535) as u32, 1)
}
