//! The kernel-launch counter (`burn_ternary::launch_count`) on the GPU
//! backend, in a test binary of its own: the launch log must be set up
//! before the first device use, and a count covers every launch of the
//! process (the kernel checks of `cube_kernels.rs` run in parallel).
#![cfg(any(feature = "wgpu", feature = "cuda"))]

mod common;

use burn::tensor::{Tensor, TensorData};
use burn_ternary::{
    launch_count::{log_launches, CountLaunches},
    Conv1dGeometry, ConvEpilogue, TernaryBackend,
};
use common::*;
use rand::{rngs::StdRng, SeedableRng};

#[test]
fn counts_the_launches_of_known_ops() {
    let log = std::env::temp_dir().join(format!("launch-count-{}.log", std::process::id()));
    assert!(log_launches(&log), "the first call sets the launch log up");
    assert!(!log_launches(&log), "the second call changes nothing");
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let mut rng = StdRng::seed_from_u64(40);
    let (_, nothing) = Gpu::count_launches(&gpu, || ());
    assert_eq!(nothing, Some(0));

    // The fused denoise step is one kernel per call.
    let latent = float::<Gpu, 2>(&random_values(&mut rng, 2 * 48), [2, 48], &gpu);
    let alpha = float::<Gpu, 1>(&[0.5, 0.9], [2], &gpu);
    let (_, three) = Gpu::count_launches(&gpu, || {
        for _ in 0..3 {
            Gpu::denoise_step(latent.clone(), latent.clone(), alpha.clone());
        }
    });
    assert_eq!(three, Some(3));

    // The fused convolution with the denoise epilogue and the GELU copy: one.
    let g = Conv1dGeometry {
        in_channels: 5,
        kernel_size: 3,
        stride: 1,
        padding: 1,
        dilation: 1,
    };
    let weight = HostWeight::random(&mut rng, 6, 15).on::<Gpu>(&gpu);
    let x = float::<Gpu, 3>(&random_values(&mut rng, 2 * 5 * 8), [2, 5, 8], &gpu);
    let latent = float::<Gpu, 3>(&random_values(&mut rng, 2 * 6 * 8), [2, 6, 8], &gpu);
    let ((y, activated), one) = Gpu::count_launches(&gpu, || {
        let epilogue = ConvEpilogue::DenoiseStep {
            latent,
            alpha: alpha.clone(),
        };
        Gpu::ternary_conv1d_fused(x, weight, g, epilogue, true)
    });
    assert_eq!(one, Some(1));
    assert!(activated.is_some());

    // Burn's own kernels count too: an add and an exp.
    let t = Tensor::<Gpu, 1>::from_data(TensorData::new(vec![1.0f32; 8], [8]), &gpu);
    let (_, two) = Gpu::count_launches(&gpu, || (t + 1.0).exp());
    assert_eq!(two, Some(2));
    // A read-back launches nothing of its own on an already computed tensor.
    assert_eq!(read3::<Gpu>(y).len(), 2 * 6 * 8);
    let _ = std::fs::remove_file(&log);
}
