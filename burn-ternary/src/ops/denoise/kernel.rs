//! CubeCL kernels for the fused denoise step on `CubeBackend` (CUDA, WGPU).
//!
//! Both kernels are element-wise over `[batch, features]`, one unit per
//! vector of `N` elements (the widest load the device prefers that divides
//! `features`, so a vector never straddles two samples): the forward reads
//! `latent`, `eps` and `alpha[b]` once and writes
//! `(latent - (1 - alpha) * eps) / sqrt(alpha)`; the backward reads the
//! incoming gradient once and writes both gradients. Each replaces the four
//! to five element-wise launches (and intermediate tensors) of the reference.
//! Both take flat `Array` arguments (every operand is contiguous; the row
//! width comes as a scalar): CubeCL sends a `Tensor` argument's shape and
//! strides with every launch, on CUDA as a host-to-device copy.

use burn_cubecl::{
    kernel::{cast, into_contiguous},
    ops::numeric::empty_device_contiguous_dtype,
    tensor::CubeTensor,
    CubeRuntime,
};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

/// `out = (latent - (1 - alpha[b]) * eps) / sqrt(alpha[b])`, one unit per vector.
#[cube(launch)]
fn denoise_forward_kernel<F: Float, N: Size>(
    latent: &Array<Vector<F, N>>,
    eps: &Array<Vector<F, N>>,
    alpha: &Array<F>,
    out: &mut Array<Vector<F, N>>,
    features: u32,
    #[define(F)] _dtype: StorageType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= out.len() {
        terminate!();
    }
    let b = pos * out.vector_size() / usize::cast_from(features);
    let a = alpha[b];
    let keep = Vector::<F, N>::new(F::new(1.0) - a);
    let root = Vector::<F, N>::new(F::sqrt(a));
    out[pos] = (latent[pos] - eps[pos] * keep) / root;
}

/// `grad_latent = grad / sqrt(alpha[b])`, `grad_eps = grad_latent * (alpha[b] - 1)`,
/// one unit per vector, both outputs from one read of `grad`.
#[cube(launch)]
fn denoise_backward_kernel<F: Float, N: Size>(
    grad: &Array<Vector<F, N>>,
    alpha: &Array<F>,
    grad_latent: &mut Array<Vector<F, N>>,
    grad_eps: &mut Array<Vector<F, N>>,
    features: u32,
    #[define(F)] _dtype: StorageType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= grad_latent.len() {
        terminate!();
    }
    let b = pos * grad_latent.vector_size() / usize::cast_from(features);
    let a = alpha[b];
    let gl = grad[pos] / Vector::<F, N>::new(F::sqrt(a));
    grad_latent[pos] = gl;
    grad_eps[pos] = gl * Vector::<F, N>::new(a - F::new(1.0));
}

fn empty_like<R: CubeRuntime>(like: &CubeTensor<R>) -> CubeTensor<R> {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        like.meta.shape().clone(),
        like.dtype,
    )
}

/// The widest vector the device prefers for `like`'s element type that
/// divides `features` (so `alpha` is constant over a vector), and the launch
/// dimensions for one unit per vector.
fn launch_dims<R: CubeRuntime>(like: &CubeTensor<R>) -> (CubeCount, CubeDim, VectorSize) {
    let client = &like.client;
    let shape = like.meta.shape();
    let features = shape[shape.num_dims() - 1];
    let vector = client
        .io_optimized_vector_sizes(like.dtype.size())
        .filter(|&v| v > 0 && features.is_multiple_of(v))
        .max()
        .unwrap_or(1);
    let units = shape.num_elements() / vector;
    let cube_dim = CubeDim::new(client, units);
    (
        calculate_cube_count_elemwise(client, units, cube_dim),
        cube_dim,
        vector,
    )
}

/// Fused `(latent - (1 - alpha) * eps) / sqrt(alpha)` on `[batch, features]`,
/// `alpha: [batch]`.
pub fn forward<R: CubeRuntime>(
    latent: CubeTensor<R>,
    eps: CubeTensor<R>,
    alpha: CubeTensor<R>,
) -> CubeTensor<R> {
    let latent = into_contiguous(latent);
    let eps = into_contiguous(cast(eps, latent.dtype));
    let alpha = into_contiguous(cast(alpha, latent.dtype));
    let out = empty_like(&latent);
    let elements = out.meta.shape().num_elements();
    if elements == 0 {
        return out;
    }
    let (cube_count, cube_dim, vector) = launch_dims(&latent);
    let dtype = latent.dtype;
    let features = latent.meta.shape()[1] as u32;
    denoise_forward_kernel::launch::<R>(
        &latent.client.clone(),
        cube_count,
        cube_dim,
        vector,
        latent.into_array_arg(),
        eps.into_array_arg(),
        alpha.into_array_arg(),
        out.clone().into_array_arg(),
        features,
        dtype.into(),
    );
    out
}

/// Both gradients of [`forward`] from one kernel: `(grad / sqrt(alpha), -grad · (1 - alpha) / sqrt(alpha))`.
pub fn backward<R: CubeRuntime>(
    grad: CubeTensor<R>,
    alpha: CubeTensor<R>,
) -> (CubeTensor<R>, CubeTensor<R>) {
    let grad = into_contiguous(grad);
    let alpha = into_contiguous(cast(alpha, grad.dtype));
    let grad_latent = empty_like(&grad);
    let grad_eps = empty_like(&grad);
    let elements = grad.meta.shape().num_elements();
    if elements == 0 {
        return (grad_latent, grad_eps);
    }
    let (cube_count, cube_dim, vector) = launch_dims(&grad);
    let dtype = grad.dtype;
    let features = grad.meta.shape()[1] as u32;
    denoise_backward_kernel::launch::<R>(
        &grad.client.clone(),
        cube_count,
        cube_dim,
        vector,
        grad.into_array_arg(),
        alpha.into_array_arg(),
        grad_latent.clone().into_array_arg(),
        grad_eps.clone().into_array_arg(),
        features,
        dtype.into(),
    );
    (grad_latent, grad_eps)
}
