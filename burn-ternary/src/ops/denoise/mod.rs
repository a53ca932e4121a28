//! Fused denoise step `latent' = (latent − (1 − α)·ε̂) / √α`.

pub(crate) mod backward;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;

use burn::tensor::{Tensor, TensorPrimitive};

use crate::{
    backend::TernaryBackend,
    error::{TernaryError, TernaryResult},
};

/// One denoise step `latent' = (latent − (1 − α)·ε̂) / √α` with one `α` per
/// sample (`alpha: [batch]`; `latent` and `eps` are `[batch, ...]` of the same shape).
///
/// On an autodiff backend the gradients flow to `latent` and `eps`; `alpha`
/// is a schedule constant.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use burn_ternary::ops::denoise::denoise_step;
///
/// let device = Default::default();
/// let latent = Tensor::<NdArray, 3>::ones([2, 4, 4], &device);
/// let eps = Tensor::<NdArray, 3>::zeros([2, 4, 4], &device);
/// let alpha = Tensor::<NdArray, 1>::from_floats([0.25, 1.0], &device);
/// let out = denoise_step(latent, eps, alpha).unwrap();
/// let values = out.into_data().to_vec::<f32>().unwrap();
/// assert_eq!((values[0], values[31]), (2.0, 1.0));
/// ```
pub fn denoise_step<B: TernaryBackend, const D: usize>(
    latent: Tensor<B, D>,
    eps: Tensor<B, D>,
    alpha: Tensor<B, 1>,
) -> TernaryResult<Tensor<B, D>> {
    let dims = latent.dims();
    if eps.dims() != dims {
        return Err(TernaryError::shape(
            "eps",
            format!("{dims:?} (the shape of latent)"),
            &eps.dims(),
        ));
    }
    if alpha.dims()[0] != dims[0] {
        return Err(TernaryError::shape(
            "alpha",
            format!("[{}] (one per sample)", dims[0]),
            &alpha.dims(),
        ));
    }
    let features = dims[1..].iter().product();
    let flat = |t: Tensor<B, D>| t.reshape([dims[0], features]).into_primitive().tensor();
    let out = B::denoise_step(flat(latent), flat(eps), alpha.into_primitive().tensor());
    Ok(Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(out)).reshape(dims))
}
