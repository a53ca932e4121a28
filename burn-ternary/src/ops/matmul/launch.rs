//! Running a [`MatmulRoute`] on a CubeCL backend (CUDA, WGPU): the backend op
//! ([`product`] with [`MatmulPolicy::default()`]) and, for checks and
//! benchmarks, any route with explicit launch shapes ([`run`]).

use burn::tensor::{DType, Shape};
use burn_cubecl::{kernel::into_contiguous, tensor::CubeTensor, CubeRuntime};
use cubecl::{
    features::{MmaConfig, Plane},
    ir::{ElemType, FloatKind, IntKind},
    prelude::ComputeClient,
};

use super::{
    gemm_split, gemv, gemv_mma,
    route::{route, DeviceCaps, F32TensorCores, MatmulPolicy, MatmulRoute},
    tiled,
    unpack::{self, empty_output, packed_words, scales_like},
};

/// What `client`'s device offers the route (see [`DeviceCaps`]); the SM
/// count falls back to [`crate::set_sm_count_hint`] / [`crate::SM_COUNT_ENV`]
/// where the runtime does not report it.
pub fn device_caps<R: CubeRuntime>(client: &ComputeClient<R>) -> DeviceCaps {
    let properties = client.properties();
    let hardware = &properties.hardware;
    let int8 = ElemType::Int(IntKind::I8);
    let half = ElemType::Float(FloatKind::F16);
    let fixed_planes = hardware.plane_size_min == hardware.plane_size_max;
    DeviceCaps {
        int8_mma: properties.features.matmul.mma.contains(&MmaConfig {
            a_type: int8.into(),
            b_type: int8.into(),
            cd_type: ElemType::Int(IntKind::I32).into(),
            m: 16,
            n: 8,
            k: 32,
        }) && hardware.plane_size_min == 32
            && hardware.plane_size_max == 32,
        f16_mma: properties.features.matmul.cmma.contains(&MmaConfig {
            a_type: half.into(),
            b_type: half.into(),
            cd_type: ElemType::Float(FloatKind::F32).into(),
            m: 16,
            n: 16,
            k: 16,
        }),
        plane_ops: properties.features.plane.contains(Plane::Ops)
            && fixed_planes
            && hardware.plane_size_max >= 4,
        plane_size: hardware.plane_size_max.max(1) as usize,
        sm_count: crate::ops::launch::sm_count(client),
        max_shared_memory: hardware.max_shared_memory_size,
    }
}

/// The ternary matmul on the route [`route`] picks for `a` with `policy`:
/// `a · Wᵀ`, or `a · W` with `input_grad`, for the packed `trits:
/// [rows, ceil(cols / 16)]` and row `scale: [rows]`. What the backend op
/// runs with [`MatmulPolicy::default()`].
pub fn product<R: CubeRuntime>(
    a: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    input_grad: bool,
    policy: MatmulPolicy,
) -> CubeTensor<R> {
    let m = a.meta.shape()[0];
    let caps = device_caps(&a.client);
    let chosen = route(a.dtype, m, rows, cols, input_grad, caps, policy);
    if let Some(out) = run(
        &chosen,
        a.clone(),
        trits.clone(),
        scale.clone(),
        rows,
        cols,
        input_grad,
    ) {
        return out;
    }
    // Only the split-f16 route gives up, where no matmul kernel of the
    // device takes its f16 operands: the FMA kernels instead.
    let policy = MatmulPolicy {
        f32_tensor_cores: F32TensorCores::Never,
        ..policy
    };
    let fallback = route(a.dtype, m, rows, cols, input_grad, caps, policy);
    run(&fallback, a, trits, scale, rows, cols, input_grad)
        .expect("the FMA routes of the ternary matmul always run")
}

/// Runs `route` (from [`route`], or built with explicit launch shapes) for
/// `a: [m, cols]` (forward, `a · Wᵀ: [m, rows]`) or, with `input_grad`,
/// `a: [m, rows]` (`a · W: [m, cols]`). `None` only where the route is
/// [`MatmulRoute::SplitF16Gemm`] and no matmul kernel of the device takes
/// its f16 operands.
///
/// # Panics
///
/// If a route for the other direction is given (a GEMV forward with
/// `input_grad`, or the transposed GEMV without), or a launch shape does not
/// fit the call (a launch block outside `a`'s rows, the tensor-core GEMV on
/// a device without int8 `mma`).
pub fn run<R: CubeRuntime>(
    route: &MatmulRoute,
    a: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    input_grad: bool,
) -> Option<CubeTensor<R>> {
    let m = a.meta.shape()[0];
    let out_cols = if input_grad { cols } else { rows };
    debug_assert_eq!(a.meta.shape()[1], if input_grad { rows } else { cols });
    let out = match *route {
        MatmulRoute::Empty => empty_output(&into_contiguous(a), [m, out_cols]),
        MatmulRoute::Zeros => burn_cubecl::ops::numeric::zeros_client(
            a.client.clone(),
            a.device.clone(),
            Shape::new([m, out_cols]),
            a.dtype,
        ),
        MatmulRoute::UnpackTensorCore { tuned } | MatmulRoute::SplitF16Gemm { tuned } => {
            return tensor_core_matmul(a, trits, scale, rows, cols, input_grad, tuned);
        }
        MatmulRoute::Tiled { block } => {
            let a = into_contiguous(a);
            let scale = scales_like(scale, a.dtype);
            tiled::launch(a, packed_words(trits), scale, out_cols, input_grad, block)
        }
        MatmulRoute::TransposedGemv {
            word_cols,
            row_split,
        } => {
            assert!(input_grad, "the transposed GEMV is an input gradient");
            let a = into_contiguous(a);
            let scale = scales_like(scale, a.dtype);
            gemv::transposed(
                a,
                packed_words(trits),
                scale,
                rows,
                cols,
                word_cols,
                row_split,
            )
        }
        // The forward GEMV kernels read the scales in their own float type:
        // a cast would be a second launch per call, as long as the GEMV
        // itself at decode sizes (f16 activations with f32 scales).
        MatmulRoute::TensorCoreGemv(ref blocks) => {
            assert!(!input_grad, "the tensor-core GEMV is a forward");
            debug_assert!(
                device_caps(&a.client).int8_mma,
                "the tensor-core GEMV needs int8 mma with 32-lane planes"
            );
            let (a, trits, scale) = gemv_operands(a, trits, scale);
            gemv_mma::forward(a, trits, scale, rows, cols, blocks)
        }
        MatmulRoute::PlaneGemv(ref launches) => {
            assert!(!input_grad, "the plane GEMV is a forward");
            let plane_dim = device_caps(&a.client).plane_size;
            let (a, trits, scale) = gemv_operands(a, trits, scale);
            gemv::plane(a, trits, scale, rows, cols, plane_dim, launches)
        }
        MatmulRoute::SharedGemv {
            lanes,
            rows_per_cube,
        } => {
            assert!(!input_grad, "the shared-memory GEMV is a forward");
            let (a, trits, scale) = gemv_operands(a, trits, scale);
            gemv::shared(a, trits, scale, rows, cols, lanes, rows_per_cube)
        }
    };
    Some(out)
}

/// The forward GEMVs' operands: `x` and the scales contiguous (the scales in
/// their own type), the trits as contiguous `i32` words.
fn gemv_operands<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>, CubeTensor<R>) {
    (
        into_contiguous(x),
        packed_words(trits),
        into_contiguous(scale),
    )
}

/// The tensor-core routes of the ternary matmul, called directly whatever
/// `m`: the forward `x · Wᵀ`, or with `input_grad` the product `x · W`. f32
/// `x` takes the split-f16 route, f16/bf16 `x` the unpack + matmul route.
/// `tuned`: Burn's autotuned matmul (what the ops use), else its default
/// kernel, which skips the seconds of tuning every new shape class costs on
/// CUDA. `None` where no matmul kernel of the device takes the split route's
/// f16 operands.
pub fn tensor_core_matmul<R: CubeRuntime>(
    x: CubeTensor<R>,
    trits: CubeTensor<R>,
    scale: CubeTensor<R>,
    rows: usize,
    cols: usize,
    input_grad: bool,
    tuned: bool,
) -> Option<CubeTensor<R>> {
    match (x.dtype, input_grad) {
        (DType::F32, false) => gemm_split::forward(x, trits, scale, rows, cols, tuned),
        (DType::F32, true) => gemm_split::input_grad(x, trits, scale, rows, cols, tuned),
        _ => Some(unpack::half_precision_matmul(
            x, trits, scale, rows, cols, input_grad, tuned,
        )),
    }
}
