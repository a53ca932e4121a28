//! BitNet b1.58 checkpoints in and out: transformers checkpoint directories
//! ([`BitNetForCausalLM::from_hf_dir`](super::BitNetForCausalLM::from_hf_dir),
//! [`BitNetForCausalLM::save_hf_dir`](super::BitNetForCausalLM::save_hf_dir))
//! and GGUF ([`BitNetForCausalLM::save_gguf`](super::BitNetForCausalLM::save_gguf),
//! read back by [`GgufFile`]).
//!
//! # The mapping
//!
//! Names are transformers' (`model.layers.N.self_attn.q_proj`, …). A
//! projection `[out, in]` of the Burn model computes
//! `y = (x̂ · Tᵀ) ⊙ 2^(code/16) / weight_scale`, with `x̂` the per-token int8
//! absmax quantization of its input (as upstream's `ActQuant`), `T` its
//! trits, `code` its per-row scale codes and `weight_scale` upstream's
//! per-tensor float ([`BitNetConfig::weight_scales`](super::BitNetConfig::weight_scales),
//! seven per layer, mirrored in [`BitNetAttention::weight_scale`](super::BitNetAttention::weight_scale)
//! and [`BitNetMlp::weight_scale`](super::BitNetMlp::weight_scale)). The
//! codes (`2^(k/16)`, steps of 4.4%) cannot hold an arbitrary float, so the
//! float is kept exactly, as a frozen host constant in the config, where
//! the forward folds it into scalars it already passes to kernels: `q`'s
//! and `k`'s divide the attention logits with `1/√head_dim`; `v`'s, `gate`'s
//! and `up`'s scale the input of a sub-norm, which only changes that norm's
//! epsilon (`RMSNorm(x/c, ε) = RMSNorm(x, ε·c²)`); `o`'s and `down`'s are
//! one scalar division each. Two extra kernels per layer, none for a
//! randomly initialized model (`weight_scales` `None`). A Burn record of an
//! imported model loads into `model.config.init(..)` (the config carries the
//! scales; keep it with the record).
//!
//! | upstream | here |
//! | --- | --- |
//! | packed (`linear_class` `"bitlinear"`): `weight` uint8 `[ceil(out/4), in]`, row `r = i·⌈out/4⌉ + j` in bits `2i..2i+2` of byte row `j`, code `t + 1` | trits repacked integer to integer (16 per `i32` along `in`); codes 0; update memory 0 |
//! | `weight_scale` `[1]` (`W = T / weight_scale`) | `weight_scale` unchanged |
//! | `"autobitlinear"`, `"offline"`: packed, `W = T · weight_scale` | as packed, `weight_scale` ← `1 / weight_scale` |
//! | latent (`"autobitlinear"`, `"online"`, e.g. the `-bf16` checkpoints): float `weight` `[out, in]` | `s = 1 / max(mean|W|, 1e-5)` (f32; upstream `WeightQuant`), `T = clamp(round(W·s), −1, 1)`, update memory `M = clamp(round((W·s − T)·θ), −θ, θ)` with θ = [`UPDATE_THRESHOLD`](burn_ternary::types::UPDATE_THRESHOLD) = 64 (the latent weight `W·s = T + M/θ` to 1/128, saturating beyond ±2, as [`TernaryWeight::init`](burn_ternary::TernaryWeight::init) does), codes 0, `weight_scale` = `s`; rounding half to even as `torch.round` |
//! | `*norm.weight` | the `RmsNorm`'s `gamma` |
//! | `model.embed_tokens.weight` `[vocab, hidden]` | `Embedding::weight`, same layout |
//! | `lm_head.weight` `[vocab, hidden]` (untied) | `Linear::weight`, transposed to `[hidden, vocab]` |
//!
//! Float tensors may be stored as F32, BF16 or F16 (read exactly into f32).
//!
//! Export ([`save_hf_dir`](super::BitNetForCausalLM::save_hf_dir)) is the
//! inverse of the packed import: `weight_scale` is ours divided by
//! `2^(k/16)` when every row of a projection carries the same code `k`; a
//! projection whose rows differ is refused, naming it (freeze the scale
//! codes when fine-tuning for export).

mod checkpoint;
mod convert;
mod error;
mod export;
mod gguf;
mod gguf_tokenizer;
mod load;

pub use error::{HfError, HfResult};
pub use gguf::{
    GgufFile, GgufTensorInfo, GgufValue, FILE_TYPE_MOSTLY_TQ2_0, GGML_TYPE_F32, GGML_TYPE_TQ2_0,
    GGUF_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, TQ2_0_BLOCK, TQ2_0_BLOCK_BYTES,
};
pub use gguf_tokenizer::GgufTokenizer;
pub use load::WeightFormat;

#[cfg(test)]
mod tests;
