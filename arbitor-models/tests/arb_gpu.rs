//! ARBModel train smoke on a GPU backend: forward, backward, one ternary
//! update, finite loss. `--features wgpu` runs it on WGPU (lavapipe's software
//! Vulkan in CI); `--features cuda` alone runs it on CUDA.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use arbitor_models::arb::{ARBModel, ARBModelConfig};
use burn::{
    backend::Autodiff,
    optim::{GradientsParams, Optimizer},
    tensor::{Int, Tensor, TensorData},
};
use burn_ternary::optim::TernaryOptimizerConfig;

#[cfg(feature = "wgpu")]
type Gpu = burn::backend::Wgpu;
#[cfg(not(feature = "wgpu"))]
type Gpu = burn::backend::Cuda;
type AD = Autodiff<Gpu>;

/// Whether the GPU backend starts here. A backend that does not start fails
/// the test (a skip must never read as a pass), unless `ARBITOR_ALLOW_NO_GPU`
/// is set: then the test says it skipped and returns.
fn gpu_ready() -> bool {
    let ready = burn_ternary::device_available::<Gpu>(&Default::default());
    if !ready {
        assert!(
            std::env::var_os("ARBITOR_ALLOW_NO_GPU").is_some(),
            "the GPU backend did not start (for WGPU without a GPU, install \
             mesa-vulkan-drivers; or set ARBITOR_ALLOW_NO_GPU=1 to skip)"
        );
        eprintln!("skipped (ARBITOR_ALLOW_NO_GPU): the GPU backend did not start here");
    }
    ready
}

#[test]
fn arb_model_train_smoke_on_gpu() {
    if !gpu_ready() {
        return;
    }
    let device = Default::default();
    let text = b"First Citizen: Before we proceed any further, hear me speak.";
    let ids = |offset: usize| {
        let v: Vec<i64> = (0..16)
            .map(|i| text[offset + (i / 8) * 20 + i % 8] as i64)
            .collect();
        Tensor::<AD, 2, Int>::from_data(TensorData::new(v, [2, 8]), &device)
    };
    let mut model: ARBModel<AD> = ARBModelConfig::new().init(&device);
    let mut optim = TernaryOptimizerConfig::new().init::<AD, ARBModel<AD>>();
    let before = model.byte_embed.ternary_weight().unwrap().memory_host();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let loss = model.train_loss(ids(0), ids(1)).unwrap();
        let text_loss: f32 = loss.text.clone().into_scalar();
        assert!(text_loss.is_finite(), "text loss {text_loss}");
        losses.push(text_loss);
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optim.step(0.05, model, grads);
    }
    println!("ARBModel text loss on the GPU backend: {losses:?}");
    assert_ne!(
        model.byte_embed.ternary_weight().unwrap().memory_host(),
        before,
        "the ternary update changed nothing"
    );
}
