//! The audio VQ encoder: audio features to audio-vocabulary logits and codes.

use burn::{
    config::Config,
    module::Module,
    tensor::{activation::gelu, backend::Backend, Int, Tensor},
};
use burn_ternary::{
    nn::{TernaryConv1d, TernaryConv1dConfig, TernaryScaleTensor, TernaryScaleTensorConfig},
    TernaryBackend, TernaryResult,
};

use crate::{
    util::{or_panic, positive, shape_error},
    vocab::AUDIO_VOCAB,
    vq::{VectorQuantizer, VectorQuantizerConfig},
};

/// Configuration of an [`AudioVQEncoder`]. The defaults give the smoke
/// shapes: 16 feature channels × 16 frames in, logits `(1, 4, 289)` and
/// indices `(1, 4)` out.
#[derive(Config, Debug)]
pub struct AudioVQEncoderConfig {
    /// Feature channels of the input (for example mel bins).
    #[config(default = 16)]
    pub in_channels: usize,
    /// Channels of both convolutions.
    #[config(default = 32)]
    pub hidden: usize,
    /// Kernel width of both convolutions (padding is `kernel_size / 2`).
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Stride of each convolution (the encoder downsamples by `stride²`).
    #[config(default = 2)]
    pub stride: usize,
    /// Width of the codes.
    #[config(default = 16)]
    pub d_code: usize,
    /// Codebook size (the payload ids `0..256` of the audio vocabulary).
    #[config(default = 256)]
    pub n_codes: usize,
    /// Output vocabulary ([`AUDIO_VOCAB`] = 289: 256 codes + 33 control tokens).
    #[config(default = "AUDIO_VOCAB")]
    pub vocab: usize,
    /// Commitment weight of the VQ.
    #[config(default = 0.25)]
    pub commitment: f64,
}

impl AudioVQEncoderConfig {
    /// Builds the encoder, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<AudioVQEncoder<B>> {
        for (key, value) in [
            ("in_channels", self.in_channels),
            ("hidden", self.hidden),
            ("kernel_size", self.kernel_size),
            ("stride", self.stride),
            ("d_code", self.d_code),
            ("n_codes", self.n_codes),
            ("vocab", self.vocab),
        ] {
            positive(key, value)?;
        }
        let conv = |c_in, c_out| {
            TernaryConv1dConfig::new([c_in, c_out], self.kernel_size)
                .with_stride(self.stride)
                .with_padding(self.kernel_size / 2)
                .try_init(device)
        };
        Ok(AudioVQEncoder {
            conv1: conv(self.in_channels, self.hidden)?,
            conv2: conv(self.hidden, self.hidden)?,
            proj: TernaryScaleTensorConfig::new(self.hidden, self.d_code).try_init(device)?,
            vq: VectorQuantizerConfig::new(self.n_codes, self.d_code)
                .with_commitment(self.commitment)
                .try_init(device)?,
            out_proj: TernaryScaleTensorConfig::new(self.d_code, self.vocab).try_init(device)?,
        })
    }

    /// Builds the encoder.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> AudioVQEncoder<B> {
        or_panic(self.try_init(device))
    }
}

/// What an [`AudioVQEncoder`] returns.
#[derive(Debug, Clone)]
pub struct AudioVqOutput<B: Backend> {
    /// Audio-vocabulary logits `[batch, frames, vocab]`.
    pub logits: Tensor<B, 3>,
    /// Codebook index per frame, `[batch, frames]`.
    pub indices: Tensor<B, 2, Int>,
    /// VQ codebook + commitment loss, `[1]`.
    pub vq_loss: Tensor<B, 1>,
}

/// Audio features `[batch, in_channels, length]` → two strided
/// [`TernaryConv1d`]s (GELU) → `proj` → [`VectorQuantizer`] over a ternary
/// codebook → `out_proj` to audio-vocabulary logits.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::audio::AudioVQEncoderConfig;
///
/// let device = Default::default();
/// let encoder = AudioVQEncoderConfig::new().init::<Flex>(&device);
/// let out = encoder.forward(Tensor::<Flex, 3>::ones([1, 16, 16], &device));
/// assert_eq!(out.logits.dims(), [1, 4, 289]);
/// assert_eq!(out.indices.dims(), [1, 4]);
/// ```
#[derive(Module, Debug)]
pub struct AudioVQEncoder<B: Backend> {
    /// First strided convolution.
    pub conv1: TernaryConv1d<B>,
    /// Second strided convolution.
    pub conv2: TernaryConv1d<B>,
    /// Projection to the code width.
    pub proj: TernaryScaleTensor<B>,
    /// The quantizer and its ternary codebook.
    pub vq: VectorQuantizer<B>,
    /// Projection of the quantized codes to vocabulary logits.
    pub out_proj: TernaryScaleTensor<B>,
}

impl<B: TernaryBackend> AudioVQEncoder<B> {
    /// Encodes `features: [batch, in_channels, length]`, or reports a bad shape.
    pub fn try_forward(&self, features: Tensor<B, 3>) -> TernaryResult<AudioVqOutput<B>> {
        let in_channels = self.conv1.weight.dims()[1] / self.conv1.kernel_size;
        let dims = features.dims();
        if dims[1] != in_channels {
            return Err(shape_error(
                "features",
                format!("[batch, {in_channels}, length]"),
                &dims,
            ));
        }
        let h = gelu(self.conv1.try_forward(features)?);
        let h = gelu(self.conv2.try_forward(h)?);
        let z = self.proj.try_forward(h.swap_dims(1, 2))?; // [batch, frames, d_code]
        let vq = self.vq.try_forward(z)?;
        Ok(AudioVqOutput {
            logits: self.out_proj.try_forward(vq.quantized)?,
            indices: vq.indices,
            vq_loss: vq.loss,
        })
    }

    /// Encodes `features: [batch, in_channels, length]`.
    ///
    /// # Panics
    /// On a channel mismatch or an input shorter than the kernels.
    pub fn forward(&self, features: Tensor<B, 3>) -> AudioVqOutput<B> {
        or_panic(self.try_forward(features))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::nn::loss::CrossEntropyLossConfig;

    #[test]
    fn default_shapes_audit_and_train_step() {
        let c = AudioVQEncoderConfig::new();
        let encoder = c.init::<AD>(&Default::default());
        let k = c.kernel_size;
        let expected = c.hidden * c.in_channels * k // conv1
            + c.hidden * c.hidden * k // conv2
            + c.d_code * c.hidden // proj
            + c.n_codes * c.d_code // codebook
            + 289 * c.d_code; // out_proj
        assert_eq!(expected, 32 * 48 + 32 * 96 + 512 + 4096 + 289 * 16);
        assert_audit(&encoder, expected);
        let out = encoder.forward(randn([1, 16, 16], 4));
        assert_eq!(out.logits.dims(), [1, 4, 289]);
        assert_eq!(out.indices.dims(), [1, 4]);
        let features = randn([2, 16, 16], 5);
        let targets = random_ids([8], 289, 6);
        train_step(
            encoder,
            |m| {
                let out = m.forward(features.clone());
                let logits = out.logits.reshape([8, 289]);
                CrossEntropyLossConfig::new()
                    .init(&logits.device())
                    .forward(logits, targets.clone())
                    + out.vq_loss
            },
            &[],
        );
    }

    #[test]
    fn wrong_channel_count_is_named() {
        let encoder = AudioVQEncoderConfig::new().init::<AD>(&Default::default());
        let err = encoder.try_forward(randn([1, 8, 16], 0)).unwrap_err();
        assert!(err.to_string().contains("features"), "{err}");
    }
}
