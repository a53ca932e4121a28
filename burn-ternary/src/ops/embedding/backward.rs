//! Autodiff for the packed embedding gather: the table gradient (a scatter-add)
//! is registered on the table's port; ids carry no gradient.

use burn::{
    backend::autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
        Autodiff,
    },
    tensor::ops::{FloatTensor, IntTensor},
};

use crate::{backend::TernaryBackend, types::TernaryPrimitive};

#[derive(Debug)]
struct EmbeddingBackward;

impl<B: TernaryBackend> Backward<B, 1> for EmbeddingBackward {
    type State = (IntTensor<B>, usize);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_port] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (ids, rows) = ops.state;
        if let Some(node) = node_port {
            grads.register::<B>(node.id, B::ternary_embedding_weight_grad(ids, grad, rows));
        }
    }
}

pub(crate) fn forward<B: TernaryBackend, C: CheckpointStrategy>(
    ids: IntTensor<Autodiff<B, C>>,
    weight: TernaryPrimitive<Autodiff<B, C>>,
    grad_port: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let inner = weight.into_inner();
    let rows = inner.rows;
    match EmbeddingBackward
        .prepare::<C>([grad_port.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = B::ternary_embedding(ids.clone(), inner, grad_port.primitive);
            prep.finish((ids, rows), output)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(B::ternary_embedding(ids, inner, grad_port.primitive))
        }
    }
}
