//! Reference convolution: explicit unfold (im2col) and a dense matmul; the input
//! gradient through Burn's own transposed convolution.

use burn::tensor::{
    backend::Backend,
    module::{conv_transpose1d, unfold4d},
    ops::{ConvTransposeOptions, FloatTensor, PadMode, UnfoldOptions},
    Tensor,
};

use crate::{
    ops::{dense_weight, float, prim},
    types::{Conv1dGeometry, TernaryPrimitive},
};

/// `x: [batch, in_channels, length]` to `[batch, in_channels * kernel_size, out_len]`.
///
/// Without dilation the padding is applied first, so `unfold4d` takes its
/// strided-window route (a view and one copy); with padding it would build
/// an identity kernel and run a convolution, `in_channels · kernel_size`
/// times the work (most of a seed-size VideoHead training step on CUDA).
fn unfold<B: Backend>(x: Tensor<B, 3>, g: Conv1dGeometry) -> Tensor<B, 3> {
    let (x, padding) = if g.dilation == 1 && g.padding > 0 {
        (x.pad([(g.padding, g.padding)], PadMode::Constant(0.0)), 0)
    } else {
        (x, g.padding)
    };
    let [batch, channels, length] = x.dims();
    let options = UnfoldOptions::new([1, g.stride], [0, padding], [1, g.dilation]);
    unfold4d(
        x.reshape([batch, channels, 1, length]),
        [1, g.kernel_size],
        options,
    )
}

/// `x: [batch, in_channels, length]` to `[batch, rows, out_len]`.
pub fn forward<B: Backend>(
    x: FloatTensor<B>,
    weight: &TernaryPrimitive<B>,
    g: Conv1dGeometry,
) -> FloatTensor<B> {
    let columns = unfold(float::<B, 3>(x), g);
    let batch = columns.dims()[0];
    let w = dense_weight(weight)
        .unsqueeze_dim::<3>(0)
        .repeat_dim(0, batch);
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
    // The transposed convolution covers `(out_len − 1)·stride + reach` padded
    // positions; output padding tops that up to the whole padded input (the
    // tail the stride skipped, which gets zero gradient). It is below `stride`.
    let out_len = grad_y.dims()[2];
    let natural = (out_len - 1) * g.stride + g.dilation * (g.kernel_size - 1) + 1;
    let extra = input_len + 2 * g.padding - natural;
    let options = ConvTransposeOptions::new([g.stride], [g.padding], [extra], [g.dilation], 1);
    let grad_x = conv_transpose1d(grad_y, w, None, options);
    prim(grad_x)
}

/// `sum_b grad_y[b] · unfold(x)[b]ᵀ`, `[rows, in_channels * kernel_size]`.
pub fn weight_grad<B: Backend>(
    x: FloatTensor<B>,
    grad_y: FloatTensor<B>,
    g: Conv1dGeometry,
) -> FloatTensor<B> {
    let columns = unfold(float::<B, 3>(x), g);
    let per_sample = float::<B, 3>(grad_y).matmul(columns.swap_dims(1, 2));
    prim(per_sample.sum_dim(0).squeeze_dim::<2>(0))
}
