//! Safetensors export and import of a module's state, keyed by module path.
//!
//! Each ternary weight at path `p` is stored as `p.trits` (`I32 [rows, ceil(cols/16)]`,
//! the packed words), `p.memory` (`I8 [rows, cols]`) and `p.scale_code`
//! (`I32 [rows]`); float parameters as `F32` under their own paths. Loading
//! checks every name, dtype and shape and names the tensor that does not fit.
//! A module [without update memory](crate::without_update_memory) writes no
//! `p.memory` and skips it when loading, so a training checkpoint loads into
//! it without the memory ever being allocated.

use std::{collections::HashMap, path::Path};

use burn::{
    module::{Module, ModuleMapper, Param},
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::{
    error::{TernaryError, TernaryResult},
    packing::{memory_words, pack_memory, trit_words, unpack_memory, PACKED_DTYPE},
    visit::collect,
};

struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn host_i32<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i32> {
    t.cast(PACKED_DTYPE)
        .into_data()
        .convert::<i32>()
        .into_vec()
        .expect("i32 data")
}

/// Serializes the module's state (see the [module docs](self)) to safetensors bytes.
pub fn to_safetensors_bytes<B: Backend, M: Module<B>>(module: &M) -> TernaryResult<Vec<u8>> {
    let state = collect::<B, M>(module);
    let mut entries: HashMap<String, Entry> = HashMap::new();
    for weight in &state.ternary {
        let [rows, cols] = weight.dims;
        entries.insert(
            format!("{}.trits", weight.path),
            Entry {
                dtype: Dtype::I32,
                shape: vec![rows, trit_words(cols)],
                bytes: i32_bytes(&host_i32(weight.trits.1.clone())),
            },
        );
        // A weight loaded for inference has no memory to write.
        if weight.has_update_memory() {
            let memory = unpack_memory(&host_i32(weight.memory.1.clone()), rows, cols);
            entries.insert(
                format!("{}.memory", weight.path),
                Entry {
                    dtype: Dtype::I8,
                    shape: vec![rows, cols],
                    bytes: memory.iter().map(|v| *v as u8).collect(),
                },
            );
        }
        entries.insert(
            format!("{}.scale_code", weight.path),
            Entry {
                dtype: Dtype::I32,
                shape: vec![rows],
                bytes: i32_bytes(&host_i32(weight.scale_code.1.clone())),
            },
        );
    }
    let mut floats = FloatReader {
        path: Vec::new(),
        out: &mut entries,
    };
    module.visit(&mut floats);
    let views = entries
        .iter()
        .map(|(name, e)| {
            TensorView::new(e.dtype, e.shape.clone(), &e.bytes)
                .map(|view| (name.clone(), view))
                .map_err(|err| TernaryError::BadCheckpoint {
                    tensor: name.clone(),
                    reason: err.to_string(),
                })
        })
        .collect::<TernaryResult<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|err| TernaryError::Io {
        path: "<memory>".into(),
        reason: err.to_string(),
    })
}

/// Writes the module's state to `path` atomically (a temporary file, then a rename).
pub fn save_safetensors<B: Backend, M: Module<B>>(
    module: &M,
    path: impl AsRef<Path>,
) -> TernaryResult<()> {
    let path = path.as_ref();
    let io = |err: std::io::Error| TernaryError::Io {
        path: path.display().to_string(),
        reason: err.to_string(),
    };
    let bytes = to_safetensors_bytes(module)?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Loads state written by [`save_safetensors`] into `module` (whose shapes must match).
pub fn load_safetensors<B: Backend, M: Module<B>>(
    module: M,
    path: impl AsRef<Path>,
) -> TernaryResult<M> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|err| TernaryError::Io {
        path: path.display().to_string(),
        reason: err.to_string(),
    })?;
    from_safetensors_bytes(module, &bytes)
}

/// Loads state from safetensors bytes into `module`.
pub fn from_safetensors_bytes<B: Backend, M: Module<B>>(
    module: M,
    bytes: &[u8],
) -> TernaryResult<M> {
    let tensors = SafeTensors::deserialize(bytes).map_err(|err| TernaryError::BadCheckpoint {
        tensor: "<file>".into(),
        reason: format!("not a valid safetensors file: {err}"),
    })?;
    let state = collect::<B, M>(&module);
    let mut writer = StateWriter::<B> {
        _backend: core::marker::PhantomData,
        path: Vec::new(),
        cols: state
            .ternary
            .iter()
            .map(|w| (w.path.clone(), w.dims[1]))
            .collect(),
        tensors: &tensors,
        error: None,
    };
    let module = module.map(&mut writer);
    match writer.error {
        Some(err) => Err(err),
        None => Ok(module),
    }
}

struct FloatReader<'a> {
    path: Vec<(String, String)>,
    out: &'a mut HashMap<String, Entry>,
}

impl<B: Backend> burn::module::ModuleVisitor<B> for FloatReader<'_> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.path.push((name.into(), container.into()));
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if param.shape().num_elements() == 0 {
            return; // gradient ports hold nothing
        }
        let name = dotted(&self.path);
        let data = param.val().into_data().convert::<f32>();
        self.out.insert(
            name,
            Entry {
                dtype: Dtype::F32,
                shape: data.shape.to_vec(),
                bytes: data.as_bytes().to_vec(),
            },
        );
    }
}

fn dotted(path: &[(String, String)]) -> String {
    path.iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

struct StateWriter<'a, B: Backend> {
    _backend: core::marker::PhantomData<B>,
    path: Vec<(String, String)>,
    cols: HashMap<String, usize>,
    tensors: &'a SafeTensors<'a>,
    error: Option<TernaryError>,
}

impl<B: Backend> StateWriter<'_, B> {
    fn read(&self, name: &str, dtype: Dtype, shape: &[usize]) -> TernaryResult<Vec<u8>> {
        let bad = |reason: String| TernaryError::BadCheckpoint {
            tensor: name.to_string(),
            reason,
        };
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| bad("missing from the file".into()))?;
        if view.dtype() != dtype {
            return Err(bad(format!("dtype {:?}, expected {dtype:?}", view.dtype())));
        }
        if view.shape() != shape {
            return Err(bad(format!("shape {:?}, expected {shape:?}", view.shape())));
        }
        Ok(view.data().to_vec())
    }

    fn load_int<const D: usize>(
        &self,
        param_dims: [usize; D],
    ) -> TernaryResult<Option<(Vec<i32>, [usize; D])>> {
        let name = dotted(&self.path);
        let Some((field, parent)) = name
            .rsplit_once('.')
            .map(|(p, f)| (f.to_string(), p.to_string()))
        else {
            return Ok(None);
        };
        let Some(&cols) = self.cols.get(&parent) else {
            return Ok(None);
        };
        let rows = param_dims[0];
        let i32s = |b: Vec<u8>| {
            b.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let values: Vec<i32> = match field.as_str() {
            "trits" => i32s(self.read(&name, Dtype::I32, &[rows, trit_words(cols)])?),
            "scale_code" => i32s(self.read(&name, Dtype::I32, &[rows])?),
            // A module loaded for inference keeps its memory empty, whether
            // or not the file has it.
            "memory" if param_dims.get(1) == Some(&0) && rows * cols > 0 => return Ok(None),
            "memory" => {
                let bytes = self.read(&name, Dtype::I8, &[rows, cols])?;
                let memory: Vec<i8> = bytes.iter().map(|b| *b as i8).collect();
                let packed = pack_memory(&memory, rows, cols);
                debug_assert_eq!(packed.len(), rows * memory_words(cols));
                packed
            }
            _ => return Ok(None),
        };
        Ok(Some((values, param_dims)))
    }
}

impl<B: Backend> ModuleMapper<B> for StateWriter<'_, B> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.path.push((name.into(), container.into()));
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_int<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D, Int>>,
    ) -> Param<Tensor<B, D, Int>> {
        if self.error.is_some() {
            return param;
        }
        match self.load_int(param.shape().dims::<D>()) {
            Ok(Some((values, dims))) => {
                let (id, tensor, mapper) = param.consume();
                let device = tensor.device();
                let value =
                    Tensor::from_data(TensorData::new(values, dims), (&device, PACKED_DTYPE));
                Param::from_mapped_value(id, value, mapper)
            }
            Ok(None) => param,
            Err(err) => {
                self.error = Some(err);
                param
            }
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.error.is_some() || param.shape().num_elements() == 0 {
            return param;
        }
        let name = dotted(&self.path);
        let dims = param.shape().dims::<D>();
        match self.read(&name, Dtype::F32, &dims) {
            Ok(bytes) => {
                let values: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let (id, tensor, mapper) = param.consume();
                let require_grad = tensor.is_require_grad();
                let value = Tensor::from_data(TensorData::new(values, dims), &tensor.device())
                    .set_require_grad(require_grad);
                Param::from_mapped_value(id, value, mapper)
            }
            Err(err) => {
                self.error = Some(err);
                param
            }
        }
    }
}
