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

/// Configuration of a [`TernaryConv1d`].
#[derive(Config, Debug)]
pub struct TernaryConv1dConfig {
    /// `[in_channels, out_channels]`.
    pub channels: [usize; 2],
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
        positive("channels[0]", self.channels[0])?;
        positive("channels[1]", self.channels[1])?;
        positive("kernel_size", self.kernel_size)?;
        positive("stride", self.stride)?;
        positive("dilation", self.dilation)?;
        Ok(Conv1dGeometry {
            in_channels: self.channels[0],
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
                self.channels[1],
                self.channels[0] * self.kernel_size,
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

/// A ternary 1-D convolution, `[batch, in_channels, length]` to
/// `[batch, out_channels, out_len]`. The weight is the logical matrix
/// `[out_channels, in_channels * kernel_size]`; the unfold is the op's job.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use burn_ternary::nn::TernaryConv1dConfig;
///
/// let device = Default::default();
/// let conv = TernaryConv1dConfig::new([3, 8], 5).with_stride(2).init::<NdArray>(&device);
/// let x = Tensor::<NdArray, 3>::ones([2, 3, 41], &device);
/// assert_eq!(conv.forward(x).dims(), [2, 8, 19]);
/// ```
#[derive(Module, Debug)]
pub struct TernaryConv1d<B: Backend> {
    /// The ternary kernel, logical `[out_channels, in_channels * kernel_size]`.
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

impl<B: TernaryBackend> TernaryConv1d<B> {
    fn geometry(&self) -> Conv1dGeometry {
        Conv1dGeometry {
            in_channels: self.weight.dims()[1] / self.kernel_size,
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }

    /// Convolves `x: [batch, in_channels, length]`, or reports a bad shape.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let g = self.geometry();
        let dims = x.dims();
        if dims[1] != g.in_channels {
            return Err(TernaryError::shape(
                "x",
                format!("[batch, {}, length]", g.in_channels),
                &dims,
            ));
        }
        if g.output_len(dims[2]).is_none() {
            return Err(TernaryError::shape(
                "x",
                "a length of at least the kernel's reach",
                &dims,
            ));
        }
        let y = B::ternary_conv1d(
            x.into_primitive().tensor(),
            self.weight.primitive(),
            g,
            self.weight.port(),
        );
        Ok(Tensor::from_primitive(TensorPrimitive::Float(y)))
    }

    /// Convolves `x: [batch, in_channels, length]`.
    ///
    /// # Panics
    /// On a channel mismatch or an input shorter than the kernel.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        or_panic(self.try_forward(x))
    }
}
