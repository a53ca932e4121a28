//! [`BitNetConfig`], the shape of a BitNet b1.58 decoder under the field
//! names of transformers' `BitNetConfig` (`config.json`).

use burn::{config::Config, tensor::backend::Backend};
use burn_ternary::TernaryResult;

use crate::util::{config_error, or_panic, positive};

use super::model::BitNetForCausalLM;

/// Configuration of a [`BitNetForCausalLM`]: the keys of transformers'
/// `BitNetConfig` (model_type `"bitnet"`; a checkpoint's `config.json` reads
/// into it with [`from_config_json`](Self::from_config_json)), plus
/// `quantize_activations` and `weight_scales` (ours).
///
/// ```
/// use arbitor_models::bitnet::BitNetConfig;
///
/// let big = BitNetConfig::b1_58_2b_4t();
/// assert_eq!((big.hidden_size, big.num_key_value_heads, big.head_dim()), (2560, 5, 128));
/// let tiny = BitNetConfig::new(48, 40, 2, 6, 3, 101);
/// assert_eq!(tiny.head_dim(), 8);
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct BitNetConfig {
    /// Model width (`d_model`).
    pub hidden_size: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention; must divide `num_attention_heads`).
    pub num_key_value_heads: usize,
    /// Token ids are `0..vocab_size`.
    pub vocab_size: usize,
    /// Most positions a sequence (and a cache) may hold.
    #[config(default = 4096)]
    pub max_position_embeddings: usize,
    /// Epsilon of every RMS norm.
    #[config(default = 1e-5)]
    pub rms_norm_eps: f64,
    /// Base of the rotary position embedding's frequencies.
    #[config(default = 500000.0)]
    pub rope_theta: f64,
    /// Whether the output projection is the token embedding's transpose.
    #[config(default = true)]
    pub tie_word_embeddings: bool,
    /// Whether each ternary linear's input is quantized per token to int8 by
    /// absmax, as upstream BitNet does (off: the plain float input).
    #[config(default = true)]
    pub quantize_activations: bool,
    /// Upstream's per-tensor float scales (transformers' `weight_scale`:
    /// a projection computes `x̂ · (T ⊙ 2^(code/16))ᵀ / weight_scale`), seven
    /// per layer in the order `q_proj`, `k_proj`, `v_proj`, `o_proj`,
    /// `gate_proj`, `up_proj`, `down_proj`. Set by checkpoint import
    /// ([`BitNetForCausalLM::from_hf_dir`]); `None` (random initialization)
    /// means none: the integer-coded row scales are the whole scale. Frozen
    /// host constants, not parameters: they ride in the config (keep it
    /// with a saved record) so the forward folds them into host scalars
    /// (see [`hf`](super::hf)).
    #[config(default = "None")]
    pub weight_scales: Option<Vec<f32>>,
}

impl BitNetConfig {
    /// The shape of microsoft/bitnet-b1.58-2B-4T: 30 layers of width 2560,
    /// 20 query and 5 key/value heads of 128, a 6912-wide relu² MLP, a
    /// 128256-token vocabulary with tied embeddings, 4096 positions,
    /// `rope_theta` 500000, `rms_norm_eps` 1e-5. About 2.09 B ternary weights.
    pub fn b1_58_2b_4t() -> Self {
        Self::new(2560, 6912, 30, 20, 5, 128256)
            .with_max_position_embeddings(4096)
            .with_rms_norm_eps(1e-5)
            .with_rope_theta(500000.0)
            .with_tie_word_embeddings(true)
    }

    /// Reads a transformers `config.json` of model_type `"bitnet"`: the shape
    /// keys (`hidden_size`, `intermediate_size`, `num_hidden_layers`,
    /// `num_attention_heads`, `num_key_value_heads`, `vocab_size`) are
    /// required; the others take transformers' `BitNetConfig` defaults when
    /// absent (`max_position_embeddings` 2048, `rms_norm_eps` 1e-5,
    /// `rope_theta` 500000, `tie_word_embeddings` false); other keys are
    /// ignored. `rope_theta` is read from `rope_parameters.rope_theta` (what
    /// transformers 5 writes) or the top-level key (older files). Names a
    /// missing or mistyped key, another `model_type`, a `hidden_act` other
    /// than `"relu2"` or a `rope_parameters.rope_type` other than
    /// `"default"`.
    ///
    /// ```
    /// use arbitor_models::bitnet::BitNetConfig;
    ///
    /// let json = r#"{"model_type": "bitnet", "hidden_act": "relu2", "hidden_size": 2560,
    ///   "intermediate_size": 6912, "num_hidden_layers": 30, "num_attention_heads": 20,
    ///   "num_key_value_heads": 5, "vocab_size": 128256, "max_position_embeddings": 4096,
    ///   "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true}"#;
    /// assert_eq!(BitNetConfig::from_config_json(json).unwrap(), BitNetConfig::b1_58_2b_4t());
    /// ```
    pub fn from_config_json(text: &str) -> TernaryResult<Self> {
        use serde_json::Value;
        let json: Value = serde_json::from_str(text)
            .map_err(|e| config_error("config.json", "(the text)", &e.to_string()))?;
        let field = |key: &str| json.get(key).filter(|v| !v.is_null());
        let bad = |key: &str, wants: &str| {
            config_error(
                key,
                field(key)
                    .map(Value::to_string)
                    .unwrap_or_else(|| "(absent)".into()),
                wants,
            )
        };
        for (key, wanted) in [("model_type", "bitnet"), ("hidden_act", "relu2")] {
            if let Some(value) = field(key)
                && value.as_str() != Some(wanted)
            {
                return Err(bad(key, &format!("must be \"{wanted}\"")));
            }
        }
        let size = |key: &str| {
            field(key)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| bad(key, "a required non-negative integer"))
        };
        let number = |key: &str, default: f64| match field(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| bad(key, "must be a number")),
        };
        let rope = json.get("rope_parameters").filter(|v| !v.is_null());
        if let Some(kind) = rope.and_then(|r| r.get("rope_type"))
            && kind.as_str() != Some("default")
        {
            return Err(config_error(
                "rope_parameters.rope_type",
                kind,
                "must be \"default\" (no rope scaling)",
            ));
        }
        let rope_theta = match rope.and_then(|r| r.get("rope_theta")) {
            Some(v) => v
                .as_f64()
                .ok_or_else(|| config_error("rope_parameters.rope_theta", v, "must be a number"))?,
            None => number("rope_theta", 500000.0)?,
        };
        let mut config = Self::new(
            size("hidden_size")?,
            size("intermediate_size")?,
            size("num_hidden_layers")?,
            size("num_attention_heads")?,
            size("num_key_value_heads")?,
            size("vocab_size")?,
        )
        .with_rms_norm_eps(number("rms_norm_eps", 1e-5)?)
        .with_rope_theta(rope_theta)
        .with_max_position_embeddings(match field("max_position_embeddings") {
            None => 2048,
            Some(_) => size("max_position_embeddings")?,
        });
        config.tie_word_embeddings = match field("tie_word_embeddings") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad("tie_word_embeddings", "must be true or false"))?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Width of one attention head, `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Checks every value, naming the first invalid one.
    pub fn validate(&self) -> TernaryResult<()> {
        positive("hidden_size", self.hidden_size)?;
        positive("intermediate_size", self.intermediate_size)?;
        positive("num_hidden_layers", self.num_hidden_layers)?;
        positive("num_attention_heads", self.num_attention_heads)?;
        positive("num_key_value_heads", self.num_key_value_heads)?;
        positive("vocab_size", self.vocab_size)?;
        positive("max_position_embeddings", self.max_position_embeddings)?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(config_error(
                "num_attention_heads",
                self.num_attention_heads,
                &format!("must divide hidden_size = {}", self.hidden_size),
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(config_error(
                "num_key_value_heads",
                self.num_key_value_heads,
                &format!(
                    "must divide num_attention_heads = {}",
                    self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(config_error(
                "num_attention_heads",
                self.num_attention_heads,
                &format!(
                    "gives an odd head width {} (rotary embeddings rotate pairs)",
                    self.head_dim()
                ),
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Err(config_error(
                "rms_norm_eps",
                self.rms_norm_eps,
                "must be a positive number",
            ));
        }
        if let Some(scales) = &self.weight_scales {
            let wanted = 7 * self.num_hidden_layers;
            if scales.len() != wanted {
                return Err(config_error(
                    "weight_scales",
                    format!("{} values", scales.len()),
                    &format!("must hold 7 per layer, {wanted}"),
                ));
            }
            if let Some(bad) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                return Err(config_error(
                    "weight_scales",
                    bad,
                    "every scale must be a positive finite number",
                ));
            }
        }
        if !(self.rope_theta > 1.0 && self.rope_theta.is_finite()) {
            return Err(config_error(
                "rope_theta",
                self.rope_theta,
                "must be a number above 1",
            ));
        }
        Ok(())
    }

    /// Builds the model with random ternary weights (and a random float
    /// embedding), or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<BitNetForCausalLM<B>> {
        self.validate()?;
        BitNetForCausalLM::from_config(self, device)
    }

    /// Builds the model with random weights.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> BitNetForCausalLM<B> {
        or_panic(self.try_init(device))
    }
}
