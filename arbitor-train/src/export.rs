//! `arbitor export`: a trained `bitnet` run written back in the formats
//! other tools load: a transformers BitNet checkpoint directory
//! ([`BitNetForCausalLM::save_hf_dir`]) and GGUF with TQ2_0 projections
//! ([`BitNetForCausalLM::save_gguf`]), with the run's tokenizer in both
//! when it has one.

use std::path::{Path, PathBuf};

use arbitor_models::bitnet::{hf::GgufTokenizer, BitNetForCausalLM};
use burn::backend::Flex;

use crate::{
    bitnet_task::bitnet_model,
    config::{ModelKind, RunConfig},
};

/// Where [`export_bitnet`] writes.
#[derive(Clone, Debug, Default)]
pub struct ExportTargets {
    /// A transformers checkpoint directory (`config.json`,
    /// `model.safetensors`, and the run's `tokenizer.json` if it has one).
    pub hf: Option<PathBuf>,
    /// A GGUF file.
    pub gguf: Option<PathBuf>,
}

/// Writes the `bitnet` model of `config` with the weights of `checkpoint`
/// (a run's `model.safetensors`; without it, the model `model.from` or
/// `[bitnet]` builds) to `targets`, returning the paths written. Errors
/// name what is wrong: another model kind, no target, an unreadable
/// checkpoint, a model the format cannot hold (rows with different scale
/// codes for transformers' one scale per tensor; widths that are not a
/// multiple of 256 for TQ2_0).
pub fn export_bitnet(
    config: &RunConfig,
    checkpoint: Option<&Path>,
    targets: &ExportTargets,
) -> Result<Vec<PathBuf>, String> {
    if config.model.kind != ModelKind::Bitnet {
        return Err(format!(
            "model.kind = \"{}\": export writes bitnet models (transformers and GGUF formats)",
            config.model.kind.name()
        ));
    }
    if targets.hf.is_none() && targets.gguf.is_none() {
        return Err("nothing to write: give --hf DIR and/or --gguf FILE".into());
    }
    let device = Default::default();
    let mut model: BitNetForCausalLM<Flex> =
        bitnet_model(config, &device).map_err(|e| e.to_string())?;
    if let Some(path) = checkpoint {
        model = burn_ternary::io::load_safetensors(model, path)
            .map_err(|e| format!("checkpoint {}: {e}", path.display()))?;
    }
    // Refuse before writing anything, so a refused GGUF leaves no HF export behind.
    let gguf_tokenizer = if targets.gguf.is_some() {
        model.check_gguf().map_err(|e| e.to_string())?;
        config
            .model
            .tokenizer
            .as_deref()
            .map(|path| GgufTokenizer::from_tokenizer_json(path, model.config.vocab_size))
            .transpose()
            .map_err(|e| format!("model.tokenizer: {e}"))?
    } else {
        None
    };
    let mut written = Vec::new();
    if let Some(dir) = &targets.hf {
        model.save_hf_dir(dir).map_err(|e| e.to_string())?;
        if let Some(tokenizer) = &config.model.tokenizer {
            let to = dir.join("tokenizer.json");
            std::fs::copy(tokenizer, &to)
                .map_err(|e| format!("copying {} to {}: {e}", tokenizer.display(), to.display()))?;
        }
        written.push(dir.clone());
    }
    if let Some(path) = &targets.gguf {
        match &gguf_tokenizer {
            Some(tokenizer) => model.save_gguf_with_tokenizer(path, tokenizer),
            None => model.save_gguf(path),
        }
        .map_err(|e| e.to_string())?;
        written.push(path.clone());
    }
    Ok(written)
}
