//! The ternary optimizer: trains trits and scale codes directly, with one
//! signed 8-bit update memory per weight and no float state per weight.
//!
//! For each ternary weight with gradient `G = dL/dW` (from its gradient port):
//! 1. `Ĝ = G / rms(G)` (per tensor by default, or per row): scale-free steps;
//! 2. `M ← M − ⌊lr·θ·Ĝ + u⌋`, `u ~ U[0, 1)` from a seeded RNG (unbiased
//!    stochastic rounding; the step is clamped to ±θ);
//! 3. where `M > θ` and `T < 1`: `T ← T + 1`, `M ← M − θ` (and the mirror
//!    image below −θ), so the latent `T·θ + M` moves continuously; memory is
//!    then clamped to `[−θ, θ]` (saturated trits do not bank updates);
//! 4. scale codes step by `⌊−lr·scale_lr_ratio·ĝ_code + u⌋`, with
//!    `g_code = dL/dcode = (Σ_k G·T)·s·ln2/16` normalized per tensor.
//!
//! Float parameters, where a model has any, get AdamW. The optimizer record
//! holds the step count, the seed and the AdamW state, so a resumed run draws
//! the same random numbers as an uninterrupted one.

use std::collections::HashMap;

use burn::{
    config::Config,
    module::{AutodiffModule, ModuleMapper, Param, ParamId},
    optim::{
        adaptor::OptimizerAdaptor, AdamW, AdamWConfig, GradientsParams, LearningRate,
        MultiGradientsParams, Optimizer,
    },
    tensor::{
        backend::{AutodiffBackend, Backend},
        Int, Tensor, TensorData,
    },
};
use rand::{rngs::SmallRng, Rng, SeedableRng};

use crate::{
    nn::UPDATE_THRESHOLD,
    packing::{
        decode_scale_tensor, pack_memory_tensor, pack_trits_tensor, unpack_memory_tensor,
        unpack_trits_tensor, SCALE_CODE_RANGE, SCALE_CODE_STEPS_PER_OCTAVE,
    },
    visit::collect,
};

/// How the weight gradient is normalized before it updates the memory.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum GradNormalization {
    /// Divide by the root mean square of the whole tensor's gradient.
    Tensor,
    /// Divide each row by its own root mean square.
    Row,
}

/// Configuration of the [`TernaryOptimizer`].
#[derive(Config, Debug)]
pub struct TernaryOptimizerConfig {
    /// Seed of the stochastic-rounding RNG.
    #[config(default = 0)]
    pub seed: u64,
    /// Learning-rate multiplier for the scale codes.
    #[config(default = 0.5)]
    pub scale_lr_ratio: f64,
    /// Gradient normalization.
    #[config(default = "GradNormalization::Tensor")]
    pub normalization: GradNormalization,
    /// AdamW for any float parameters of the model.
    #[config(default = "AdamWConfig::new()")]
    pub float_optimizer: AdamWConfig,
}

impl TernaryOptimizerConfig {
    /// Builds the optimizer for modules of type `M`.
    ///
    /// ```
    /// use burn::backend::{Autodiff, NdArray};
    /// use burn_ternary::nn::TernaryScaleTensor;
    /// use burn_ternary::optim::TernaryOptimizerConfig;
    ///
    /// type B = Autodiff<NdArray>;
    /// let optim = TernaryOptimizerConfig::new().with_seed(7).init::<B, TernaryScaleTensor<B>>();
    /// ```
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> TernaryOptimizer<M, B> {
        TernaryOptimizer {
            seed: self.seed,
            scale_lr_ratio: self.scale_lr_ratio,
            normalization: self.normalization,
            step: 0,
            float_optimizer: self.float_optimizer.init(),
        }
    }
}

/// Trains ternary weights in place (see the [module docs](self)); a
/// [`burn::optim::Optimizer`], so Burn's `Learner`, gradient accumulation,
/// learning-rate schedulers and checkpointing work unchanged.
#[derive(Clone)]
pub struct TernaryOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    seed: u64,
    scale_lr_ratio: f64,
    normalization: GradNormalization,
    step: u64,
    float_optimizer: OptimizerAdaptor<AdamW, M, B>,
}

/// Saved optimizer state: `(step, seed, AdamW state of float params)`.
pub type TernaryOptimizerRecord<M, B> = (
    u64,
    u64,
    <OptimizerAdaptor<AdamW, M, B> as Optimizer<M, B>>::Record,
);

impl<M: AutodiffModule<B>, B: AutodiffBackend> TernaryOptimizer<M, B> {
    /// Number of steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    fn update_ternary(
        &mut self,
        lr: LearningRate,
        module: M,
        mut take_grad: impl FnMut(ParamId) -> Option<Tensor<B::InnerBackend, 2>>,
    ) -> M {
        let state = collect::<B, M>(&module);
        let mut replacer = Replacer::<B> {
            two: HashMap::new(),
            one: HashMap::new(),
        };
        for (index, weight) in state.ternary.into_iter().enumerate() {
            let Some(grad) = take_grad(weight.port) else {
                continue;
            };
            let mut rng = SmallRng::seed_from_u64(mix(self.seed, self.step, index as u64));
            let device = weight.trits.1.device();
            let update = ternary_update::<B::InnerBackend>(
                grad.to_device(&device),
                weight.trits.1.inner(),
                weight.memory.1.inner(),
                weight.scale_code.1.inner(),
                UpdateHyper {
                    lr,
                    scale_lr: lr * self.scale_lr_ratio,
                    normalization: self.normalization,
                },
                &mut rng,
            );
            replacer
                .two
                .insert(weight.trits.0, Tensor::from_inner(update.trits));
            replacer
                .two
                .insert(weight.memory.0, Tensor::from_inner(update.memory));
            replacer
                .one
                .insert(weight.scale_code.0, Tensor::from_inner(update.scale_code));
        }
        self.step += 1;
        module.map(&mut replacer)
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for TernaryOptimizer<M, B> {
    type Record = TernaryOptimizerRecord<M, B>;

    fn step(&mut self, lr: LearningRate, module: M, mut grads: GradientsParams) -> M {
        let module = self.update_ternary(lr, module, |id| grads.remove::<B::InnerBackend, 2>(id));
        self.float_optimizer.step(lr, module, grads)
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, mut grads: MultiGradientsParams) -> M {
        let module = self.update_ternary(lr, module, |id| {
            grads.remove::<B::InnerBackend, 2>(id).map(|(grad, _)| grad)
        });
        self.float_optimizer.step_multi(lr, module, grads)
    }

    fn to_record(&self) -> Self::Record {
        (self.step, self.seed, self.float_optimizer.to_record())
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        let (step, seed, float) = record;
        self.step = step;
        self.seed = seed;
        self.float_optimizer = self.float_optimizer.load_record(float);
        self
    }
}

/// splitmix64 of the three inputs: independent streams per step and weight.
fn mix(seed: u64, step: u64, index: u64) -> u64 {
    let mut z =
        seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Replacer<B: AutodiffBackend> {
    two: HashMap<ParamId, Tensor<B, 2, Int>>,
    one: HashMap<ParamId, Tensor<B, 1, Int>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Replacer<B> {
    fn map_int<const D: usize>(
        &mut self,
        param: Param<Tensor<B, D, Int>>,
    ) -> Param<Tensor<B, D, Int>> {
        let replacement = match D {
            2 => self.two.remove(&param.id).map(|t| {
                let dims = t.dims();
                t.reshape(shape_of::<D>(&dims))
            }),
            1 => self.one.remove(&param.id).map(|t| {
                let dims = t.dims();
                t.reshape(shape_of::<D>(&dims))
            }),
            _ => None,
        };
        match replacement {
            Some(value) => {
                let (id, _, mapper) = param.consume();
                Param::from_mapped_value(id, value, mapper)
            }
            None => param,
        }
    }
}

fn shape_of<const D: usize>(dims: &[usize]) -> [usize; D] {
    let mut shape = [1; D];
    shape.copy_from_slice(dims);
    shape
}

/// Hyper-parameters of one [`ternary_update`].
#[derive(Clone, Copy, Debug)]
pub struct UpdateHyper {
    /// Learning rate for the trits: expected memory movement per step is
    /// `lr · θ` units for a gradient entry of unit normalized size.
    pub lr: f64,
    /// Learning rate for the scale codes, in code steps.
    pub scale_lr: f64,
    /// Gradient normalization.
    pub normalization: GradNormalization,
}

/// New packed state of one weight after [`ternary_update`].
#[derive(Clone, Debug)]
pub struct UpdatedState<B: Backend> {
    /// Packed trits.
    pub trits: Tensor<B, 2, Int>,
    /// Packed update memory.
    pub memory: Tensor<B, 2, Int>,
    /// Scale codes.
    pub scale_code: Tensor<B, 1, Int>,
}

fn uniform<B: Backend, const D: usize>(
    shape: [usize; D],
    rng: &mut SmallRng,
    device: &B::Device,
) -> Tensor<B, D> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// One update of a ternary weight from its dense gradient `grad: [rows, cols]`
/// (the reference rule of the [module docs](self), in Burn tensor ops).
pub fn ternary_update<B: Backend>(
    grad: Tensor<B, 2>,
    trits: Tensor<B, 2, Int>,
    memory: Tensor<B, 2, Int>,
    scale_code: Tensor<B, 1, Int>,
    hyper: UpdateHyper,
    rng: &mut SmallRng,
) -> UpdatedState<B> {
    let [rows, cols] = grad.dims();
    let device = grad.device();
    let theta = UPDATE_THRESHOLD as f64;
    let t = unpack_trits_tensor(trits, cols).float();
    let m = unpack_memory_tensor(memory, cols).float();

    // Scales first, from the trits the gradient was computed with.
    let scale = decode_scale_tensor(scale_code.clone());
    let ln2_step = core::f64::consts::LN_2 / SCALE_CODE_STEPS_PER_OCTAVE as f64;
    let grad_code = (grad.clone() * t.clone()).sum_dim(1).reshape([rows]) * scale * ln2_step;
    let code_rms = grad_code
        .clone()
        .powf_scalar(2.0)
        .mean()
        .sqrt()
        .add_scalar(1e-30);
    let code_step = (grad_code / code_rms * hyper.scale_lr).clamp(-1.0, 1.0);
    let code_delta = (code_step + uniform::<B, 1>([rows], rng, &device)).floor();
    let scale_code = (scale_code.float() - code_delta)
        .clamp(SCALE_CODE_RANGE.0 as f64, SCALE_CODE_RANGE.1 as f64)
        .int()
        .cast(crate::packing::PACKED_DTYPE);

    let rms = match hyper.normalization {
        GradNormalization::Tensor => grad.clone().powf_scalar(2.0).mean().sqrt().reshape([1, 1]),
        GradNormalization::Row => grad.clone().powf_scalar(2.0).mean_dim(1).sqrt(),
    }
    .add_scalar(1e-30);
    let step = (grad / rms * (hyper.lr * theta)).clamp(-theta, theta);
    let delta = (step + uniform::<B, 2>([rows, cols], rng, &device)).floor();
    let m = m - delta;
    let up = m.clone().greater_elem(theta).float() * t.clone().lower_elem(1.0).float();
    let down = m.clone().lower_elem(-theta).float() * t.clone().greater_elem(-1.0).float();
    let t = t + up.clone() - down.clone();
    let m = (m - up * theta + down * theta).clamp(-theta, theta);

    UpdatedState {
        trits: pack_trits_tensor(t.int()),
        memory: pack_memory_tensor(m.int()),
        scale_code,
    }
}
