//! Small helpers the CubeCL launches of every op share.

use burn::tensor::{DType, Shape};
use burn_cubecl::{ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::ComputeClient;

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
