//! [`TernaryBackend`] for Burn's CubeCL backends (CUDA and WGPU): the ops with
//! dedicated kernels dispatch to them, the rest keep the reference bodies.
//!
//! Kernels (each file sits next to the op's reference implementation):
//! * `ops/matmul/kernel.rs`: ternary matmul forward (GEMV for few rows, tiled
//!   otherwise) and its input gradient (transposed access of the packed trits);
//! * `ops/matmul/gemv_mma.rs`: the forward GEMV for `m <= 8` on CUDA's int8
//!   tensor cores (exact block-floating-point limbs of the activations);
//!   `ops/matmul/gemv_stream.rs` its streamed form (all of a cube's trits in
//!   flight at once, through shared memory);
//! * `ops/matmul/gemm_split.rs`: f32 activations with `m >= 64` on f16
//!   tensor cores (an integer f16 limb and an f16 remainder per activation,
//!   summed apart in f32), forward and input gradient;
//! * `ops/denoise/kernel.rs`: the fused denoise step and its backward;
//! * `ops/embedding/kernel.rs`: the packed embedding gather and its
//!   scatter-add gradient (per-row linked lists built with integer atomics);
//! * `ops/conv1d/kernel.rs`: the 1-D convolution forward and input gradient
//!   (also the transposed convolution) with implicit im2col;
//! * `ops/update/kernel.rs`: the ternary optimizer's update of one weight
//!   (row statistics, then one fused pass over the packed words);
//! * `ops/scale/kernel.rs`: the decode of a weight's scale codes into its
//!   float scales (every module forward runs it once per weight).
//!
//! The dense weight gradients (`grad_yᵀ · x` of the matmul and of the
//! convolution) stay on the reference implementation for now.

use burn::tensor::{
    ops::{FloatTensor, IntTensor},
    DType, Shape,
};
use burn_cubecl::{
    element::BoolElement, ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor,
    CubeBackend, CubeRuntime, FloatElement, IntElement,
};

use crate::{
    backend::{Conv1dGeometry, TernaryBackend, TernaryPrimitive, TernaryState},
    ops::update::{NoiseKey, UpdateHyper},
};

#[path = "ops/conv1d/kernel.rs"]
mod conv1d_kernel;
#[path = "ops/denoise/kernel.rs"]
mod denoise_kernel;
#[path = "ops/embedding/kernel.rs"]
mod embedding_kernel;
#[path = "ops/matmul/gemm_split.rs"]
mod gemm_split_kernel;
#[path = "ops/matmul/gemv_mma.rs"]
mod gemv_mma_kernel;
#[path = "ops/matmul/gemv_stream.rs"]
mod gemv_stream_kernel;
#[path = "ops/matmul/kernel.rs"]
mod matmul_kernel;
#[path = "ops/scale/kernel.rs"]
mod scale_kernel;
#[path = "ops/update/kernel.rs"]
mod update_kernel;

pub use conv1d_kernel::set_conv_block;
pub use matmul_kernel::set_tiled_block;

/// Streaming multiprocessors of the client's device (0 where neither the
/// runtime nor [`crate::set_sm_count_hint`] / [`crate::SM_COUNT_ENV`] says): the
/// launch-shape rules of the GEMV, tiled matmul and conv kernels compare
/// their grids with it.
fn sm_count<R: burn_cubecl::CubeRuntime>(client: &cubecl::prelude::ComputeClient<R>) -> usize {
    crate::sm_count::effective_sm_count(client.properties().hardware.num_streaming_multiprocessors)
}

/// The first of `blocks` (register blocks, largest first) whose grid of
/// `cubes_at(block)` cubes covers more than half the device's SMs, else
/// `fallback`. A larger block does more FMAs per shared-memory load, but
/// each cube of these tiled kernels walks the whole reduction, so a grid
/// under half the SMs leaves most of them idle. The launch rule of the
/// tiled matmul and the conv kernels.
fn largest_block_covering_sms<R: burn_cubecl::CubeRuntime>(
    client: &cubecl::prelude::ComputeClient<R>,
    blocks: &[usize],
    fallback: usize,
    cubes_at: impl Fn(usize) -> usize,
) -> usize {
    let sms = sm_count(client);
    blocks
        .iter()
        .copied()
        .find(|&block| 2 * cubes_at(block) > sms)
        .unwrap_or(fallback)
}
pub use gemm_split_kernel::{set_f32_tensor_cores, with_f32_tensor_cores, F32TensorCores};
pub use gemv_mma_kernel::{
    set_fused_gemv, set_fused_gemv_shared_limit, set_gemv_ablation, set_gemv_early_limb_loads,
    set_gemv_row_groups, set_tensor_core_gemv, tune_tensor_core_gemv, MMA_GEMV_MAX_M,
};
pub use gemv_stream_kernel::{set_streamed_gemv, streamed_gemv_launches, tune_streamed_gemv};
pub use matmul_kernel::{tune_plane_gemv, TENSOR_CORE_MIN_M};

/// A new contiguous tensor of `shape` and `dtype` (uninitialized) on `like`'s
/// device; shared by the kernel modules below.
fn empty_on<R: CubeRuntime>(like: &CubeTensor<R>, shape: Shape, dtype: DType) -> CubeTensor<R> {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, dtype)
}

/// The tensor-core routes of the ternary matmul, called directly whatever the
/// policy and `m`: the forward `x · Wᵀ`, or with `input_grad` the product
/// `x · W`. f32 `x` takes the split-f16 route (the default for `f32` with
/// `m >= TENSOR_CORE_MIN_M` where the device has f16 matrix instructions),
/// f16/bf16 `x` the unpack + matmul route. `tuned`: Burn's autotuned matmul
/// (what the ops use), else its default kernel, which skips the seconds of
/// tuning every new shape class costs on CUDA. `None` where no matmul kernel
/// of the device takes the split route's f16 operands. For tests and
/// benchmarks.
#[doc(hidden)]
pub fn tensor_core_matmul<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    input_grad: bool,
    tuned: bool,
) -> Option<CubeTensor<R>> {
    match (x.dtype, input_grad) {
        (DType::F32, false) => gemm_split_kernel::forward(x, trits, scale, rows, cols, tuned),
        (DType::F32, true) => gemm_split_kernel::input_grad(x, trits, scale, rows, cols, tuned),
        _ => Some(matmul_kernel::half_precision_matmul(
            x, trits, scale, rows, cols, input_grad, tuned,
        )),
    }
}

/// The ternary matmul on the path for `a`'s dtype and size: `a · Wᵀ`, or
/// `a · W` with `input_grad`. Half precision with `m >= TENSOR_CORE_MIN_M`
/// takes the unpack + matmul route, f32 the split-f16 route where it
/// applies (device and size, see [`F32TensorCores`]), everything else the
/// FMA kernels (GEMV or tiled).
fn ternary_product<R: CubeRuntime>(
    a: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    input_grad: bool,
) -> CubeTensor<R> {
    let m = a.meta.shape()[0];
    let (inner, outer) = if input_grad {
        (rows, cols)
    } else {
        (cols, rows)
    };
    if rows > 0 && cols > 0 {
        let half = matmul_kernel::uses_tensor_cores(a.dtype, m);
        if half || gemm_split_kernel::applies(&a, m, inner, outer, input_grad) {
            // `None` only where no matmul kernel takes the split's f16 operands.
            let routed = tensor_core_matmul(
                a.clone(),
                trits.clone(),
                scale.clone(),
                rows,
                cols,
                input_grad,
                true,
            );
            if let Some(out) = routed {
                return out;
            }
        }
    }
    if input_grad {
        matmul_kernel::input_grad::<R>(a, trits, scale, rows, cols)
    } else {
        matmul_kernel::forward::<R>(a, trits, scale, rows, cols)
    }
}

impl<R, F, I, BT> TernaryBackend for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn ternary_matmul(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = grad_port;
        ternary_product(
            x,
            weight.trits,
            weight.scale,
            weight.rows,
            weight.cols,
            false,
        )
    }

    fn ternary_matmul_input_grad(
        grad_y: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
    ) -> FloatTensor<Self> {
        ternary_product(
            grad_y,
            weight.trits,
            weight.scale,
            weight.rows,
            weight.cols,
            true,
        )
    }

    fn ternary_embedding(
        ids: IntTensor<Self>,
        weight: TernaryPrimitive<Self>,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = grad_port;
        embedding_kernel::forward::<R>(ids, weight.trits, weight.scale, weight.cols)
    }

    fn ternary_embedding_weight_grad(
        ids: IntTensor<Self>,
        grad: FloatTensor<Self>,
        rows: usize,
    ) -> FloatTensor<Self> {
        embedding_kernel::weight_grad::<R>(ids, grad, rows)
    }

    fn ternary_conv1d(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = grad_port;
        conv1d_kernel::forward::<R>(x, weight.trits, weight.scale, weight.rows, geometry)
    }

    fn ternary_conv1d_input_grad(
        grad_y: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        input_len: usize,
    ) -> FloatTensor<Self> {
        conv1d_kernel::input_grad::<R>(grad_y, weight.trits, weight.scale, geometry, input_len)
    }

    fn denoise_step(
        latent: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        denoise_kernel::forward::<R>(latent, eps, alpha)
    }

    fn ternary_decode_scale(codes: IntTensor<Self>) -> FloatTensor<Self> {
        scale_kernel::decode::<R>(codes, F::dtype())
    }

    fn denoise_step_backward(
        grad: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        denoise_kernel::backward::<R>(grad, alpha)
    }

    fn ternary_update(
        grad: FloatTensor<Self>,
        state: TernaryState<Self>,
        cols: usize,
        hyper: UpdateHyper,
        key: NoiseKey,
    ) -> TernaryState<Self> {
        let (grad, trits) = update_kernel::prepare::<R>(grad, state.trits);
        let (dot, sum_sq) = update_kernel::row_stats::<R>(&grad, &trits);
        let (rms, scale_code) =
            update_kernel::finalize::<R>(&dot, &sum_sq, state.scale_code, cols, hyper, key);
        let (trits, memory) =
            update_kernel::update_words::<R>(&grad, trits, state.memory, rms, hyper, key);
        TernaryState {
            trits,
            memory,
            scale_code,
        }
    }

    fn sync_transfers(device: &Self::Device) {
        let client = <R as cubecl::Runtime>::client(device);
        // The copies run on a communication stream of their own (NCCL on
        // CUDA); make this thread's stream wait for it, then wait for that.
        if <<R as cubecl::Runtime>::Server as cubecl::server::ServerCommunication>::SERVER_COMM_ENABLED {
            client.sync_collective();
        }
        if let Err(e) = cubecl::future::block_on(client.sync()) {
            panic!("device sync after transfers failed: {e:?}");
        }
    }
}
