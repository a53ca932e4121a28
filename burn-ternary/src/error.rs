//! Errors for bad input, each naming what was wrong.

use thiserror::Error;

/// What went wrong, with the name of the offending input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TernaryError {
    /// A tensor had the wrong shape.
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected}")]
    ShapeMismatch {
        /// Name of the input tensor.
        tensor: String,
        /// What was expected, in words (`[batch, 64]`, `rank 3`).
        expected: String,
        /// The shape that was passed.
        actual: Vec<usize>,
    },
    /// An index (a token id, an embedding row) was outside its range.
    #[error("tensor `{tensor}` holds index {index}, outside 0..{bound}")]
    IndexOutOfRange {
        /// Name of the index tensor.
        tensor: String,
        /// The first offending value.
        index: i64,
        /// The exclusive upper bound.
        bound: usize,
    },
    /// A configuration value was invalid.
    #[error("invalid config `{key}` = {value}: {reason}")]
    InvalidConfig {
        /// The config key.
        key: String,
        /// The value that was given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A stored tensor was missing, mis-shaped or mis-typed.
    #[error("checkpoint tensor `{tensor}`: {reason}")]
    BadCheckpoint {
        /// Name of the stored tensor.
        tensor: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        reason: String,
    },
}

impl TernaryError {
    pub(crate) fn config(key: &str, value: impl ToString, reason: &str) -> Self {
        Self::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn shape(tensor: &str, expected: impl ToString, actual: &[usize]) -> Self {
        Self::ShapeMismatch {
            tensor: tensor.to_string(),
            expected: expected.to_string(),
            actual: actual.to_vec(),
        }
    }
}

/// Result alias for fallible ternary operations.
pub type TernaryResult<T> = core::result::Result<T, TernaryError>;

/// Unwraps a result, panicking with the error's message (the `forward`/`init`
/// counterparts of `try_forward`/`try_init`).
pub(crate) fn or_panic<T>(result: TernaryResult<T>) -> T {
    result.unwrap_or_else(|err| panic!("{err}"))
}
