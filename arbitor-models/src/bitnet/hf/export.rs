//! [`BitNetForCausalLM::save_hf_dir`]: the model as a transformers BitNet
//! checkpoint (packed `"bitlinear"` format).

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor};
use burn_ternary::packing::decode_scale;
use safetensors::{tensor::TensorView, Dtype};

use super::{
    convert::upstream_from_trits,
    error::{HfError, HfResult},
    load::projections,
};
use crate::bitnet::BitNetForCausalLM;

/// One projection ready to write: trits and one per-tensor dequantization
/// factor `W = T · scale` (or per-row factors for GGUF).
pub(crate) struct ExportedProjection {
    /// Upstream name without `.weight` (`model.layers.0.self_attn.q_proj`).
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    /// Row-major trits.
    pub trits: Vec<i8>,
    /// Each row's dequantization factor: `2^(code/16) / weight_scale`.
    pub row_scales: Vec<f32>,
    /// The row scale codes (all equal when one per-tensor scale holds them).
    pub codes: Vec<i32>,
    /// The module's upstream float scale (1 without one).
    pub weight_scale: f32,
}

pub(crate) fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 tensor data")
}

impl<B: Backend> BitNetForCausalLM<B> {
    /// Every projection with its trits and scales, layer by layer, in the
    /// order of [`projections`].
    pub(crate) fn exported_projections(&self) -> Vec<ExportedProjection> {
        let c = &self.config;
        let mut out = Vec::new();
        for (l, layer) in self.model.layers.iter().enumerate() {
            let a = &layer.self_attn;
            let m = &layer.mlp;
            let mut scales = a.weight_scale.unwrap_or([1.0; 4]).to_vec();
            scales.extend(m.weight_scale.unwrap_or([1.0; 3]));
            let linears = [
                &a.q_proj,
                &a.k_proj,
                &a.v_proj,
                &a.o_proj,
                &m.gate_proj,
                &m.up_proj,
                &m.down_proj,
            ];
            for (((name, [rows, cols]), linear), ws) in
                projections(c).into_iter().zip(linears).zip(scales)
            {
                let codes = linear.weight.scale_codes_host();
                out.push(ExportedProjection {
                    name: format!("model.layers.{l}.{name}"),
                    rows,
                    cols,
                    trits: linear.weight.trits_host(),
                    row_scales: codes.iter().map(|&k| decode_scale(k) / ws).collect(),
                    codes,
                    weight_scale: ws,
                });
            }
        }
        out
    }

    /// Writes the model into `dir` (created if absent) as a transformers
    /// BitNet checkpoint that `BitNetForCausalLM.from_pretrained(dir)` loads:
    /// `config.json` (model_type `"bitnet"`, `quantization_config`
    /// `{"quant_method": "bitnet", "linear_class": "bitlinear",
    /// "quantization_mode": "offline"}`) and `model.safetensors` with every
    /// projection's uint8 packed `weight` `[out/4, in]` and F32
    /// `weight_scale` `[1]`, float32 embeddings, norms and (untied)
    /// `lm_head`. The inverse of the packed import
    /// ([`from_hf_dir`](Self::from_hf_dir)); see the [module docs](super)
    /// for the mapping.
    ///
    /// Upstream holds one scale per projection, so every row of a
    /// projection must carry the same scale code `k`; the written
    /// `weight_scale` is ours divided by `2^(k/16)`. A projection whose rows
    /// differ (a randomly initialized model; fine-tuning that trains the
    /// codes) is refused with [`HfError::Export`] naming it and the code
    /// range, rather than silently rescaled: freeze the scale codes when
    /// fine-tuning a model meant for export. Also refused: an output width
    /// that is no multiple of 4 (transformers' `BitLinear` holds `out / 4`
    /// packed rows) and a model without activation quantization (upstream
    /// always quantizes).
    ///
    /// ```
    /// use std::path::Path;
    /// use burn::backend::Flex;
    /// use arbitor_models::bitnet::BitNetForCausalLM;
    ///
    /// let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bitnet/latent_a");
    /// let model = BitNetForCausalLM::<Flex>::from_hf_dir(&fixture, &Default::default()).unwrap();
    /// let out = std::env::temp_dir().join(format!("bitnet-doc-export-{}", std::process::id()));
    /// model.save_hf_dir(&out).unwrap();
    /// let again = BitNetForCausalLM::<Flex>::from_hf_dir(&out, &Default::default()).unwrap();
    /// assert_eq!(again.ternary_linears()[0].weight.trits_host(), model.ternary_linears()[0].weight.trits_host());
    /// # std::fs::remove_dir_all(&out).unwrap();
    /// ```
    pub fn save_hf_dir(&self, dir: &Path) -> Result<(), HfError> {
        let c = &self.config;
        if !c.quantize_activations {
            return Err(HfError::export(
                "config.quantize_activations",
                "false, but transformers' BitLinear always quantizes its input to int8",
            ));
        }
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut float = |name: String, shape: Vec<usize>, values: Vec<f32>| {
            tensors.push((name, Dtype::F32, shape, f32_bytes(&values)));
        };
        let (vocab, d) = (c.vocab_size, c.hidden_size);
        float(
            "model.embed_tokens.weight".into(),
            vec![vocab, d],
            host(self.model.embed_tokens.weight.val()),
        );
        float(
            "model.norm.weight".into(),
            vec![d],
            host(self.model.norm.gamma.val()),
        );
        if let Some(head) = &self.lm_head {
            // Burn's Linear holds [hidden, vocab]; upstream [vocab, hidden].
            float(
                "lm_head.weight".into(),
                vec![vocab, d],
                host(head.weight.val().transpose()),
            );
        }
        for (l, layer) in self.model.layers.iter().enumerate() {
            let p = format!("model.layers.{l}");
            for (name, norm) in [
                ("input_layernorm", &layer.input_layernorm),
                ("post_attention_layernorm", &layer.post_attention_layernorm),
                ("self_attn.attn_sub_norm", &layer.self_attn.attn_sub_norm),
                ("mlp.ffn_sub_norm", &layer.mlp.ffn_sub_norm),
            ] {
                let gain = host(norm.gamma.val());
                float(format!("{p}.{name}.weight"), vec![gain.len()], gain);
            }
        }
        for proj in self.exported_projections() {
            let weight = format!("{}.weight", proj.name);
            let (lo, hi) = proj
                .codes
                .iter()
                .fold((i32::MAX, i32::MIN), |(a, b), &k| (a.min(k), b.max(k)));
            if lo != hi {
                return Err(HfError::export(
                    &weight,
                    format!(
                        "its rows carry scale codes {lo}..={hi}, but a transformers BitLinear \
                         has one scale per tensor (freeze the scale codes when fine-tuning for export)"
                    ),
                ));
            }
            if !proj.rows.is_multiple_of(4) {
                return Err(HfError::export(
                    &weight,
                    format!(
                        "{} output rows is no multiple of 4 (transformers' BitLinear holds out / 4 packed rows)",
                        proj.rows
                    ),
                ));
            }
            // W = T · 2^(k/16) / ws = T / (ws / 2^(k/16)).
            let upstream_scale = proj.weight_scale / decode_scale(lo);
            tensors.push((
                weight,
                Dtype::U8,
                vec![proj.rows / 4, proj.cols],
                upstream_from_trits(&proj.trits, proj.rows, proj.cols),
            ));
            tensors.push((
                format!("{}.weight_scale", proj.name),
                Dtype::F32,
                vec![1],
                upstream_scale.to_le_bytes().to_vec(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| HfError::io(dir, e))?;
        let views = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| HfError::export(name, format!("{e:?}")))
            })
            .collect::<HfResult<Vec<_>>>()?;
        let path = dir.join("model.safetensors");
        let metadata = Some([("format".to_string(), "pt".to_string())].into());
        safetensors::serialize_to_file(views, metadata, &path)
            .map_err(|e| HfError::io(&path, e))?;
        let path = dir.join("config.json");
        let text =
            serde_json::to_string_pretty(&self.hf_config_json()).expect("a JSON value serializes");
        std::fs::write(&path, text).map_err(|e| HfError::io(&path, e))
    }

    /// transformers' `config.json` of this model (packed BitLinear format).
    fn hf_config_json(&self) -> serde_json::Value {
        let c = &self.config;
        serde_json::json!({
            "architectures": ["BitNetForCausalLM"],
            "model_type": "bitnet",
            "hidden_act": "relu2",
            "hidden_size": c.hidden_size,
            "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads,
            "vocab_size": c.vocab_size,
            "max_position_embeddings": c.max_position_embeddings,
            "rms_norm_eps": c.rms_norm_eps,
            "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
            "tie_word_embeddings": c.tie_word_embeddings,
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": null,
            "eos_token_id": null,
            "pad_token_id": null,
            "dtype": "float32",
            "quantization_config": {
                "quant_method": "bitnet",
                "linear_class": "bitlinear",
                "quantization_mode": "offline",
                "use_rms_norm": false,
                "modules_to_not_convert": null
            }
        })
    }
}
