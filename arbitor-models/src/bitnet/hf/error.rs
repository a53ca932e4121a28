//! [`HfError`]: what went wrong reading or writing a checkpoint, naming the
//! file, tensor or key.

use burn_ternary::TernaryError;

/// An error of BitNet checkpoint import or export. Every variant names what
/// is wrong: the file, the tensor (upstream name) or the config key, with the
/// expected and the actual value where there are two.
///
/// ```
/// use arbitor_models::bitnet::hf::HfError;
///
/// let err = HfError::Shape {
///     tensor: "model.layers.0.self_attn.q_proj.weight".into(),
///     expected: vec![10, 40],
///     actual: vec![10, 41],
/// };
/// assert_eq!(
///     err.to_string(),
///     "tensor `model.layers.0.self_attn.q_proj.weight` has shape [10, 41], expected [10, 40]"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HfError {
    /// Reading or writing a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        reason: String,
    },
    /// A file is not what its name says (bad JSON, a truncated safetensors
    /// header, a GGUF without its magic).
    #[error("{file} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        file: String,
        /// What could not be read.
        reason: String,
    },
    /// A `config.json` key (dotted, e.g. `quantization_config.linear_class`)
    /// holds a value this importer does not accept.
    #[error("{file}: `{key}` = {value}: {expected}")]
    Config {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// The value found (`(absent)` when missing).
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("tensor `{tensor}` is missing from {file}")]
    MissingTensor {
        /// The upstream tensor name.
        tensor: String,
        /// The checkpoint file (or the shard index).
        file: String,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        /// The upstream tensor name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The stored shape.
        actual: Vec<usize>,
    },
    /// A tensor has the wrong element type.
    #[error("tensor `{tensor}` has dtype {actual}, expected {expected}")]
    Dtype {
        /// The upstream tensor name.
        tensor: String,
        /// The accepted dtypes.
        expected: String,
        /// The stored dtype.
        actual: String,
    },
    /// A tensor's values are invalid (a 2-bit code that is no trit, a scale
    /// that is not a positive finite number).
    #[error("tensor `{tensor}`: {reason}")]
    BadValue {
        /// The tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The model cannot be written in the requested format (say, a
    /// projection whose rows carry different scale codes, which one
    /// per-tensor scale cannot hold).
    #[error("cannot export `{tensor}`: {reason}")]
    Export {
        /// The upstream tensor name.
        tensor: String,
        /// Why.
        reason: String,
    },
    /// The model config built from `config.json` is invalid.
    #[error("config.json: {0}")]
    Model(#[from] TernaryError),
}

impl HfError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn config(
        file: &str,
        key: &str,
        value: impl std::fmt::Display,
        expected: &str,
    ) -> Self {
        Self::Config {
            file: file.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    pub(crate) fn export(tensor: &str, reason: impl Into<String>) -> Self {
        Self::Export {
            tensor: tensor.to_string(),
            reason: reason.into(),
        }
    }
}

/// Result of the checkpoint functions.
pub type HfResult<T> = Result<T, HfError>;
