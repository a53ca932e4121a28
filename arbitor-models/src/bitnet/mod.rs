//! A BitNet b1.58 decoder with ternary projections: the architecture and
//! parameter names of Hugging Face transformers' `BitNetForCausalLM`
//! (model_type `"bitnet"`, e.g. microsoft/bitnet-b1.58-2B-4T), so real
//! checkpoints can be imported later, with a preallocated key/value cache
//! for incremental decoding.
//!
//! | item | upstream |
//! | --- | --- |
//! | [`BitNetConfig`] | `config.json` (`hidden_size`, `num_key_value_heads`, `rope_theta`, …); [`BitNetConfig::b1_58_2b_4t`] is the 2B-4T shape |
//! | [`BitNetForCausalLM`] | `BitNetForCausalLM`: `model` ([`BitNetModel`]) and `lm_head` (tied to `model.embed_tokens`) |
//! | [`BitNetDecoderLayer`] | `model.layers.N`: `input_layernorm`, `self_attn`, `post_attention_layernorm`, `mlp` |
//! | [`BitNetAttention`] | `self_attn.{q,k,v,o}_proj`, `attn_sub_norm`: rotary positions (rotate-half), grouped-query attention |
//! | [`BitNetMlp`] | `mlp.{gate,up,down}_proj`, `ffn_sub_norm`: `down(norm(relu(gate)² · up))` |
//! | [`quantize_activations`] | `ActQuant`: per-token int8 absmax of each BitLinear's input |
//! | [`BitNetCache`] | the key/value cache, `[batch, kv_heads, max_seq, head_dim]` per layer |
//!
//! The projections are burn-ternary [`TernaryLinear`](burn_ternary::TernaryLinear)s;
//! embeddings, `lm_head` and the norms' gains are float and frozen, as in
//! upstream BitNet. `arbitor train` trains the ternary projections with the
//! ternary optimizer (`model.kind = "bitnet"` with `[train]`; the float parts
//! stay frozen unless `bitnet.train_float`); activation quantization passes
//! a straight-through gradient under `Autodiff`, as BitNet trains it.
//! Random initialization also serves decode timing (`arbitor decode-bench`).
//!
//! Checkpoints: [`hf`] imports transformers BitNet checkpoints, packed
//! (microsoft/bitnet-b1.58-2B-4T) and latent bf16 (…-bf16)
//! ([`BitNetForCausalLM::from_hf_dir`]), and writes them back
//! ([`BitNetForCausalLM::save_hf_dir`], [`BitNetForCausalLM::save_gguf`]);
//! its module docs give the exact mapping. Two things are named or laid out
//! differently: Burn's `RmsNorm` calls its gain `gamma` (upstream `weight`),
//! and an untied `lm_head` is a Burn `Linear`, weight `[hidden, vocab]`
//! (upstream `[vocab, hidden]`). Upstream keeps one float absmean scale per
//! ternary tensor, which the integer-coded row scales of a
//! [`TernaryLinear`](burn_ternary::TernaryLinear) (`2^(code/16)`) hold only
//! to within 2.2%; an imported model keeps it exactly as a frozen host
//! constant per projection ([`BitNetConfig::weight_scales`]) that the
//! forward folds into scalars (two extra kernels per layer; see [`hf`]).

mod attention;
mod cache;
mod config;
mod decode;
pub mod hf;
mod layer;
mod mlp;
mod model;
mod quant;
mod rope;

pub use attention::BitNetAttention;
pub use burn_ternary::functional::quantize_activations;
pub use cache::BitNetCache;
pub use config::BitNetConfig;
pub use decode::TokenGeneration;
pub use layer::BitNetDecoderLayer;
pub use mlp::BitNetMlp;
pub use model::{BitNetForCausalLM, BitNetModel};
pub use rope::RotaryTables;

#[cfg(test)]
mod tests;
