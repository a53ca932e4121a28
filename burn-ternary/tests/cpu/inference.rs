//! Modules for inference only: `without_update_memory` keeps the outputs,
//! drops one byte per weight, and the optimizer and the loader say what is
//! missing.

use burn::{
    backend::{Autodiff, Flex},
    module::Module,
    optim::{GradientsParams, Optimizer},
    tensor::{Tensor, TensorData},
};
use burn_ternary::{
    audit, io, nn::*, without_update_memory, TernaryOptimizerConfig, TernaryWeight,
};

type AD = Autodiff<Flex>;

#[derive(Module, Debug)]
struct TwoLayers<B: burn::tensor::backend::Backend> {
    first: TernaryLinear<B>,
    second: TernaryLinear<B>,
}

fn two_layers<B: burn::tensor::backend::Backend>(device: &B::Device) -> TwoLayers<B> {
    TwoLayers {
        first: TernaryLinearConfig::new(100, 48).init(device),
        second: TernaryLinearConfig::new(48, 20).init(device),
    }
}

fn input<B: burn::tensor::backend::Backend>(device: &B::Device) -> Tensor<B, 2> {
    let v: Vec<f32> = (0..3 * 100)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [3, 100]), device)
}

#[test]
fn dropping_the_update_memory_keeps_outputs_and_saves_a_byte_per_weight() {
    let device = Default::default();
    let model = two_layers::<Flex>(&device);
    let forward = |m: &TwoLayers<Flex>| {
        m.second
            .forward(m.first.forward(input::<Flex>(&device)))
            .into_data()
    };
    let (before, report) = (forward(&model), audit(&model));
    let trits = |m: &TwoLayers<Flex>| (m.first.weight.trits_host(), m.second.weight.trits_host());
    let trits_before = trits(&model);

    let model = without_update_memory(model);
    assert_eq!(forward(&model), before);
    assert_eq!(trits(&model), trits_before);
    assert!(!model.first.weight.has_update_memory() && !model.second.weight.has_update_memory());
    assert!(model.first.weight.memory_host().is_empty());
    // The packed memory held 4-byte words of 4 weights: 25 and 12 per row.
    let dropped = report.ternary_state_bytes - audit(&model).ternary_state_bytes;
    assert_eq!(dropped, 4 * (48 * 25 + 20 * 12));
}

#[test]
fn a_module_without_update_memory_saves_without_it_and_a_training_model_refuses_that_file() {
    let device = Default::default();
    let model = without_update_memory(two_layers::<Flex>(&device));
    let path = std::env::temp_dir().join(format!(
        "ternary-inference-{}.safetensors",
        std::process::id()
    ));
    io::save_safetensors(&model, &path).unwrap();
    // Loads back into a module for inference, with the same outputs.
    let again =
        io::load_safetensors(without_update_memory(two_layers::<Flex>(&device)), &path).unwrap();
    assert_eq!(
        again.first.forward(input::<Flex>(&device)).into_data(),
        model.first.forward(input::<Flex>(&device)).into_data()
    );
    let err = io::load_safetensors(two_layers::<Flex>(&device), &path).unwrap_err();
    assert!(err.to_string().contains("first.weight.memory"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
#[should_panic(expected = "ternary weight `first.weight` has no update memory")]
fn the_optimizer_refuses_a_weight_without_update_memory() {
    let device = Default::default();
    let model = without_update_memory(two_layers::<AD>(&device));
    let loss = model
        .second
        .forward(model.first.forward(input::<AD>(&device)))
        .sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = TernaryOptimizerConfig::new().init::<AD, TwoLayers<AD>>();
    let _ = optim.step(0.1, model, grads);
}

#[test]
fn an_empty_weight_keeps_counting_as_holding_its_memory() {
    let weight = TernaryWeight::<Flex>::init(0, 8, &Default::default());
    assert!(weight.has_update_memory());
}
