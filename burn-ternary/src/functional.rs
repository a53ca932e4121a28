//! The ternary ops as free functions on Burn [`Tensor`]s, the way
//! `burn::tensor::module` holds `linear`, `embedding` and `conv1d`: the
//! layers in [`crate::nn`] are thin wrappers that call these.
//!
//! Each function checks its shapes and returns a [`TernaryError`] that names
//! the offending tensor instead of panicking, then calls the backend's op
//! ([`TernaryBackend`]), so it runs the CubeCL kernels on CUDA and WGPU, the
//! reference implementations elsewhere, and records its backward pass on
//! `Autodiff<B>` (the weight gradient goes to the weight's gradient port, where
//! [`TernaryOptimizer`](crate::optim::TernaryOptimizer) finds it).

use burn::tensor::{
    backend::Backend, ops::FloatTensor, Int, Tensor, TensorMetadata, TensorPrimitive,
};

use crate::{
    backend::TernaryBackend,
    error::{TernaryError, TernaryResult},
    packing::{memory_words, trit_words},
    types::{
        Conv1dGeometry, ConvEpilogue, NoiseKey, TernaryPrimitive, TernaryState, UpdateHyper,
        UpdatedState,
    },
    weight::TernaryWeight,
};

fn float_tensor<B: Backend, const D: usize>(t: burn::tensor::ops::FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// The ternary linear map `y = x · Wᵀ` of `input: [..., d_input]` by a
/// weight of logical shape `[d_output, d_input]`, giving `[..., d_output]`.
/// No bias: a ternary layer has no float parameters.
///
/// # Errors
/// [`TernaryError::ShapeMismatch`] when the last dimension of `input` is not the
/// weight's `d_input`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::{functional::linear, TernaryWeight};
///
/// let device = Default::default();
/// let weight = TernaryWeight::<Flex>::init(8, 20, &device); // [d_output, d_input]
/// let x = Tensor::<Flex, 3>::ones([2, 5, 20], &device);
/// assert_eq!(linear(x, &weight).unwrap().dims(), [2, 5, 8]);
/// ```
pub fn linear<B: TernaryBackend, const D: usize>(
    input: Tensor<B, D>,
    weight: &TernaryWeight<B>,
) -> TernaryResult<Tensor<B, D>> {
    let [rows, cols] = weight.dims();
    let dims = input.dims();
    if D == 0 || dims[D - 1] != cols {
        return Err(TernaryError::shape(
            "x",
            format!("[..., {cols}] (d_input)"),
            &dims,
        ));
    }
    let m = dims[..D - 1].iter().product();
    let flat = input.reshape([m, cols]).into_primitive().tensor();
    let y = B::ternary_matmul(flat, weight.primitive(), weight.port());
    let mut out = dims;
    out[D - 1] = rows;
    Ok(float_tensor::<B, 2>(y).reshape(out))
}

/// Rows `ids: [n]` of a ternary table of logical shape `[n_embedding,
/// d_model]`, giving `[n, d_model]`. Only the packed trits of the requested
/// rows are read.
///
/// # Errors
/// [`TernaryError::IndexOutOfRange`] when an id is negative or not below
/// `n_embedding` (checking reads the ids' minimum and maximum back from the
/// device).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use burn_ternary::{functional::embedding_lookup, TernaryWeight};
///
/// let device = Default::default();
/// let table = TernaryWeight::<Flex>::init(10, 4, &device);
/// let ids = Tensor::<Flex, 1, Int>::from_ints([0, 9, 9], &device);
/// assert_eq!(embedding_lookup(&table, ids).unwrap().dims(), [3, 4]);
/// let bad = Tensor::<Flex, 1, Int>::from_ints([10], &device);
/// assert!(embedding_lookup(&table, bad).is_err());
/// ```
pub fn embedding_lookup<B: TernaryBackend>(
    weight: &TernaryWeight<B>,
    ids: Tensor<B, 1, Int>,
) -> TernaryResult<Tensor<B, 2>> {
    let [rows, _] = weight.dims();
    check_ids(&ids, rows, "ids")?;
    Ok(embedding_lookup_unchecked(weight, ids))
}

/// [`embedding_lookup`] without the range check, for ids a model computed
/// itself (hashes reduced modulo the table's rows, an argmin over its rows):
/// no value is read back from the device. An id out of range gives
/// unspecified values on the GPU backends (a panic on the CPU ones).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use burn_ternary::{functional::embedding_lookup_unchecked, TernaryWeight};
///
/// let device = Default::default();
/// let table = TernaryWeight::<Flex>::init(16, 8, &device);
/// let ids = Tensor::<Flex, 1, Int>::from_ints([3, 15], &device);
/// assert_eq!(embedding_lookup_unchecked(&table, ids).dims(), [2, 8]);
/// ```
pub fn embedding_lookup_unchecked<B: TernaryBackend>(
    weight: &TernaryWeight<B>,
    ids: Tensor<B, 1, Int>,
) -> Tensor<B, 2> {
    float_tensor(B::ternary_embedding(
        ids.into_primitive(),
        weight.primitive(),
        weight.port(),
    ))
}

/// Rows `ids: [batch, seq]` of a ternary table of logical shape
/// `[n_embedding, d_model]`, giving `[batch, seq, d_model]` (the shapes of
/// `burn::tensor::module::embedding`).
///
/// # Errors
/// [`TernaryError::IndexOutOfRange`] when an id is negative or not below
/// `n_embedding`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use burn_ternary::{functional::embedding, TernaryWeight};
///
/// let device = Default::default();
/// let table = TernaryWeight::<Flex>::init(256, 32, &device);
/// let ids = Tensor::<Flex, 2, Int>::from_ints([[1, 2, 3], [4, 5, 255]], &device);
/// assert_eq!(embedding(&table, ids).unwrap().dims(), [2, 3, 32]);
/// ```
pub fn embedding<B: TernaryBackend>(
    weight: &TernaryWeight<B>,
    ids: Tensor<B, 2, Int>,
) -> TernaryResult<Tensor<B, 3>> {
    let [batch, seq] = ids.dims();
    let [_, cols] = weight.dims();
    Ok(embedding_lookup(weight, ids.reshape([batch * seq]))?.reshape([batch, seq, cols]))
}

/// Checks that every id of `ids` is in `0..bound`, or names the tensor
/// (`name`) and an offending id. Reads the minimum and maximum back from the
/// device in one transfer (one synchronization of an asynchronous backend).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use burn_ternary::functional::check_ids;
///
/// let ids = Tensor::<Flex, 1, Int>::from_ints([0, 3, 9], &Default::default());
/// assert!(check_ids(&ids, 10, "ids").is_ok());
/// assert!(check_ids(&ids, 9, "ids").unwrap_err().to_string().contains("ids"));
/// ```
pub fn check_ids<B: Backend, const D: usize>(
    ids: &Tensor<B, D, Int>,
    bound: usize,
    name: &str,
) -> TernaryResult<()> {
    if ids.shape().num_elements() == 0 {
        return Ok(());
    }
    let flat = ids.clone().flatten::<1>(0, D - 1);
    let extremes = Tensor::cat(vec![flat.clone().min(), flat.max()], 0)
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("i64 extremes");
    let (min, max) = (extremes[0], extremes[1]);
    let bad = if min < 0 { min } else { max };
    if min < 0 || max >= bound as i64 {
        return Err(TernaryError::IndexOutOfRange {
            tensor: name.to_string(),
            index: bad,
            bound,
        });
    }
    Ok(())
}

/// The weight's columns must be `in_channels · kernel_size` of the geometry.
fn check_kernel<B: Backend>(
    weight: &TernaryWeight<B>,
    channels: usize,
    g: &Conv1dGeometry,
) -> TernaryResult<()> {
    let cols = weight.dims()[1];
    if channels * g.kernel_size != cols {
        return Err(TernaryError::shape(
            "weight",
            format!(
                "[_, {channels} * {}] (channels times kernel_size)",
                g.kernel_size
            ),
            &weight.dims(),
        ));
    }
    Ok(())
}

/// Ternary 1-D convolution of `x: [batch, in_channels, length]` by a weight of
/// logical shape `[out_channels, in_channels · kernel_size]` (column
/// `c · kernel_size + k`), giving `[batch, out_channels, out_len]` with
/// `out_len = geometry.output_len(length)`. The unfold (im2col) is the op's
/// job: the CubeCL kernels do it implicitly.
///
/// # Errors
/// [`TernaryError::ShapeMismatch`] when `x` does not have `geometry.in_channels`
/// channels, when it is shorter than the kernel's reach, or when the
/// weight's columns are not `in_channels · kernel_size`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::{functional::conv1d, types::Conv1dGeometry, TernaryWeight};
///
/// let device = Default::default();
/// let geometry = Conv1dGeometry { in_channels: 3, kernel_size: 5, stride: 2, padding: 0, dilation: 1 };
/// let weight = TernaryWeight::<Flex>::init(8, 3 * 5, &device);
/// let x = Tensor::<Flex, 3>::ones([2, 3, 41], &device);
/// assert_eq!(conv1d(x, &weight, geometry).unwrap().dims(), [2, 8, 19]);
/// ```
pub fn conv1d<B: TernaryBackend>(
    x: Tensor<B, 3>,
    weight: &TernaryWeight<B>,
    geometry: Conv1dGeometry,
) -> TernaryResult<Tensor<B, 3>> {
    let g = geometry;
    let dims = x.dims();
    if dims[1] != g.in_channels {
        return Err(TernaryError::shape(
            "x",
            format!("[batch, {}, length]", g.in_channels),
            &dims,
        ));
    }
    if g.output_len(dims[2]).is_none() {
        return Err(TernaryError::shape(
            "x",
            "a length of at least the kernel's reach",
            &dims,
        ));
    }
    check_kernel(weight, g.in_channels, &g)?;
    let y = B::ternary_conv1d(
        x.into_primitive().tensor(),
        weight.primitive(),
        g,
        weight.port(),
    );
    Ok(float_tensor(y))
}

/// The fused forward convolution of inference,
/// [`TernaryBackend::ternary_conv1d_fused`]: [`conv1d`] of
/// `x: [batch, in_channels, length]` by an already decoded weight
/// (`weight`, e.g. [`TernaryWeight::primitive`] taken once before a loop),
/// then `epilogue` on the result `y: [batch, rows, out_len]`, and, if
/// `gelu_copy`, also `gelu(y)`. One launch on CUDA and WGPU. Returns
/// `(y, gelu(y) if gelu_copy)`.
///
/// Inference only: the result carries no gradient (on an autodiff backend
/// it is a constant of the graph); train with [`conv1d`].
///
/// # Errors
/// [`TernaryError::ShapeMismatch`] as for [`conv1d`], when `in_channels` is 0,
/// or when an epilogue tensor does not have its shape (`context: [steps,
/// batch, rows]` with `step < steps`, `residual` and `latent: [batch, rows,
/// out_len]`, `alpha: [batch]`).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::{functional::{conv1d, conv1d_fused}, ConvEpilogue, Conv1dGeometry, TernaryWeight};
///
/// let device = Default::default();
/// let g = Conv1dGeometry { in_channels: 3, kernel_size: 3, stride: 1, padding: 1, dilation: 1 };
/// let weight = TernaryWeight::<Flex>::init(3, 3 * 3, &device);
/// let x = Tensor::<Flex, 3>::ones([2, 3, 10], &device);
/// let epilogue = ConvEpilogue::AddResidual(x.clone().into_primitive().tensor());
/// let (y, _) = conv1d_fused(x.clone(), &weight.primitive(), g, epilogue, false).unwrap();
/// let want = x.clone() + conv1d(x, &weight, g).unwrap();
/// assert!(y.all_close(want, None, None));
/// ```
pub fn conv1d_fused<B: TernaryBackend>(
    x: Tensor<B, 3>,
    weight: &TernaryPrimitive<B>,
    geometry: Conv1dGeometry,
    epilogue: ConvEpilogue<FloatTensor<B>>,
    gelu_copy: bool,
) -> TernaryResult<(Tensor<B, 3>, Option<Tensor<B, 3>>)> {
    let g = geometry;
    let dims = x.dims();
    if dims[1] != g.in_channels || g.in_channels == 0 {
        return Err(TernaryError::shape(
            "x",
            format!("[batch, {}, length] (at least one channel)", g.in_channels),
            &dims,
        ));
    }
    let Some(out_len) = g.output_len(dims[2]) else {
        return Err(TernaryError::shape(
            "x",
            "a length of at least the kernel's reach",
            &dims,
        ));
    };
    if weight.cols != g.in_channels * g.kernel_size {
        return Err(TernaryError::shape(
            "weight",
            format!(
                "[_, {} * {}] (channels times kernel_size)",
                g.in_channels, g.kernel_size
            ),
            &[weight.rows, weight.cols],
        ));
    }
    let (batch, rows) = (dims[0], weight.rows);
    let check = |name: &str, t: &FloatTensor<B>, expected: &[usize]| {
        let shape = t.shape();
        if shape.as_slice() == expected {
            Ok(())
        } else {
            Err(TernaryError::shape(
                name,
                format!("{expected:?}"),
                shape.as_slice(),
            ))
        }
    };
    let full = [batch, rows, out_len];
    match &epilogue {
        ConvEpilogue::Plain => {}
        ConvEpilogue::AddContext { context, step } => {
            let steps = context.shape().as_slice().first().copied().unwrap_or(0);
            check("context", context, &[steps.max(step + 1), batch, rows])?;
        }
        ConvEpilogue::AddResidual(r) => check("residual", r, &full)?,
        ConvEpilogue::DenoiseStep { latent, alpha } => {
            check("latent", latent, &full)?;
            check("alpha", alpha, &[batch])?;
        }
    }
    let (y, activated) = B::ternary_conv1d_fused(
        x.into_primitive().tensor(),
        weight.clone(),
        g,
        epilogue,
        gelu_copy,
    );
    Ok((float_tensor(y), activated.map(float_tensor)))
}

/// Ternary transposed 1-D convolution (learned upsampling) of
/// `x: [batch, in_channels, length]` by a weight of logical shape
/// `[in_channels, out_channels · kernel_size]`, giving
/// `[batch, out_channels, out_len]` with
/// `out_len = geometry.transposed_output_len(length, padding_out)`.
///
/// `geometry` is that of the convolution this one transposes, so
/// `geometry.in_channels` is the number of *output* channels here, and
/// `geometry.padding` is removed from each side of the output.
///
/// # Errors
/// [`TernaryError::ShapeMismatch`] when `x` does not have the weight's `in_channels`
/// channels, when the output would be empty, or when the weight's columns
/// are not `out_channels · kernel_size`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::{functional::conv_transpose1d, types::Conv1dGeometry, TernaryWeight};
///
/// let device = Default::default();
/// // 8 channels in, 4 out, kernel 4, stride 2, padding 1: doubles the length.
/// let geometry = Conv1dGeometry { in_channels: 4, kernel_size: 4, stride: 2, padding: 1, dilation: 1 };
/// let weight = TernaryWeight::<Flex>::init(8, 4 * 4, &device);
/// let x = Tensor::<Flex, 3>::ones([1, 8, 10], &device);
/// assert_eq!(conv_transpose1d(x, &weight, geometry, 0).unwrap().dims(), [1, 4, 20]);
/// ```
pub fn conv_transpose1d<B: TernaryBackend>(
    x: Tensor<B, 3>,
    weight: &TernaryWeight<B>,
    geometry: Conv1dGeometry,
    padding_out: usize,
) -> TernaryResult<Tensor<B, 3>> {
    let dims = x.dims();
    let in_channels = weight.dims()[0];
    if dims[1] != in_channels {
        return Err(TernaryError::shape(
            "x",
            format!("[batch, {in_channels}, length]"),
            &dims,
        ));
    }
    let output_len = geometry
        .transposed_output_len(dims[2], padding_out)
        .ok_or_else(|| {
            TernaryError::shape("x", "a length giving a positive output length", &dims)
        })?;
    check_kernel(weight, geometry.in_channels, &geometry)?;
    let y = B::ternary_conv_transpose1d(
        x.into_primitive().tensor(),
        weight.primitive(),
        geometry,
        output_len,
        weight.port(),
    );
    Ok(float_tensor(y))
}

/// One denoise step `latent' = (latent − (1 − α)·ε̂) / √α` with one `α` per
/// sample (`alpha: [batch]`; `latent` and `eps` are `[batch, ...]` of the same
/// shape), fused into one kernel on CUDA and WGPU.
///
/// On an autodiff backend the gradients flow to `latent` and `eps`; `alpha`
/// is a schedule constant.
///
/// # Errors
/// [`TernaryError::ShapeMismatch`] when `eps` and `latent` differ in shape or `alpha`
/// does not have one value per sample.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::functional::denoise_step;
///
/// let device = Default::default();
/// let latent = Tensor::<Flex, 3>::ones([2, 4, 4], &device);
/// let eps = Tensor::<Flex, 3>::zeros([2, 4, 4], &device);
/// let alpha = Tensor::<Flex, 1>::from_floats([0.25, 1.0], &device);
/// let out = denoise_step(latent, eps, alpha).unwrap();
/// let values = out.into_data().to_vec::<f32>().unwrap();
/// assert_eq!((values[0], values[31]), (2.0, 1.0));
/// ```
pub fn denoise_step<B: TernaryBackend, const D: usize>(
    latent: Tensor<B, D>,
    eps: Tensor<B, D>,
    alpha: Tensor<B, 1>,
) -> TernaryResult<Tensor<B, D>> {
    let dims = latent.dims();
    if eps.dims() != dims {
        return Err(TernaryError::shape(
            "eps",
            format!("{dims:?} (the shape of latent)"),
            &eps.dims(),
        ));
    }
    if alpha.dims()[0] != dims[0] {
        return Err(TernaryError::shape(
            "alpha",
            format!("[{}] (one per sample)", dims[0]),
            &alpha.dims(),
        ));
    }
    let features = dims[1..].iter().product();
    let flat = |t: Tensor<B, D>| t.reshape([dims[0], features]).into_primitive().tensor();
    let out = B::denoise_step(flat(latent), flat(eps), alpha.into_primitive().tensor());
    Ok(float_tensor::<B, 2>(out).reshape(dims))
}

/// Per-token int8 activation quantization (BitNet b1.58's W1.58A8 inputs):
/// every vector along the last dimension is scaled so that its largest
/// magnitude is 127, rounded, clamped to `[−128, 127]` and scaled back
/// (`s = 127 / max(max |x|, 1e-5)`, `x̂ = round(x·s)/s`). One kernel on CUDA
/// and WGPU ([`TernaryBackend::quantize_activations`]); an empty tensor is
/// returned as is.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::functional::quantize_activations;
///
/// let device = Default::default();
/// let x = Tensor::<Flex, 2>::from_floats([[1.0, 0.5, 0.001]], &device);
/// let q = quantize_activations(x).into_data().to_vec::<f32>().unwrap();
/// assert_eq!(q[0], 1.0); // the row's maximum is kept
/// assert!((q[1] - 64.0 / 127.0).abs() < 1e-6); // 63.5 rounds to 64 (ties to even)
/// assert_eq!(q[2], 0.0); // below half a step
/// ```
pub fn quantize_activations<B: TernaryBackend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let dims = x.dims();
    let cols = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    if rows * cols == 0 {
        return x;
    }
    let out = B::quantize_activations(x.reshape([rows, cols]).into_primitive().tensor());
    float_tensor::<B, 2>(out).reshape(dims)
}

/// RMS normalization of the last dimension, `x / sqrt(mean(x²) + epsilon)`,
/// times the gain `gamma: [last dim]` when given: Burn's `RmsNorm` (pass its
/// parts, `rms_norm(x, Some(norm.gamma.val()), norm.epsilon)`) or, without a
/// gain, a parameter-free norm. One kernel on CUDA and WGPU
/// ([`TernaryBackend::rms_norm`]); the reference composition elsewhere
/// (differentiable).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::functional::rms_norm;
///
/// let device = Default::default();
/// let x = Tensor::<Flex, 2>::from_floats([[3.0, 4.0]], &device);
/// let gamma = Tensor::<Flex, 1>::from_floats([1.0, 2.0], &device);
/// let y = rms_norm(x, Some(gamma), 0.0).into_data().to_vec::<f32>().unwrap();
/// // rms = sqrt((9 + 16) / 2)
/// assert!((y[0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-6);
/// assert!((y[1] - 8.0 / 12.5f32.sqrt()).abs() < 1e-6);
/// ```
///
/// # Panics
/// If `gamma`'s length is not the last dimension of `x`.
pub fn rms_norm<B: TernaryBackend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Option<Tensor<B, 1>>,
    epsilon: f64,
) -> Tensor<B, D> {
    let dims = x.dims();
    let cols = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    if let Some(gamma) = &gamma {
        assert_eq!(
            gamma.dims()[0],
            cols,
            "rms_norm: gamma has {} values, x's last dimension is {cols}",
            gamma.dims()[0]
        );
    }
    if rows * cols == 0 {
        return x;
    }
    let out = B::rms_norm(
        x.reshape([rows, cols]).into_primitive().tensor(),
        gamma.map(|g| g.into_primitive().tensor()),
        epsilon,
    );
    float_tensor::<B, 2>(out).reshape(dims)
}

/// Rotary position embedding in the rotate-half convention of Llama and
/// BitNet: `x · cos + rotate_half(x) · sin`, `rotate_half([a, b]) = [−b, a]`
/// over each head's halves, for the token-major `x: [batch, n, heads,
/// head_dim]` at positions `start..start + n` of the tables `cos`, `sin`:
/// `[positions, head_dim]`. One kernel on CUDA and WGPU
/// ([`TernaryBackend::rotary_embedding`]); the reference composition
/// elsewhere (differentiable).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::functional::rotary_embedding;
///
/// let device = Default::default();
/// let x = Tensor::<Flex, 4>::from_floats([[[[1.0, 2.0]]]], &device);
/// // One position, rotated by a quarter turn: cos 0, sin 1.
/// let cos = Tensor::<Flex, 2>::zeros([1, 2], &device);
/// let sin = Tensor::<Flex, 2>::ones([1, 2], &device);
/// let y = rotary_embedding(x, cos, sin, 0).into_data().to_vec::<f32>().unwrap();
/// assert_eq!(y, vec![-2.0, 1.0]);
/// ```
///
/// # Panics
/// If `head_dim` is odd, the tables' widths differ from it, or they hold
/// fewer than `start + n` positions.
pub fn rotary_embedding<B: TernaryBackend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    start: usize,
) -> Tensor<B, 4> {
    let [_, n, _, d] = x.dims();
    assert!(d % 2 == 0, "rotary_embedding: head_dim {d} is odd");
    for (name, t) in [("cos", &cos), ("sin", &sin)] {
        let [positions, width] = t.dims();
        assert!(
            width == d && start + n <= positions,
            "rotary_embedding: {name} is [{positions}, {width}], needs [≥ {}, {d}]",
            start + n
        );
    }
    float_tensor(B::rotary_embedding(
        x.into_primitive().tensor(),
        cos.into_primitive().tensor(),
        sin.into_primitive().tensor(),
        start,
    ))
}

/// Causal grouped-query softmax attention, `softmax(scale · q·kᵀ) · v` with
/// each query seeing the positions up to its own: token-major queries
/// `q: [batch, n, heads, head_dim]` at positions `start..start + n`, keys
/// and values `[batch, kv_heads, total, head_dim]` of positions
/// `0..total` (a key/value cache's filled part, or the same tokens' with
/// `start = 0`); query head `h` reads key/value head `h / (heads /
/// kv_heads)`. Returns token-major `[batch, n, heads, head_dim]`. One
/// kernel on CUDA and WGPU for heads up to 256 wide
/// ([`TernaryBackend::causal_attention`]; the scores never reach memory);
/// the reference composition elsewhere (differentiable).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::functional::causal_attention;
///
/// let device = Default::default();
/// // Two positions, one head of width 1: the first sees only itself.
/// let q = Tensor::<Flex, 4>::ones([1, 2, 1, 1], &device);
/// let k = Tensor::<Flex, 4>::zeros([1, 1, 2, 1], &device);
/// let v = Tensor::<Flex, 4>::from_floats([[[[1.0], [3.0]]]], &device);
/// let y = causal_attention(q, k, v, 0, 1.0).into_data().to_vec::<f32>().unwrap();
/// assert_eq!(y, vec![1.0, 2.0]); // equal scores: the mean of what is visible
/// ```
///
/// # Panics
/// If the shapes disagree (batch, head width), `kv_heads` does not divide
/// `heads`, or `start + n > total`.
pub fn causal_attention<B: TernaryBackend>(
    q: Tensor<B, 4>,
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
    start: usize,
    scale: f64,
) -> Tensor<B, 4> {
    let [batch, n, heads, head_dim] = q.dims();
    let [kb, kv_heads, total, kd] = keys.dims();
    assert!(
        kb == batch && kd == head_dim && values.dims() == keys.dims(),
        "causal_attention: q is {:?}, keys {:?}, values {:?}: need [batch, kv_heads, total, {head_dim}] for both",
        q.dims(),
        keys.dims(),
        values.dims()
    );
    assert!(
        kv_heads > 0 && heads % kv_heads == 0,
        "causal_attention: {kv_heads} key/value heads do not divide {heads} query heads"
    );
    assert!(
        start + n <= total,
        "causal_attention: queries at {start}..{} but keys hold {total} positions",
        start + n
    );
    float_tensor(B::causal_attention(
        q.into_primitive().tensor(),
        keys.into_primitive().tensor(),
        values.into_primitive().tensor(),
        start,
        scale,
    ))
}

/// The gate of BitNet's MLP, `relu(gate)² · up`, element-wise over two
/// tensors of one shape. One kernel on CUDA and WGPU
/// ([`TernaryBackend::relu2_gate`]); the reference composition elsewhere
/// (differentiable).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::functional::relu2_gate;
///
/// let device = Default::default();
/// let gate = Tensor::<Flex, 2>::from_floats([[-1.0, 3.0]], &device);
/// let up = Tensor::<Flex, 2>::from_floats([[5.0, 2.0]], &device);
/// let y = relu2_gate(gate, up).into_data().to_vec::<f32>().unwrap();
/// assert_eq!(y, vec![0.0, 18.0]);
/// ```
///
/// # Panics
/// If the shapes differ.
pub fn relu2_gate<B: TernaryBackend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Tensor<B, D> {
    let dims = gate.dims();
    assert_eq!(dims, up.dims(), "relu2_gate: gate and up shapes differ");
    let cols = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    if rows * cols == 0 {
        return gate;
    }
    let out = B::relu2_gate(
        gate.reshape([rows, cols]).into_primitive().tensor(),
        up.reshape([rows, cols]).into_primitive().tensor(),
    );
    float_tensor::<B, 2>(out).reshape(dims)
}

/// The per-row scales `2^(code / 16)` of the scale codes `codes: [rows]`,
/// through the backend's [`TernaryBackend::ternary_decode_scale`] (one
/// kernel on the CubeCL backends).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use burn_ternary::functional::decode_scale;
///
/// let device = Default::default();
/// let codes = Tensor::<Flex, 1, Int>::from_ints([0, 16, -32], &device);
/// let scales = decode_scale(codes).into_data().to_vec::<f32>().unwrap();
/// assert!((scales[1] - 2.0).abs() < 1e-6 && (scales[2] - 0.25).abs() < 1e-6);
/// ```
pub fn decode_scale<B: TernaryBackend>(codes: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    float_tensor(B::ternary_decode_scale(codes.into_primitive()))
}

/// One update of a ternary weight from its dense gradient `grad: [rows, cols]`
/// and its packed state (the rule of [`crate::optim`]), on the backend's
/// update op (one fused kernel pass on CUDA and WGPU, one pass over the
/// packed words on the CPU backends). This is what
/// [`TernaryOptimizer`](crate::optim::TernaryOptimizer) runs for each weight.
///
/// # Errors
/// [`TernaryError::ShapeMismatch`] when a state tensor does not have the packed shape
/// of a `[rows, cols]` weight.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use burn_ternary::functional::ternary_update;
/// use burn_ternary::packing::{int_tensor, memory_words, trit_words, unpack_memory_tensor};
/// use burn_ternary::types::{GradNormalization, NoiseKey, UpdateHyper};
///
/// let device = Default::default();
/// let (rows, cols) = (2, 5);
/// let zeros = |words| int_tensor::<Flex, 2>(vec![0; rows * words], [rows, words], &device);
/// let updated = ternary_update(
///     Tensor::<Flex, 2>::ones([rows, cols], &device),
///     zeros(trit_words(cols)),
///     zeros(memory_words(cols)),
///     int_tensor(vec![0; rows], [rows], &device),
///     UpdateHyper { lr: 0.5, scale_lr: 0.0, normalization: GradNormalization::Tensor },
///     NoiseKey::new(0, 0, 0),
/// )
/// .unwrap();
/// // A positive gradient lowers the memory by ⌊32 + u⌋ = 32 units.
/// let memory = unpack_memory_tensor(updated.memory, cols).into_data().convert::<i64>();
/// let memory = memory.to_vec::<i64>().unwrap();
/// assert!(memory.iter().all(|m| *m == -32));
/// ```
pub fn ternary_update<B: TernaryBackend>(
    grad: Tensor<B, 2>,
    trits: Tensor<B, 2, Int>,
    memory: Tensor<B, 2, Int>,
    scale_code: Tensor<B, 1, Int>,
    hyper: UpdateHyper,
    key: NoiseKey,
) -> TernaryResult<UpdatedState<B>> {
    let [rows, cols] = grad.dims();
    let expect = |name: &'static str, want: Vec<usize>, got: Vec<usize>| {
        if want == got {
            Ok(())
        } else {
            Err(TernaryError::shape(name, format!("{want:?}"), &got))
        }
    };
    expect("trits", vec![rows, trit_words(cols)], trits.dims().to_vec())?;
    expect(
        "memory",
        vec![rows, memory_words(cols)],
        memory.dims().to_vec(),
    )?;
    expect("scale_code", vec![rows], scale_code.dims().to_vec())?;
    let state = B::ternary_update(
        grad.into_primitive().tensor(),
        TernaryState {
            trits: trits.into_primitive(),
            memory: memory.into_primitive(),
            scale_code: scale_code.into_primitive(),
        },
        cols,
        hyper,
        key,
    );
    Ok(UpdatedState {
        trits: Tensor::from_primitive(state.trits),
        memory: Tensor::from_primitive(state.memory),
        scale_code: Tensor::from_primitive(state.scale_code),
    })
}
