//! [`TernaryBackend`] for Burn's CubeCL backends (CUDA and WGPU): the ops with
//! dedicated kernels dispatch to them (each op's `kernel.rs`, next to its
//! reference implementation); the dense weight gradients (`grad_yᵀ · x` of
//! the matmul and of the convolution) keep the reference bodies. The
//! ternary matmul takes the kernel `ops::matmul::route::route` picks.

use burn::tensor::ops::{FloatTensor, IntTensor};
use burn_cubecl::{element::BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};

use crate::{
    backend::TernaryBackend,
    ops::{
        act_quant::kernel as act_quant_kernel,
        attention::{kernel as attention_kernel, reference as attention_reference},
        conv1d::kernel as conv1d_kernel,
        denoise::kernel as denoise_kernel,
        embedding::kernel as embedding_kernel,
        matmul::{launch::product, MatmulPolicy},
        relu2_gate::kernel as relu2_gate_kernel,
        rms_norm::kernel as rms_norm_kernel,
        rope::kernel as rope_kernel,
        scale::kernel as scale_kernel,
        update::kernel as update_kernel,
    },
    types::{Conv1dGeometry, ConvEpilogue, NoiseKey, TernaryPrimitive, TernaryState, UpdateHyper},
};

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
        product(
            x,
            weight.trits,
            weight.scale,
            weight.rows,
            weight.cols,
            false,
            MatmulPolicy::default(),
        )
    }

    fn ternary_matmul_input_grad(
        grad_y: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
    ) -> FloatTensor<Self> {
        product(
            grad_y,
            weight.trits,
            weight.scale,
            weight.rows,
            weight.cols,
            true,
            MatmulPolicy::default(),
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
        conv1d_kernel::forward::<R>(x, weight.trits, weight.scale, weight.rows, geometry, None)
    }

    fn ternary_conv1d_fused(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        epilogue: ConvEpilogue<FloatTensor<Self>>,
        gelu_copy: bool,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        conv1d_kernel::fused_forward::<R>(
            x,
            weight.trits,
            weight.scale,
            weight.rows,
            geometry,
            epilogue,
            gelu_copy,
            None,
        )
    }

    fn ternary_conv1d_input_grad(
        grad_y: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        input_len: usize,
    ) -> FloatTensor<Self> {
        conv1d_kernel::input_grad::<R>(
            grad_y,
            weight.trits,
            weight.scale,
            geometry,
            input_len,
            None,
        )
    }

    fn denoise_step(
        latent: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        denoise_kernel::forward::<R>(latent, eps, alpha)
    }

    fn quantize_activations(x: FloatTensor<Self>) -> FloatTensor<Self> {
        act_quant_kernel::forward::<R>(x)
    }

    fn rms_norm(
        x: FloatTensor<Self>,
        gamma: Option<FloatTensor<Self>>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        rms_norm_kernel::forward::<R>(x, gamma, epsilon)
    }

    fn rotary_embedding(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        start: usize,
    ) -> FloatTensor<Self> {
        rope_kernel::forward::<R>(x, cos, sin, start)
    }

    fn causal_attention(
        q: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        start: usize,
        scale: f64,
    ) -> FloatTensor<Self> {
        if q.meta.shape()[3] <= attention_kernel::MAX_HEAD_DIM {
            attention_kernel::forward::<R>(q, keys, values, start, scale)
        } else {
            attention_reference::forward::<Self>(q, keys, values, start, scale)
        }
    }

    fn relu2_gate(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        relu2_gate_kernel::forward::<R>(gate, up)
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
