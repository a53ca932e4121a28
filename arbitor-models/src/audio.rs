//! The audio VQ encoder: audio features to audio-vocabulary logits and codes.

use burn::{
    config::Config,
    module::Module,
    tensor::{activation::gelu, backend::Backend, Int, Tensor},
};
use burn_ternary::{
    nn::{
        TernaryConv1d, TernaryConv1dConfig, TernaryConvTranspose1d, TernaryConvTranspose1dConfig,
        TernaryLinear, TernaryLinearConfig,
    },
    TernaryBackend, TernaryResult,
};

use crate::{
    util::{or_panic, positive, rms_norm, shape_error},
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
            TernaryConv1dConfig::new(c_in, c_out, self.kernel_size)
                .with_stride(self.stride)
                .with_padding(self.kernel_size / 2)
                .try_init(device)
        };
        Ok(AudioVQEncoder {
            conv1: conv(self.in_channels, self.hidden)?,
            conv2: conv(self.hidden, self.hidden)?,
            proj: TernaryLinearConfig::new(self.hidden, self.d_code).try_init(device)?,
            vq: VectorQuantizerConfig::new(self.n_codes, self.d_code)
                .with_commitment(self.commitment)
                .try_init(device)?,
            out_proj: TernaryLinearConfig::new(self.d_code, self.vocab).try_init(device)?,
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
    /// The quantized codes `[batch, frames, d_code]` (straight-through
    /// gradient to the encoder): the input of an [`AudioDecoder`].
    pub quantized: Tensor<B, 3>,
}

/// Audio features `[batch, in_channels, length]` → two strided
/// [`TernaryConv1d`]s (GELU) → `proj` → parameter-free RMS norm scaled to the
/// codebook's RMS → [`VectorQuantizer`] over a ternary codebook → RMS norm →
/// `out_proj` to audio-vocabulary logits.
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
    pub proj: TernaryLinear<B>,
    /// The quantizer and its ternary codebook.
    pub vq: VectorQuantizer<B>,
    /// Projection of the quantized codes to vocabulary logits.
    pub out_proj: TernaryLinear<B>,
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
                                                           // Parameter-free scale matching: z is RMS-normalized and scaled to the
                                                           // codebook's RMS (read without gradient), so every code competes as a
                                                           // nearest neighbour by direction; without it a few large codes take
                                                           // every frame (codebook collapse).
        let codebook_rms = self
            .vq
            .codebook
            .table()
            .detach()
            .powf_scalar(2.0)
            .mean()
            .sqrt()
            .reshape([1, 1, 1]);
        let z = rms_norm(z) * codebook_rms;
        let vq = self.vq.try_forward(z)?;
        Ok(AudioVqOutput {
            logits: self.out_proj.try_forward(rms_norm(vq.quantized.clone()))?,
            indices: vq.indices,
            vq_loss: vq.loss,
            quantized: vq.quantized,
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

/// Configuration of an [`AudioDecoder`], the mirror of an
/// [`AudioVQEncoder`]: the defaults undo the default encoder's `2 × 2`
/// downsampling (16 codes of width 16 back to 16 channels × 64 frames).
#[derive(Config, Debug)]
pub struct AudioDecoderConfig {
    /// Width of the codes it reads.
    #[config(default = 16)]
    pub d_code: usize,
    /// Channels between the two transposed convolutions.
    #[config(default = 32)]
    pub hidden: usize,
    /// Feature channels it reconstructs.
    #[config(default = 16)]
    pub out_channels: usize,
    /// Upsampling factor of each transposed convolution.
    #[config(default = 2)]
    pub stride: usize,
}

impl AudioDecoderConfig {
    /// Builds the decoder, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<AudioDecoder<B>> {
        for (key, value) in [
            ("d_code", self.d_code),
            ("hidden", self.hidden),
            ("out_channels", self.out_channels),
            ("stride", self.stride),
        ] {
            positive(key, value)?;
        }
        // Kernel 2·stride with padding stride/2 (stride even) or kernel
        // stride (odd): each layer multiplies the length by exactly `stride`.
        let (kernel, padding) = if self.stride.is_multiple_of(2) {
            (2 * self.stride, self.stride / 2)
        } else {
            (self.stride, 0)
        };
        let up = |c_in, c_out| {
            TernaryConvTranspose1dConfig::new(c_in, c_out, kernel)
                .with_stride(self.stride)
                .with_padding(padding)
                .try_init(device)
        };
        Ok(AudioDecoder {
            up1: up(self.d_code, self.hidden)?,
            up2: up(self.hidden, self.out_channels)?,
        })
    }

    /// Builds the decoder.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> AudioDecoder<B> {
        or_panic(self.try_init(device))
    }
}

/// Quantized codes `[batch, frames, d_code]` back to features
/// `[batch, out_channels, frames · stride²]`: two ternary
/// [`TernaryConvTranspose1d`] upsamplings with a GELU and a parameter-free
/// RMS norm (over channels) between them. It gives an
/// [`AudioVQEncoder`] a reconstruction target, so its codes must carry the
/// audio.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::audio::AudioDecoderConfig;
///
/// let device = Default::default();
/// let decoder = AudioDecoderConfig::new().init::<Flex>(&device);
/// let features = decoder.forward(Tensor::<Flex, 3>::ones([2, 16, 16], &device));
/// assert_eq!(features.dims(), [2, 16, 64]);
/// ```
#[derive(Module, Debug)]
pub struct AudioDecoder<B: Backend> {
    /// First upsampling, `d_code → hidden`.
    pub up1: TernaryConvTranspose1d<B>,
    /// Second upsampling, `hidden → out_channels`.
    pub up2: TernaryConvTranspose1d<B>,
}

impl<B: TernaryBackend> AudioDecoder<B> {
    /// Decodes `codes: [batch, frames, d_code]`, or reports a width mismatch.
    pub fn try_forward(&self, codes: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        crate::util::check_width("codes", &codes, self.up1.weight.dims()[0])?;
        let h = self.up1.try_forward(codes.swap_dims(1, 2))?;
        let h = gelu(rms_norm(h.swap_dims(1, 2)).swap_dims(1, 2));
        self.up2.try_forward(h)
    }

    /// Decodes `codes: [batch, frames, d_code]`.
    ///
    /// # Panics
    /// If the last dimension of `codes` is not `d_code`.
    pub fn forward(&self, codes: Tensor<B, 3>) -> Tensor<B, 3> {
        or_panic(self.try_forward(codes))
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

    #[test]
    fn decoder_inverts_the_encoder_shape_and_trains_with_it() {
        let device = Default::default();
        let encoder = AudioVQEncoderConfig::new().init::<AD>(&device);
        let decoder = AudioDecoderConfig::new().init::<AD>(&device);
        assert_audit(&decoder, 16 * 32 * 4 + 32 * 16 * 4);
        let features = randn([2, 16, 64], 7);
        let out = encoder.forward(features.clone());
        assert_eq!(out.quantized.dims(), [2, 16, 16]);
        assert_eq!(decoder.forward(out.quantized).dims(), [2, 16, 64]);
        let odd = AudioDecoderConfig::new().with_stride(3).init::<AD>(&device);
        assert_eq!(odd.forward(randn([1, 5, 16], 1)).dims(), [1, 16, 45]);
        train_step(
            decoder,
            |m| {
                let out = encoder.forward(features.clone());
                (m.forward(out.quantized) - features.clone())
                    .powf_scalar(2.0)
                    .mean()
            },
            &[],
        );
        let err = AudioDecoderConfig::new()
            .init::<AD>(&device)
            .try_forward(randn([1, 4, 8], 0))
            .unwrap_err();
        assert!(err.to_string().contains("codes"), "{err}");
    }
}
