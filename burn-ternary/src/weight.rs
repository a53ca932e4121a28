//! [`TernaryWeight`], the persistent state of one logical ternary weight: the
//! parameter every ternary layer holds and the [`functional`](crate::functional)
//! ops take.

use burn::{
    module::{Content, DisplaySettings, Module, ModuleDisplay, Param, ParamId},
    tensor::{backend::Backend, ops::FloatTensor, Distribution, Int, Tensor, TensorData},
};

use crate::{
    backend::TernaryBackend,
    error::{TernaryError, TernaryResult},
    ops::dense_weight,
    packing::{
        decode_scale_tensor, int_tensor, memory_words, pack_memory, pack_memory_tensor, pack_trits,
        pack_trits_tensor, trit_words, unpack_memory, unpack_trits, SCALE_CODE_RANGE,
        SCALE_CODE_STEPS_PER_OCTAVE,
    },
    types::{TernaryPrimitive, UPDATE_THRESHOLD},
};

/// The persistent state of one logical `[rows, cols]` ternary weight
/// `W = diag(2^(code/16)) · T`, shared by every ternary layer.
///
/// Storage: packed trits (0.25 B per weight), packed signed 8-bit update
/// memory (1 B per weight), one `i32` scale code per row, and a zero-element
/// float *gradient port* whose autodiff node receives the dense `[rows, cols]`
/// weight gradient for the ternary optimizer. There is no float per weight.
///
/// ```
/// use burn::backend::NdArray;
/// use burn_ternary::TernaryWeight;
///
/// let weight = TernaryWeight::<NdArray>::init(4, 20, &Default::default());
/// assert_eq!(weight.dims(), [4, 20]);
/// assert!(weight.trits_host().iter().all(|t| (-1..=1).contains(t)));
/// assert!(weight.to_string().starts_with("TernaryWeight {rows: 4, cols: 20"));
/// ```
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct TernaryWeight<B: Backend> {
    /// Packed trits `[rows, ceil(cols / 16)]`, `i32` words.
    pub trits: Param<Tensor<B, 2, Int>>,
    /// Packed update memory `[rows, ceil(cols / 4)]`, four `i8` per `i32` word.
    pub memory: Param<Tensor<B, 2, Int>>,
    /// Per-row scale codes `[rows]`: `scale = 2^(code / 16)`.
    pub scale_code: Param<Tensor<B, 1, Int>>,
    /// Zero-element gradient port, shape `[0, cols]`.
    pub grad_port: Param<Tensor<B, 2>>,
}

impl<B: Backend> ModuleDisplay for TernaryWeight<B> {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let [rows, cols] = self.dims();
        content.add("rows", &rows).add("cols", &cols).optional()
    }
}

impl<B: Backend> TernaryWeight<B> {
    /// A weight initialized by ternarizing a Gaussian `N(0, 1/cols)` draw
    /// (from the backend's RNG): per-row scale `mean |w|`, trits
    /// `round(w / scale)` clamped to ±1, and the rounding residual kept in the
    /// update memory so training starts from the float draw's information.
    pub fn init(rows: usize, cols: usize, device: &B::Device) -> Self {
        let std = 1.0 / (cols.max(1) as f64).sqrt();
        let w = Tensor::<B, 2>::random([rows, cols], Distribution::Normal(0.0, std), device);
        let scale = w.clone().abs().mean_dim(1).clamp_min(1e-12);
        let code = (scale.clone().log()
            * (SCALE_CODE_STEPS_PER_OCTAVE as f64 / core::f64::consts::LN_2))
            .round()
            .clamp(SCALE_CODE_RANGE.0 as f64, SCALE_CODE_RANGE.1 as f64);
        let ratio = w / scale;
        let trits = ratio.clone().round().clamp(-1.0, 1.0);
        let theta = UPDATE_THRESHOLD as f64;
        let memory = ((ratio - trits.clone()) * theta)
            .round()
            .clamp(-theta, theta);
        Self::from_tensors(
            pack_trits_tensor(trits.int()),
            pack_memory_tensor(memory.int()),
            code.int().reshape([rows]),
            cols,
        )
    }

    /// Builds a weight from host values: `trits` and `memory` row-major
    /// `[rows, cols]`, one scale code per row.
    pub fn from_host(
        trits: &[i8],
        memory: &[i8],
        scale_codes: &[i32],
        rows: usize,
        cols: usize,
        device: &B::Device,
    ) -> TernaryResult<Self> {
        let check = |name: &str, len: usize, expected: usize| {
            (len == expected).then_some(()).ok_or_else(|| {
                TernaryError::shape(name, format!("{expected} values ({rows}x{cols})"), &[len])
            })
        };
        check("trits", trits.len(), rows * cols)?;
        check("memory", memory.len(), rows * cols)?;
        check("scale_codes", scale_codes.len(), rows)?;
        if let Some(bad) = trits.iter().find(|t| !(-1..=1).contains(*t)) {
            return Err(TernaryError::BadCheckpoint {
                tensor: "trits".into(),
                reason: format!("value {bad} is not a trit"),
            });
        }
        Ok(Self::from_tensors(
            int_tensor::<B, 2>(
                pack_trits(trits, rows, cols),
                [rows, trit_words(cols)],
                device,
            ),
            int_tensor::<B, 2>(
                pack_memory(memory, rows, cols),
                [rows, memory_words(cols)],
                device,
            ),
            int_tensor::<B, 1>(scale_codes.to_vec(), [rows], device),
            cols,
        ))
    }

    /// Wraps packed state tensors (see the field docs for their layouts).
    pub fn from_tensors(
        trits: Tensor<B, 2, Int>,
        memory: Tensor<B, 2, Int>,
        scale_code: Tensor<B, 1, Int>,
        cols: usize,
    ) -> Self {
        let device = trits.device();
        let i32 = crate::packing::PACKED_DTYPE;
        // Recorders may widen integers on the way through; the load mapper
        // keeps the packed state in i32 so its footprint stays as designed.
        let packed = |t: Tensor<B, 2, Int>| {
            Param::initialized(ParamId::new(), t.cast(i32)).load_mapper(move |t| t.cast(i32))
        };
        Self {
            trits: packed(trits),
            memory: packed(memory),
            scale_code: Param::initialized(ParamId::new(), scale_code.cast(i32))
                .load_mapper(move |t| t.cast(i32)),
            grad_port: Param::from_tensor(Tensor::empty([0, cols], &device)),
        }
    }

    /// Logical shape `[rows, cols]`.
    pub fn dims(&self) -> [usize; 2] {
        [self.scale_code.shape()[0], self.grad_port.shape()[1]]
    }

    /// The weight with its scales decoded by the reference Burn ops (any
    /// backend; [`primitive`](Self::primitive) uses the backend's own decode).
    fn reference_primitive(&self) -> TernaryPrimitive<B> {
        self.primitive_with_scale(
            decode_scale_tensor(self.scale_code.val())
                .into_primitive()
                .tensor(),
        )
    }

    fn primitive_with_scale(&self, scale: FloatTensor<B>) -> TernaryPrimitive<B> {
        let [rows, cols] = self.dims();
        TernaryPrimitive {
            trits: self.trits.val().into_primitive(),
            scale,
            rows,
            cols,
        }
    }

    /// The gradient port's tensor, to pass to an op as `grad_port`.
    pub fn port(&self) -> burn::tensor::ops::FloatTensor<B> {
        self.grad_port.val().into_primitive().tensor()
    }

    /// The dense `[rows, cols]` matrix `diag(scale) · T` (for tests and export).
    pub fn to_dense(&self) -> Tensor<B, 2> {
        dense_weight(&self.reference_primitive())
    }

    /// Trits as host values, row-major `[rows, cols]`.
    pub fn trits_host(&self) -> Vec<i8> {
        let [rows, cols] = self.dims();
        unpack_trits(&words(self.trits.val()), rows, cols)
    }

    /// Update memory as host values, row-major `[rows, cols]`; empty for a
    /// weight [without update memory](Self::without_update_memory).
    pub fn memory_host(&self) -> Vec<i8> {
        if !self.has_update_memory() {
            return Vec::new();
        }
        let [rows, cols] = self.dims();
        unpack_memory(&words(self.memory.val()), rows, cols)
    }

    /// Whether the weight holds its update memory (training needs it;
    /// inference does not).
    pub fn has_update_memory(&self) -> bool {
        let [rows, cols] = self.dims();
        rows * cols == 0 || self.memory.shape()[1] > 0
    }

    /// The weight for inference only: the update memory (one byte per
    /// weight) replaced by an empty `[rows, 0]` tensor. Outputs are
    /// unchanged; the optimizer refuses the weight. For a whole module:
    /// [`without_update_memory`](crate::without_update_memory).
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use burn_ternary::TernaryWeight;
    ///
    /// let weight = TernaryWeight::<Flex>::init(4, 20, &Default::default());
    /// let inference = weight.clone().without_update_memory();
    /// assert!(weight.has_update_memory() && !inference.has_update_memory());
    /// assert_eq!(inference.trits_host(), weight.trits_host());
    /// ```
    pub fn without_update_memory(self) -> Self {
        crate::without_update_memory(self)
    }

    /// Scale codes as host values.
    pub fn scale_codes_host(&self) -> Vec<i32> {
        words(self.scale_code.val())
    }
}

impl<B: TernaryBackend> TernaryWeight<B> {
    /// The weight as the backend ops take it, its scales decoded from their
    /// codes by [`TernaryBackend::ternary_decode_scale`] (one kernel on the
    /// CubeCL backends).
    ///
    /// ```
    /// use burn::backend::NdArray;
    /// use burn_ternary::TernaryWeight;
    ///
    /// let weight = TernaryWeight::<NdArray>::init(4, 20, &Default::default());
    /// let primitive = weight.primitive();
    /// assert_eq!((primitive.rows, primitive.cols), (4, 20));
    /// ```
    pub fn primitive(&self) -> TernaryPrimitive<B> {
        self.primitive_with_scale(B::ternary_decode_scale(
            self.scale_code.val().into_primitive(),
        ))
    }
}

fn words<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i32> {
    let data: TensorData = t.cast(crate::packing::PACKED_DTYPE).into_data();
    data.convert::<i32>()
        .into_vec::<i32>()
        .expect("packed words are i32")
}
