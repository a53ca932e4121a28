//! `TernaryBackend` for `Autodiff<B>`: each op records its backward pass (see
//! the `backward.rs` beside each op). The `backward.rs` files use only the
//! backend trait and [`crate::types`]; this file uses them, never the reverse.

use burn::{
    backend::autodiff::{checkpoint::strategy::CheckpointStrategy, Autodiff},
    tensor::{
        backend::AutodiffBackend,
        ops::{FloatTensor, IntTensor},
    },
};

use super::{act_quant, conv1d, denoise, embedding, matmul};
use crate::{
    backend::TernaryBackend,
    types::{Conv1dGeometry, ConvEpilogue, NoiseKey, TernaryPrimitive, TernaryState, UpdateHyper},
};

impl<B: TernaryBackend, C: CheckpointStrategy> TernaryBackend for Autodiff<B, C> {
    fn ternary_matmul(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        matmul::backward::forward::<B, C>(x, weight, grad_port)
    }

    fn ternary_embedding(
        ids: IntTensor<Self>,
        weight: TernaryPrimitive<Self>,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        embedding::backward::forward::<B, C>(ids, weight, grad_port)
    }

    fn ternary_conv1d(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        conv1d::backward::conv1d::<B, C>(x, weight, geometry, grad_port)
    }

    /// Inference only: runs the inner backend's fused convolution on the
    /// untracked values; the outputs are constants of the graph.
    fn ternary_conv1d_fused(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        epilogue: ConvEpilogue<FloatTensor<Self>>,
        gelu_copy: bool,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        let inner = <Self as AutodiffBackend>::inner;
        let from_inner = <Self as AutodiffBackend>::from_inner;
        let (y, activated) = B::ternary_conv1d_fused(
            inner(x),
            weight.into_inner(),
            geometry,
            epilogue.map(inner),
            gelu_copy,
        );
        (from_inner(y), activated.map(from_inner))
    }

    fn ternary_conv_transpose1d(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        output_len: usize,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        conv1d::backward::conv_transpose1d::<B, C>(x, weight, geometry, output_len, grad_port)
    }

    fn denoise_step(
        latent: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        denoise::backward::forward::<B, C>(latent, eps, alpha)
    }

    /// Straight-through: the backward passes the output's gradient to the
    /// input unchanged (BitNet's STE), and the forward is the inner backend's.
    fn quantize_activations(x: FloatTensor<Self>) -> FloatTensor<Self> {
        act_quant::backward::forward::<B, C>(x)
    }

    /// The update is not differentiated: it runs on the inner backend (its
    /// kernels), with the gradient taken off the autodiff graph.
    fn ternary_update(
        grad: FloatTensor<Self>,
        state: TernaryState<Self>,
        cols: usize,
        hyper: UpdateHyper,
        key: NoiseKey,
    ) -> TernaryState<Self> {
        let inner = B::ternary_update(
            Self::inner(grad),
            TernaryState {
                trits: state.trits,
                memory: state.memory,
                scale_code: state.scale_code,
            },
            cols,
            hyper,
            key,
        );
        TernaryState {
            trits: inner.trits,
            memory: inner.memory,
            scale_code: inner.scale_code,
        }
    }

    /// Scales are constants derived from integer codes: decoded on the inner
    /// backend and not tracked.
    fn ternary_decode_scale(codes: IntTensor<Self>) -> FloatTensor<Self> {
        <Self as AutodiffBackend>::from_inner(B::ternary_decode_scale(codes))
    }

    fn sync_transfers(device: &Self::Device) {
        B::sync_transfers(device)
    }
}
