//! ARBModel training on the CPU (Flex): gradients reach the ternary ports,
//! and a few ternary optimizer steps fit a fixed batch.

use arbitor_models::arb::{ARBModel, ARBModelConfig};
use burn::{
    backend::{Autodiff, Flex},
    optim::{GradientsParams, Optimizer},
    tensor::{Int, Tensor, TensorData},
};
use burn_ternary::{audit::audit, optim::TernaryOptimizerConfig};

type AD = Autodiff<Flex>;

fn batch(text: &[u8], offset: usize) -> Tensor<AD, 2, Int> {
    let v: Vec<i64> = (0..16)
        .map(|i| text[offset + (i / 8) * 20 + i % 8] as i64)
        .collect();
    Tensor::from_data(TensorData::new(v, [2, 8]), &Default::default())
}

#[test]
fn ternary_steps_fit_a_fixed_batch() {
    let device = Default::default();
    let model: ARBModel<AD> = ARBModelConfig::new().init(&device);
    let report = audit::<AD, _>(&model);
    println!("default ARBModel\n{report}");
    assert!(report.is_pure_ternary());

    let text = b"First Citizen: Before we proceed any further, hear me speak.";
    let (ids, targets) = (batch(text, 0), batch(text, 1));
    let mut optim = TernaryOptimizerConfig::new().init::<AD, ARBModel<AD>>();
    let mut model = model;
    let mut losses = Vec::new();
    for step in 0..25 {
        let loss = model.train_loss(ids.clone(), targets.clone()).unwrap();
        let text_loss: f32 = loss.text.clone().into_scalar();
        assert!(text_loss.is_finite(), "step {step}: {text_loss}");
        losses.push(text_loss);
        let grads = loss.total.backward();
        if step == 0 {
            for (name, port) in [
                (
                    "byte_embed",
                    &model.byte_embed.ternary_weight().unwrap().grad_port,
                ),
                (
                    "trigram_embed",
                    &model.trigram_embed.ternary_weight().unwrap().grad_port,
                ),
                (
                    "vq codebook",
                    &model.vq.codebook.ternary_weight().unwrap().grad_port,
                ),
                (
                    "memory keys",
                    &model.memory.keys.ternary_weight().unwrap().grad_port,
                ),
                (
                    "moe router",
                    &model.moe.router.ternary_weight().unwrap().grad_port,
                ),
                (
                    "router gate",
                    &model.router.gate.ternary_weight().unwrap().grad_port,
                ),
                (
                    "text head",
                    &model.router.text_head.ternary_weight().unwrap().grad_port,
                ),
                (
                    "video noise_embed",
                    &model.video_head.noise_embed.weight.grad_port,
                ),
            ] {
                assert!(port.grad(&grads).is_some(), "{name} got no gradient");
            }
        }
        let grads = GradientsParams::from_grads(grads, &model);
        model = optim.step(0.05, model, grads);
    }
    println!("text loss per step: {losses:?}");
    let first = losses[0];
    let last = losses[losses.len() - 3..].iter().sum::<f32>() / 3.0;
    assert!(
        last < first - 0.5,
        "ternary training did not fit the batch: {first} -> {last}"
    );
}
