//! Small helpers the CubeCL launches of every op share.

use burn::tensor::{DType, Shape};
use burn_cubecl::{ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor, CubeRuntime};
use cubecl::prelude::*;

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

/// This cube's number in a [`wrapped_grid`]: `CUBE_POS_Y · CUBE_COUNT_X +
/// CUBE_POS_X` (past the grid's count where the wrap overshoots).
#[cube]
pub(crate) fn wrapped_cube() -> usize {
    (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize
}

/// The total over the cube's units of each unit's `local` partial: the
/// maximum when `max`, else the sum (both from 0). Every unit reads every
/// partial (the same shared address at a time, a broadcast): `units` shared
/// reads, small next to a row of thousands.
#[cube]
pub(crate) fn cube_total<F: Float>(local: F, #[comptime] units: usize, #[comptime] max: bool) -> F {
    let mut shared = SharedMemory::<F>::new(units);
    shared[UNIT_POS_X as usize] = local;
    sync_cube();
    let mut total = F::new(0.0);
    for p in 0..units {
        if max {
            total = F::max(total, shared[p]);
        } else {
            total += shared[p];
        }
    }
    total
}
