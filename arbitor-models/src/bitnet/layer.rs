//! [`BitNetDecoderLayer`]: pre-norm attention and MLP with residuals.

use burn::{
    module::Module,
    nn::{RmsNorm, RmsNormConfig},
    tensor::{backend::Backend, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryResult};

use super::{
    attention::BitNetAttention, cache::LayerKv, config::BitNetConfig, mlp::BitNetMlp,
    quant::apply_norm, rope::RotaryTables,
};

/// One decoder layer (transformers' `BitNetDecoderLayer`, same parameter
/// names): `h = x + self_attn(input_layernorm(x))`, then
/// `h + mlp(post_attention_layernorm(h))`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::bitnet::{BitNetConfig, BitNetDecoderLayer, RotaryTables};
///
/// let device = Default::default();
/// let config = BitNetConfig::new(24, 40, 1, 6, 3, 30);
/// let layer = BitNetDecoderLayer::<Flex>::new(&config, &device).unwrap();
/// let rope = RotaryTables::new(config.head_dim(), config.rope_theta, 4, &device);
/// let y = layer.try_forward(Tensor::ones([1, 4, 24], &device), &rope).unwrap();
/// assert_eq!(y.dims(), [1, 4, 24]);
/// ```
#[derive(Module, Debug)]
pub struct BitNetDecoderLayer<B: Backend> {
    /// RMS norm before the attention.
    pub input_layernorm: RmsNorm<B>,
    /// Grouped-query attention.
    pub self_attn: BitNetAttention<B>,
    /// RMS norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// Gated relu² MLP.
    pub mlp: BitNetMlp<B>,
}

impl<B: Backend> BitNetDecoderLayer<B> {
    /// Builds the layer with random ternary weights, or names an invalid config value.
    pub fn new(config: &BitNetConfig, device: &B::Device) -> TernaryResult<Self> {
        let norm = || {
            RmsNormConfig::new(config.hidden_size)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
                .no_grad()
        };
        Ok(Self {
            self_attn: BitNetAttention::new(config, device)?,
            mlp: BitNetMlp::new(config, device)?,
            input_layernorm: norm(),
            post_attention_layernorm: norm(),
        })
    }
}

impl<B: TernaryBackend> BitNetDecoderLayer<B> {
    /// Applies the layer causally to `x: [batch, seq, hidden]` (positions
    /// from 0), or names a width mismatch.
    pub fn try_forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryTables<B>,
    ) -> TernaryResult<Tensor<B, 3>> {
        self.forward_at(x, rope, 0, None)
    }

    /// The layer at positions `start..start + n`, reading and writing `kv`.
    pub(crate) fn forward_at(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryTables<B>,
        start: usize,
        kv: Option<&mut LayerKv<B>>,
    ) -> TernaryResult<Tensor<B, 3>> {
        let attended = self.self_attn.forward_at(
            apply_norm(&self.input_layernorm, x.clone()),
            rope,
            start,
            kv,
        )?;
        let h = x + attended;
        let mlp = self
            .mlp
            .try_forward(apply_norm(&self.post_attention_layernorm, h.clone()))?;
        Ok(h + mlp)
    }
}
