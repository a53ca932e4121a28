//! Reference RMS normalization: Burn tensor ops, in the order of Burn's
//! `RmsNorm::forward`.

use burn::tensor::{backend::Backend, ops::FloatTensor};

use crate::ops::{float, prim};

/// `x: [rows, cols]` to `x / sqrt(mean_c(x²) + epsilon)`, times `gamma:
/// [cols]` when given.
pub fn forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: Option<FloatTensor<B>>,
    epsilon: f64,
) -> FloatTensor<B> {
    let x = float::<B, 2>(x);
    let rms = (x.clone().square().mean_dim(1) + epsilon).sqrt();
    let y = x / rms;
    prim(match gamma {
        Some(gamma) => y * float::<B, 1>(gamma).unsqueeze::<2>(),
        None => y,
    })
}
