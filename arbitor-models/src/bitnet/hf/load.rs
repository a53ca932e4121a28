//! [`BitNetForCausalLM::from_hf_dir`]: a transformers BitNet checkpoint
//! directory into the Burn model (the mapping is in the [module
//! docs](super)).

use std::path::Path;

use burn::{
    module::{Module, Param},
    nn::{EmbeddingConfig, Initializer, LinearConfig, RmsNorm, RmsNormConfig},
    tensor::{backend::Backend, Tensor, TensorData},
};
use burn_ternary::{
    packing::{int_tensor, memory_words, trit_words},
    TernaryLinear, TernaryWeight,
};

use super::{
    checkpoint::Checkpoint,
    convert::{packed_rows, ternarize_absmean, words_from_upstream},
    error::{HfError, HfResult},
};
use crate::bitnet::{
    BitNetAttention, BitNetConfig, BitNetDecoderLayer, BitNetForCausalLM, BitNetMlp, BitNetModel,
};

/// How a checkpoint stores its ternary projections, from `config.json`'s
/// `quantization_config` (transformers' `BitNetQuantConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// `linear_class` `"bitlinear"` (the default; microsoft/bitnet-b1.58-2B-4T):
    /// uint8 `weight` `[out/4, in]` and a float `weight_scale` `[1]`,
    /// dequantized `W = T / weight_scale`.
    Packed,
    /// `linear_class` `"autobitlinear"`, `quantization_mode` `"offline"`:
    /// the packed layout, but dequantized `W = T · weight_scale`.
    PackedMultiplied,
    /// `linear_class` `"autobitlinear"`, `quantization_mode` `"online"`
    /// (microsoft/bitnet-b1.58-2B-4T-bf16): float master `weight` `[out,
    /// in]`, ternarized per tensor by absmean at every forward.
    Latent,
}

impl WeightFormat {
    /// Reads `quantization_config` of a parsed `config.json` (`file` names it
    /// in errors): an absent config, another `quant_method`, an unknown
    /// `linear_class` or `quantization_mode`, `use_rms_norm` or modules other
    /// than `lm_head` left unconverted are errors naming the key.
    ///
    /// ```
    /// use arbitor_models::bitnet::hf::WeightFormat;
    ///
    /// let json = serde_json::json!({"quantization_config": {"quant_method": "bitnet",
    ///     "linear_class": "autobitlinear", "quantization_mode": "online"}});
    /// assert_eq!(WeightFormat::from_config(&json, "config.json").unwrap(), WeightFormat::Latent);
    /// let json = serde_json::json!({"quantization_config": {"quant_method": "bitnet",
    ///     "linear_class": "bitlinear2"}});
    /// let err = WeightFormat::from_config(&json, "config.json").unwrap_err();
    /// assert!(err.to_string().contains("quantization_config.linear_class"));
    /// ```
    pub fn from_config(json: &serde_json::Value, file: &str) -> HfResult<Self> {
        const KEY: &str = "quantization_config";
        let q = json.get(KEY).filter(|v| !v.is_null()).ok_or_else(|| {
            HfError::config(
                file,
                KEY,
                "(absent)",
                "a BitNet quantization config ({\"quant_method\": \"bitnet\", ...}); \
                 an unquantized float BitNet has no ternary weights to import",
            )
        })?;
        let text = |key: &str, default: &str| -> HfResult<String> {
            match q.get(key).filter(|v| !v.is_null()) {
                None => Ok(default.to_string()),
                Some(v) => v
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| HfError::config(file, &format!("{KEY}.{key}"), v, "a string")),
            }
        };
        let method = text("quant_method", "(absent)")?;
        if method != "bitnet" {
            return Err(HfError::config(
                file,
                "quantization_config.quant_method",
                format!("{method:?}"),
                "\"bitnet\"",
            ));
        }
        if let Some(v) = q.get("use_rms_norm")
            && v.as_bool() != Some(false)
            && !v.is_null()
        {
            return Err(HfError::config(
                file,
                "quantization_config.use_rms_norm",
                v,
                "false (a norm inside every BitLinear is not supported)",
            ));
        }
        if let Some(list) = q.get("modules_to_not_convert").filter(|v| !v.is_null()) {
            let only_head = list
                .as_array()
                .is_some_and(|l| l.iter().all(|m| m.as_str() == Some("lm_head")));
            if !only_head {
                return Err(HfError::config(
                    file,
                    "quantization_config.modules_to_not_convert",
                    list,
                    "null or [\"lm_head\"] (every projection must be ternary)",
                ));
            }
        }
        let class = text("linear_class", "bitlinear")?;
        let mode = text("quantization_mode", "offline")?;
        match (class.as_str(), mode.as_str()) {
            ("bitlinear", "offline" | "online") => Ok(Self::Packed),
            ("autobitlinear", "offline") => Ok(Self::PackedMultiplied),
            ("autobitlinear", "online") => Ok(Self::Latent),
            ("bitlinear" | "autobitlinear", _) => Err(HfError::config(
                file,
                "quantization_config.quantization_mode",
                format!("{mode:?}"),
                "\"offline\" or \"online\"",
            )),
            _ => Err(HfError::config(
                file,
                "quantization_config.linear_class",
                format!("{class:?}"),
                "\"bitlinear\" or \"autobitlinear\"",
            )),
        }
    }
}

/// The projections of a layer: upstream name, `[rows, cols]`.
pub(crate) fn projections(c: &BitNetConfig) -> [(&'static str, [usize; 2]); 7] {
    let (d, i) = (c.hidden_size, c.intermediate_size);
    let q = c.num_attention_heads * c.head_dim();
    let kv = c.num_key_value_heads * c.head_dim();
    [
        ("self_attn.q_proj", [q, d]),
        ("self_attn.k_proj", [kv, d]),
        ("self_attn.v_proj", [kv, d]),
        ("self_attn.o_proj", [d, q]),
        ("mlp.gate_proj", [i, d]),
        ("mlp.up_proj", [i, d]),
        ("mlp.down_proj", [d, i]),
    ]
}

/// Reads `dir/config.json` into a model config (its
/// [`BitNetConfig::weight_scales`] are filled from the weights) and the
/// weight format.
pub(crate) fn read_config(dir: &Path) -> HfResult<(BitNetConfig, WeightFormat)> {
    let path = dir.join("config.json");
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| HfError::io(&path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| HfError::Corrupt {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    let format = WeightFormat::from_config(&json, &file)?;
    let config = BitNetConfig::from_config_json(&text)?;
    for key in ["attention_bias", "mlp_bias"] {
        if let Some(v) = json.get(key)
            && v.as_bool() == Some(true)
        {
            return Err(HfError::config(
                &file,
                key,
                v,
                "false (BitNet has no biases)",
            ));
        }
    }
    if let Some(v) = json.get("head_dim").filter(|v| !v.is_null())
        && v.as_u64() != Some(config.head_dim() as u64)
    {
        return Err(HfError::config(
            &file,
            "head_dim",
            v,
            &format!("hidden_size / num_attention_heads = {}", config.head_dim()),
        ));
    }
    Ok((config, format))
}

fn float_tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Builds the model from an open checkpoint.
struct Loader<'a, B: Backend> {
    ckpt: &'a Checkpoint,
    config: &'a BitNetConfig,
    format: WeightFormat,
    device: &'a B::Device,
    /// Whether the projections get their update memory (fine-tuning) or an
    /// empty one (inference).
    update_memory: bool,
}

impl<B: Backend> Loader<'_, B> {
    fn norm(&self, name: &str, width: usize) -> HfResult<RmsNorm<B>> {
        let gain = self.ckpt.floats(&format!("{name}.weight"), &[width])?;
        let mut norm = RmsNormConfig::new(width)
            .with_epsilon(self.config.rms_norm_eps)
            .init(self.device);
        norm.gamma = Param::from_tensor(float_tensor(gain, [width], self.device));
        Ok(norm.no_grad())
    }

    /// One projection: the ternary weight (scale codes 0) and upstream's
    /// per-tensor scale in our convention (`W = T / scale`).
    fn projection(
        &self,
        name: &str,
        [rows, cols]: [usize; 2],
    ) -> HfResult<(TernaryLinear<B>, f32)> {
        let weight_name = format!("{name}.weight");
        let codes = || int_tensor::<B, 1>(vec![0; rows], [rows], self.device);
        match self.format {
            WeightFormat::Packed | WeightFormat::PackedMultiplied => {
                let bytes = self.ckpt.bytes(&weight_name, &[packed_rows(rows), cols])?;
                let words = words_from_upstream(&weight_name, bytes, rows, cols)?;
                let scale_name = format!("{name}.weight_scale");
                let stored = self.ckpt.floats(&scale_name, &[1])?[0];
                if !(stored.is_finite() && stored > 0.0) {
                    return Err(HfError::BadValue {
                        tensor: scale_name,
                        reason: format!("{stored} is not a positive finite scale"),
                    });
                }
                let scale = match self.format {
                    WeightFormat::Packed => stored,
                    _ => 1.0 / stored,
                };
                // No rounding residual is stored: the update memory starts at
                // 0 (and for inference is not allocated at all).
                let memory_words = if self.update_memory {
                    memory_words(cols)
                } else {
                    0
                };
                let weight = TernaryWeight::from_tensors(
                    int_tensor::<B, 2>(words, [rows, trit_words(cols)], self.device),
                    int_tensor::<B, 2>(
                        vec![0; rows * memory_words],
                        [rows, memory_words],
                        self.device,
                    ),
                    codes(),
                    cols,
                );
                Ok((TernaryLinear { weight }, scale))
            }
            WeightFormat::Latent => {
                let w = self.ckpt.floats(&weight_name, &[rows, cols])?;
                let t = ternarize_absmean(&w);
                let weight = TernaryWeight::from_host(
                    &t.trits,
                    &t.memory,
                    &vec![0; rows],
                    rows,
                    cols,
                    self.device,
                )?;
                let weight = if self.update_memory {
                    weight
                } else {
                    weight.without_update_memory()
                };
                Ok((TernaryLinear { weight }, t.scale))
            }
        }
    }

    fn layer(&self, l: usize) -> HfResult<BitNetDecoderLayer<B>> {
        let c = self.config;
        let p = format!("model.layers.{l}");
        let mut linears = Vec::with_capacity(7);
        let mut scales = Vec::with_capacity(7);
        for (name, shape) in projections(c) {
            let (linear, scale) = self.projection(&format!("{p}.{name}"), shape)?;
            linears.push(linear);
            scales.push(scale);
        }
        let mut it = linears.into_iter();
        let mut next = || it.next().expect("seven projections");
        let q_width = c.num_attention_heads * c.head_dim();
        let self_attn = BitNetAttention {
            q_proj: next(),
            k_proj: next(),
            v_proj: next(),
            o_proj: next(),
            attn_sub_norm: self.norm(&format!("{p}.self_attn.attn_sub_norm"), q_width)?,
            num_heads: c.num_attention_heads,
            num_kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim(),
            quantize_activations: c.quantize_activations,
            weight_scale: Some([scales[0], scales[1], scales[2], scales[3]]),
        };
        let mlp = BitNetMlp {
            gate_proj: next(),
            up_proj: next(),
            down_proj: next(),
            ffn_sub_norm: self.norm(&format!("{p}.mlp.ffn_sub_norm"), c.intermediate_size)?,
            quantize_activations: c.quantize_activations,
            weight_scale: Some([scales[4], scales[5], scales[6]]),
        };
        Ok(BitNetDecoderLayer {
            input_layernorm: self.norm(&format!("{p}.input_layernorm"), c.hidden_size)?,
            self_attn,
            post_attention_layernorm: self
                .norm(&format!("{p}.post_attention_layernorm"), c.hidden_size)?,
            mlp,
        })
    }

    fn model(&self) -> HfResult<BitNetForCausalLM<B>> {
        let c = self.config;
        let (vocab, d) = (c.vocab_size, c.hidden_size);
        let table = self.ckpt.floats("model.embed_tokens.weight", &[vocab, d])?;
        let mut embed_tokens = EmbeddingConfig::new(vocab, d)
            .with_initializer(Initializer::Zeros)
            .init(self.device);
        embed_tokens.weight = Param::from_tensor(float_tensor(table, [vocab, d], self.device));
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            let w = self.ckpt.floats("lm_head.weight", &[vocab, d])?;
            let mut head = LinearConfig::new(d, vocab)
                .with_bias(false)
                .with_initializer(Initializer::Zeros)
                .init(self.device);
            // Burn's Linear holds [d_input, d_output]; upstream [vocab, hidden].
            head.weight =
                Param::from_tensor(float_tensor::<B, 2>(w, [vocab, d], self.device).transpose());
            Some(head.no_grad())
        };
        let layers = (0..c.num_hidden_layers)
            .map(|l| self.layer(l))
            .collect::<HfResult<Vec<_>>>()?;
        let mut config = c.clone();
        config.weight_scales = Some(
            layers
                .iter()
                .flat_map(|l| {
                    let (a, m) = (l.self_attn.weight_scale, l.mlp.weight_scale);
                    a.expect("imported").into_iter().chain(m.expect("imported"))
                })
                .collect(),
        );
        config.validate()?;
        Ok(BitNetForCausalLM {
            model: BitNetModel {
                embed_tokens: embed_tokens.no_grad(),
                layers,
                norm: self.norm("model.norm", d)?,
            },
            lm_head,
            config,
        })
    }
}

impl<B: Backend> BitNetForCausalLM<B> {
    /// Builds the model from a transformers BitNet checkpoint directory:
    /// `config.json` plus `model.safetensors` or the shards listed in
    /// `model.safetensors.index.json`. The weight format (packed uint8
    /// trits with `weight_scale`, or float master weights ternarized here)
    /// comes from `config.json`'s `quantization_config` ([`WeightFormat`]);
    /// the exact mapping is in the [module docs](super). Errors name the
    /// file, the tensor or the key: an unknown `quantization_config`, a
    /// missing tensor, a shape or dtype mismatch, a byte that holds no trit.
    ///
    /// ```
    /// use std::path::Path;
    /// use burn::{backend::Flex, tensor::{Int, Tensor}};
    /// use arbitor_models::bitnet::BitNetForCausalLM;
    ///
    /// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bitnet/packed_a");
    /// let device = Default::default();
    /// let model = BitNetForCausalLM::<Flex>::from_hf_dir(&dir, &device).unwrap();
    /// let ids = Tensor::<Flex, 2, Int>::from_ints([[1, 2, 3]], &device);
    /// assert_eq!(model.forward(ids).dims(), [1, 3, 67]);
    ///
    /// let err = BitNetForCausalLM::<Flex>::from_hf_dir(Path::new("/nonexistent"), &device);
    /// assert!(err.unwrap_err().to_string().contains("/nonexistent/config.json"));
    /// ```
    pub fn from_hf_dir(dir: &Path, device: &B::Device) -> Result<Self, HfError> {
        Self::load_hf_dir(dir, device, true)
    }

    /// [`from_hf_dir`](Self::from_hf_dir) for inference: the projections
    /// get no update memory (see
    /// [`without_update_memory`](burn_ternary::without_update_memory)), so
    /// the model takes 1 byte per weight less and can not be trained.
    ///
    /// ```
    /// use std::path::Path;
    /// use burn::backend::Flex;
    /// use arbitor_models::bitnet::BitNetForCausalLM;
    ///
    /// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bitnet/packed_a");
    /// let device = Default::default();
    /// let model = BitNetForCausalLM::<Flex>::from_hf_dir_for_inference(&dir, &device).unwrap();
    /// assert!(model.ternary_linears().iter().all(|l| !l.weight.has_update_memory()));
    /// ```
    pub fn from_hf_dir_for_inference(dir: &Path, device: &B::Device) -> Result<Self, HfError> {
        Self::load_hf_dir(dir, device, false)
    }

    fn load_hf_dir(dir: &Path, device: &B::Device, update_memory: bool) -> Result<Self, HfError> {
        let (config, format) = read_config(dir)?;
        let ckpt = Checkpoint::open(dir)?;
        Loader {
            ckpt: &ckpt,
            config: &config,
            format,
            device,
            update_memory,
        }
        .model()
    }
}
