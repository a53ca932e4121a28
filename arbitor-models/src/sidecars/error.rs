//! Errors of sidecar loading, each naming the file, tensor or key at fault.

use thiserror::Error;

/// What went wrong while loading a sidecar, with the name of the offending input.
///
/// ```
/// use arbitor_models::sidecars::SidecarError;
///
/// let err = SidecarError::ShapeMismatch {
///     tensor: "encoder.layers.0.weight".into(),
///     expected: vec![64, 3, 3, 3],
///     actual: vec![64, 3, 1, 1],
/// };
/// let text = err.to_string();
/// assert!(text.contains("encoder.layers.0.weight"));
/// assert!(text.contains("[64, 3, 3, 3]") && text.contains("[64, 3, 1, 1]"));
/// ```
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SidecarError {
    /// A tensor the architecture needs is not in the weights file.
    #[error("{file}: missing tensor `{tensor}`")]
    MissingTensor {
        /// The weights file (or in-memory origin).
        file: String,
        /// The upstream tensor name.
        tensor: String,
    },
    /// A tensor is in the file with another shape than the config implies.
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The upstream tensor name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape stored in the file.
        actual: Vec<usize>,
    },
    /// A tensor is stored in a dtype the loader does not convert (only F32, F16, BF16 are).
    #[error("tensor `{tensor}` is stored as {dtype}; expected F32, F16 or BF16")]
    UnsupportedDtype {
        /// The upstream tensor name.
        tensor: String,
        /// The stored dtype.
        dtype: String,
    },
    /// The file is not a valid safetensors file (truncated, bad header, bad offsets).
    #[error("{file}: corrupt weights: {reason}")]
    Corrupt {
        /// The weights file.
        file: String,
        /// What the parser reported.
        reason: String,
    },
    /// A config file lacks a key, has an unknown key or an invalid value.
    #[error("{file}: config key `{key}`: {reason}")]
    Config {
        /// The config file.
        file: String,
        /// The key at fault.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The operating system's error.
        reason: String,
    },
}

impl SidecarError {
    /// An [`Io`](Self::Io) error for `path`.
    ///
    /// ```
    /// use arbitor_models::sidecars::SidecarError;
    ///
    /// let err = SidecarError::io("model.safetensors", "No such file or directory");
    /// assert_eq!(err.to_string(), "model.safetensors: No such file or directory");
    /// ```
    pub fn io(path: impl ToString, reason: impl ToString) -> Self {
        Self::Io {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A [`Config`](Self::Config) error for `key` of `file`.
    ///
    /// ```
    /// use arbitor_models::sidecars::SidecarError;
    ///
    /// let err = SidecarError::config("config.json", "latent_channels", "must be positive");
    /// assert!(err.to_string().contains("`latent_channels`"));
    /// ```
    pub fn config(file: impl ToString, key: impl ToString, reason: impl ToString) -> Self {
        Self::Config {
            file: file.to_string(),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Result alias for sidecar loading.
pub type SidecarResult<T> = Result<T, SidecarError>;
