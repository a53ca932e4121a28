//! [`TernaryConvTranspose1d`], the ternary counterpart of
//! `burn::nn::conv::ConvTranspose1d`.

use burn::{
    config::Config,
    module::{Content, DisplaySettings, Module, ModuleDisplay},
    tensor::{backend::Backend, Tensor},
};

use crate::{
    backend::TernaryBackend,
    error::{or_panic, TernaryError, TernaryResult},
    functional,
    nn::linear::positive,
    types::Conv1dGeometry,
    weight::TernaryWeight,
};

/// Configuration of a [`TernaryConvTranspose1d`] (the counterpart of
/// `burn::nn::conv::ConvTranspose1dConfig`; no groups, no bias).
///
/// ```
/// use burn::backend::Flex;
/// use burn_ternary::TernaryConvTranspose1dConfig;
///
/// let config = TernaryConvTranspose1dConfig::new(8, 4, 4).with_stride(2).with_padding(1);
/// let up = config.init::<Flex>(&Default::default());
/// assert_eq!(up.weight.dims(), [8, 4 * 4]);
/// ```
#[derive(Config, Debug)]
pub struct TernaryConvTranspose1dConfig {
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Kernel width.
    pub kernel_size: usize,
    /// Stride (the upsampling factor).
    #[config(default = "1")]
    pub stride: usize,
    /// Padding removed from each side of the output.
    #[config(default = "0")]
    pub padding: usize,
    /// Dilation.
    #[config(default = "1")]
    pub dilation: usize,
    /// Extra positions added to the end of the output (less than `stride`).
    #[config(default = "0")]
    pub padding_out: usize,
}

impl TernaryConvTranspose1dConfig {
    /// Builds the layer, or says which config value is invalid.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> TernaryResult<TernaryConvTranspose1d<B>> {
        positive("channels_in", self.channels_in)?;
        positive("channels_out", self.channels_out)?;
        positive("kernel_size", self.kernel_size)?;
        positive("stride", self.stride)?;
        positive("dilation", self.dilation)?;
        if self.padding_out >= self.stride {
            return Err(TernaryError::config(
                "padding_out",
                self.padding_out,
                "must be smaller than stride",
            ));
        }
        Ok(TernaryConvTranspose1d {
            weight: TernaryWeight::init(
                self.channels_in,
                self.channels_out * self.kernel_size,
                device,
            ),
            out_channels: self.channels_out,
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            padding_out: self.padding_out,
        })
    }

    /// Builds the layer.
    ///
    /// # Panics
    /// If a size is zero or `padding_out >= stride` (the message names the key).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TernaryConvTranspose1d<B> {
        or_panic(self.try_init(device))
    }
}

/// A ternary transposed 1-D convolution (learned upsampling),
/// `[batch, channels_in, length]` to `[batch, channels_out, out_len]` with
/// `out_len = (length − 1)·stride − 2·padding + dilation·(kernel_size − 1) + padding_out + 1`.
/// The weight is the logical matrix `[channels_in, channels_out * kernel_size]`;
/// the forward pass is [`functional::conv_transpose1d`].
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::TernaryConvTranspose1dConfig;
///
/// let device = Default::default();
/// let up = TernaryConvTranspose1dConfig::new(8, 4, 4)
///     .with_stride(2)
///     .with_padding(1)
///     .init::<Flex>(&device);
/// let x = Tensor::<Flex, 3>::ones([1, 8, 10], &device);
/// assert_eq!(up.forward(x).dims(), [1, 4, 20]);
/// println!("{up}"); // TernaryConvTranspose1d {channels_in: 8, channels_out: 4, kernel_size: 4, ...}
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct TernaryConvTranspose1d<B: Backend> {
    /// The ternary kernel, logical `[channels_in, channels_out * kernel_size]`.
    pub weight: TernaryWeight<B>,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel width.
    pub kernel_size: usize,
    /// Stride.
    pub stride: usize,
    /// Padding removed from each side of the output.
    pub padding: usize,
    /// Dilation.
    pub dilation: usize,
    /// Extra positions at the end of the output.
    pub padding_out: usize,
}

impl<B: Backend> TernaryConvTranspose1d<B> {
    /// The geometry of the convolution this layer transposes
    /// (`in_channels` is this layer's *output* channel count).
    pub fn geometry(&self) -> Conv1dGeometry {
        Conv1dGeometry {
            in_channels: self.out_channels,
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }

    /// Output length for an input of `length` positions, if positive.
    pub fn output_len(&self, length: usize) -> Option<usize> {
        self.geometry()
            .transposed_output_len(length, self.padding_out)
    }
}

impl<B: Backend> ModuleDisplay for TernaryConvTranspose1d<B> {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let channels_in = self.weight.dims()[0];
        content
            .add("channels_in", &channels_in)
            .add("channels_out", &self.out_channels)
            .add("kernel_size", &self.kernel_size)
            .add("stride", &self.stride)
            .add("padding", &self.padding)
            .add("dilation", &self.dilation)
            .add("padding_out", &self.padding_out)
            .optional()
    }
}

impl<B: TernaryBackend> TernaryConvTranspose1d<B> {
    /// Upsamples `x: [batch, channels_in, length]`, or reports a bad shape.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        functional::conv_transpose1d(x, &self.weight, self.geometry(), self.padding_out)
    }

    /// Upsamples `x: [batch, channels_in, length]`.
    ///
    /// # Panics
    /// On a channel mismatch or an empty output.
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
        let up = TernaryConvTranspose1dConfig::new(8, 4, 4)
            .with_stride(2)
            .init::<Flex>(&Default::default());
        let shown = format!("{up}");
        assert!(
            shown.starts_with(
                "TernaryConvTranspose1d {channels_in: 8, channels_out: 4, kernel_size: 4, \
                 stride: 2, padding: 0, dilation: 1, padding_out: 0"
            ),
            "{shown}"
        );
    }
}
