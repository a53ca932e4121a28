//! Autodiff for the activation quantization: the straight-through estimator
//! of BitNet b1.58 (`x + (quant(x) − x).detach()` upstream), so the gradient
//! of the input is the gradient of the output, unchanged. Composed of Burn's
//! own ops the rounding would pass no gradient at all (Burn's `round` has a
//! zero derivative) and only the row maxima would get one, through the scale.

use burn::{
    backend::autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops},
        Autodiff,
    },
    tensor::ops::FloatTensor,
};

use crate::backend::TernaryBackend;

#[derive(Debug)]
struct StraightThrough;

impl<B: TernaryBackend> Backward<B, 1> for StraightThrough {
    type State = ();

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            grads.register::<B>(node.id, grad);
        }
    }
}

/// The inner backend's quantization (its kernel on CUDA and WGPU), with the
/// straight-through backward.
pub(crate) fn forward<B: TernaryBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    StraightThrough
        .prepare::<C>([x.node.clone()])
        .compute_bound()
        .stateless(B::quantize_activations(x.primitive))
}
