use burn::{
    config::Config,
    module::Module,
    tensor::{backend::Backend, Tensor, TensorPrimitive},
};

use crate::{
    backend::TernaryBackend,
    error::{or_panic, TernaryError, TernaryResult},
    nn::TernaryWeight,
};

/// Configuration of a [`TernaryScaleTensor`], the ternary linear layer.
#[derive(Config, Debug)]
pub struct TernaryScaleTensorConfig {
    /// Input features (the reduction dimension).
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
}

impl TernaryScaleTensorConfig {
    /// Builds the layer, or says which config value is invalid.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<TernaryScaleTensor<B>> {
        positive("d_input", self.d_input)?;
        positive("d_output", self.d_output)?;
        Ok(TernaryScaleTensor {
            weight: TernaryWeight::init(self.d_output, self.d_input, device),
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// If a dimension is zero (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TernaryScaleTensor<B> {
        or_panic(self.try_init(device))
    }
}

pub(crate) fn positive(key: &str, value: usize) -> TernaryResult<()> {
    if value == 0 {
        Err(TernaryError::config(key, value, "must be at least 1"))
    } else {
        Ok(())
    }
}

/// A ternary linear layer `y = x · Wᵀ` with `W = diag(s) · T`, trits
/// `T ∈ {−1, 0, 1}` and per-row integer-coded scales `s`. No bias, no float
/// parameters; train it with [`TernaryOptimizer`](crate::optim::TernaryOptimizer).
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use burn_ternary::nn::TernaryScaleTensorConfig;
///
/// let device = Default::default();
/// let layer = TernaryScaleTensorConfig::new(20, 8).init::<NdArray>(&device);
/// let x = Tensor::<NdArray, 3>::ones([2, 5, 20], &device);
/// assert_eq!(layer.forward(x).dims(), [2, 5, 8]);
/// ```
#[derive(Module, Debug)]
pub struct TernaryScaleTensor<B: Backend> {
    /// The ternary weight, logical `[d_output, d_input]`.
    pub weight: TernaryWeight<B>,
}

impl<B: TernaryBackend> TernaryScaleTensor<B> {
    /// Applies the layer to `x: [..., d_input]`, giving `[..., d_output]`, or
    /// reports a mismatched last dimension.
    pub fn try_forward<const D: usize>(&self, x: Tensor<B, D>) -> TernaryResult<Tensor<B, D>> {
        let [rows, cols] = self.weight.dims();
        let dims = x.dims();
        if D == 0 || dims[D - 1] != cols {
            return Err(TernaryError::shape(
                "x",
                format!("[..., {cols}] (d_input)"),
                &dims,
            ));
        }
        let m = dims[..D - 1].iter().product();
        let flat = x.reshape([m, cols]).into_primitive().tensor();
        let y = B::ternary_matmul(flat, self.weight.primitive(), self.weight.port());
        let mut out = dims;
        out[D - 1] = rows;
        Ok(Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(y)).reshape(out))
    }

    /// Applies the layer to `x: [..., d_input]`, giving `[..., d_output]`.
    ///
    /// # Panics
    /// If the last dimension of `x` is not `d_input` (the message gives both shapes).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        or_panic(self.try_forward(x))
    }
}
