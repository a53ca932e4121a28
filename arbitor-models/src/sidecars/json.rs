//! Reading upstream `config.json` files into `#[derive(Deserialize)]`
//! structs, with errors that name the key.
//!
//! [`parse`] and [`load`] deserialize a config struct (through
//! `serde_path_to_error`, so that a wrong type names its key path, e.g.
//! `rope_parameters.rope_theta`), after two upstream conventions:
//!
//! * a key whose value is `null` counts as absent (transformers writes
//!   `null` for its `None` defaults), so it takes the `#[serde(default)]`;
//! * keys starting with `_` are metadata (`_class_name`,
//!   `_diffusers_version`, `_name_or_path`) and are dropped, also for
//!   structs with `#[serde(deny_unknown_fields)]`.
//!
//! Other keys the struct does not name are ignored, unless the struct denies
//! unknown fields. The field types of this module check values while they
//! are read: [`Positive`], [`Size2`], and [`positive`] / [`positive_list`]
//! for `deserialize_with`.
//!
//! ```
//! use arbitor_models::sidecars::{json, SidecarError};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Demo {
//!     hidden_size: json::Positive,
//!     #[serde(default = "eps")]
//!     eps: f64,
//! }
//! fn eps() -> f64 {
//!     1e-5
//! }
//!
//! let demo: Demo = json::parse(r#"{"hidden_size": 64, "eps": null, "_meta": 1}"#, "c.json").unwrap();
//! assert_eq!((demo.hidden_size.0, demo.eps), (64, 1e-5));
//! let err = json::parse::<Demo>(r#"{"hidden_size": "wide"}"#, "c.json").unwrap_err();
//! assert!(matches!(err, SidecarError::Config { ref key, .. } if key == "hidden_size"));
//! let err = json::parse::<Demo>("{}", "c.json").unwrap_err();
//! assert_eq!(err.to_string(), "c.json: config key `hidden_size`: missing");
//! ```

use std::path::Path;

use serde::{
    de::{DeserializeOwned, Error as _},
    Deserialize, Deserializer,
};
use serde_json::{Map, Value};

use super::error::{SidecarError, SidecarResult};

/// Deserializes JSON text into `T`; `file` names it in errors (see the
/// [module docs](self)). Text that is not a JSON object is
/// [`SidecarError::Corrupt`]; a missing, unknown or invalid key is a
/// [`SidecarError::Config`] naming the key.
///
/// ```
/// use arbitor_models::sidecars::{json, SidecarError};
///
/// let err = json::parse::<serde_json::Value>("[1, 2]", "c.json").unwrap_err();
/// assert!(matches!(err, SidecarError::Corrupt { .. }));
/// ```
pub fn parse<T: DeserializeOwned>(text: &str, file: &str) -> SidecarResult<T> {
    JsonConfig::parse(text, file)?.deserialize()
}

/// Reads a JSON file and deserializes it into `T` (see [`parse`]).
///
/// ```
/// use arbitor_models::sidecars::{json, SidecarError};
///
/// let err = json::load::<serde_json::Value>("/nonexistent/config.json".as_ref()).unwrap_err();
/// assert!(matches!(err, SidecarError::Io { .. }));
/// ```
pub fn load<T: DeserializeOwned>(path: &Path) -> SidecarResult<T> {
    JsonConfig::load(path)?.deserialize()
}

/// A parsed JSON config object, for reading the whole of it into a struct
/// ([`deserialize`](Self::deserialize)) or one key ([`str_or`](Self::str_or),
/// e.g. the `model_type` that picks the struct).
///
/// ```
/// use arbitor_models::sidecars::json::JsonConfig;
///
/// let config = JsonConfig::parse(r#"{"model_type": "vit", "_meta": 1}"#, "config.json").unwrap();
/// assert_eq!(config.str_or("model_type", "").unwrap(), "vit");
/// assert!(!config.has("_meta")); // metadata is dropped
/// assert!(config.error("model_type", "bad").to_string().contains("`model_type`"));
/// ```
#[derive(Clone, Debug)]
pub struct JsonConfig {
    file: String,
    map: Map<String, Value>,
}

impl JsonConfig {
    /// Parses JSON text; `file` names it in errors.
    ///
    /// ```
    /// use arbitor_models::sidecars::{json::JsonConfig, SidecarError};
    ///
    /// let err = JsonConfig::parse("{", "config.json").unwrap_err();
    /// assert!(matches!(err, SidecarError::Corrupt { .. }));
    /// ```
    pub fn parse(text: &str, file: &str) -> SidecarResult<Self> {
        let corrupt = |reason: String| SidecarError::Corrupt {
            file: file.to_string(),
            reason,
        };
        match serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON: {e}")))? {
            Value::Object(mut map) => {
                map.retain(|key, _| !key.starts_with('_'));
                drop_nulls(&mut map);
                Ok(Self {
                    file: file.to_string(),
                    map,
                })
            }
            other => Err(corrupt(format!("expected a JSON object, found {other}"))),
        }
    }

    /// Reads and parses a JSON file.
    ///
    /// ```
    /// use arbitor_models::sidecars::{json::JsonConfig, SidecarError};
    ///
    /// let err = JsonConfig::load("/nonexistent/config.json".as_ref()).unwrap_err();
    /// assert!(matches!(err, SidecarError::Io { .. }));
    /// ```
    pub fn load(path: &Path) -> SidecarResult<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| SidecarError::io(path.display(), e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// [`parse`](Self::parse) under the name of the former `HfConfig`.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, file: &str) -> SidecarResult<Self> {
        Self::parse(text, file)
    }

    /// [`load`](Self::load) under the name of the former `HfConfig`.
    pub fn open(path: &Path) -> SidecarResult<Self> {
        Self::load(path)
    }

    /// The file name used in errors.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// assert_eq!(JsonConfig::parse("{}", "c.json").unwrap().file(), "c.json");
    /// ```
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Whether `key` is present (and not `null`).
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"a": 1, "b": null}"#, "c.json").unwrap();
    /// assert!(config.has("a") && !config.has("b"));
    /// ```
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A [`SidecarError::Config`] for `key` of this file.
    pub fn error(&self, key: &str, reason: impl ToString) -> SidecarError {
        SidecarError::config(&self.file, key, reason)
    }

    /// An optional string.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"act": 3}"#, "c.json").unwrap();
    /// assert!(config.str_or("act", "relu").unwrap_err().to_string().contains("`act`"));
    /// ```
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> SidecarResult<&'a str> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.error(key, format!("{v} is not a string"))),
        }
    }

    /// Deserializes the whole config into `T`, errors naming the key path.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"sizes": [1, "2"]}"#, "c.json").unwrap();
    /// #[derive(Debug, serde::Deserialize)]
    /// struct Sizes { #[allow(unused)] sizes: Vec<usize> }
    /// let err = config.deserialize::<Sizes>().unwrap_err();
    /// assert!(err.to_string().contains("`sizes[1]`"));
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> SidecarResult<T> {
        serde_path_to_error::deserialize(Value::Object(self.map.clone()))
            .map_err(|e| self.key_error(e))
    }

    /// The key of a deserialization error: its path, or for a missing
    /// field (reported by serde at the enclosing object) the path of that
    /// field.
    fn key_error(&self, e: serde_path_to_error::Error<serde_json::Error>) -> SidecarError {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let within = |field: &str| match path.as_str() {
            "." => field.to_string(),
            p if p == field || p.ends_with(&format!(".{field}")) => p.to_string(),
            parent => format!("{parent}.{field}"),
        };
        for (prefix, reason) in [
            ("missing field `", "missing"),
            ("unknown field `", "unknown key"),
        ] {
            if let Some((field, rest)) = message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_once('`'))
            {
                return self.error(&within(field), format!("{reason}{rest}"));
            }
        }
        self.error(&path, message)
    }
}

/// Removes the `null` values of `map` and of the objects nested in it.
fn drop_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
    for value in map.values_mut() {
        if let Value::Object(inner) = value {
            drop_nulls(inner);
        }
    }
}

/// A positive integer (a zero is an error naming the key).
///
/// ```
/// use arbitor_models::sidecars::json::{self, Positive};
///
/// #[derive(Debug, serde::Deserialize)]
/// struct Heads { #[allow(unused)] heads: Positive }
/// let err = json::parse::<Heads>(r#"{"heads": 0}"#, "c.json").unwrap_err();
/// assert!(err.to_string().contains("`heads`: must be positive"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Positive(pub usize);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match usize::deserialize(d)? {
            0 => Err(D::Error::custom("must be positive")),
            n => Ok(Self(n)),
        }
    }
}

/// [`Positive`] for `#[serde(deserialize_with = "positive")]` on a `usize` field.
pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Positive::deserialize(d).map(|p| p.0)
}

/// A non-empty list of positive integers, for `deserialize_with`.
pub fn positive_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    let list = Vec::<Positive>::deserialize(d)?;
    if list.is_empty() {
        return Err(D::Error::custom("must be a non-empty list"));
    }
    Ok(list.into_iter().map(|p| p.0).collect())
}

/// An image or patch size: an integer, or `[height, width]`; positive.
///
/// ```
/// use arbitor_models::sidecars::json::{self, Size2};
///
/// #[derive(serde::Deserialize)]
/// struct Sizes { image_size: Size2, patch_size: Size2 }
/// let s: Sizes = json::parse(r#"{"image_size": 224, "patch_size": [14, 16]}"#, "c.json").unwrap();
/// assert_eq!((s.image_size.0, s.patch_size.0), ([224, 224], [14, 16]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size2(pub [usize; 2]);

impl<'de> Deserialize<'de> for Size2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let size = usize::deserialize(&value)
            .map(|n| [n, n])
            .or_else(|_| <[usize; 2]>::deserialize(&value))
            .map_err(|_| {
                D::Error::custom(format!(
                    "expected an integer or [height, width], found {value}"
                ))
            })?;
        if size.contains(&0) {
            return Err(D::Error::custom("must be positive"));
        }
        Ok(Self(size))
    }
}
