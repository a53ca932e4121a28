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

/// The fused forward convolution as a composition of Burn ops (see
/// [`crate::TernaryBackend::ternary_conv1d_fused`]): [`forward`], then the
/// `epilogue`, then, if `gelu_copy`, also `gelu` of the result. Returns
/// `(y, gelu(y))`.
pub fn fused_forward<B: Backend>(
    x: FloatTensor<B>,
    weight: &TernaryPrimitive<B>,
    g: Conv1dGeometry,
    epilogue: crate::types::ConvEpilogue<FloatTensor<B>>,
    gelu_copy: bool,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    use crate::types::ConvEpilogue;
    let y = float::<B, 3>(forward::<B>(x, weight, g));
    let [batch, rows, out_len] = y.dims();
    let y = match epilogue {
        ConvEpilogue::Plain => y,
        ConvEpilogue::AddContext { context, step } => {
            let context = float::<B, 3>(context).narrow(0, step, 1);
            y + context.reshape([batch, rows, 1])
        }
        ConvEpilogue::AddResidual(residual) => y + float::<B, 3>(residual),
        ConvEpilogue::DenoiseStep { latent, alpha } => {
            let flat = |t: Tensor<B, 3>| prim(t.reshape([batch, rows * out_len]));
            let latent = flat(float::<B, 3>(latent));
            let next = crate::ops::denoise::reference::forward::<B>(latent, flat(y), alpha);
            float::<B, 2>(next).reshape([batch, rows, out_len])
        }
    };
    let activated = gelu_copy.then(|| prim(burn::tensor::activation::gelu(y.clone())));
    (prim(y), activated)
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
