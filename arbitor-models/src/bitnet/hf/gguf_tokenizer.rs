//! The tokenizer section of a GGUF export, read from a Hugging Face
//! `tokenizer.json`, so llama.cpp can take text, not only token ids.
//!
//! llama.cpp's BPE vocabulary (`tokenizer.ggml.model = "gpt2"`) holds the
//! byte-level token strings by id, a type per token, the merges in rank
//! order and a named pre-tokenizer (`tokenizer.ggml.pre`) that selects its
//! built-in split regex. Two pre-tokenizers are recognized, because their
//! regexes are the ones llama.cpp hard-codes under those names:
//!
//! - `ByteLevel` with `use_regex = true` alone: GPT-2's split, `"gpt-2"`
//!   (the tokenizer trained here for the tests, `data/tokenizer/`);
//! - `Split` on Llama 3's regex followed by `ByteLevel` without regex:
//!   `"llama-bpe"` (bitnet-b1.58-2B-4T's tokenizer).
//!
//! Any other tokenizer is refused, naming the key, rather than written with
//! a split llama.cpp would apply differently.

use std::path::Path;

use serde_json::Value;

use super::{
    error::{HfError, HfResult},
    gguf::GgufValue,
};

/// Llama 3's split regex, as its `tokenizer.json` writes it.
const LLAMA3_SPLIT: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// Names of end-of-text tokens, in the order they are looked for among the
/// special tokens.
const EOS_NAMES: [&str; 4] = ["<|end_of_text|>", "<|endoftext|>", "</s>", "<|eot_id|>"];

/// llama.cpp's token types (`llama_token_type`).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// A byte-level BPE tokenizer as GGUF stores it (`tokenizer.ggml.*`).
///
/// ```
/// use arbitor_models::bitnet::hf::GgufTokenizer;
///
/// let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tokenizer/tokenizer.json");
/// let tokenizer = GgufTokenizer::from_tokenizer_json(&path, 512).unwrap();
/// assert_eq!(tokenizer.pre, "gpt-2");
/// assert_eq!(tokenizer.tokens[0], "<|endoftext|>");
/// assert_eq!(tokenizer.eos, Some(0));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTokenizer {
    /// Token strings by id, `vocab_size` of them (ids the tokenizer does
    /// not define are `[PAD{id}]`, of type unused).
    pub tokens: Vec<String>,
    /// llama.cpp's type of each token: 1 normal, 3 control (special added
    /// tokens), 4 user-defined (other added tokens), 5 unused.
    pub token_types: Vec<i32>,
    /// Merges in rank order, `"left right"`.
    pub merges: Vec<String>,
    /// llama.cpp's name of the pre-tokenizer (`"gpt-2"` or `"llama-bpe"`).
    pub pre: &'static str,
    /// The beginning-of-text token: the special token the post-processor
    /// puts before a single sequence, if any.
    pub bos: Option<u32>,
    /// The end-of-text token: the first special token named one of
    /// `<|end_of_text|>`, `<|endoftext|>`, `</s>`, `<|eot_id|>`.
    pub eos: Option<u32>,
}

impl GgufTokenizer {
    /// Reads `path` (a `tokenizer.json`) for a model of `vocab_size`
    /// tokens. Errors name the file and key: not byte-level BPE, a
    /// pre-tokenizer llama.cpp has no name for, an id at or past
    /// `vocab_size`.
    pub fn from_tokenizer_json(path: &Path, vocab_size: usize) -> HfResult<Self> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| HfError::io(path, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| HfError::Corrupt {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let bad = |key: &str, value: &Value, expected: &str| {
            HfError::config(&file, key, compact(value), expected)
        };
        let model = &json["model"];
        if model["type"] != "BPE" {
            return Err(bad(
                "model.type",
                &model["type"],
                "\"BPE\" (llama.cpp's GGUF vocabulary here is byte-level BPE)",
            ));
        }
        let pre = pre_tokenizer_name(&json["pre_tokenizer"]).ok_or_else(|| {
            bad(
                "pre_tokenizer",
                &json["pre_tokenizer"],
                "ByteLevel with use_regex (GPT-2) or Split on Llama 3's regex then ByteLevel",
            )
        })?;

        let mut tokens: Vec<Option<String>> = vec![None; vocab_size];
        let mut token_types = vec![UNUSED; vocab_size];
        let mut place = |key: &str, token: &str, id: &Value, kind: i32| -> HfResult<()> {
            let index = id
                .as_u64()
                .map(|id| id as usize)
                .filter(|&id| id < vocab_size)
                .ok_or_else(|| {
                    bad(
                        key,
                        id,
                        &format!("a token id below the model's vocab_size {vocab_size}"),
                    )
                })?;
            tokens[index] = Some(token.to_string());
            token_types[index] = kind;
            Ok(())
        };
        let vocab = model["vocab"]
            .as_object()
            .ok_or_else(|| bad("model.vocab", &model["vocab"], "a map of token to id"))?;
        for (token, id) in vocab {
            place(&format!("model.vocab.{token}"), token, id, NORMAL)?;
        }
        let added = json["added_tokens"].as_array().cloned().unwrap_or_default();
        let mut eos = None;
        for name in EOS_NAMES {
            if eos.is_some() {
                break;
            }
            eos = added
                .iter()
                .find(|t| t["content"] == name && t["special"] == true)
                .and_then(|t| t["id"].as_u64())
                .map(|id| id as u32);
        }
        for token in &added {
            let content = token["content"].as_str().unwrap_or_default();
            let kind = if token["special"] == true {
                CONTROL
            } else {
                USER_DEFINED
            };
            place(
                &format!("added_tokens.{content}"),
                content,
                &token["id"],
                kind,
            )?;
        }
        let tokens = tokens
            .into_iter()
            .enumerate()
            .map(|(id, t)| t.unwrap_or_else(|| format!("[PAD{id}]")))
            .collect();

        let merges = model["merges"]
            .as_array()
            .ok_or_else(|| bad("model.merges", &model["merges"], "a list of merges"))?
            .iter()
            .map(|m| match m {
                Value::String(s) => Some(s.clone()),
                Value::Array(pair) => match pair.as_slice() {
                    [Value::String(a), Value::String(b)] => Some(format!("{a} {b}")),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                bad(
                    "model.merges",
                    &model["merges"],
                    "merges as \"a b\" strings or [a, b] pairs",
                )
            })?;

        let bos = json["post_processor"]["single"]
            .get(0)
            .and_then(|first| first["SpecialToken"]["id"].as_str())
            .and_then(|name| added.iter().find(|t| t["content"] == name))
            .and_then(|t| t["id"].as_u64())
            .map(|id| id as u32);

        Ok(Self {
            tokens,
            token_types,
            merges,
            pre,
            bos,
            eos,
        })
    }

    /// The `tokenizer.ggml.*` metadata.
    pub(crate) fn metadata(&self) -> Vec<(String, GgufValue)> {
        let strings =
            |v: &[String]| GgufValue::Array(v.iter().cloned().map(GgufValue::String).collect());
        let mut out = vec![
            (
                "tokenizer.ggml.model".to_string(),
                GgufValue::String("gpt2".into()),
            ),
            (
                "tokenizer.ggml.pre".to_string(),
                GgufValue::String(self.pre.into()),
            ),
            ("tokenizer.ggml.tokens".to_string(), strings(&self.tokens)),
            (
                "tokenizer.ggml.token_type".to_string(),
                GgufValue::Array(
                    self.token_types
                        .iter()
                        .map(|&t| GgufValue::I32(t))
                        .collect(),
                ),
            ),
            ("tokenizer.ggml.merges".to_string(), strings(&self.merges)),
            (
                "tokenizer.ggml.add_bos_token".to_string(),
                GgufValue::Bool(self.bos.is_some()),
            ),
        ];
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", self.bos),
            ("tokenizer.ggml.eos_token_id", self.eos),
        ] {
            if let Some(id) = id {
                out.push((key.to_string(), GgufValue::U32(id)));
            }
        }
        out
    }
}

/// llama.cpp's name for the split of `pre` (a `tokenizer.json`
/// `pre_tokenizer`), if it has one.
fn pre_tokenizer_name(pre: &Value) -> Option<&'static str> {
    let byte_level = |v: &Value, regex: bool| v["type"] == "ByteLevel" && v["use_regex"] == regex;
    if byte_level(pre, true) {
        return Some("gpt-2");
    }
    let [split, last] = pre["pretokenizers"].as_array()?.as_slice() else {
        return None;
    };
    (pre["type"] == "Sequence"
        && split["type"] == "Split"
        && split["pattern"]["Regex"] == LLAMA3_SPLIT
        && byte_level(last, false))
    .then_some("llama-bpe")
}

/// `value` as compact JSON, cut to keep an error message readable.
fn compact(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
