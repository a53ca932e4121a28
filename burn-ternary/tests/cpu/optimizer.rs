//! The ternary optimizer: the update rule, seeding, records, gradient
//! accumulation, and AdamW for float parameters.

use burn::{
    backend::{Autodiff, NdArray},
    module::Module,
    optim::{GradientsAccumulator, GradientsParams, Optimizer},
    tensor::{backend::Backend, Tensor, TensorData},
};
use burn_ternary::{
    nn::*,
    optim::{
        ternary_update, GradNormalization, NoiseKey, TernaryOptimizer, TernaryOptimizerConfig,
        UpdateHyper, UPDATE_THRESHOLD,
    },
    packing::{
        int_tensor, memory_words, pack_memory, pack_trits, trit_words, unpack_memory_tensor,
    },
};
use rand::{rngs::SmallRng, Rng, SeedableRng};

type TB = NdArray<f32>;
type AD = Autodiff<TB>;

fn data(rows: usize, cols: usize, seed: u64) -> Tensor<AD, 2> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), &Default::default())
}

fn loss(layer: &TernaryLinear<AD>, x: Tensor<AD, 2>, target: Tensor<AD, 2>) -> Tensor<AD, 1> {
    (layer.forward(x) - target).powf_scalar(2.0).sum()
}

fn latent(w: &TernaryWeight<AD>) -> Vec<i32> {
    let theta = UPDATE_THRESHOLD;
    w.trits_host()
        .iter()
        .zip(w.memory_host())
        .map(|(t, m)| *t as i32 * theta + m as i32)
        .collect()
}

#[test]
fn a_step_moves_the_latent_against_the_gradient() {
    let device = Default::default();
    let layer = TernaryLinearConfig::new(40, 24).init::<AD>(&device);
    let before = latent(&layer.weight);
    let (x, target) = (data(32, 40, 1), data(32, 24, 2));
    let grads = GradientsParams::from_grads(loss(&layer, x, target).backward(), &layer);
    let grad: Vec<f32> = grads
        .get::<TB, 2>(layer.weight.grad_port.id)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let mut optim = TernaryOptimizerConfig::new().init::<AD, TernaryLinear<AD>>();
    let layer = optim.step(0.2, layer, grads);
    let after = latent(&layer.weight);
    let theta = UPDATE_THRESHOLD;
    let mut alignment = 0.0f64;
    let mut changed = 0;
    for ((b, a), g) in before.iter().zip(&after).zip(&grad) {
        // One step moves the latent by at most θ (one trit) and never past ±2θ.
        assert!((a - b).abs() <= theta, "latent moved {b} -> {a}");
        assert!(a.abs() <= 2 * theta);
        alignment += ((a - b) as f64) * *g as f64;
        changed += (a != b) as usize;
    }
    assert!(
        alignment < 0.0,
        "the update must descend the gradient ({alignment})"
    );
    assert!(
        changed > before.len() / 2,
        "only {changed} of {} latents moved",
        before.len()
    );
    assert_eq!(optim.steps(), 1);
}

#[test]
fn trits_flip_only_where_memory_crosses_the_threshold() {
    let device = burn::backend::ndarray::NdArrayDevice::Cpu;
    let (rows, cols) = (8, 50);
    let trits: Vec<i8> = (0..rows * cols).map(|i| [-1, 0, 1][i % 3]).collect();
    // Memory one unit below +θ or above −θ: any push past it flips the trit.
    let memory: Vec<i8> = (0..rows * cols)
        .map(|i| if i % 2 == 0 { 63 } else { -63 })
        .collect();
    let grad: Vec<f32> = (0..rows * cols)
        .map(|i| if i % 2 == 0 { -1.0 } else { 1.0 })
        .collect();
    let update = ternary_update::<TB>(
        Tensor::from_data(TensorData::new(grad, [rows, cols]), &device),
        int_tensor(
            pack_trits(&trits, rows, cols),
            [rows, trit_words(cols)],
            &device,
        ),
        int_tensor(
            pack_memory(&memory, rows, cols),
            [rows, memory_words(cols)],
            &device,
        ),
        int_tensor(vec![0; rows], [rows], &device),
        UpdateHyper {
            lr: 0.1,
            scale_lr: 0.0,
            normalization: GradNormalization::Tensor,
        },
        NoiseKey::new(3, 0, 0),
    )
    .unwrap();
    let w = TernaryWeight::<TB>::from_tensors(update.trits, update.memory, update.scale_code, cols);
    let (new_trits, new_memory) = (w.trits_host(), w.memory_host());
    for i in 0..rows * cols {
        let (t, m) = (trits[i], memory[i]);
        let up = i % 2 == 0; // the gradient pushes even entries up, odd ones down
        match (up, t) {
            (true, 1) => assert_eq!(
                (new_trits[i], new_memory[i]),
                (1, 64),
                "saturated at +1: memory clamps at θ"
            ),
            (false, -1) => assert_eq!((new_trits[i], new_memory[i]), (-1, -64), "saturated at -1"),
            _ => {
                // |Ĝ| = 1 everywhere, so the memory moves by ⌊6.4 + u⌋ ∈ {6, 7} units,
                // crosses ±θ, and the trit steps while the latent stays continuous.
                let old_latent = t as i32 * 64 + m as i32;
                let new_latent = new_trits[i] as i32 * 64 + new_memory[i] as i32;
                let moved = if up {
                    new_latent - old_latent
                } else {
                    old_latent - new_latent
                };
                assert!(
                    moved == 6 || moved == 7,
                    "entry {i}: latent moved by {moved}"
                );
                assert_eq!(
                    new_trits[i],
                    if up { t + 1 } else { t - 1 },
                    "entry {i} should step"
                );
            }
        }
    }
}

#[test]
fn stochastic_rounding_is_unbiased() {
    let device = burn::backend::ndarray::NdArrayDevice::Cpu;
    let (rows, cols) = (64, 512);
    // A constant gradient normalizes to 1, so the expected memory step is lr·θ = 0.3.
    let lr = 0.3 / UPDATE_THRESHOLD as f64;
    let update = ternary_update::<TB>(
        Tensor::ones([rows, cols], &device),
        int_tensor(
            vec![0; rows * trit_words(cols)],
            [rows, trit_words(cols)],
            &device,
        ),
        int_tensor(
            vec![0; rows * memory_words(cols)],
            [rows, memory_words(cols)],
            &device,
        ),
        int_tensor(vec![0; rows], [rows], &device),
        UpdateHyper {
            lr,
            scale_lr: 0.0,
            normalization: GradNormalization::Tensor,
        },
        NoiseKey::new(11, 0, 0),
    )
    .unwrap();
    let memory: Vec<i64> = unpack_memory_tensor(update.memory, cols)
        .into_data()
        .convert::<i64>()
        .into_vec()
        .unwrap();
    assert!(
        memory.iter().all(|m| *m == 0 || *m == -1),
        "steps are ⌊−0.3 + u⌋ ∈ {{−1, 0}}"
    );
    let mean = memory.iter().sum::<i64>() as f64 / memory.len() as f64;
    // 32768 Bernoulli(0.3) draws: standard error 0.0025.
    assert!((mean + 0.3).abs() < 0.01, "mean step {mean}, expected -0.3");
}

fn train_steps(
    optim_seed: u64,
    steps: usize,
    layer: TernaryLinear<AD>,
) -> (TernaryLinear<AD>, TernaryOptimizer<TernaryLinear<AD>, AD>) {
    let mut optim = TernaryOptimizerConfig::new()
        .with_seed(optim_seed)
        .init::<AD, TernaryLinear<AD>>();
    let mut layer = layer;
    for step in 0..steps {
        let grads = GradientsParams::from_grads(
            loss(&layer, data(16, 30, step as u64), data(16, 10, 99)).backward(),
            &layer,
        );
        layer = optim.step(0.1, layer, grads);
    }
    (layer, optim)
}

fn state(layer: &TernaryLinear<AD>) -> (Vec<i8>, Vec<i8>, Vec<i32>) {
    (
        layer.weight.trits_host(),
        layer.weight.memory_host(),
        layer.weight.scale_codes_host(),
    )
}

#[test]
fn seeded_runs_repeat_and_records_resume_exactly() {
    let device = Default::default();
    let start = TernaryLinearConfig::new(30, 10).init::<AD>(&device);
    let (a, _) = train_steps(5, 4, start.clone());
    let (b, _) = train_steps(5, 4, start.clone());
    let (c, _) = train_steps(6, 4, start.clone());
    assert_eq!(state(&a), state(&b), "same seed, same result");
    assert_ne!(state(&a), state(&c), "another seed draws other roundings");

    // Two steps, save the optimizer record, restore it into a fresh optimizer,
    // two more steps: identical to four uninterrupted steps.
    let (mid, optim) = train_steps(5, 2, start);
    let record = optim.to_record();
    let mut resumed = TernaryOptimizerConfig::new()
        .with_seed(1234)
        .init::<AD, TernaryLinear<AD>>()
        .load_record(record);
    let mut layer = mid;
    for step in 2..4 {
        let grads = GradientsParams::from_grads(
            loss(&layer, data(16, 30, step as u64), data(16, 10, 99)).backward(),
            &layer,
        );
        layer = resumed.step(0.1, layer, grads);
    }
    assert_eq!(state(&layer), state(&a));
}

#[test]
fn accumulated_gradients_equal_the_full_batch_gradient() {
    let device = Default::default();
    let layer = TernaryLinearConfig::new(30, 10).init::<AD>(&device);
    let (x, y) = (data(16, 30, 1), data(16, 10, 2));
    let full = GradientsParams::from_grads(loss(&layer, x.clone(), y.clone()).backward(), &layer);
    let mut accumulator = GradientsAccumulator::new();
    for half in [0..8, 8..16] {
        let part = loss(
            &layer,
            x.clone().slice([half.clone(), 0..30]),
            y.clone().slice([half, 0..10]),
        );
        accumulator.accumulate(&layer, GradientsParams::from_grads(part.backward(), &layer));
    }
    let accumulated = accumulator.grads();
    let id = layer.weight.grad_port.id;
    let (a, b) = (
        full.get::<TB, 2>(id).unwrap(),
        accumulated.get::<TB, 2>(id).unwrap(),
    );
    let diff: f32 = (a.clone() - b).abs().max().into_scalar();
    let scale: f32 = a.abs().max().into_scalar();
    assert!(
        diff <= 1e-5 * scale,
        "accumulated vs full-batch gradient differ by {diff}"
    );
    // And the optimizer consumes the accumulated gradient like any other.
    let mut optim = TernaryOptimizerConfig::new().init::<AD, TernaryLinear<AD>>();
    let before = state(&layer);
    let layer = optim.step(0.1, layer, accumulated);
    assert_ne!(state(&layer).1, before.1);
}

#[derive(Module, Debug)]
struct Mixed<B: Backend> {
    ternary: TernaryLinear<B>,
    dense: burn::nn::Linear<B>,
}

#[test]
fn float_params_get_adamw_and_ternary_state_its_own_rule() {
    let device = Default::default();
    let model = Mixed::<AD> {
        ternary: TernaryLinearConfig::new(12, 8).init(&device),
        dense: burn::nn::LinearConfig::new(8, 4).init(&device),
    };
    let dense_before: Vec<f32> = model.dense.weight.val().into_data().to_vec().unwrap();
    let memory_before = model.ternary.weight.memory_host();
    let out = model.dense.forward(model.ternary.forward(data(5, 12, 1)));
    let grads = GradientsParams::from_grads(out.powf_scalar(2.0).sum().backward(), &model);
    let mut optim = TernaryOptimizerConfig::new().init::<AD, Mixed<AD>>();
    let model = optim.step(1e-2, model, grads);
    let dense_after: Vec<f32> = model.dense.weight.val().into_data().to_vec().unwrap();
    // AdamW's first step moves every weight by about lr.
    for (b, a) in dense_before.iter().zip(&dense_after) {
        assert!(((a - b).abs() - 1e-2).abs() < 2e-3, "AdamW step {b} -> {a}");
    }
    assert_ne!(model.ternary.weight.memory_host(), memory_before);
    assert_eq!(
        model.ternary.weight.grad_port.shape().num_elements(),
        0,
        "the port stays empty"
    );
}

#[test]
fn a_ternary_layer_fits_a_ternary_target() {
    // Regression onto a fixed random ternary teacher: the loss must fall well below its start.
    let device = Default::default();
    let teacher = TernaryLinearConfig::new(32, 16).init::<AD>(&device);
    let mut student = TernaryLinearConfig::new(32, 16).init::<AD>(&device);
    let mut optim = TernaryOptimizerConfig::new()
        .with_seed(1)
        .init::<AD, TernaryLinear<AD>>();
    let eval = |s: &TernaryLinear<AD>| -> f32 {
        let x = data(256, 32, 1000);
        loss(s, x.clone(), teacher.forward(x).detach()).into_scalar()
    };
    let start = eval(&student);
    for step in 0..150 {
        let x = data(64, 32, step);
        let l = loss(&student, x.clone(), teacher.forward(x).detach());
        let grads = GradientsParams::from_grads(l.backward(), &student);
        student = optim.step(0.05, student, grads);
    }
    let end = eval(&student);
    assert!(end < 0.2 * start, "loss {start} -> {end}");
}

#[test]
fn step_multi_sums_device_gradients_like_one_step_on_their_sum() {
    // Data parallelism (Burn's multi-device strategy) hands the optimizer one
    // gradient per device; the update must equal one step on their sum, so
    // every replica forked from the updated model holds the same trits.
    use burn::{optim::MultiGradientsParams, tensor::backend::DeviceOps};
    let device = Default::default();
    let layer = TernaryLinearConfig::new(30, 10).init::<AD>(&device);
    let id = layer.weight.grad_port.id;
    let grads = |rows: std::ops::Range<usize>| {
        let (x, y) = (data(16, 30, 1), data(16, 10, 2));
        let part = loss(
            &layer,
            x.slice([rows.clone(), 0..30]),
            y.slice([rows, 0..10]),
        );
        GradientsParams::from_grads(part.backward(), &layer)
    };
    let (first, second) = (grads(0..8), grads(8..16));
    let mut summed = GradientsParams::new();
    let total = first.get::<TB, 2>(id).unwrap() + second.get::<TB, 2>(id).unwrap();
    summed.register::<TB, 2>(id, total);
    let device_id = DeviceOps::id(&burn::backend::ndarray::NdArrayDevice::Cpu);
    let multi = MultiGradientsParams {
        grads: vec![(first, device_id), (second, device_id)],
    };
    let mut single = TernaryOptimizerConfig::new()
        .with_seed(9)
        .init::<AD, TernaryLinear<AD>>();
    let mut parallel = TernaryOptimizerConfig::new()
        .with_seed(9)
        .init::<AD, TernaryLinear<AD>>();
    let a = single.step(0.1, layer.clone(), summed);
    let b = parallel.step_multi(0.1, layer.clone(), multi);
    assert_ne!(state(&a).1, state(&layer).1, "the step moved the memory");
    assert_eq!(state(&a), state(&b));
}
