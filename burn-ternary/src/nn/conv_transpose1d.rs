use burn::{
    config::Config,
    module::Module,
    tensor::{backend::Backend, Tensor, TensorPrimitive},
};

use crate::{
    backend::{Conv1dGeometry, TernaryBackend},
    error::{or_panic, TernaryError, TernaryResult},
    nn::{linear::positive, TernaryWeight},
};

/// Configuration of a [`TernaryConvTranspose1d`].
#[derive(Config, Debug)]
pub struct TernaryConvTranspose1dConfig {
    /// `[in_channels, out_channels]`.
    pub channels: [usize; 2],
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
        positive("channels[0]", self.channels[0])?;
        positive("channels[1]", self.channels[1])?;
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
                self.channels[0],
                self.channels[1] * self.kernel_size,
                device,
            ),
            out_channels: self.channels[1],
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
/// `[batch, in_channels, length]` to `[batch, out_channels, out_len]` with
/// `out_len = (length − 1)·stride − 2·padding + dilation·(kernel_size − 1) + padding_out + 1`.
/// The weight is the logical matrix `[in_channels, out_channels * kernel_size]`.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use burn_ternary::nn::TernaryConvTranspose1dConfig;
///
/// let device = Default::default();
/// let up = TernaryConvTranspose1dConfig::new([8, 4], 4).with_stride(2).with_padding(1).init::<NdArray>(&device);
/// let x = Tensor::<NdArray, 3>::ones([1, 8, 10], &device);
/// assert_eq!(up.forward(x).dims(), [1, 4, 20]);
/// ```
#[derive(Module, Debug)]
pub struct TernaryConvTranspose1d<B: Backend> {
    /// The ternary kernel, logical `[in_channels, out_channels * kernel_size]`.
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

impl<B: TernaryBackend> TernaryConvTranspose1d<B> {
    /// Output length for an input of `length` positions, if positive.
    pub fn output_len(&self, length: usize) -> Option<usize> {
        let full = (length.checked_sub(1)?) * self.stride
            + self.dilation * (self.kernel_size - 1)
            + self.padding_out
            + 1;
        full.checked_sub(2 * self.padding).filter(|len| *len > 0)
    }

    /// Upsamples `x: [batch, in_channels, length]`, or reports a bad shape.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let dims = x.dims();
        let in_channels = self.weight.dims()[0];
        if dims[1] != in_channels {
            return Err(TernaryError::shape(
                "x",
                format!("[batch, {in_channels}, length]"),
                &dims,
            ));
        }
        let output_len = self.output_len(dims[2]).ok_or_else(|| {
            TernaryError::shape("x", "a length giving a positive output length", &dims)
        })?;
        let geometry = Conv1dGeometry {
            in_channels: self.out_channels,
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        };
        let y = B::ternary_conv_transpose1d(
            x.into_primitive().tensor(),
            self.weight.primitive(),
            geometry,
            output_len,
            self.weight.port(),
        );
        Ok(Tensor::from_primitive(TensorPrimitive::Float(y)))
    }

    /// Upsamples `x: [batch, in_channels, length]`.
    ///
    /// # Panics
    /// On a channel mismatch or an empty output.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        or_panic(self.try_forward(x))
    }
}
