//! Times one ternary training step (forward, backward, ternary optimizer
//! update) of a realistic layer stack on Burn's two CPU backends, NdArray and
//! Flex, in the same run.
//!
//! `cargo bench -p burn-ternary --bench cpu_backends`

use std::time::Instant;

use burn::{
    backend::{Autodiff, Flex, NdArray},
    module::Module,
    optim::{GradientsParams, Optimizer},
    tensor::{backend::Backend, Distribution, Tensor},
};
use burn_ternary::{
    nn::{TernaryLinear, TernaryLinearConfig},
    optim::TernaryOptimizerConfig,
    TernaryAutodiffBackend, TernaryBackend,
};

#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    up: TernaryLinear<B>,
    down: TernaryLinear<B>,
}

impl<B: TernaryBackend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.down
            .forward(burn::tensor::activation::relu(self.up.forward(x)))
    }
}

/// Median seconds per phase: (forward, forward+backward, full step).
fn time_steps<B: TernaryAutodiffBackend>(
    tokens: usize,
    width: usize,
    steps: usize,
) -> (f64, f64, f64) {
    let device = Default::default();
    let mut model = Mlp::<B> {
        up: TernaryLinearConfig::new(width, 4 * width).init(&device),
        down: TernaryLinearConfig::new(4 * width, width).init(&device),
    };
    let mut optim = TernaryOptimizerConfig::new().init::<B, Mlp<B>>();
    let mut phases = vec![];
    for step in 0..steps + 1 {
        let x = Tensor::<B, 2>::random([tokens, width], Distribution::Normal(0.0, 1.0), &device);
        let started = Instant::now();
        let y = model.forward(x);
        let loss = y.powf_scalar(2.0).mean();
        let _ = loss.clone().into_scalar();
        let forward = started.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let backward = started.elapsed().as_secs_f64();
        model = optim.step(0.01, model, grads);
        let _ = model.up.weight.trits_host();
        let total = started.elapsed().as_secs_f64();
        if step > 0 {
            phases.push((forward, backward, total)); // step 0 is warm-up
        }
    }
    let median = |f: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = phases.iter().map(f).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    (median(|p| p.0), median(|p| p.1), median(|p| p.2))
}

fn main() {
    let (tokens, width, steps) = (512, 1024, 5);
    println!(
        "ternary MLP {width} -> {} -> {width}, {tokens} tokens per step, median of {steps} steps",
        4 * width
    );
    println!("| backend | forward ms | forward+backward ms | full step ms |");
    println!("| --- | ---: | ---: | ---: |");
    let rows = [
        (
            "NdArray",
            time_steps::<Autodiff<NdArray>>(tokens, width, steps),
        ),
        ("Flex", time_steps::<Autodiff<Flex>>(tokens, width, steps)),
    ];
    for (name, (f, b, t)) in rows {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            f * 1e3,
            b * 1e3,
            t * 1e3
        );
    }
}
