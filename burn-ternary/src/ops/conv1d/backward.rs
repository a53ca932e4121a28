//! Autodiff for the ternary convolution and its transpose. The two are each
//! other's input gradient; both share one weight-gradient op.

use burn::{
    backend::autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
        Autodiff,
    },
    tensor::{ops::FloatTensor, TensorMetadata},
};

use crate::{
    backend::TernaryBackend,
    types::{Conv1dGeometry, TernaryPrimitive},
};

#[derive(Debug)]
struct Conv1dBackward;

impl<B: TernaryBackend> Backward<B, 2> for Conv1dBackward {
    type State = (FloatTensor<B>, TernaryPrimitive<B>, Conv1dGeometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_port] = ops.parents;
        let grad_y = grads.consume::<B>(&ops.node);
        let (x, weight, geometry) = ops.state;
        let input_len = x.shape()[2];
        if let Some(node) = node_port {
            grads.register::<B>(
                node.id,
                B::ternary_conv1d_weight_grad(x, grad_y.clone(), geometry),
            );
        }
        if let Some(node) = node_x {
            grads.register::<B>(
                node.id,
                B::ternary_conv1d_input_grad(grad_y, weight, geometry, input_len),
            );
        }
    }
}

pub(crate) fn conv1d<B: TernaryBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: TernaryPrimitive<Autodiff<B, C>>,
    geometry: Conv1dGeometry,
    grad_port: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let inner = weight.into_inner();
    match Conv1dBackward
        .prepare::<C>([x.node.clone(), grad_port.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = B::ternary_conv1d(
                x.primitive.clone(),
                inner.clone(),
                geometry,
                grad_port.primitive,
            );
            prep.finish((x.primitive, inner, geometry), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::ternary_conv1d(
            x.primitive,
            inner,
            geometry,
            grad_port.primitive,
        )),
    }
}

#[derive(Debug)]
struct ConvTranspose1dBackward;

impl<B: TernaryBackend> Backward<B, 2> for ConvTranspose1dBackward {
    type State = (FloatTensor<B>, TernaryPrimitive<B>, Conv1dGeometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_port] = ops.parents;
        let grad_y = grads.consume::<B>(&ops.node);
        let (x, weight, geometry) = ops.state;
        // y = conv1d_input_grad(x, W), so dL/dx = conv1d(dL/dy, W) and
        // dL/dW = conv1d_weight_grad with the roles of input and output swapped.
        if let Some(node) = node_port {
            grads.register::<B>(
                node.id,
                B::ternary_conv1d_weight_grad(grad_y.clone(), x, geometry),
            );
        }
        if let Some(node) = node_x {
            let placeholder = B::float_empty(
                [0, 0].into(),
                &B::float_device(&grad_y),
                grad_y.dtype().into(),
            );
            grads.register::<B>(
                node.id,
                B::ternary_conv1d(grad_y, weight, geometry, placeholder),
            );
        }
    }
}

pub(crate) fn conv_transpose1d<B: TernaryBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: TernaryPrimitive<Autodiff<B, C>>,
    geometry: Conv1dGeometry,
    output_len: usize,
    grad_port: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let inner = weight.into_inner();
    match ConvTranspose1dBackward
        .prepare::<C>([x.node.clone(), grad_port.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = B::ternary_conv_transpose1d(
                x.primitive.clone(),
                inner.clone(),
                geometry,
                output_len,
                grad_port.primitive,
            );
            prep.finish((x.primitive, inner, geometry), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::ternary_conv_transpose1d(
            x.primitive,
            inner,
            geometry,
            output_len,
            grad_port.primitive,
        )),
    }
}
