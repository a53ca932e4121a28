//! [`BitNetAttention`]: grouped-query causal self-attention with rotary
//! positions, ternary projections and the BitNet sub-norm before `o_proj`.

use burn::{
    module::Module,
    nn::{RmsNorm, RmsNormConfig},
    tensor::{backend::Backend, Tensor},
};
use burn_ternary::{
    functional::causal_attention, TernaryBackend, TernaryLinear, TernaryLinearConfig, TernaryResult,
};

use super::{
    cache::LayerKv,
    config::BitNetConfig,
    quant::{apply_norm_of_scaled, maybe_quantize},
    rope::RotaryTables,
};
use crate::util::check_width;

/// The attention of one BitNet decoder layer (transformers'
/// `BitNetAttention`, same parameter names): `o_proj(attn_sub_norm(attn))`
/// where `attn` is causal softmax attention of the rotated queries over the
/// rotated keys, each group of `num_attention_heads / num_key_value_heads`
/// query heads sharing one key/value head. No biases.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::bitnet::{BitNetAttention, BitNetConfig, RotaryTables};
///
/// let device = Default::default();
/// let config = BitNetConfig::new(24, 40, 1, 6, 2, 30);
/// let attention = BitNetAttention::<Flex>::new(&config, &device).unwrap();
/// let rope = RotaryTables::new(config.head_dim(), config.rope_theta, 5, &device);
/// let y = attention.try_forward(Tensor::ones([2, 5, 24], &device), &rope).unwrap();
/// assert_eq!(y.dims(), [2, 5, 24]);
/// ```
#[derive(Module, Debug)]
pub struct BitNetAttention<B: Backend> {
    /// Query projection `[heads · head_dim, hidden]`.
    pub q_proj: TernaryLinear<B>,
    /// Key projection `[kv_heads · head_dim, hidden]`.
    pub k_proj: TernaryLinear<B>,
    /// Value projection `[kv_heads · head_dim, hidden]`.
    pub v_proj: TernaryLinear<B>,
    /// Output projection `[hidden, heads · head_dim]`.
    pub o_proj: TernaryLinear<B>,
    /// RMS norm of the attention output before `o_proj`.
    pub attn_sub_norm: RmsNorm<B>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Whether the projections' inputs are quantized to int8 per token.
    pub quantize_activations: bool,
    /// Upstream's per-tensor float scales of `q_proj`, `k_proj`, `v_proj`,
    /// `o_proj` (transformers' `weight_scale`; each projection's output is
    /// divided by its own), from [`BitNetConfig::weight_scales`]; `None`:
    /// none. Folded into host scalars: `q`'s and `k`'s into the softmax
    /// scale, `v`'s into the sub-norm's epsilon, only `o`'s costs a kernel.
    #[module(skip)]
    pub weight_scale: Option<[f32; 4]>,
}

impl<B: Backend> BitNetAttention<B> {
    /// Builds the layer with random ternary weights (the config is validated
    /// by [`BitNetConfig::try_init`]; this checks it again).
    pub fn new(config: &BitNetConfig, device: &B::Device) -> TernaryResult<Self> {
        config.validate()?;
        let (d, hd) = (config.hidden_size, config.head_dim());
        let q = config.num_attention_heads * hd;
        let kv = config.num_key_value_heads * hd;
        Ok(Self {
            q_proj: TernaryLinearConfig::new(d, q).try_init(device)?,
            k_proj: TernaryLinearConfig::new(d, kv).try_init(device)?,
            v_proj: TernaryLinearConfig::new(d, kv).try_init(device)?,
            o_proj: TernaryLinearConfig::new(q, d).try_init(device)?,
            attn_sub_norm: RmsNormConfig::new(q)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
                .no_grad(),
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: hd,
            quantize_activations: config.quantize_activations,
            weight_scale: None,
        })
    }
}

impl<B: TernaryBackend> BitNetAttention<B> {
    /// Attends causally over `x: [batch, seq, hidden]` (positions from 0),
    /// or names a width mismatch; `rope` must cover `seq` positions.
    pub fn try_forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryTables<B>,
    ) -> TernaryResult<Tensor<B, 3>> {
        self.forward_at(x, rope, 0, None)
    }

    /// Attends from the positions `start..start + n` of `x: [batch, n,
    /// hidden]` to themselves (causally) and, with `kv`, to the positions
    /// before `start` that it holds; writes the new keys and values into it.
    pub(crate) fn forward_at(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryTables<B>,
        start: usize,
        kv: Option<&mut LayerKv<B>>,
    ) -> TernaryResult<Tensor<B, 3>> {
        let [_, hidden] = self.q_proj.weight.dims();
        check_width("x", &x, hidden)?;
        let [batch, n, _] = x.dims();
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        // Token-major `[batch, n, heads, head_dim]`, rotated there (one
        // contiguous pass); keys and values are cached head-major.
        let tokens = |t: Tensor<B, 3>, count: usize| t.reshape([batch, n, count, hd]);
        // q, k and v read the same input, quantized once.
        let xq = maybe_quantize(x, self.quantize_activations);
        let q = rope.apply(tokens(self.q_proj.try_forward(xq.clone())?, h), start);
        let k = rope
            .apply(tokens(self.k_proj.try_forward(xq.clone())?, kvh), start)
            .swap_dims(1, 2);
        let v = tokens(self.v_proj.try_forward(xq)?, kvh).swap_dims(1, 2);
        let (keys, values) = match kv {
            Some(kv) => kv.write(start, k, v),
            None => (k, v),
        };
        let [sq, sk, sv, so] = self.weight_scale.unwrap_or([1.0; 4]).map(f64::from);
        // Query head i reads key/value head i / (h / kvh), as transformers'
        // repeat_kv pairs them. q and k are unscaled: their upstream scales
        // divide the logits, with the 1/√head_dim.
        let y = causal_attention(q, keys, values, start, 1.0 / ((hd as f64).sqrt() * sq * sk))
            .reshape([batch, n, h * hd]);
        // v is unscaled too: y is sv times upstream's, which the sub-norm's
        // epsilon absorbs.
        let y = apply_norm_of_scaled(&self.attn_sub_norm, y, sv);
        let y = self
            .o_proj
            .try_forward(maybe_quantize(y, self.quantize_activations))?;
        Ok(match self.weight_scale {
            Some(_) => y.div_scalar(so),
            None => y,
        })
    }
}
