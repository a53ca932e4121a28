//! Text to token ids and back for the language-model runs: a Hugging Face
//! `tokenizer.json` (the file a checkpoint ships, read by the pure-Rust
//! `tokenizers` crate) or, without one, raw bytes (ids `0..256`).
//!
//! `arbitor train` reads `[model] tokenizer = "path/tokenizer.json"` for
//! `model.kind = "bitnet"`; the tokenizer's ids must fit the model's
//! `vocab_size` ([`TextTokenizer::check_fits`]). The repository's small
//! byte-level BPE tokenizer of Tiny Shakespeare (`data/tokenizer/`) is made by
//! `scripts/hf/train_tokenizer.py`.
//!
//! ```
//! use arbitor_train::tokenizer::TextTokenizer;
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/tokenizer/tokenizer.json");
//! let tokenizer = TextTokenizer::from_file(path).unwrap();
//! assert_eq!(tokenizer.vocab_size(), 512);
//! let ids = tokenizer.encode(b"ROMEO:\nBut, soft!").unwrap();
//! assert!(ids.len() < 17); // merges: fewer tokens than bytes
//! assert_eq!(tokenizer.decode(&ids).unwrap(), b"ROMEO:\nBut, soft!");
//! // A model with fewer token ids than the tokenizer cannot take its ids.
//! let err = tokenizer.check_fits(301).unwrap_err().to_string();
//! assert!(err.contains("512") && err.contains("301"), "{err}");
//!
//! // Without a file: bytes.
//! assert_eq!(TextTokenizer::Bytes.encode(b"Hi").unwrap(), [72, 105]);
//! ```

use std::path::{Path, PathBuf};

/// What went wrong reading a tokenizer or with its ids.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file could not be read or is not a `tokenizer.json`.
    #[error("tokenizer {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer's ids do not fit the model's vocabulary.
    #[error(
        "tokenizer {tokenizer} has {ids} token ids (0..{ids}) but the model's vocab_size is {vocab_size}: \
         an id past the model's embedding table cannot be trained or decoded; use a tokenizer of the \
         model's checkpoint or raise vocab_size to at least {ids}"
    )]
    VocabTooLarge {
        /// The tokenizer, in words (its file, or `bytes`).
        tokenizer: String,
        /// How many ids it has (its largest id + 1).
        ids: usize,
        /// The model's `vocab_size`.
        vocab_size: usize,
    },
    /// Text the tokenizer could not encode (a byte-level BPE file takes any
    /// UTF-8; text that is not UTF-8 is named here).
    #[error("cannot encode {what} with tokenizer {tokenizer}: {reason}")]
    Encode {
        /// What was encoded.
        what: String,
        /// The tokenizer, in words.
        tokenizer: String,
        /// What is wrong.
        reason: String,
    },
    /// Ids the tokenizer cannot decode.
    #[error("cannot decode ids with tokenizer {tokenizer}: {reason}")]
    Decode {
        /// The tokenizer, in words.
        tokenizer: String,
        /// What is wrong.
        reason: String,
    },
}

/// How text becomes token ids (see the [module docs](self)).
#[derive(Clone, Debug)]
pub enum TextTokenizer {
    /// Every byte is its own id (`0..256`).
    Bytes,
    /// A Hugging Face `tokenizer.json`.
    Hf {
        /// Where it was read from.
        path: PathBuf,
        /// The tokenizer.
        tokenizer: Box<tokenizers::Tokenizer>,
        /// Its largest id + 1 (ids of added special tokens included).
        ids: usize,
    },
}

impl TextTokenizer {
    /// Reads a Hugging Face `tokenizer.json`, naming the file when it cannot
    /// be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let err = |reason: String| TokenizerError::File {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| err(format!("not a Hugging Face tokenizer.json: {e}")))?;
        let ids = tokenizer
            .get_vocab(true)
            .values()
            .map(|id| *id as usize + 1)
            .max()
            .ok_or_else(|| err("has an empty vocabulary".into()))?;
        Ok(Self::Hf {
            path: path.to_path_buf(),
            tokenizer: Box::new(tokenizer),
            ids,
        })
    }

    /// The tokenizer of an optional `tokenizer.json`: bytes without one.
    pub fn from_option(path: Option<&Path>) -> Result<Self, TokenizerError> {
        path.map_or(Ok(Self::Bytes), Self::from_file)
    }

    /// How many ids it uses: its largest id + 1 (256 for bytes).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Bytes => 256,
            Self::Hf { ids, .. } => *ids,
        }
    }

    /// The tokenizer in words, for messages: its file, or `bytes`.
    pub fn name(&self) -> String {
        match self {
            Self::Bytes => "bytes (no tokenizer.json)".into(),
            Self::Hf { path, .. } => path.display().to_string(),
        }
    }

    /// Checks that every id fits a model of `vocab_size` tokens; the error
    /// names both numbers.
    pub fn check_fits(&self, vocab_size: usize) -> Result<(), TokenizerError> {
        let ids = self.vocab_size();
        if ids > vocab_size {
            return Err(TokenizerError::VocabTooLarge {
                tokenizer: self.name(),
                ids,
                vocab_size,
            });
        }
        Ok(())
    }

    /// The ids of `text` (no special tokens added). A `tokenizer.json` needs
    /// UTF-8 text; bytes take anything.
    pub fn encode(&self, text: &[u8]) -> Result<Vec<u32>, TokenizerError> {
        self.encode_named(text, "the text")
    }

    /// [`encode`](Self::encode), naming `what` (e.g. a file) in errors.
    pub fn encode_named(&self, text: &[u8], what: &str) -> Result<Vec<u32>, TokenizerError> {
        match self {
            Self::Bytes => Ok(text.iter().map(|b| *b as u32).collect()),
            Self::Hf { tokenizer, .. } => {
                let err = |reason: String| TokenizerError::Encode {
                    what: what.to_string(),
                    tokenizer: self.name(),
                    reason,
                };
                let text = std::str::from_utf8(text).map_err(|e| {
                    err(format!(
                        "not UTF-8 at byte {} (a tokenizer.json encodes text)",
                        e.valid_up_to()
                    ))
                })?;
                // `encode_fast` skips the character offsets, which only
                // alignment needs.
                let encoding = tokenizer
                    .encode_fast(text, false)
                    .map_err(|e| err(e.to_string()))?;
                Ok(encoding.get_ids().to_vec())
            }
        }
    }

    /// The text of `ids` (special tokens kept), as bytes. Names an id the
    /// tokenizer does not have.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>, TokenizerError> {
        let err = |reason: String| TokenizerError::Decode {
            tokenizer: self.name(),
            reason,
        };
        if let Some(bad) = ids.iter().find(|id| **id as usize >= self.vocab_size()) {
            return Err(err(format!(
                "id {bad} is out of range (the tokenizer has {} ids)",
                self.vocab_size()
            )));
        }
        match self {
            Self::Bytes => Ok(ids.iter().map(|id| *id as u8).collect()),
            Self::Hf { tokenizer, .. } => tokenizer
                .decode(ids, false)
                .map(String::into_bytes)
                .map_err(|e| err(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data/tokenizer")
            .join(name)
    }

    fn shakespeare() -> TextTokenizer {
        TextTokenizer::from_file(fixture("tokenizer.json")).unwrap()
    }

    /// The ids Python's `tokenizers` gave each case when it trained the
    /// fixture (`scripts/hf/train_tokenizer.py`).
    #[test]
    fn ids_match_the_python_library() {
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("expected_ids.json")).unwrap())
                .unwrap();
        let tokenizer = shakespeare();
        assert_eq!(
            tokenizer.vocab_size() as u64,
            expected["vocab_size"].as_u64().unwrap()
        );
        let cases = expected["cases"].as_array().unwrap();
        assert!(cases.len() >= 10, "{} cases", cases.len());
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let want: Vec<u32> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(tokenizer.encode(text.as_bytes()).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn shakespeare_lines_round_trip() {
        let text = std::fs::read(fixture("../tinyshakespeare.txt")).unwrap();
        let tokenizer = shakespeare();
        let (mut bytes, mut tokens) = (0, 0);
        // Every 97th line, and one long stretch across many lines.
        let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        let stretch = &text[500_000..520_000];
        for line in lines.iter().step_by(97).copied().chain([stretch]) {
            let ids = tokenizer.encode(line).unwrap();
            assert_eq!(tokenizer.decode(&ids).unwrap(), line);
            bytes += line.len();
            tokens += ids.len();
        }
        // The merges pay: under 0.7 tokens per byte (about 0.53 measured).
        assert!(
            (tokens as f64) < 0.7 * bytes as f64,
            "{tokens} tokens for {bytes} bytes"
        );
        let bytes_only = TextTokenizer::Bytes;
        let ids = bytes_only.encode(stretch).unwrap();
        assert_eq!(ids.len(), stretch.len());
        assert_eq!(bytes_only.decode(&ids).unwrap(), stretch);
    }

    #[test]
    fn the_special_token_is_one_id() {
        let tokenizer = shakespeare();
        let ids = tokenizer.encode(b"a<|endoftext|>b").unwrap();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(ids[1], 0, "{ids:?}");
        assert_eq!(tokenizer.decode(&ids).unwrap(), b"a<|endoftext|>b");
    }

    #[test]
    fn bad_input_is_named() {
        let missing = TextTokenizer::from_file("no/such/tokenizer.json")
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("tokenizer no/such/tokenizer.json: cannot read"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("arbitor-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("tokenizer.json");
        std::fs::write(&garbage, "{\"model\": 3}").unwrap();
        let parse = TextTokenizer::from_file(&garbage).unwrap_err().to_string();
        assert!(
            parse.contains("tokenizer.json: not a Hugging Face tokenizer.json"),
            "{parse}"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let tokenizer = shakespeare();
        let fits = tokenizer.check_fits(301).unwrap_err().to_string();
        assert!(
            fits.contains("has 512 token ids") && fits.contains("vocab_size is 301"),
            "{fits}"
        );
        tokenizer.check_fits(512).unwrap();
        assert!(TextTokenizer::Bytes.check_fits(255).is_err());
        TextTokenizer::Bytes.check_fits(256).unwrap();

        let utf8 = tokenizer
            .encode_named(b"ok \xff no", "data/x.txt")
            .unwrap_err()
            .to_string();
        assert!(
            utf8.contains("data/x.txt") && utf8.contains("not UTF-8 at byte 3"),
            "{utf8}"
        );
        let range = tokenizer.decode(&[5, 512]).unwrap_err().to_string();
        assert!(range.contains("id 512 is out of range"), "{range}");
        assert!(TextTokenizer::Bytes.decode(&[256]).is_err());
    }
}
