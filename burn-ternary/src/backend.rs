//! The backend extension trait: every ternary op, with a reference
//! implementation made of ordinary Burn tensor ops as its default body.
//!
//! A backend opts in with an (often empty) `impl TernaryBackend for MyBackend {}`;
//! backends with dedicated kernels (CubeCL for CUDA and WGPU) override the
//! methods they accelerate, and `Autodiff<B>` overrides every op to record its
//! backward pass.

use burn::tensor::{
    backend::Backend,
    ops::{FloatTensor, IntTensor},
};

use crate::ops::{
    act_quant, attention, conv1d, denoise, embedding, matmul, relu2_gate, rms_norm, rope, scale,
    update,
};
// The plain types the ops take live in `crate::types`; re-exported here, their old paths.
use crate::types::{Conv1dGeometry, ConvEpilogue, TernaryPrimitive, TernaryState};
use crate::types::{NoiseKey, UpdateHyper};

/// Burn backends that can run ternary ops.
///
/// Every method has a reference implementation composed of Burn tensor ops,
/// so `impl TernaryBackend for MyBackend {}` is enough for any backend; kernels
/// override what they accelerate. Shapes are given per method; callers (the
/// functions in [`crate::functional`], which the layers in [`crate::nn`]
/// call) check them and report bad input before calling.
pub trait TernaryBackend: Backend {
    /// `y = x · Wᵀ` for `x: [m, cols]`, giving `[m, rows]`.
    ///
    /// `grad_port` is the weight's zero-element gradient port; on an autodiff
    /// backend the `[rows, cols]` weight gradient is registered on it.
    fn ternary_matmul(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = grad_port;
        matmul::reference::forward::<Self>(x, &weight)
    }

    /// Input gradient of [`ternary_matmul`](Self::ternary_matmul): `grad_x = grad_y · W`, `[m, cols]`.
    fn ternary_matmul_input_grad(
        grad_y: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
    ) -> FloatTensor<Self> {
        matmul::reference::input_grad::<Self>(grad_y, &weight)
    }

    /// Dense weight gradient `dL/dW = grad_yᵀ · x`, `[rows, cols]`.
    fn ternary_matmul_weight_grad(
        x: FloatTensor<Self>,
        grad_y: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        matmul::reference::weight_grad::<Self>(x, grad_y)
    }

    /// Gathers rows `ids: [n]` of the table `W`, giving `[n, cols]`.
    fn ternary_embedding(
        ids: IntTensor<Self>,
        weight: TernaryPrimitive<Self>,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = grad_port;
        embedding::reference::forward::<Self>(ids, &weight)
    }

    /// Table gradient of [`ternary_embedding`](Self::ternary_embedding): scatter-add of
    /// `grad: [n, cols]` into `[rows, cols]`.
    fn ternary_embedding_weight_grad(
        ids: IntTensor<Self>,
        grad: FloatTensor<Self>,
        rows: usize,
    ) -> FloatTensor<Self> {
        embedding::reference::weight_grad::<Self>(ids, grad, rows)
    }

    /// Ternary 1-D convolution, `x: [batch, in_channels, length]` to
    /// `[batch, rows, output_len]`, with the unfold done by the op.
    fn ternary_conv1d(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = grad_port;
        conv1d::reference::forward::<Self>(x, &weight, geometry)
    }

    /// Input gradient of [`ternary_conv1d`](Self::ternary_conv1d): `grad_y: [batch, rows, out_len]`
    /// to `[batch, in_channels, input_len]`. This is also the forward pass of the
    /// transposed convolution.
    fn ternary_conv1d_input_grad(
        grad_y: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        input_len: usize,
    ) -> FloatTensor<Self> {
        conv1d::reference::input_grad::<Self>(grad_y, &weight, geometry, input_len)
    }

    /// Dense weight gradient of [`ternary_conv1d`](Self::ternary_conv1d), `[rows, in_channels * kernel_size]`.
    fn ternary_conv1d_weight_grad(
        x: FloatTensor<Self>,
        grad_y: FloatTensor<Self>,
        geometry: Conv1dGeometry,
    ) -> FloatTensor<Self> {
        conv1d::reference::weight_grad::<Self>(x, grad_y, geometry)
    }

    /// Fused forward convolution for inference: [`ternary_conv1d`](Self::ternary_conv1d)
    /// of `x: [batch, in_channels, length]`, then the `epilogue` on its
    /// `[batch, rows, out_len]` result `y` (a per-sample context, a residual,
    /// or the denoise update that turns `y = ε̂` into the next latent), and, if
    /// `gelu_copy`, also `gelu(y)` (the next convolution's input), all in one
    /// launch on the CubeCL backends. Returns `(y, gelu(y) if gelu_copy)`.
    ///
    /// Inference only: no gradient reaches the weight (there is no gradient
    /// port), and on `Autodiff<B>` the op runs on the inner backend and its
    /// outputs are untracked constants. The differentiable path is
    /// [`ternary_conv1d`](Self::ternary_conv1d) with Burn ops around it.
    ///
    /// The default is the composition of the reference ops
    /// ([`conv1d::reference::fused_forward`]); `in_channels` must be at least 1.
    fn ternary_conv1d_fused(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        epilogue: ConvEpilogue<FloatTensor<Self>>,
        gelu_copy: bool,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        conv1d::reference::fused_forward::<Self>(x, &weight, geometry, epilogue, gelu_copy)
    }

    /// Ternary transposed 1-D convolution. The weight is the logical matrix
    /// `[in_channels, out_channels * kernel_size]` (`geometry.in_channels` is the
    /// *output* channel count here), `x: [batch, rows, length]` to
    /// `[batch, out_channels, output_len]`.
    fn ternary_conv_transpose1d(
        x: FloatTensor<Self>,
        weight: TernaryPrimitive<Self>,
        geometry: Conv1dGeometry,
        output_len: usize,
        grad_port: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = grad_port;
        Self::ternary_conv1d_input_grad(x, weight, geometry, output_len)
    }

    /// One denoise step `latent' = (latent − (1 − α)·ε̂) / √α` on `[batch, features]`
    /// tensors with `alpha: [batch]` (one α per sample; repeat a scalar α).
    fn denoise_step(
        latent: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        denoise::reference::forward::<Self>(latent, eps, alpha)
    }

    /// Per-token int8 activation quantization of `x: [rows, cols]` (BitNet
    /// b1.58's absmax rule, see [`act_quant`]): each row scaled so its
    /// largest magnitude is 127, rounded, clamped to `[−128, 127]`, scaled
    /// back. The default is the reference composition; `Autodiff<B>` runs
    /// its inner backend's op with BitNet's straight-through gradient (the
    /// composition's `round` would pass none).
    fn quantize_activations(x: FloatTensor<Self>) -> FloatTensor<Self> {
        act_quant::reference::forward::<Self>(x)
    }

    /// RMS normalization of `x: [rows, cols]`, `x / sqrt(mean(x²) +
    /// epsilon)`, times the gain `gamma: [cols]` when given (Burn's
    /// `RmsNorm`, see [`rms_norm`]). The default is the reference
    /// composition (differentiable).
    fn rms_norm(
        x: FloatTensor<Self>,
        gamma: Option<FloatTensor<Self>>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        rms_norm::reference::forward::<Self>(x, gamma, epsilon)
    }

    /// Rotary position embedding (rotate-half) of the token-major
    /// `x: [batch, n, heads, head_dim]` at positions `start..start + n`, from
    /// the tables `cos`, `sin`: `[positions, head_dim]` (see [`rope`]). The
    /// default is the reference composition (differentiable).
    fn rotary_embedding(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        start: usize,
    ) -> FloatTensor<Self> {
        rope::reference::forward::<Self>(x, cos, sin, start)
    }

    /// Causal grouped-query softmax attention (see [`attention`]): token-major
    /// queries `q: [batch, n, heads, head_dim]` at positions `start..start +
    /// n` over `keys`, `values`: `[batch, kv_heads, total, head_dim]`,
    /// scores scaled by `scale`; token-major output. The default is the
    /// reference composition (differentiable).
    fn causal_attention(
        q: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        start: usize,
        scale: f64,
    ) -> FloatTensor<Self> {
        attention::reference::forward::<Self>(q, keys, values, start, scale)
    }

    /// BitNet's MLP gate `relu(gate)² · up` on `[rows, cols]` tensors (see
    /// [`relu2_gate`]). The default is the reference composition
    /// (differentiable).
    fn relu2_gate(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        relu2_gate::reference::forward::<Self>(gate, up)
    }

    /// Gradients of [`denoise_step`](Self::denoise_step) with respect to `latent` and `eps`.
    fn denoise_step_backward(
        grad: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        denoise::reference::backward::<Self>(grad, alpha)
    }

    /// One ternary optimizer step of one weight (the rule of
    /// [`crate::optim`]): from its dense gradient `grad: [rows, cols]` and its
    /// packed `state`, the new state. The rounding noise comes from `key`
    /// (see [`NoiseKey`]), so every backend draws the same numbers.
    fn ternary_update(
        grad: FloatTensor<Self>,
        state: TernaryState<Self>,
        cols: usize,
        hyper: UpdateHyper,
        key: NoiseKey,
    ) -> TernaryState<Self> {
        update::reference::update::<Self>(grad, state, cols, hyper, key)
    }

    /// The per-row scales `2^(code / 16)` of a weight's scale codes
    /// `codes: [rows]` (`i32`), in the backend's float type: what
    /// [`TernaryPrimitive::scale`] holds. Every module forward calls it once
    /// per weight, so the CubeCL backends run it as one kernel.
    ///
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::tensor::{Int, Tensor, TensorPrimitive};
    /// use burn_ternary::TernaryBackend;
    ///
    /// let codes = Tensor::<NdArray, 1, Int>::from_ints([16, -16], &Default::default());
    /// let scale = <NdArray as TernaryBackend>::ternary_decode_scale(codes.into_primitive());
    /// let scale = Tensor::<NdArray, 1>::from_primitive(TensorPrimitive::Float(scale));
    /// let values = scale.into_data().to_vec::<f32>().unwrap();
    /// assert!((values[0] - 2.0).abs() < 1e-6 && (values[1] - 0.5).abs() < 1e-6);
    /// ```
    fn ternary_decode_scale(codes: IntTensor<Self>) -> FloatTensor<Self> {
        scale::reference::decode::<Self>(codes)
    }

    /// Blocks until every device-to-device transfer issued so far on
    /// `device` (its collective and peer copies) has finished, so that a
    /// buffer a transfer still reads is neither rewritten nor reused.
    /// Data-parallel training calls it after each exchange of gradients.
    /// Backends without asynchronous transfers (the CPU ones) return at once.
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use burn_ternary::TernaryBackend;
    /// Flex::sync_transfers(&Default::default());
    /// ```
    fn sync_transfers(_device: &Self::Device) {}
}

/// An autodiff backend whose inner backend runs ternary ops.
pub trait TernaryAutodiffBackend:
    TernaryBackend + burn::tensor::backend::AutodiffBackend<InnerBackend: TernaryBackend>
{
}

impl<B> TernaryAutodiffBackend for B where
    B: TernaryBackend + burn::tensor::backend::AutodiffBackend<InnerBackend: TernaryBackend>
{
}

/// The CPU backends: reference ops, except the optimizer update, which runs
/// as one pass over the packed words on the host ([`update::host`]), and the
/// forward matmul of a few activation rows, a GEMV over the packed words
/// ([`matmul::host::forward`] says when).
macro_rules! cpu_backend {
    ($backend:ty) => {
        impl TernaryBackend for $backend {
            fn ternary_matmul(
                x: FloatTensor<Self>,
                weight: TernaryPrimitive<Self>,
                grad_port: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                let _ = grad_port;
                matmul::host::forward::<Self>(x, &weight)
            }

            fn ternary_update(
                grad: FloatTensor<Self>,
                state: TernaryState<Self>,
                cols: usize,
                hyper: UpdateHyper,
                key: NoiseKey,
            ) -> TernaryState<Self> {
                update::host::update::<Self>(grad, state, cols, hyper, key)
            }
        }
    };
}

cpu_backend!(burn::backend::NdArray<f32>);
cpu_backend!(burn::backend::NdArray<f64>);
cpu_backend!(burn::backend::Flex);

// The CubeCL backends (CUDA, WGPU) implement this trait in `crate::cube`.
