//! [`Checkpoint`]: the safetensors files of a transformers checkpoint
//! directory (one `model.safetensors`, or the shards that
//! `model.safetensors.index.json` lists), read with the `safetensors` crate,
//! and typed, shape-checked access to their tensors by upstream name.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use burn::tensor::{bf16, f16};
use safetensors::{tensor::Metadata, Dtype, SafeTensors};

use super::error::{HfError, HfResult};

/// One safetensors file held in memory with its parsed header.
struct Shard {
    file: String,
    bytes: Vec<u8>,
    data_start: usize,
    metadata: Metadata,
}

impl Shard {
    fn open(path: &Path) -> HfResult<Self> {
        let bytes = std::fs::read(path).map_err(|e| HfError::io(path, e))?;
        let file = path.display().to_string();
        let (header, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| HfError::Corrupt {
                file: file.clone(),
                reason: format!("{e:?}"),
            })?;
        Ok(Self {
            file,
            bytes,
            data_start: 8 + header,
            metadata,
        })
    }
}

/// The tensors of a checkpoint directory, by upstream name.
pub(crate) struct Checkpoint {
    shards: Vec<Shard>,
    /// Tensor name to the shard that holds it.
    index: HashMap<String, usize>,
    /// What errors call the whole checkpoint (the index file or the single file).
    origin: String,
}

/// A stored tensor: its dtype, shape and little-endian bytes.
pub(crate) struct Raw<'a> {
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
}

impl Checkpoint {
    /// Opens `dir/model.safetensors.index.json` and its shards when the index
    /// exists, else `dir/model.safetensors`.
    pub fn open(dir: &Path) -> HfResult<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        if !index_path.exists() {
            let path = dir.join("model.safetensors");
            let shard = Shard::open(&path)?;
            let index = shard
                .metadata
                .tensors()
                .into_keys()
                .map(|name| (name, 0))
                .collect();
            return Ok(Self {
                origin: shard.file.clone(),
                shards: vec![shard],
                index,
            });
        }
        let origin = index_path.display().to_string();
        let text = std::fs::read_to_string(&index_path).map_err(|e| HfError::io(&index_path, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| HfError::Corrupt {
                file: origin.clone(),
                reason: e.to_string(),
            })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| HfError::config(&origin, "weight_map", "(absent)", "an object"))?;
        let mut files: Vec<PathBuf> = Vec::new();
        let mut index = HashMap::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| {
                HfError::config(&origin, &format!("weight_map.{name}"), file, "a file name")
            })?;
            let path = dir.join(file);
            let shard = match files.iter().position(|f| *f == path) {
                Some(i) => i,
                None => {
                    files.push(path);
                    files.len() - 1
                }
            };
            index.insert(name.clone(), shard);
        }
        let shards = files
            .iter()
            .map(|p| Shard::open(p))
            .collect::<HfResult<Vec<_>>>()?;
        // Every name the index lists must be in the shard it points to.
        for (name, &i) in &index {
            if shards[i].metadata.info(name).is_none() {
                return Err(HfError::MissingTensor {
                    tensor: name.clone(),
                    file: shards[i].file.clone(),
                });
            }
        }
        Ok(Self {
            shards,
            index,
            origin,
        })
    }

    /// The stored tensor `name`, or [`HfError::MissingTensor`].
    pub fn raw(&self, name: &str) -> HfResult<Raw<'_>> {
        let missing = || HfError::MissingTensor {
            tensor: name.to_string(),
            file: self.origin.clone(),
        };
        let shard = &self.shards[*self.index.get(name).ok_or_else(missing)?];
        let info = shard.metadata.info(name).ok_or_else(missing)?;
        let (start, end) = info.data_offsets;
        let bytes = shard
            .bytes
            .get(shard.data_start + start..shard.data_start + end)
            .ok_or_else(|| HfError::Corrupt {
                file: shard.file.clone(),
                reason: format!("tensor `{name}` lies outside the file"),
            })?;
        Ok(Raw {
            dtype: info.dtype,
            shape: &info.shape,
            bytes,
        })
    }

    /// `name` as `f32` values after checking its shape; F32, BF16 and F16
    /// are accepted (converted exactly).
    pub fn floats(&self, name: &str, shape: &[usize]) -> HfResult<Vec<f32>> {
        let raw = self.raw(name)?;
        check_shape(name, shape, raw.shape)?;
        let pairs = || {
            raw.bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
        };
        match raw.dtype {
            Dtype::F32 => Ok(raw
                .bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            Dtype::BF16 => Ok(pairs().map(|b| bf16::from_bits(b).to_f32()).collect()),
            Dtype::F16 => Ok(pairs().map(|b| f16::from_bits(b).to_f32()).collect()),
            other => Err(HfError::Dtype {
                tensor: name.to_string(),
                expected: "F32, BF16 or F16".into(),
                actual: format!("{other:?}"),
            }),
        }
    }

    /// `name` as bytes after checking that it is U8 of shape `shape`.
    pub fn bytes(&self, name: &str, shape: &[usize]) -> HfResult<&[u8]> {
        let raw = self.raw(name)?;
        if raw.dtype != Dtype::U8 {
            return Err(HfError::Dtype {
                tensor: name.to_string(),
                expected: "U8 (four packed trits per byte)".into(),
                actual: format!("{:?}", raw.dtype),
            });
        }
        check_shape(name, shape, raw.shape)?;
        Ok(raw.bytes)
    }
}

fn check_shape(name: &str, expected: &[usize], actual: &[usize]) -> HfResult<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(HfError::Shape {
            tensor: name.to_string(),
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        })
    }
}
