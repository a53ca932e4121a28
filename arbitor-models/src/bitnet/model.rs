//! [`BitNetModel`] (embeddings, decoder layers, final norm) and
//! [`BitNetForCausalLM`] (plus the output projection), with the full causal
//! forward and the cached incremental one.

use burn::{
    module::Module,
    nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig},
    tensor::{backend::Backend, Int, Tensor},
};
use burn_ternary::{packing::trit_words, TernaryBackend, TernaryLinear, TernaryResult};

use super::{
    cache::BitNetCache, config::BitNetConfig, layer::BitNetDecoderLayer, quant::apply_norm,
    rope::RotaryTables,
};
use crate::util::{check_ids, or_panic, shape_error};

/// The decoder stack (transformers' `BitNetModel`, same parameter names):
/// token embeddings, the decoder layers, the final RMS norm.
#[derive(Module, Debug)]
pub struct BitNetModel<B: Backend> {
    /// Token embeddings `[vocab_size, hidden_size]`: float, as upstream, and
    /// frozen (no ternary optimizer trains them).
    pub embed_tokens: Embedding<B>,
    /// The decoder layers.
    pub layers: Vec<BitNetDecoderLayer<B>>,
    /// RMS norm after the last layer.
    pub norm: RmsNorm<B>,
}

/// A BitNet b1.58 causal language model shaped like transformers'
/// `BitNetForCausalLM` (model_type `"bitnet"`), with its parameter paths
/// (`model.embed_tokens`, `model.layers.N.self_attn.q_proj`, …, `model.norm`,
/// `lm_head`): a Llama-style decoder with rotary positions, grouped-query
/// attention, RMS norms, sub-norms before `o_proj` and `down_proj`, a gated
/// relu² MLP, no biases.
///
/// The seven projections of every layer are burn-ternary
/// [`TernaryLinear`]s (packed trits, integer-coded row scales), their inputs
/// quantized per token to int8 by absmax
/// ([`quantize_activations`](super::quantize_activations)) unless
/// [`BitNetConfig::quantize_activations`] is off. As upstream, the token
/// embedding (and the output projection, which is the embedding's
/// transpose when `tie_word_embeddings`, else a float `lm_head`) and the
/// norms' gains are float and built frozen (`no_grad`): training updates the
/// ternary projections only, as upstream BitNet fine-tuning does.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use arbitor_models::bitnet::{BitNetCache, BitNetConfig};
///
/// let device = Default::default();
/// let config = BitNetConfig::new(32, 48, 2, 4, 2, 50);
/// let model = config.init::<Flex>(&device);
/// let ids = Tensor::<Flex, 2, Int>::from_ints([[1, 2, 3], [4, 5, 49]], &device);
/// assert_eq!(model.try_forward(ids.clone()).unwrap().dims(), [2, 3, 50]);
/// let mut cache = BitNetCache::new(&config, 2, 8, &device).unwrap();
/// let logits = model.try_forward_cached(ids, &mut cache).unwrap();
/// assert_eq!((logits.dims(), cache.len()), ([2, 3, 50], 3));
/// ```
#[derive(Module, Debug)]
pub struct BitNetForCausalLM<B: Backend> {
    /// The decoder stack.
    pub model: BitNetModel<B>,
    /// The output projection when the embeddings are not tied (float, no bias).
    pub lm_head: Option<Linear<B>>,
    /// The shape it was built from.
    #[module(skip)]
    pub config: BitNetConfig,
}

impl<B: Backend> BitNetForCausalLM<B> {
    /// Builds the model of a validated `config` with random weights: ternary
    /// projections drawn on the device ([`TernaryLinear`]'s init, one layer
    /// at a time), embeddings `N(0, 0.02²)` as transformers initializes them,
    /// the upstream scales of [`BitNetConfig::weight_scales`] if any.
    pub(crate) fn from_config(config: &BitNetConfig, device: &B::Device) -> TernaryResult<Self> {
        let init = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let mut layers = (0..config.num_hidden_layers)
            .map(|_| BitNetDecoderLayer::new(config, device))
            .collect::<TernaryResult<Vec<_>>>()?;
        if let Some(scales) = &config.weight_scales {
            for (layer, s) in layers.iter_mut().zip(scales.chunks_exact(7)) {
                layer.self_attn.weight_scale = Some([s[0], s[1], s[2], s[3]]);
                layer.mlp.weight_scale = Some([s[4], s[5], s[6]]);
            }
        }
        Ok(Self {
            model: BitNetModel {
                embed_tokens: EmbeddingConfig::new(config.vocab_size, config.hidden_size)
                    .with_initializer(init.clone())
                    .init(device)
                    .no_grad(),
                layers,
                norm: RmsNormConfig::new(config.hidden_size)
                    .with_epsilon(config.rms_norm_eps)
                    .init(device)
                    .no_grad(),
            },
            lm_head: (!config.tie_word_embeddings).then(|| {
                LinearConfig::new(config.hidden_size, config.vocab_size)
                    .with_bias(false)
                    .with_initializer(init)
                    .init(device)
                    .no_grad()
            }),
            config: config.clone(),
        })
    }

    /// Every ternary projection, layer by layer.
    pub fn ternary_linears(&self) -> Vec<&TernaryLinear<B>> {
        self.model
            .layers
            .iter()
            .flat_map(|l| {
                let (a, m) = (&l.self_attn, &l.mlp);
                [
                    &a.q_proj,
                    &a.k_proj,
                    &a.v_proj,
                    &a.o_proj,
                    &m.gate_proj,
                    &m.up_proj,
                    &m.down_proj,
                ]
            })
            .collect()
    }

    /// Logical ternary weights (the projections' `rows · cols`).
    pub fn ternary_weights(&self) -> usize {
        self.ternary_linears()
            .iter()
            .map(|l| l.weight.dims().iter().product::<usize>())
            .sum()
    }

    /// Bytes of the projections' packed trits (2 bits each, rows padded to
    /// 32-bit words): what a decoding step reads of the ternary weights.
    pub fn packed_trit_bytes(&self) -> usize {
        self.ternary_linears()
            .iter()
            .map(|l| {
                let [rows, cols] = l.weight.dims();
                rows * trit_words(cols) * 4
            })
            .sum()
    }

    /// Float parameters: embeddings, the untied `lm_head` if any, the norms' gains.
    pub fn float_params(&self) -> usize {
        let c = &self.config;
        let norms = c.num_hidden_layers
            * (2 * c.hidden_size + c.num_attention_heads * c.head_dim() + c.intermediate_size)
            + c.hidden_size;
        let head = if c.tie_word_embeddings {
            0
        } else {
            c.vocab_size * c.hidden_size
        };
        c.vocab_size * c.hidden_size + head + norms
    }
}

impl<B: TernaryBackend> BitNetForCausalLM<B> {
    /// Logits `[batch, seq, vocab_size]` of `ids: [batch, seq]` (positions
    /// from 0, causal), or names bad ids: an id ≥ `vocab_size`, or more than
    /// `max_position_embeddings` positions.
    pub fn try_forward(&self, ids: Tensor<B, 2, Int>) -> TernaryResult<Tensor<B, 3>> {
        let [batch, seq] = ids.dims();
        let max = self.config.max_position_embeddings;
        if batch == 0 || seq == 0 || seq > max {
            return Err(shape_error(
                "ids",
                format!("[batch ≥ 1, 1..={max}] (max_position_embeddings)"),
                &[batch, seq],
            ));
        }
        check_ids(&ids, self.config.vocab_size, "ids")?;
        let rope = RotaryTables::new(
            self.config.head_dim(),
            self.config.rope_theta,
            seq,
            &ids.device(),
        );
        let mut h = self.model.embed_tokens.forward(ids);
        for layer in &self.model.layers {
            h = layer.forward_at(h, &rope, 0, None)?;
        }
        Ok(self.logits(h))
    }

    /// Logits of `ids: [batch, seq]`.
    ///
    /// # Panics
    /// On bad ids (the message names them).
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        or_panic(self.try_forward(ids))
    }

    /// Logits `[batch, n, vocab_size]` of the new positions `ids: [batch, n]`
    /// (a prompt, then one id per step) after the positions `cache` holds;
    /// writes their keys and values into `cache`. Equal to the last `n`
    /// positions of [`try_forward`](Self::try_forward) over the whole
    /// sequence. Names `ids` when an id is out of range, the batch differs
    /// from the cache's, or the cache has no room for `n` more positions.
    pub fn try_forward_cached(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut BitNetCache<B>,
    ) -> TernaryResult<Tensor<B, 3>> {
        cache.check_room(ids.dims())?;
        check_ids(&ids, self.config.vocab_size, "ids")?;
        self.forward_cached_trusted(ids, cache)
    }

    /// [`try_forward_cached`](Self::try_forward_cached) for ids the model
    /// produced itself (an argmax or a sample over its vocabulary): their
    /// range is not read back from the device, so decoding steps queue
    /// without waiting for the previous one.
    pub fn forward_cached_trusted(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut BitNetCache<B>,
    ) -> TernaryResult<Tensor<B, 3>> {
        cache.check_room(ids.dims())?;
        let c = &self.config;
        let expected = [c.num_hidden_layers, c.num_key_value_heads, c.head_dim()];
        if cache.model_shape() != expected {
            return Err(shape_error(
                "cache",
                format!("[layers, kv_heads, head_dim] = {expected:?} (the model's)"),
                &cache.model_shape(),
            ));
        }
        let start = cache.len();
        let n = ids.dims()[1];
        let mut h = self.model.embed_tokens.forward(ids);
        for (layer, kv) in self.model.layers.iter().zip(cache.layers.iter_mut()) {
            h = layer.forward_at(h, &cache.rope, start, Some(kv))?;
        }
        cache.advance(n);
        Ok(self.logits(h))
    }

    /// The final norm and the output projection: `[batch, n, vocab_size]`.
    fn logits(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = apply_norm(&self.model.norm, h);
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => {
                let [batch, n, d] = h.dims();
                let table = self.model.embed_tokens.weight.val();
                let vocab = table.dims()[0];
                h.reshape([batch * n, d])
                    .matmul(table.transpose())
                    .reshape([batch, n, vocab])
            }
        }
    }
}
