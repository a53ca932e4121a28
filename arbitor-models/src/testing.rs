//! Test helpers: the audit check, and one backward pass plus one ternary
//! optimizer step with per-weight checks.

use std::collections::HashMap;

use burn::{
    backend::{Autodiff, Flex},
    module::AutodiffModule,
    optim::{GradientsParams, Optimizer},
    tensor::{Int, Tensor, TensorData},
};
use burn_ternary::{
    audit::{audit, AuditReport},
    optim::TernaryOptimizerConfig,
    visit::collect,
};

/// The inner test backend.
pub type TB = Flex;
/// The training test backend.
pub type AD = Autodiff<Flex>;

/// Audits `model` and checks that it is purely ternary with `expected` logical weights.
pub fn assert_audit<M: AutodiffModule<AD>>(model: &M, expected: usize) -> AuditReport {
    let report = audit::<AD, M>(model);
    assert_eq!(report.trainable_float_params, 0, "{report}");
    assert_eq!(report.frozen_float_params, 0, "{report}");
    assert_eq!(report.float_buffers, 0, "{report}");
    assert_eq!(report.float_bytes, 0, "{report}");
    assert!(report.is_pure_ternary());
    assert_eq!(report.logical_ternary_weights, expected, "{report}");
    report
}

fn words<const D: usize>(t: Tensor<AD, D, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec().unwrap()
}

fn snapshot<M: AutodiffModule<AD>>(model: &M) -> HashMap<String, (Vec<i64>, Vec<i64>)> {
    collect::<AD, M>(model)
        .ternary
        .into_iter()
        .map(|w| (w.path, (words(w.trits.1), words(w.memory.1))))
        .collect()
}

/// Runs `loss` backward and takes one ternary optimizer step. Checks that the
/// loss is finite, that every ternary weight whose path does not start with
/// one of `no_grad` gets a gradient on its port, and that every weight with a
/// nonzero gradient changed its trits or update memory. Returns the updated
/// model and the loss value.
pub fn train_step<M: AutodiffModule<AD>>(
    model: M,
    loss: impl Fn(&M) -> Tensor<AD, 1>,
    no_grad: &[&str],
) -> (M, f32) {
    let before = snapshot(&model);
    let loss = loss(&model);
    let value: f32 = loss.clone().into_scalar();
    assert!(value.is_finite(), "loss is {value}");
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut nonzero = Vec::new();
    for weight in collect::<AD, M>(&model).ternary {
        let exempt = no_grad.iter().any(|p| weight.path.starts_with(p));
        match grads.get::<TB, 2>(weight.port) {
            Some(grad) => {
                assert_eq!(
                    grad.dims(),
                    weight.dims,
                    "gradient shape of {}",
                    weight.path
                );
                let abs: f32 = grad.abs().sum().into_scalar();
                assert!(abs.is_finite(), "gradient of {} is {abs}", weight.path);
                if abs > 0.0 {
                    nonzero.push(weight.path);
                }
            }
            None => assert!(exempt, "ternary weight {} got no gradient", weight.path),
        }
    }
    assert!(
        !nonzero.is_empty(),
        "no ternary weight got a nonzero gradient"
    );
    let mut optim = TernaryOptimizerConfig::new().with_seed(3).init::<AD, M>();
    let model = optim.step(0.2, model, grads);
    let after = snapshot(&model);
    for path in nonzero {
        assert_ne!(
            before[&path], after[&path],
            "the optimizer step changed neither trits nor memory of {path}"
        );
    }
    (model, value)
}

/// A normal random float tensor from a fixed seed (host RNG, reproducible).
pub fn randn<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<AD, D> {
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            // Box-Muller.
            let (u1, u2): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
            (-2.0 * u1.ln()).sqrt() * (core::f32::consts::TAU * u2).cos()
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

/// Uniform random ids in `0..bound`.
pub fn random_ids<const D: usize>(
    shape: [usize; D],
    bound: usize,
    seed: u64,
) -> Tensor<AD, D, Int> {
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<i64> = (0..n).map(|_| rng.random_range(0..bound as i64)).collect();
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}
