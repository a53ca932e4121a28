//! [`TernaryLinear`], the ternary counterpart of `burn::nn::Linear`.

use burn::{
    config::Config,
    module::{Content, DisplaySettings, Module, ModuleDisplay},
    tensor::{backend::Backend, Tensor},
};

use crate::{
    backend::TernaryBackend,
    error::{or_panic, TernaryError, TernaryResult},
    functional,
    weight::TernaryWeight,
};

/// Configuration of a [`TernaryLinear`], the ternary linear layer (the
/// counterpart of `burn::nn::LinearConfig`).
///
/// ```
/// use burn::backend::Flex;
/// use burn_ternary::TernaryLinearConfig;
///
/// let layer = TernaryLinearConfig::new(48, 16).init::<Flex>(&Default::default());
/// assert_eq!(layer.weight.dims(), [16, 48]);
/// ```
#[derive(Config, Debug)]
pub struct TernaryLinearConfig {
    /// Input features (the reduction dimension).
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
}

/// Old name of [`TernaryLinearConfig`].
#[deprecated(note = "renamed to TernaryLinearConfig")]
pub type TernaryScaleTensorConfig = TernaryLinearConfig;

impl TernaryLinearConfig {
    /// Builds the layer, or says which config value is invalid.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<TernaryLinear<B>> {
        positive("d_input", self.d_input)?;
        positive("d_output", self.d_output)?;
        Ok(TernaryLinear {
            weight: TernaryWeight::init(self.d_output, self.d_input, device),
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// If a dimension is zero (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TernaryLinear<B> {
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
/// The forward pass is [`functional::linear`].
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::TernaryLinearConfig;
///
/// let device = Default::default();
/// let layer = TernaryLinearConfig::new(20, 8).init::<Flex>(&device);
/// let x = Tensor::<Flex, 3>::ones([2, 5, 20], &device);
/// assert_eq!(layer.forward(x).dims(), [2, 5, 8]);
/// println!("{layer}"); // TernaryLinear {d_input: 20, d_output: 8, params: ...}
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
#[doc(alias = "TernaryScaleTensor")]
pub struct TernaryLinear<B: Backend> {
    /// The ternary weight, logical `[d_output, d_input]`.
    pub weight: TernaryWeight<B>,
}

/// Old name of [`TernaryLinear`].
#[deprecated(note = "renamed to TernaryLinear")]
pub type TernaryScaleTensor<B> = TernaryLinear<B>;

impl<B: Backend> ModuleDisplay for TernaryLinear<B> {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let [d_output, d_input] = self.weight.dims();
        content
            .add("d_input", &d_input)
            .add("d_output", &d_output)
            .optional()
    }
}

impl<B: TernaryBackend> TernaryLinear<B> {
    /// Applies the layer to `x: [..., d_input]`, giving `[..., d_output]`, or
    /// reports a mismatched last dimension.
    pub fn try_forward<const D: usize>(&self, x: Tensor<B, D>) -> TernaryResult<Tensor<B, D>> {
        functional::linear(x, &self.weight)
    }

    /// Applies the layer to `x: [..., d_input]`, giving `[..., d_output]`.
    ///
    /// # Panics
    /// If the last dimension of `x` is not `d_input` (the message gives both shapes).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        or_panic(self.try_forward(x))
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn display_shows_the_shape() {
        let layer = TernaryLinearConfig::new(20, 8).init::<Flex>(&Default::default());
        let shown = format!("{layer}");
        assert!(
            shown.starts_with("TernaryLinear {d_input: 20, d_output: 8"),
            "{shown}"
        );
    }
}
