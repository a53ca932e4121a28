//! Reference convolution: explicit unfold (im2col) and a dense matmul; the input
//! gradient through Burn's own transposed convolution.

use burn::tensor::{
    backend::Backend,
    module::{conv_transpose1d, unfold4d},
    ops::{ConvTransposeOptions, FloatTensor, UnfoldOptions},
    Tensor,
};

use crate::{
    backend::{Conv1dGeometry, TernaryPrimitive},
    ops::{dense_weight, float, prim},
};

/// `x: [batch, in_channels, length]` to `[batch, in_channels * kernel_size, out_len]`.
fn unfold<B: Backend>(x: Tensor<B, 3>, g: Conv1dGeometry) -> Tensor<B, 3> {
    let [batch, channels, length] = x.dims();
    let options = UnfoldOptions::new([1, g.stride], [0, g.padding], [1, g.dilation]);
    unfold4d(x.reshape([batch, channels, 1, length]), [1, g.kernel_size], options)
}

/// `x: [batch, in_channels, length]` to `[batch, rows, out_len]`.
pub fn forward<B: Backend>(x: FloatTensor<B>, weight: &TernaryPrimitive<B>, g: Conv1dGeometry) -> FloatTensor<B> {
    let columns = unfold(float::<B, 3>(x), g);
    let batch = columns.dims()[0];
    let w = dense_weight(weight).unsqueeze_dim::<3>(0).repeat_dim(0, batch);
    prim(w.matmul(columns))
}

/// `grad_y: [batch, rows, out_len]` to `[batch, in_channels, input_len]`.
pub fn input_grad<B: Backend>(
    grad_y: FloatTensor<B>,
    weight: &TernaryPrimitive<B>,
    g: Conv1dGeometry,
    input_len: usize,
) -> FloatTensor<B> {
    let grad_y = float::<B, 3>(grad_y);
    let w = dense_weight(weight).reshape([weight.rows, g.in_channels, g.kernel_size]);
    // Without output padding the transposed convolution covers every input
    // position the forward pass read; the rest (a tail cut off by the stride)
    // gets zero gradient.
    let options = ConvTransposeOptions::new([g.stride], [g.padding], [0], [g.dilation], 1);
    let mut grad_x = conv_transpose1d(grad_y, w, None, options);
    let produced = grad_x.dims()[2];
    if produced < input_len {
        let [batch, channels, _] = grad_x.dims();
        let pad = Tensor::zeros([batch, channels, input_len - produced], &grad_x.device());
        grad_x = Tensor::cat(vec![grad_x, pad], 2);
    }
    prim(grad_x.narrow(2, 0, input_len))
}

/// `sum_b grad_y[b] · unfold(x)[b]ᵀ`, `[rows, in_channels * kernel_size]`.
pub fn weight_grad<B: Backend>(x: FloatTensor<B>, grad_y: FloatTensor<B>, g: Conv1dGeometry) -> FloatTensor<B> {
    let columns = unfold(float::<B, 3>(x), g);
    let per_sample = float::<B, 3>(grad_y).matmul(columns.swap_dims(1, 2));
    prim(per_sample.sum_dim(0).squeeze_dim::<2>(0))
}
