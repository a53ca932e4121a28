//! Support code shared by the CubeCL kernel checks (`tests/cube_kernels.rs`)
//! and benchmarks (`benches/cube_kernels.rs`): the GPU backend under test,
//! random ternary weights and values, tensor conversions, comparisons.
#![allow(dead_code)]

use burn::backend::NdArray;
use burn::tensor::{backend::Backend, ops::FloatTensor, Tensor, TensorData, TensorPrimitive};
use burn_ternary::{
    ops::matmul::{launch, DeviceCaps},
    packing::{int_tensor, pack_trits, trit_words},
    TernaryPrimitive,
};
use rand::{rngs::StdRng, Rng};

/// The GPU backend under test: `Wgpu` with the `wgpu` feature, else `Cuda`.
#[cfg(feature = "wgpu")]
pub type Gpu = burn::backend::Wgpu;
/// The GPU backend under test: `Wgpu` with the `wgpu` feature, else `Cuda`.
#[cfg(not(feature = "wgpu"))]
pub type Gpu = burn::backend::Cuda;
/// The reference backend.
pub type Cpu = NdArray<f32>;

pub fn gpu_device() -> burn::prelude::Device<Gpu> {
    Default::default()
}

/// What the GPU device offers the matmul route.
pub fn gpu_caps() -> DeviceCaps {
    let probe = float::<Gpu, 2>(&[0.0], [1, 1], &gpu_device());
    launch::device_caps(&probe.client)
}

/// Environment variable that lets a GPU check pass without running where
/// the GPU backend does not start (it prints the skip); without it such a
/// check fails.
pub const ALLOW_NO_GPU_ENV: &str = "ARBITOR_ALLOW_NO_GPU";

/// Whether the GPU backend starts on this machine. Where it does not, the
/// check fails, naming the fix, unless [`ALLOW_NO_GPU_ENV`] is set: then it
/// prints `skipped` and the check returns without running (and passes).
pub fn gpu_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ready = *READY.get_or_init(|| burn_ternary::device_available::<Gpu>(&gpu_device()));
    if !ready {
        assert!(
            std::env::var_os(ALLOW_NO_GPU_ENV).is_some(),
            "the GPU backend did not start (for WGPU without a GPU, `apt-get install \
             mesa-vulkan-drivers libvulkan1` gives lavapipe); set {ALLOW_NO_GPU_ENV}=1 to \
             skip the GPU checks instead"
        );
        eprintln!("skipped ({ALLOW_NO_GPU_ENV} is set): the GPU backend did not start here");
    }
    ready
}

pub const TOLERANCE: f64 = 1e-5;

/// Random shapes per check (the fixed edge cases come on top): at least 200
/// per kernel, forward and backward.
pub const RANDOM_SHAPES: usize = 200;

/// A random ternary weight, on the host.
pub struct HostWeight {
    pub packed: Vec<i32>,
    pub scale: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

impl HostWeight {
    pub fn random(rng: &mut StdRng, rows: usize, cols: usize) -> Self {
        let trits: Vec<i8> = (0..rows * cols)
            .map(|_| rng.random_range(-1i8..=1))
            .collect();
        let scale = (0..rows).map(|_| rng.random_range(0.25f32..2.0)).collect();
        Self {
            packed: pack_trits(&trits, rows, cols),
            scale,
            rows,
            cols,
        }
    }

    pub fn on<B: Backend>(&self, device: &B::Device) -> TernaryPrimitive<B> {
        let trits = int_tensor::<B, 2>(
            self.packed.clone(),
            [self.rows, trit_words(self.cols)],
            device,
        );
        let scale =
            Tensor::<B, 1>::from_data(TensorData::new(self.scale.clone(), [self.rows]), device);
        TernaryPrimitive {
            trits: trits.into_primitive(),
            scale: scale.into_primitive().tensor(),
            rows: self.rows,
            cols: self.cols,
        }
    }
}

pub fn random_values(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Scales each of `values` by its own random `10^[-3, 3)`: magnitudes spread
/// over six decades, the worst case of the tensor-core GEMV's per-chunk
/// block floating point.
pub fn spread_over_six_decades(rng: &mut StdRng, values: &mut [f32]) {
    for v in values {
        *v *= 10f32.powf(rng.random_range(-3.0..3.0));
    }
}

/// `n` random values rounded to f16, so that they are exact in both
/// precisions.
pub fn random_half_values(rng: &mut StdRng, n: usize) -> Vec<f32> {
    random_values(rng, n)
        .into_iter()
        .map(|v| burn::tensor::f16::from_f32(v).to_f32())
        .collect()
}

/// `values` as an f16 `[rows, cols]` tensor on the GPU.
pub fn gpu_half(values: &[f32], shape: [usize; 2]) -> FloatTensor<Gpu> {
    Tensor::<Gpu, 2>::from_data(TensorData::new(values.to_vec(), shape), &gpu_device())
        .cast(burn::tensor::FloatDType::F16)
        .into_primitive()
        .tensor()
}

pub fn float<B: Backend, const D: usize>(
    values: &[f32],
    shape: [usize; D],
    device: &B::Device,
) -> FloatTensor<B> {
    Tensor::<B, D>::from_data(TensorData::new(values.to_vec(), shape), device)
        .into_primitive()
        .tensor()
}

pub fn read<B: Backend>(t: FloatTensor<B>) -> Vec<f32> {
    Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(t))
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap()
}

pub fn read3<B: Backend>(t: FloatTensor<B>) -> Vec<f32> {
    Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(t))
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap()
}

/// A zero-element gradient port, as the `nn` modules make it (`empty`: on
/// CUDA, filling a zero-element tensor with `zeros` fails to launch).
pub fn empty_port<B: Backend>(device: &B::Device) -> FloatTensor<B> {
    Tensor::<B, 2>::empty([0, 0], device)
        .into_primitive()
        .tensor()
}

/// `Err` with a description when `got` is not within [`TOLERANCE`] of `want`.
pub fn compare(case: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    compare_within(case, got, want, TOLERANCE)
}

/// `Err` with a description when `got` is not within `tolerance` of `want`
/// (relative L2 and max abs relative to `max(1, max |want|)`).
pub fn compare_within(case: &str, got: &[f32], want: &[f32], tolerance: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{case}: {} values, expected {}",
            got.len(),
            want.len()
        ));
    }
    let (mut diff2, mut want2, mut max_abs, mut max_want) = (0f64, 0f64, 0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        let d = (g as f64 - w as f64).abs();
        if !d.is_finite() {
            return Err(format!("{case}: non-finite value (got {g}, want {w})"));
        }
        diff2 += d * d;
        want2 += (w as f64) * (w as f64);
        max_abs = max_abs.max(d);
        max_want = max_want.max((w as f64).abs());
    }
    let rel = if want2 > 0.0 {
        (diff2 / want2).sqrt()
    } else {
        diff2.sqrt()
    };
    if rel > tolerance || max_abs > tolerance * max_want.max(1.0) {
        return Err(format!(
            "{case}: relative L2 {rel:.3e}, max abs diff {max_abs:.3e} (max |want| {max_want:.3e})"
        ));
    }
    Ok(())
}

pub fn finish(name: &str, cases: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{name}: {} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{name}: {cases} cases passed");
}

/// Shapes `(m, rows, cols)`: fixed edge cases first, then `random` ones with
/// `rows <= max_dims.0` and `cols <= max_dims.1`.
pub fn matmul_shapes(
    rng: &mut StdRng,
    m_range: (usize, usize),
    max_dims: (usize, usize),
    fixed: &[(usize, usize, usize)],
    random: usize,
) -> Vec<(usize, usize, usize)> {
    let mut shapes = fixed.to_vec();
    for _ in 0..random {
        let m = rng.random_range(m_range.0..=m_range.1);
        let rows = rng.random_range(1..=max_dims.0);
        let cols = rng.random_range(1..=max_dims.1);
        shapes.push((m, rows, cols));
    }
    shapes
}
