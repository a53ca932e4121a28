//! Autodiff for the denoise step: gradients for `latent` and `eps`; `alpha`
//! comes from the noise schedule and is treated as a constant.

use burn::{
    backend::autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
        Autodiff,
    },
    tensor::ops::FloatTensor,
};

use crate::backend::TernaryBackend;

#[derive(Debug)]
struct DenoiseBackward;

impl<B: TernaryBackend> Backward<B, 2> for DenoiseBackward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_latent, node_eps] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (grad_latent, grad_eps) = B::denoise_step_backward(grad, ops.state);
        if let Some(node) = node_latent {
            grads.register::<B>(node.id, grad_latent);
        }
        if let Some(node) = node_eps {
            grads.register::<B>(node.id, grad_eps);
        }
    }
}

pub(crate) fn forward<B: TernaryBackend, C: CheckpointStrategy>(
    latent: FloatTensor<Autodiff<B, C>>,
    eps: FloatTensor<Autodiff<B, C>>,
    alpha: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    match DenoiseBackward
        .prepare::<C>([latent.node.clone(), eps.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = B::denoise_step(latent.primitive, eps.primitive, alpha.primitive.clone());
            prep.finish(alpha.primitive, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::denoise_step(
            latent.primitive,
            eps.primitive,
            alpha.primitive,
        )),
    }
}
