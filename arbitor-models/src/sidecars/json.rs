//! Reading upstream `config.json` files key by key, with errors that name the key.

use std::path::Path;

use serde_json::{Map, Value};

use super::error::{SidecarError, SidecarResult};

/// A parsed JSON config object; every getter's error is a
/// [`SidecarError::Config`] naming the file and the key.
///
/// ```
/// use arbitor_models::sidecars::json::JsonConfig;
///
/// let config = JsonConfig::parse(r#"{"hidden_size": 64, "act": "relu", "_meta": 1}"#, "config.json").unwrap();
/// assert_eq!(config.usize("hidden_size").unwrap(), 64);
/// assert_eq!(config.str_or("act", "gelu").unwrap(), "relu");
/// assert_eq!(config.f64_or("eps", 1e-5).unwrap(), 1e-5);
/// let err = config.usize("num_layers").unwrap_err();
/// assert!(err.to_string().contains("`num_layers`"));
/// // Only `hidden_size` and `act` are known here; `_`-prefixed keys are metadata.
/// assert!(config.deny_unknown(&["hidden_size", "act"], "test model").is_ok());
/// assert!(config.deny_unknown(&["hidden_size"], "test model").is_err());
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
        let value: Value = serde_json::from_str(text).map_err(|e| SidecarError::Corrupt {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        match value {
            Value::Object(map) => Ok(Self {
                file: file.to_string(),
                map,
            }),
            _ => Err(SidecarError::config(file, "<root>", "not a JSON object")),
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

    /// The file name used in errors.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// assert_eq!(JsonConfig::parse("{}", "c.json").unwrap().file(), "c.json");
    /// ```
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Whether `key` is present.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// assert!(JsonConfig::parse(r#"{"a": 1}"#, "c.json").unwrap().has("a"));
    /// ```
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A [`SidecarError::Config`] for `key` of this file.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse("{}", "c.json").unwrap();
    /// assert!(config.error("k", "bad").to_string().contains("`k`"));
    /// ```
    pub fn error(&self, key: &str, reason: impl ToString) -> SidecarError {
        SidecarError::config(&self.file, key, reason)
    }

    /// Fails on the first key that is neither in `known` nor starts with `_`.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"a": 1, "b": 2}"#, "c.json").unwrap();
    /// let err = config.deny_unknown(&["a"], "demo").unwrap_err();
    /// assert!(err.to_string().contains("`b`"));
    /// ```
    pub fn deny_unknown(&self, known: &[&str], what: &str) -> SidecarResult<()> {
        let mut keys: Vec<&String> = self.map.keys().collect();
        keys.sort();
        match keys
            .into_iter()
            .find(|k| !k.starts_with('_') && !known.contains(&k.as_str()))
        {
            Some(key) => Err(self.error(key, format!("unknown key for {what}"))),
            None => Ok(()),
        }
    }

    /// The raw value of `key`, or a "missing" error.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"a": [1]}"#, "c.json").unwrap();
    /// assert!(config.get("a").unwrap().is_array());
    /// assert!(config.get("b").is_err());
    /// ```
    pub fn get(&self, key: &str) -> SidecarResult<&Value> {
        self.map.get(key).ok_or_else(|| self.error(key, "missing"))
    }

    fn positive(&self, key: &str, v: &Value) -> SidecarResult<usize> {
        v.as_u64()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| self.error(key, format!("{v} is not a positive integer")))
    }

    /// A required positive integer.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"a": 0}"#, "c.json").unwrap();
    /// assert!(config.usize("a").unwrap_err().to_string().contains("positive"));
    /// ```
    pub fn usize(&self, key: &str) -> SidecarResult<usize> {
        self.positive(key, self.get(key)?)
    }

    /// An optional positive integer.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse("{}", "c.json").unwrap();
    /// assert_eq!(config.usize_or("a", 2).unwrap(), 2);
    /// ```
    pub fn usize_or(&self, key: &str, default: usize) -> SidecarResult<usize> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => self.positive(key, v),
        }
    }

    /// A required non-empty list of positive integers.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"a": [2, 3], "b": []}"#, "c.json").unwrap();
    /// assert_eq!(config.usize_list("a").unwrap(), vec![2, 3]);
    /// assert!(config.usize_list("b").is_err());
    /// ```
    pub fn usize_list(&self, key: &str) -> SidecarResult<Vec<usize>> {
        let v = self.get(key)?;
        let items = v
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| self.error(key, format!("{v} is not a non-empty list")))?;
        items.iter().map(|item| self.positive(key, item)).collect()
    }

    /// A required list of non-negative integers (may be empty).
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"p": [0, 1]}"#, "c.json").unwrap();
    /// assert_eq!(config.index_list("p").unwrap(), vec![0, 1]);
    /// ```
    pub fn index_list(&self, key: &str) -> SidecarResult<Vec<usize>> {
        let v = self.get(key)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.error(key, format!("{v} is not a list")))?;
        items
            .iter()
            .map(|item| {
                item.as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| self.error(key, format!("{item} is not a non-negative integer")))
            })
            .collect()
    }

    /// An optional finite number.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"eps": "x"}"#, "c.json").unwrap();
    /// assert!(config.f64_or("eps", 1e-6).is_err());
    /// ```
    pub fn f64_or(&self, key: &str, default: f64) -> SidecarResult<f64> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| self.error(key, format!("{v} is not a number"))),
        }
    }

    /// An optional string.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"act": 3}"#, "c.json").unwrap();
    /// assert!(config.str_or("act", "relu").is_err());
    /// ```
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> SidecarResult<&'a str> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.error(key, format!("{v} is not a string"))),
        }
    }

    /// An optional boolean.
    ///
    /// ```
    /// # use arbitor_models::sidecars::json::JsonConfig;
    /// let config = JsonConfig::parse(r#"{"flag": true}"#, "c.json").unwrap();
    /// assert!(config.bool_or("flag", false).unwrap());
    /// ```
    pub fn bool_or(&self, key: &str, default: bool) -> SidecarResult<bool> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.error(key, format!("{v} is not a boolean"))),
        }
    }
}
