//! GGUF export of a BitNet model with its ternary projections in ggml's
//! `TQ2_0` type, and [`GgufFile`], a reader of the GGUF v3 layout (used to
//! check the export).
//!
//! # Why TQ2_0
//!
//! `TQ2_0` (ggml type 35) is the ternary type of mainline llama.cpp, known to
//! its `gguf` Python package too: 256-weight blocks of 64 bytes of 2-bit codes
//! `t + 1` and one f16 scale `d` (2.06 bits per weight). Each block lies in one
//! row, so our per-row scales `2^(code/16) / weight_scale` fit exactly (to f16
//! precision, 2⁻¹¹ relative) and a model with trained per-row codes exports
//! too. bitnet.cpp's `I2_S` keeps one scale per tensor and its byte layout
//! differs between its x86 and ARM kernels, and it is unknown to mainline
//! llama.cpp and the `gguf` package.
//!
//! Layout of a `TQ2_0` block (ggml `block_tq2_0`, `quantize_row_tq2_0_ref`):
//! `qs[64]` then `d` (f16, little-endian); element `e` of the block (`0..256`)
//! is `(qs[32·(e / 128) + e mod 32] >> 2·((e mod 128) / 32)) & 3`, minus 1,
//! times `d`. A row of `n` weights is `n / 256` blocks, so every ternary input
//! width must be a multiple of 256.
//!
//! # The file
//!
//! GGUF v3 (`gguf-py/gguf/constants.py`, llama.cpp's `docs/gguf.md`): the
//! architecture `"bitnet"` with its tensor names (`token_embd`,
//! `blk.N.attn_{norm,q,k,v,output,sub_norm}`, `blk.N.ffn_{norm,gate,up,down,
//! sub_norm}`, `output_norm`), `TQ2_0` projections, F32 embeddings and norms,
//! the `bitnet.*` hyperparameter keys, `general.file_type` 37 (mostly TQ2_0)
//! and either the tokenizer ([`save_gguf_with_tokenizer`](BitNetForCausalLM::save_gguf_with_tokenizer),
//! see [`GgufTokenizer`]) or `tokenizer.ggml.model` `"none"` (token ids only).
//! Tensor data is aligned to 32 bytes. The `bitnet` architecture of mainline
//! llama.cpp has no separate output matrix (the embedding is tied), so an
//! untied model is refused. Its rotary embedding rotates the two halves of
//! each head (`rope_type` NEOX for `bitnet`), as transformers does, so q and k
//! are written unpermuted. The gate's activation is written as
//! `bitnet.hidden_activation = "relu2"`; llama.cpp builds that predate the
//! key (llama-cpp-python 0.3.36's among them) hard-code a SiLU gate in the
//! `bitnet` graph, so they load the file but compute another function
//! (`scripts/hf/check_gguf_llama_cpp.py` shows it: 0.37 relative on its test
//! model; with the gate set to relu² the same llama.cpp is within 2.6e-2,
//! the rest being activation rounding, per 256-value block there and per
//! token here).

use std::path::Path;

use burn::tensor::{backend::Backend, f16};

use super::{
    error::{HfError, HfResult},
    export::host,
    gguf_tokenizer::GgufTokenizer,
    load::projections,
};
use crate::bitnet::BitNetForCausalLM;

/// GGUF magic, `"GGUF"` as a little-endian `u32`.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// The GGUF version written.
pub const GGUF_VERSION: u32 = 3;
/// Alignment of the tensor data (GGUF's default).
pub const GGUF_ALIGNMENT: usize = 32;
/// ggml type id of F32.
pub const GGML_TYPE_F32: u32 = 0;
/// ggml type id of TQ2_0.
pub const GGML_TYPE_TQ2_0: u32 = 35;
/// `general.file_type` of a mostly-TQ2_0 model (`LLAMA_FTYPE_MOSTLY_TQ2_0`).
pub const FILE_TYPE_MOSTLY_TQ2_0: u32 = 37;
/// Weights per TQ2_0 block.
pub const TQ2_0_BLOCK: usize = 256;
/// Bytes per TQ2_0 block: 64 of codes, 2 of f16 scale.
pub const TQ2_0_BLOCK_BYTES: usize = 66;

/// A GGUF metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8.
    String(String),
    /// Type 9: values of one type.
    Array(Vec<GgufValue>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

impl GgufValue {
    fn type_id(&self) -> u32 {
        match self {
            Self::U8(_) => 0,
            Self::I8(_) => 1,
            Self::U16(_) => 2,
            Self::I16(_) => 3,
            Self::U32(_) => 4,
            Self::I32(_) => 5,
            Self::F32(_) => 6,
            Self::Bool(_) => 7,
            Self::String(_) => 8,
            Self::Array(_) => 9,
            Self::U64(_) => 10,
            Self::I64(_) => 11,
            Self::F64(_) => 12,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::U8(v) => out.push(*v),
            Self::I8(v) => out.push(*v as u8),
            Self::U16(v) => out.extend(v.to_le_bytes()),
            Self::I16(v) => out.extend(v.to_le_bytes()),
            Self::U32(v) => out.extend(v.to_le_bytes()),
            Self::I32(v) => out.extend(v.to_le_bytes()),
            Self::F32(v) => out.extend(v.to_le_bytes()),
            Self::Bool(v) => out.push(*v as u8),
            Self::String(s) => write_string(out, s),
            Self::Array(items) => {
                let kind = items.first().map_or(4, Self::type_id);
                out.extend(kind.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    item.write(out);
                }
            }
            Self::U64(v) => out.extend(v.to_le_bytes()),
            Self::I64(v) => out.extend(v.to_le_bytes()),
            Self::F64(v) => out.extend(v.to_le_bytes()),
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// A tensor's entry in a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    /// The tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// ggml dimensions, innermost (row length) first.
    pub dims: Vec<u64>,
    /// ggml type id ([`GGML_TYPE_F32`], [`GGML_TYPE_TQ2_0`], …).
    pub ggml_type: u32,
    /// Offset of its data from the start of the data section.
    pub offset: u64,
}

/// A parsed GGUF file (v2 or v3) held in memory: header, metadata, tensor
/// infos and data, with dequantization of the F32 and TQ2_0 tensors.
///
/// ```
/// use arbitor_models::bitnet::hf::{GgufFile, GgufValue};
///
/// let err = GgufFile::from_bytes(b"GGML....".to_vec(), "bad.gguf").unwrap_err();
/// assert!(err.to_string().contains("bad.gguf"));
/// ```
#[derive(Debug, Clone)]
pub struct GgufFile {
    /// The format version.
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
    /// Where the data section starts (aligned to `general.alignment`).
    pub data_start: usize,
    bytes: Vec<u8>,
    origin: String,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    origin: &'a str,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> HfResult<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| HfError::Corrupt {
            file: self.origin.to_string(),
            reason: format!("truncated at byte {} (wanted {n} more)", self.at),
        })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> HfResult<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> HfResult<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self) -> HfResult<String> {
        let n = self.u64()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| HfError::Corrupt {
            file: self.origin.to_string(),
            reason: format!("a string is not UTF-8: {e}"),
        })
    }

    fn value(&mut self, kind: u32) -> HfResult<GgufValue> {
        let b = |c: &mut Self, n| c.take(n).map(<[u8]>::to_vec);
        Ok(match kind {
            0 => GgufValue::U8(b(self, 1)?[0]),
            1 => GgufValue::I8(b(self, 1)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(b(self, 2)?.try_into().expect("2"))),
            3 => GgufValue::I16(i16::from_le_bytes(b(self, 2)?.try_into().expect("2"))),
            4 => GgufValue::U32(self.u32()?),
            5 => GgufValue::I32(self.u32()? as i32),
            6 => GgufValue::F32(f32::from_bits(self.u32()?)),
            7 => GgufValue::Bool(b(self, 1)?[0] != 0),
            8 => GgufValue::String(self.string()?),
            9 => {
                let inner = self.u32()?;
                let n = self.u64()?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value(inner)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(self.u64()? as i64),
            12 => GgufValue::F64(f64::from_bits(self.u64()?)),
            other => {
                return Err(HfError::Corrupt {
                    file: self.origin.to_string(),
                    reason: format!("unknown metadata value type {other} at byte {}", self.at),
                });
            }
        })
    }
}

impl GgufFile {
    /// Reads and parses a GGUF file.
    pub fn open(path: &Path) -> HfResult<Self> {
        let bytes = std::fs::read(path).map_err(|e| HfError::io(path, e))?;
        Self::from_bytes(bytes, &path.display().to_string())
    }

    /// Parses GGUF bytes; `origin` names them in errors.
    pub fn from_bytes(bytes: Vec<u8>, origin: &str) -> HfResult<Self> {
        let corrupt = |reason: String| HfError::Corrupt {
            file: origin.to_string(),
            reason,
        };
        let mut c = Cursor {
            bytes: &bytes,
            at: 0,
            origin,
        };
        let magic = c.u32()?;
        if magic != GGUF_MAGIC {
            return Err(corrupt(format!(
                "magic {magic:#010x}, expected {GGUF_MAGIC:#010x} (\"GGUF\")"
            )));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(corrupt(format!("version {version}, expected 2 or 3")));
        }
        let n_tensors = c.u64()?;
        let n_kv = c.u64()?;
        let mut metadata = Vec::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let kind = c.u32()?;
            metadata.push((key, c.value(kind)?));
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()?;
            let dims = (0..n_dims).map(|_| c.u64()).collect::<HfResult<Vec<_>>>()?;
            let ggml_type = c.u32()?;
            let offset = c.u64()?;
            tensors.push(GgufTensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, GgufValue::U32(a))) => *a as usize,
            _ => GGUF_ALIGNMENT,
        };
        if alignment == 0 {
            return Err(corrupt("general.alignment is 0".into()));
        }
        let data_start = c.at.next_multiple_of(alignment);
        let file = Self {
            version,
            metadata,
            tensors,
            data_start,
            bytes,
            origin: origin.to_string(),
        };
        for t in &file.tensors {
            if !(t.offset as usize).is_multiple_of(alignment) {
                return Err(corrupt(format!(
                    "tensor `{}` at offset {} is not aligned to {alignment}",
                    t.name, t.offset
                )));
            }
            file.tensor_bytes(&t.name)?;
        }
        Ok(file)
    }

    /// The metadata value of `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The info of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw data of tensor `name` (its size from its type and dims).
    pub fn tensor_bytes(&self, name: &str) -> HfResult<&[u8]> {
        let t = self.tensor(name).ok_or_else(|| HfError::MissingTensor {
            tensor: name.to_string(),
            file: self.origin.clone(),
        })?;
        let n: u64 = t.dims.iter().product();
        let size = match t.ggml_type {
            GGML_TYPE_F32 => n as usize * 4,
            GGML_TYPE_TQ2_0 => {
                if !(n as usize).is_multiple_of(TQ2_0_BLOCK) {
                    return Err(HfError::BadValue {
                        tensor: name.to_string(),
                        reason: format!("{n} weights is no whole number of TQ2_0 blocks"),
                    });
                }
                n as usize / TQ2_0_BLOCK * TQ2_0_BLOCK_BYTES
            }
            other => {
                return Err(HfError::Dtype {
                    tensor: name.to_string(),
                    expected: "ggml type 0 (F32) or 35 (TQ2_0)".into(),
                    actual: format!("ggml type {other}"),
                });
            }
        };
        let start = self.data_start + t.offset as usize;
        self.bytes
            .get(start..start + size)
            .ok_or_else(|| HfError::Corrupt {
                file: self.origin.clone(),
                reason: format!("tensor `{name}` lies outside the file"),
            })
    }

    /// Tensor `name` dequantized to f32 (F32 or TQ2_0), in ggml order
    /// (row-major with `dims[0]` innermost).
    pub fn dequantize(&self, name: &str) -> HfResult<Vec<f32>> {
        let bytes = self.tensor_bytes(name)?;
        Ok(match self.tensor(name).map(|t| t.ggml_type) {
            Some(GGML_TYPE_TQ2_0) => bytes
                .chunks_exact(TQ2_0_BLOCK_BYTES)
                .flat_map(|block| {
                    let d = f16::from_le_bytes([block[64], block[65]]).to_f32();
                    (0..TQ2_0_BLOCK).map(move |e| {
                        let byte = block[32 * (e / 128) + e % 32];
                        let code = (byte >> (2 * ((e % 128) / 32))) & 3;
                        (code as f32 - 1.0) * d
                    })
                })
                .collect(),
            _ => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }
}

/// One TQ2_0 row: `trits.len()` (a multiple of 256) weights `t · d`.
pub(crate) fn tq2_0_row(trits: &[i8], d: f32, out: &mut Vec<u8>) {
    let d = f16::from_f32(d).to_le_bytes();
    for block in trits.chunks_exact(TQ2_0_BLOCK) {
        let mut qs = [0u8; 64];
        for (e, &t) in block.iter().enumerate() {
            qs[32 * (e / 128) + e % 32] |= ((t + 1) as u8) << (2 * ((e % 128) / 32));
        }
        out.extend(qs);
        out.extend(d);
    }
}

/// GGUF tensor names of a projection, in the order of the export.
const GGUF_PROJECTIONS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

impl<B: Backend> BitNetForCausalLM<B> {
    /// Whether [`save_gguf`](Self::save_gguf) can hold this model, checked
    /// from the shapes alone (nothing is read back from the device), so a
    /// caller writing several formats can refuse before writing any. Errors
    /// as `save_gguf`'s: an untied `lm_head`, a projection input width that
    /// is no multiple of 256.
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use arbitor_models::bitnet::BitNetConfig;
    ///
    /// let device = Default::default();
    /// assert!(BitNetConfig::new(256, 512, 1, 4, 2, 10).init::<Flex>(&device).check_gguf().is_ok());
    /// let err = BitNetConfig::new(256, 500, 1, 4, 2, 10).init::<Flex>(&device).check_gguf().unwrap_err();
    /// assert!(err.to_string().contains("blk.0.ffn_down.weight"));
    /// ```
    pub fn check_gguf(&self) -> Result<(), HfError> {
        if self.lm_head.is_some() {
            return Err(HfError::export(
                "lm_head.weight",
                "the GGUF `bitnet` architecture ties the output to token_embd; this model has an untied lm_head",
            ));
        }
        for l in 0..self.config.num_hidden_layers {
            for ((upstream, [_, cols]), gguf_name) in
                projections(&self.config).into_iter().zip(GGUF_PROJECTIONS)
            {
                if !cols.is_multiple_of(TQ2_0_BLOCK) {
                    return Err(HfError::export(
                        &format!("blk.{l}.{gguf_name}.weight"),
                        format!(
                            "rows of {cols} weights (model.layers.{l}.{upstream}.weight) are no whole number of 256-weight TQ2_0 blocks"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes the model to `path` as GGUF v3, architecture `"bitnet"`, the
    /// ternary projections in ggml's `TQ2_0` (one f16 scale per 256-weight
    /// block: each row's `2^(code/16) / weight_scale`), embeddings and norms
    /// in F32; see the [module docs](super) for the layout and why TQ2_0.
    /// Refused with [`HfError::Export`] naming the tensor: a projection
    /// input width that is no multiple of 256 (TQ2_0's block), an untied
    /// `lm_head` (the `bitnet` architecture has no output matrix).
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use arbitor_models::bitnet::{BitNetConfig, hf::{GgufFile, GgufValue}};
    ///
    /// let config = BitNetConfig::new(256, 256, 1, 4, 2, 10);
    /// let model = config.init::<Flex>(&Default::default());
    /// let path = std::env::temp_dir().join(format!("bitnet-doc-{}.gguf", std::process::id()));
    /// model.save_gguf(&path).unwrap();
    /// let file = GgufFile::open(&path).unwrap();
    /// assert_eq!(file.get("general.architecture"), Some(&GgufValue::String("bitnet".into())));
    /// assert_eq!(file.tensor("blk.0.attn_q.weight").unwrap().dims, vec![256, 256]);
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn save_gguf(&self, path: &Path) -> Result<(), HfError> {
        self.write_gguf(path, None)
    }

    /// [`save_gguf`](Self::save_gguf) with the tokenizer in the file
    /// (`tokenizer.ggml.*`, see [`GgufTokenizer`]), so llama.cpp takes text.
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use arbitor_models::bitnet::{BitNetConfig, hf::{GgufFile, GgufTokenizer, GgufValue}};
    ///
    /// let json = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tokenizer/tokenizer.json");
    /// let tokenizer = GgufTokenizer::from_tokenizer_json(&json, 512).unwrap();
    /// let model = BitNetConfig::new(256, 256, 1, 4, 2, 512).init::<Flex>(&Default::default());
    /// let path = std::env::temp_dir().join(format!("bitnet-doc-tok-{}.gguf", std::process::id()));
    /// model.save_gguf_with_tokenizer(&path, &tokenizer).unwrap();
    /// let file = GgufFile::open(&path).unwrap();
    /// assert_eq!(file.get("tokenizer.ggml.pre"), Some(&GgufValue::String("gpt-2".into())));
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn save_gguf_with_tokenizer(
        &self,
        path: &Path,
        tokenizer: &GgufTokenizer,
    ) -> Result<(), HfError> {
        if tokenizer.tokens.len() != self.config.vocab_size {
            return Err(HfError::export(
                "tokenizer.ggml.tokens",
                format!(
                    "the tokenizer holds {} tokens, the model's vocab_size is {}",
                    tokenizer.tokens.len(),
                    self.config.vocab_size
                ),
            ));
        }
        self.write_gguf(path, Some(tokenizer))
    }

    fn write_gguf(&self, path: &Path, tokenizer: Option<&GgufTokenizer>) -> Result<(), HfError> {
        self.check_gguf()?;
        let c = &self.config;
        let (vocab, d) = (c.vocab_size, c.hidden_size);
        // (name, ggml dims innermost first, ggml type, data)
        let mut tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)> = Vec::new();
        let f32_bytes = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        tensors.push((
            "token_embd.weight".into(),
            vec![d as u64, vocab as u64],
            GGML_TYPE_F32,
            f32_bytes(host(self.model.embed_tokens.weight.val())),
        ));
        let projections = self.exported_projections();
        for (l, layer) in self.model.layers.iter().enumerate() {
            for (name, norm) in [
                ("attn_norm", &layer.input_layernorm),
                ("attn_sub_norm", &layer.self_attn.attn_sub_norm),
                ("ffn_norm", &layer.post_attention_layernorm),
                ("ffn_sub_norm", &layer.mlp.ffn_sub_norm),
            ] {
                let gain = host(norm.gamma.val());
                tensors.push((
                    format!("blk.{l}.{name}.weight"),
                    vec![gain.len() as u64],
                    GGML_TYPE_F32,
                    f32_bytes(gain),
                ));
            }
            for (proj, gguf_name) in projections[7 * l..7 * l + 7].iter().zip(GGUF_PROJECTIONS) {
                let name = format!("blk.{l}.{gguf_name}.weight");
                let mut data =
                    Vec::with_capacity(proj.rows * proj.cols / TQ2_0_BLOCK * TQ2_0_BLOCK_BYTES);
                for (row, &scale) in proj.trits.chunks_exact(proj.cols).zip(&proj.row_scales) {
                    tq2_0_row(row, scale, &mut data);
                }
                tensors.push((
                    name,
                    vec![proj.cols as u64, proj.rows as u64],
                    GGML_TYPE_TQ2_0,
                    data,
                ));
            }
        }
        tensors.push((
            "output_norm.weight".into(),
            vec![d as u64],
            GGML_TYPE_F32,
            f32_bytes(host(self.model.norm.gamma.val())),
        ));

        let arch = "bitnet";
        let u32v = |v: usize| GgufValue::U32(v as u32);
        let mut metadata: Vec<(String, GgufValue)> = vec![
            (
                "general.architecture".into(),
                GgufValue::String(arch.into()),
            ),
            (
                "general.name".into(),
                GgufValue::String("BitNet b1.58 (arbitor)".into()),
            ),
            ("general.alignment".into(), u32v(GGUF_ALIGNMENT)),
            (
                "general.file_type".into(),
                GgufValue::U32(FILE_TYPE_MOSTLY_TQ2_0),
            ),
            (format!("{arch}.vocab_size"), u32v(vocab)),
            (
                format!("{arch}.context_length"),
                u32v(c.max_position_embeddings),
            ),
            (format!("{arch}.embedding_length"), u32v(d)),
            (format!("{arch}.block_count"), u32v(c.num_hidden_layers)),
            (
                format!("{arch}.feed_forward_length"),
                u32v(c.intermediate_size),
            ),
            (
                format!("{arch}.attention.head_count"),
                u32v(c.num_attention_heads),
            ),
            (
                format!("{arch}.attention.head_count_kv"),
                u32v(c.num_key_value_heads),
            ),
            (
                format!("{arch}.attention.layer_norm_rms_epsilon"),
                GgufValue::F32(c.rms_norm_eps as f32),
            ),
            (
                format!("{arch}.rope.freq_base"),
                GgufValue::F32(c.rope_theta as f32),
            ),
            (format!("{arch}.rope.dimension_count"), u32v(c.head_dim())),
            (
                format!("{arch}.hidden_activation"),
                GgufValue::String("relu2".into()),
            ),
        ];
        match tokenizer {
            Some(tokenizer) => metadata.extend(tokenizer.metadata()),
            None => metadata.push((
                "tokenizer.ggml.model".into(),
                GgufValue::String("none".into()),
            )),
        }

        let mut out = Vec::new();
        out.extend(GGUF_MAGIC.to_le_bytes());
        out.extend(GGUF_VERSION.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((metadata.len() as u64).to_le_bytes());
        for (key, value) in &metadata {
            write_string(&mut out, key);
            out.extend(value.type_id().to_le_bytes());
            value.write(&mut out);
        }
        let mut offset = 0usize;
        for (name, dims, kind, data) in &tensors {
            write_string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for dim in dims {
                out.extend(dim.to_le_bytes());
            }
            out.extend(kind.to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            offset = (offset + data.len()).next_multiple_of(GGUF_ALIGNMENT);
        }
        out.resize(out.len().next_multiple_of(GGUF_ALIGNMENT), 0);
        for (_, _, _, data) in &tensors {
            out.extend(data);
            out.resize(out.len().next_multiple_of(GGUF_ALIGNMENT), 0);
        }
        std::fs::write(path, out).map_err(|e| HfError::io(path, e))
    }
}
