//! Freezing and int8 quantization of imported sidecars, and their reports.
//!
//! [`freeze_and_quantize`] stores the weight matrices and convolution kernels
//! (every float parameter of rank ≥ 2) as int8 with Burn's own [`Quantizer`]
//! ([`int8_scheme`]: `Q8S`, symmetric, native `i8` storage, min/max
//! calibration, with one `f32` scale per output channel / row, see
//! [`int8_scheme_for`]), keeps the rank-1 parameters (biases, norm gains)
//! in `f32`, and marks every parameter `no_grad`. The quantized
//! kernels are dequantized to the backend's float type inside each
//! convolution or matmul (Burn's generic path).
//!
//! Not every backend can quantize. [`int8_supported`] decides per backend:
//!
//! * autodiff backends: **no** — Burn 0.21's `Autodiff` does not implement
//!   `quantize` (it is a `todo!()` there, "required for QAT");
//! * any other backend: a probe quantizes a small matrix, runs a linear layer
//!   with it and checks the result against the `f32` product (a backend
//!   whose quantization panics or is inaccurate answers no). Flex and NdArray
//!   pass. The answer is cached per backend name.
//!
//! Where int8 is not supported the weights are frozen as BF16 if the backend
//! supports BF16 arithmetic, else as F32 ([`resolve_storage`] says which and
//! why), and [`sidecar_report`] reports the storage actually held.

use std::{
    collections::HashMap,
    fmt,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{Mutex, OnceLock},
};

use burn::{
    module::{Module, ModuleMapper, ModuleVisitor, Param, Quantizer},
    tensor::{
        backend::Backend,
        module::linear,
        quantization::{Calibration, QuantLevel, QuantParam, QuantScheme, QuantStore, QuantValue},
        DType, Tensor, TensorData,
    },
};

/// How a frozen sidecar stores its weights.
///
/// ```
/// use arbitor_models::sidecars::SidecarStorage;
///
/// assert_eq!(SidecarStorage::Int8.to_string(), "int8");
/// assert_eq!("bf16".parse::<SidecarStorage>().unwrap(), SidecarStorage::Bf16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SidecarStorage {
    /// Weight matrices and kernels as int8 (Burn quantization), biases and norms `f32`.
    Int8,
    /// Every float parameter as bfloat16.
    Bf16,
    /// Every float parameter as `f32` (the reference port).
    F32,
}

impl SidecarStorage {
    /// The lower-case name (`int8`, `bf16`, `f32`).
    ///
    /// ```
    /// assert_eq!(arbitor_models::sidecars::SidecarStorage::F32.name(), "f32");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::Bf16 => "bf16",
            Self::F32 => "f32",
        }
    }
}

impl fmt::Display for SidecarStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SidecarStorage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "int8" => Ok(Self::Int8),
            "bf16" => Ok(Self::Bf16),
            "f32" => Ok(Self::F32),
            other => Err(format!(
                "unknown sidecar storage `{other}` (expected int8, bf16 or f32)"
            )),
        }
    }
}

/// The base int8 scheme of sidecars: symmetric `Q8S`, `f32` scales, native
/// `i8` storage, one scale per tensor ([`int8_scheme_for`] refines the level
/// per weight).
///
/// ```
/// use burn::tensor::quantization::{QuantLevel, QuantValue};
///
/// let scheme = arbitor_models::sidecars::int8_scheme();
/// assert_eq!(scheme.value, QuantValue::Q8S);
/// assert_eq!(scheme.level, QuantLevel::Tensor);
/// ```
pub fn int8_scheme() -> QuantScheme {
    QuantScheme::default()
        .with_value(QuantValue::Q8S)
        .with_level(QuantLevel::Tensor)
        .with_param(QuantParam::F32)
        .with_store(QuantStore::Native)
}

/// The int8 scheme of one weight of shape `dims`: [`int8_scheme`] with one
/// scale per slice along the first dimension (block `[1, d1, d2, …]`: per
/// output channel of a convolution kernel, per row of an embedding table,
/// per input row of Burn's `[in, out]` linear weight). Burn block sizes are
/// at most 255 per dimension; a slice with a larger dimension is split along
/// its last dimension into blocks of the largest divisor ≤ 255, and a 1-D or
/// unsplittable tensor keeps one scale per tensor.
///
/// ```
/// use arbitor_models::sidecars::freeze::int8_scheme_for;
/// use burn::tensor::quantization::QuantLevel;
///
/// assert_eq!(int8_scheme_for(&[64, 8, 3, 3]).level, QuantLevel::block([1, 8, 3, 3]));
/// assert_eq!(int8_scheme_for(&[4, 512]).level, QuantLevel::block([1, 128]));
/// assert_eq!(int8_scheme_for(&[16]).level, QuantLevel::Tensor);
/// ```
pub fn int8_scheme_for(dims: &[usize]) -> QuantScheme {
    let scheme = int8_scheme();
    if dims.len() < 2 || dims.len() > 5 {
        return scheme;
    }
    let mut block: Vec<usize> = dims.to_vec();
    block[0] = 1;
    for b in block.iter_mut().skip(1) {
        if *b > 255 {
            // Keep the full extent only where it fits; split large dims.
            let divisor = (1..=255).rev().find(|d| b.is_multiple_of(*d)).unwrap_or(1);
            *b = divisor;
        }
    }
    if block.iter().product::<usize>() <= 1 {
        return scheme;
    }
    let bytes: Vec<u8> = block.iter().map(|b| *b as u8).collect();
    scheme.with_level(QuantLevel::block(bytes))
}

fn cache() -> &'static Mutex<HashMap<String, bool>> {
    static CACHE: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn probe<B: Backend>(device: &B::Device) -> bool {
    let run = || {
        let w: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 29) as f32 - 14.0) / 7.0)
            .collect();
        let x: Vec<f32> = (0..16).map(|i| (i as f32 - 7.5) / 4.0).collect();
        let weight = Tensor::<B, 2>::from_data(TensorData::new(w, [8, 8]), device);
        let input = Tensor::<B, 2>::from_data(TensorData::new(x, [2, 8]), device);
        let reference = linear(input.clone(), weight.clone(), None);
        let mut quantizer = Quantizer {
            calibration: Calibration::MinMax,
            scheme: int8_scheme_for(&[8, 8]),
        };
        let param = ModuleMapper::<B>::map_float(&mut quantizer, Param::from_tensor(weight));
        let quantized = param.val();
        if !matches!(quantized.dtype(), DType::QFloat(_)) {
            return false;
        }
        let out = linear(input, quantized, None);
        let err = (out - reference.clone()).abs().max().into_scalar();
        let scale = reference.abs().max().into_scalar();
        let (err, scale): (f32, f32) = (
            burn::tensor::ElementConversion::elem(err),
            burn::tensor::ElementConversion::elem(scale),
        );
        err.is_finite() && err <= 0.05 * scale
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or(false)
}

/// Whether backend `B` can hold sidecar weights as int8 (see the [module docs](self)).
///
/// ```
/// use arbitor_models::sidecars::int8_supported;
/// use burn::backend::{Autodiff, Flex};
///
/// let device = Default::default();
/// assert!(int8_supported::<Flex>(&device));
/// assert!(!int8_supported::<Autodiff<Flex>>(&device));
/// ```
pub fn int8_supported<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    if name.to_lowercase().contains("autodiff") {
        return false;
    }
    if let Some(known) = cache().lock().ok().and_then(|c| c.get(&name).copied()) {
        return known;
    }
    let supported = probe::<B>(device);
    if let Ok(mut c) = cache().lock() {
        c.insert(name, supported);
    }
    supported
}

/// The storage [`freeze_and_quantize`] will use on a backend, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageDecision {
    /// What was asked for.
    pub requested: SidecarStorage,
    /// What the backend gets.
    pub chosen: SidecarStorage,
    /// The backend's name and, on a fallback, the reason.
    pub reason: String,
}

/// Decides the storage for `requested` on backend `B`: int8 falls back to
/// BF16 where [`int8_supported`] says no, and BF16 to F32 where the backend
/// lacks BF16 arithmetic.
///
/// ```
/// use arbitor_models::sidecars::{resolve_storage, SidecarStorage};
/// use burn::backend::{Autodiff, Flex};
///
/// let device = Default::default();
/// let on_flex = resolve_storage::<Flex>(SidecarStorage::Int8, &device);
/// assert_eq!(on_flex.chosen, SidecarStorage::Int8);
/// let on_autodiff = resolve_storage::<Autodiff<Flex>>(SidecarStorage::Int8, &device);
/// assert_ne!(on_autodiff.chosen, SidecarStorage::Int8);
/// println!("{}", on_autodiff.reason);
/// ```
pub fn resolve_storage<B: Backend>(
    requested: SidecarStorage,
    device: &B::Device,
) -> StorageDecision {
    let name = B::name(device);
    let bf16 = B::supports_dtype(device, DType::BF16);
    let (chosen, reason) = match requested {
        SidecarStorage::Int8 if int8_supported::<B>(device) => {
            (SidecarStorage::Int8, format!("{name}: int8 supported"))
        }
        SidecarStorage::Int8 | SidecarStorage::Bf16 => {
            let why = if requested == SidecarStorage::Int8 {
                format!("{name}: int8 quantization unsupported")
            } else {
                format!("{name}: bf16 requested")
            };
            if bf16 {
                (SidecarStorage::Bf16, format!("{why}; frozen bf16"))
            } else {
                (
                    SidecarStorage::F32,
                    format!("{why}; bf16 arithmetic unsupported too; frozen f32"),
                )
            }
        }
        SidecarStorage::F32 => (SidecarStorage::F32, format!("{name}: f32 requested")),
    };
    StorageDecision {
        requested,
        chosen,
        reason,
    }
}

struct Int8Mapper;

impl<B: Backend> ModuleMapper<B> for Int8Mapper {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if D < 2 {
            return param;
        }
        let mut quantizer = Quantizer {
            calibration: Calibration::MinMax,
            scheme: int8_scheme_for(&param.shape().to_vec()),
        };
        ModuleMapper::<B>::map_float(&mut quantizer, param)
    }
}

struct CastMapper(DType);

impl<B: Backend> ModuleMapper<B> for CastMapper {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = if tensor.dtype() == self.0 {
            tensor
        } else {
            tensor.cast(self.0)
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Freezes an imported module: stores it as `storage` (after
/// [`resolve_storage`]'s fallback on this backend) and marks every parameter
/// `no_grad`. Run a [`SidecarStorage::Bf16`] module on BF16 inputs
/// (`tensor.cast(DType::BF16)`); the sidecars of this module do that themselves.
///
/// ```
/// use arbitor_models::sidecars::{freeze_and_quantize, sidecar_report, SidecarStorage};
/// use burn::{backend::{Autodiff, Flex}, nn::LinearConfig};
///
/// let device = Default::default();
/// let layer = LinearConfig::new(16, 8).init::<Flex>(&device);
/// let frozen = freeze_and_quantize(layer, SidecarStorage::Int8);
/// let report = sidecar_report("demo", &frozen);
/// assert_eq!(report.storage, SidecarStorage::Int8);
/// assert!(report.frozen);
///
/// // On an autodiff backend int8 falls back, and nothing is trainable.
/// let layer = LinearConfig::new(16, 8).init::<Autodiff<Flex>>(&device);
/// let report = sidecar_report("demo", &freeze_and_quantize(layer, SidecarStorage::Int8));
/// assert_ne!(report.storage, SidecarStorage::Int8);
/// assert!(report.frozen);
/// ```
pub fn freeze_and_quantize<B: Backend, M: Module<B>>(module: M, storage: SidecarStorage) -> M {
    let device = module.devices().into_iter().next();
    let chosen = match &device {
        Some(device) => resolve_storage::<B>(storage, device).chosen,
        None => SidecarStorage::F32,
    };
    let module = match chosen {
        SidecarStorage::Int8 => module.map(&mut Int8Mapper),
        SidecarStorage::Bf16 => module.map(&mut CastMapper(DType::BF16)),
        SidecarStorage::F32 => module.map(&mut CastMapper(DType::F32)),
    };
    module.no_grad()
}

/// The float dtype a sidecar should compute in: BF16 when its parameters are
/// stored as BF16, else `F32` (int8 kernels are dequantized to `f32`).
///
/// ```
/// use arbitor_models::sidecars::{compute_dtype, freeze_and_quantize, SidecarStorage};
/// use burn::{backend::Flex, nn::LinearConfig, tensor::DType};
///
/// let layer = LinearConfig::new(4, 4).init::<Flex>(&Default::default());
/// assert_eq!(compute_dtype(&layer), DType::F32);
/// let layer = freeze_and_quantize(layer, SidecarStorage::Bf16);
/// assert_eq!(compute_dtype(&layer), DType::BF16);
/// ```
pub fn compute_dtype<B: Backend, M: Module<B>>(module: &M) -> DType {
    let report = sidecar_report("", module);
    match report.storage {
        SidecarStorage::Bf16 => DType::BF16,
        _ => DType::F32,
    }
}

/// What a frozen sidecar holds: reported apart from the ternary core by the audit.
///
/// ```
/// use arbitor_models::sidecars::{SidecarReport, SidecarStorage};
///
/// let report = SidecarReport {
///     name: "pig_vae".into(),
///     params: 1_000,
///     storage: SidecarStorage::Int8,
///     bytes: 1_100,
///     frozen: true,
/// };
/// assert!(report.to_string().contains("pig_vae"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarReport {
    /// Sidecar name (`pig_vae`, `codec`, `moonshine`, `vision`).
    pub name: String,
    /// Float parameters (elements), quantized or not.
    pub params: usize,
    /// The storage of its weight matrices: int8 if any parameter is quantized,
    /// else bf16 if any is bf16, else f32.
    pub storage: SidecarStorage,
    /// Bytes as stored (int8 values plus their `f32` scales, bf16, f32).
    pub bytes: usize,
    /// Whether no parameter requires a gradient.
    pub frozen: bool,
}

impl fmt::Display for SidecarReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sidecar {:<10} : {} params, {}, {} B ({:.2} MB), {}",
            self.name,
            self.params,
            self.storage,
            self.bytes,
            self.bytes as f64 / 1e6,
            if self.frozen { "frozen" } else { "TRAINABLE" }
        )
    }
}

/// A loaded sidecar that can describe itself for the audit.
///
/// ```
/// use arbitor_models::sidecars::{sidecar_report, Sidecar, SidecarReport};
/// use burn::{backend::Flex, nn::{Linear, LinearConfig}, tensor::backend::Backend};
///
/// struct Probe<B: Backend>(Linear<B>);
/// impl<B: Backend> Sidecar<B> for Probe<B> {
///     fn report(&self) -> SidecarReport {
///         sidecar_report("probe", &self.0)
///     }
/// }
/// let probe = Probe(LinearConfig::new(2, 2).init::<Flex>(&Default::default()));
/// assert_eq!(probe.report().params, 6);
/// ```
pub trait Sidecar<B: Backend> {
    /// The sidecar's report.
    fn report(&self) -> SidecarReport;
}

#[derive(Default)]
struct ReportVisitor {
    params: usize,
    bytes: usize,
    int8: bool,
    bf16: bool,
    trainable: bool,
}

impl<B: Backend> ModuleVisitor<B> for ReportVisitor {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let numel = tensor.shape().num_elements();
        self.params += numel;
        let dtype = tensor.dtype();
        self.bytes += match dtype {
            DType::QFloat(scheme) => {
                let scales = match scheme.level {
                    QuantLevel::Tensor => 1,
                    QuantLevel::Block(block) => numel.div_ceil(block.num_elements().max(1)),
                };
                numel * scheme.size_bits_value() / 8 + 4 * scales
            }
            other => numel * other.size(),
        };
        self.int8 |= matches!(dtype, DType::QFloat(_));
        self.bf16 |= dtype == DType::BF16;
        self.trainable |= tensor.is_require_grad();
    }
}

/// Computes the [`SidecarReport`] of any module: parameter count, storage,
/// bytes as stored and whether any parameter requires a gradient (observable
/// on autodiff backends only).
///
/// ```
/// use arbitor_models::sidecars::{sidecar_report, SidecarStorage};
/// use burn::{backend::{Autodiff, Flex}, nn::LinearConfig};
///
/// let layer = LinearConfig::new(4, 2).init::<Autodiff<Flex>>(&Default::default());
/// let report = sidecar_report("trainable", &layer);
/// assert_eq!((report.params, report.bytes), (10, 40));
/// assert_eq!(report.storage, SidecarStorage::F32);
/// assert!(!report.frozen);
/// ```
pub fn sidecar_report<B: Backend, M: Module<B>>(name: &str, module: &M) -> SidecarReport {
    let mut visitor = ReportVisitor::default();
    module.visit(&mut visitor);
    SidecarReport {
        name: name.to_string(),
        params: visitor.params,
        storage: if visitor.int8 {
            SidecarStorage::Int8
        } else if visitor.bf16 {
            SidecarStorage::Bf16
        } else {
            SidecarStorage::F32
        },
        bytes: visitor.bytes,
        frozen: !visitor.trainable,
    }
}
