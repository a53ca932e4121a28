//! Reference denoise step composed of Burn element-wise ops.

use burn::tensor::{backend::Backend, ops::FloatTensor, Tensor};

use crate::ops::{float, prim};

fn alpha_column<B: Backend>(alpha: FloatTensor<B>) -> Tensor<B, 2> {
    let alpha = float::<B, 1>(alpha);
    let batch = alpha.dims()[0];
    alpha.reshape([batch, 1])
}

/// `(latent − (1 − α)·eps) / √α` on `[batch, features]`, `alpha: [batch]`.
pub fn forward<B: Backend>(
    latent: FloatTensor<B>,
    eps: FloatTensor<B>,
    alpha: FloatTensor<B>,
) -> FloatTensor<B> {
    let alpha = alpha_column::<B>(alpha);
    let one_minus = alpha.clone().neg() + 1.0;
    prim((float::<B, 2>(latent) - float::<B, 2>(eps) * one_minus) / alpha.sqrt())
}

/// `(grad / √α, −grad · (1 − α) / √α)`.
pub fn backward<B: Backend>(
    grad: FloatTensor<B>,
    alpha: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let alpha = alpha_column::<B>(alpha);
    let grad_latent = float::<B, 2>(grad) / alpha.clone().sqrt();
    let grad_eps = grad_latent.clone() * (alpha - 1.0);
    (prim(grad_latent), prim(grad_eps))
}
