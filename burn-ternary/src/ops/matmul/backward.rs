//! Autodiff for the ternary matmul: `grad_x` by the transposed ternary matmul,
//! the dense `[rows, cols]` weight gradient registered on the weight's port.

use burn::{
    backend::autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
        Autodiff,
    },
    tensor::ops::FloatTensor,
};

use crate::{backend::TernaryBackend, types::TernaryPrimitive};

#[derive(Debug)]
struct MatmulBackward;

impl<B: TernaryBackend> Backward<B, 2> for MatmulBackward {
    type State = (FloatTensor<B>, TernaryPrimitive<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_port] = ops.parents;
        let grad_y = grads.consume::<B>(&ops.node);
        let (x, weight) = ops.state;
        if let Some(node) = node_port {
            grads.register::<B>(node.id, B::ternary_matmul_weight_grad(x, grad_y.clone()));
        }
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::ternary_matmul_input_grad(grad_y, weight));
        }
    }
}

pub(crate) fn forward<B: TernaryBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: TernaryPrimitive<Autodiff<B, C>>,
    grad_port: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let inner = weight.into_inner();
    match MatmulBackward
        .prepare::<C>([x.node.clone(), grad_port.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = B::ternary_matmul(x.primitive.clone(), inner.clone(), grad_port.primitive);
            prep.finish((x.primitive, inner), output)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(B::ternary_matmul(x.primitive, inner, grad_port.primitive))
        }
    }
}
