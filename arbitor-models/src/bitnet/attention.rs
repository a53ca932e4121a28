//! [`BitNetAttention`]: grouped-query causal self-attention with rotary
//! positions, ternary projections and the BitNet sub-norm before `o_proj`.

use burn::{
    module::{Module, Param},
    nn::{RmsNorm, RmsNormConfig},
    tensor::{activation::softmax, backend::Backend, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryLinear, TernaryLinearConfig, TernaryResult};

use super::{
    cache::LayerKv,
    config::BitNetConfig,
    quant::{maybe_quantize, unscale, weight_scales},
    rope::RotaryTables,
};
use crate::util::{check_width, window_mask_after};

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
    /// `o_proj` in this order (transformers' `{q,k,v,o}_proj.weight_scale`),
    /// frozen; each projection's output is divided by its own. Present when
    /// [`BitNetConfig::weight_scales`].
    pub weight_scale: Option<Param<Tensor<B, 1>>>,
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
            weight_scale: weight_scales(4, config.weight_scales, device),
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
        let heads =
            |t: Tensor<B, 3>, count: usize| t.reshape([batch, n, count, hd]).swap_dims(1, 2);
        // q, k and v read the same input, quantized once.
        let xq = maybe_quantize(x, self.quantize_activations);
        let ws = &self.weight_scale;
        let q = unscale(self.q_proj.try_forward(xq.clone())?, ws, 0);
        let k = unscale(self.k_proj.try_forward(xq.clone())?, ws, 1);
        let v = unscale(self.v_proj.try_forward(xq)?, ws, 2);
        let q = rope.apply(heads(q, h), start);
        let k = rope.apply(heads(k, kvh), start);
        let v = heads(v, kvh);
        let (keys, values) = match kv {
            Some(kv) => kv.write(start, k, v),
            None => (k, v),
        };
        let total = keys.dims()[2];
        // Grouped-query attention without copying keys per query head: the
        // `rep` query heads of a group are stacked as rows of one matmul
        // against their shared key/value head (transformers' repeat_kv
        // pairs query head i with key/value head i / rep, as here).
        let rep = h / kvh;
        let q = q.reshape([batch, kvh, rep * n, hd]);
        let mut scores = q
            .matmul(keys.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt());
        if n > 1 {
            // One new position reads every held one: no mask needed.
            let blocked = window_mask_after::<B>(start, n, usize::MAX, &scores.device())
                .equal_elem(0.0)
                .reshape([1, 1, 1, n, total])
                .expand([batch, kvh, rep, n, total])
                .reshape([batch, kvh, rep * n, total]);
            scores = scores.mask_fill(blocked, -1e9);
        }
        let y = softmax(scores, 3)
            .matmul(values)
            .reshape([batch, h, n, hd])
            .swap_dims(1, 2)
            .reshape([batch, n, h * hd]);
        let y = self.attn_sub_norm.forward(y);
        let y = self
            .o_proj
            .try_forward(maybe_quantize(y, self.quantize_activations))?;
        Ok(unscale(y, ws, 3))
    }
}
