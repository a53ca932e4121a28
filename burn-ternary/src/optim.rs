//! The ternary optimizer: trains trits and scale codes directly, with one
//! signed 8-bit update memory per weight and no float state per weight.
//!
//! For each ternary weight with gradient `G = dL/dW` (from its gradient port):
//! 1. `Ĝ = G / rms(G)` (per tensor by default, or per row): scale-free steps;
//! 2. `M ← M − ⌊lr·θ·Ĝ + u⌋`, `u ~ U[0, 1)` drawn by a counter-based hash of
//!    `(seed, step, weight, entry)` (unbiased stochastic rounding, the same
//!    numbers on every backend; the step is clamped to ±θ);
//! 3. where `M > θ` and `T < 1`: `T ← T + 1`, `M ← M − θ` (and the mirror
//!    image below −θ), so the latent `T·θ + M` moves continuously; memory is
//!    then clamped to `[−θ, θ]` (saturated trits do not bank updates);
//! 4. scale codes step by `⌊−lr·scale_lr_ratio·ĝ_code + u⌋`, with
//!    `g_code = dL/dcode = (Σ_k G·T)·s·ln2/16` normalized per tensor.
//!
//! Each weight's update is one call of the backend's
//! [`TernaryBackend::ternary_update`] op (one fused pass over the gradient and
//! the packed state on CUDA and WGPU; see [`crate::ops::update`]).
//!
//! Float parameters, where a model has any, get AdamW (at the learning rate
//! times `float_lr_ratio`). The optimizer record
//! holds the step count, the seed and the AdamW state, so a resumed run draws
//! the same random numbers as an uninterrupted one.

use std::collections::HashMap;

pub use crate::functional::ternary_update;
pub use crate::types::{GradNormalization, NoiseKey, UpdateHyper, UpdatedState, UPDATE_THRESHOLD};
use crate::{backend::TernaryBackend, error::or_panic, visit::collect};
use burn::{
    config::Config,
    module::{AutodiffModule, ModuleMapper, Param, ParamId},
    optim::{
        adaptor::OptimizerAdaptor, AdamW, AdamWConfig, GradientsParams, LearningRate,
        MultiGradientsParams, Optimizer,
    },
    tensor::{backend::AutodiffBackend, Int, Tensor},
};

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
    /// Learning-rate multiplier for the float parameters' AdamW (AdamW
    /// wants a far smaller rate than the ternary update's).
    #[config(default = 1.0)]
    pub float_lr_ratio: f64,
}

impl TernaryOptimizerConfig {
    /// Builds the optimizer for modules of type `M`.
    ///
    /// ```
    /// use burn::backend::{Autodiff, NdArray};
    /// use burn_ternary::{TernaryLinear, TernaryOptimizerConfig};
    ///
    /// type B = Autodiff<NdArray>;
    /// let optim = TernaryOptimizerConfig::new().with_seed(7).init::<B, TernaryLinear<B>>();
    /// ```
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> TernaryOptimizer<M, B> {
        TernaryOptimizer {
            seed: self.seed,
            scale_lr_ratio: self.scale_lr_ratio,
            float_lr_ratio: self.float_lr_ratio,
            normalization: self.normalization,
            step: 0,
            float_optimizer: self.float_optimizer.init(),
        }
    }
}

/// Trains ternary weights in place (see the [module docs](self)); a
/// [`burn::optim::Optimizer`], so Burn's `Learner`, gradient accumulation,
/// learning-rate schedulers and checkpointing work unchanged.
///
/// ```
/// use burn::backend::{Autodiff, Flex};
/// use burn::optim::{GradientsParams, Optimizer};
/// use burn::tensor::Tensor;
/// use burn_ternary::{TernaryLinear, TernaryLinearConfig, TernaryOptimizerConfig};
///
/// type B = Autodiff<Flex>;
/// let device = Default::default();
/// let mut layer = TernaryLinearConfig::new(16, 4).init::<B>(&device);
/// let mut optim = TernaryOptimizerConfig::new().init::<B, TernaryLinear<B>>();
/// let loss = layer.forward(Tensor::<B, 2>::ones([8, 16], &device)).powf_scalar(2.0).mean();
/// let grads = GradientsParams::from_grads(loss.backward(), &layer);
/// layer = optim.step(0.1, layer, grads);
/// assert_eq!(optim.steps(), 1);
/// ```
#[derive(Clone)]
pub struct TernaryOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    seed: u64,
    scale_lr_ratio: f64,
    float_lr_ratio: f64,
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

impl<M: AutodiffModule<B>, B: AutodiffBackend<InnerBackend: TernaryBackend>>
    TernaryOptimizer<M, B>
{
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
            assert!(
                weight.has_update_memory(),
                "ternary weight `{}` has no update memory (it was loaded for inference, \
                 `without_update_memory`); load it with its memory to train it",
                weight.path
            );
            let device = weight.trits.1.device();
            // The collected state's shapes are the weight's own, so this cannot fail.
            let update = or_panic(ternary_update::<B::InnerBackend>(
                grad.to_device(&device),
                weight.trits.1.inner(),
                weight.memory.1.inner(),
                weight.scale_code.1.inner(),
                UpdateHyper {
                    lr,
                    scale_lr: lr * self.scale_lr_ratio,
                    normalization: self.normalization,
                },
                NoiseKey::new(self.seed, self.step, index as u64),
            ));
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

impl<M: AutodiffModule<B>, B: AutodiffBackend<InnerBackend: TernaryBackend>> Optimizer<M, B>
    for TernaryOptimizer<M, B>
{
    type Record = TernaryOptimizerRecord<M, B>;

    fn step(&mut self, lr: LearningRate, module: M, mut grads: GradientsParams) -> M {
        let module = self.update_ternary(lr, module, |id| grads.remove::<B::InnerBackend, 2>(id));
        self.float_optimizer
            .step(lr * self.float_lr_ratio, module, grads)
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, mut grads: MultiGradientsParams) -> M {
        let module = self.update_ternary(lr, module, |id| {
            grads.remove::<B::InnerBackend, 2>(id).map(|(grad, _)| grad)
        });
        self.float_optimizer
            .step_multi(lr * self.float_lr_ratio, module, grads)
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
