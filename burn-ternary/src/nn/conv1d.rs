//! [`TernaryConv1d`], the ternary counterpart of `burn::nn::conv::Conv1d`.

use burn::{
    config::Config,
    module::{Content, DisplaySettings, Module, ModuleDisplay},
    tensor::{backend::Backend, Tensor},
};

use crate::{
    backend::TernaryBackend,
    error::{or_panic, TernaryResult},
    functional,
    nn::linear::positive,
    types::Conv1dGeometry,
    weight::TernaryWeight,
};

/// Configuration of a [`TernaryConv1d`] (the counterpart of
/// `burn::nn::conv::Conv1dConfig`; no groups, no bias).
///
/// ```
/// use burn::backend::Flex;
/// use burn_ternary::TernaryConv1dConfig;
///
/// let config = TernaryConv1dConfig::new(3, 8, 5).with_stride(2);
/// let conv = config.init::<Flex>(&Default::default());
/// assert_eq!(conv.weight.dims(), [8, 3 * 5]);
/// ```
#[derive(Config, Debug)]
pub struct TernaryConv1dConfig {
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Kernel width.
    pub kernel_size: usize,
    /// Stride.
    #[config(default = "1")]
    pub stride: usize,
    /// Zero padding on each side.
    #[config(default = "0")]
    pub padding: usize,
    /// Dilation.
    #[config(default = "1")]
    pub dilation: usize,
}

impl TernaryConv1dConfig {
    pub(crate) fn geometry(&self) -> TernaryResult<Conv1dGeometry> {
        positive("channels_in", self.channels_in)?;
        positive("channels_out", self.channels_out)?;
        positive("kernel_size", self.kernel_size)?;
        positive("stride", self.stride)?;
        positive("dilation", self.dilation)?;
        Ok(Conv1dGeometry {
            in_channels: self.channels_in,
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        })
    }

    /// Builds the layer, or says which config value is invalid.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<TernaryConv1d<B>> {
        let geometry = self.geometry()?;
        Ok(TernaryConv1d {
            weight: TernaryWeight::init(
                self.channels_out,
                self.channels_in * self.kernel_size,
                device,
            ),
            kernel_size: geometry.kernel_size,
            stride: geometry.stride,
            padding: geometry.padding,
            dilation: geometry.dilation,
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// If a size is zero (the message names the key).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TernaryConv1d<B> {
        or_panic(self.try_init(device))
    }
}

/// A ternary 1-D convolution, `[batch, channels_in, length]` to
/// `[batch, channels_out, out_len]`. The weight is the logical matrix
/// `[channels_out, channels_in * kernel_size]`; the unfold is the op's job
/// ([`functional::conv1d`]).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::TernaryConv1dConfig;
///
/// let device = Default::default();
/// let conv = TernaryConv1dConfig::new(3, 8, 5).with_stride(2).init::<Flex>(&device);
/// let x = Tensor::<Flex, 3>::ones([2, 3, 41], &device);
/// assert_eq!(conv.forward(x).dims(), [2, 8, 19]);
/// println!("{conv}"); // TernaryConv1d {channels_in: 3, channels_out: 8, kernel_size: 5, ...}
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct TernaryConv1d<B: Backend> {
    /// The ternary kernel, logical `[channels_out, channels_in * kernel_size]`.
    pub weight: TernaryWeight<B>,
    /// Kernel width.
    pub kernel_size: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Dilation.
    pub dilation: usize,
}

impl<B: Backend> TernaryConv1d<B> {
    /// The convolution's geometry (input channels from the weight's shape).
    pub fn geometry(&self) -> Conv1dGeometry {
        Conv1dGeometry {
            in_channels: self.weight.dims()[1] / self.kernel_size,
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
}

impl<B: Backend> ModuleDisplay for TernaryConv1d<B> {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let channels_out = self.weight.dims()[0];
        content
            .add("channels_in", &self.geometry().in_channels)
            .add("channels_out", &channels_out)
            .add("kernel_size", &self.kernel_size)
            .add("stride", &self.stride)
            .add("padding", &self.padding)
            .add("dilation", &self.dilation)
            .optional()
    }
}

impl<B: TernaryBackend> TernaryConv1d<B> {
    /// Convolves `x: [batch, channels_in, length]`, or reports a bad shape.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        functional::conv1d(x, &self.weight, self.geometry())
    }

    /// Convolves `x: [batch, channels_in, length]`.
    ///
    /// # Panics
    /// On a channel mismatch or an input shorter than the kernel.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        or_panic(self.try_forward(x))
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn display_shows_the_shape() {
        let conv = TernaryConv1dConfig::new(3, 8, 5)
            .with_padding(2)
            .init::<Flex>(&Default::default());
        let shown = format!("{conv}");
        assert!(
            shown.starts_with(
                "TernaryConv1d {channels_in: 3, channels_out: 8, kernel_size: 5, \
                 stride: 1, padding: 2, dilation: 1"
            ),
            "{shown}"
        );
    }
}
