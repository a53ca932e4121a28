//! `model.kind = "video-head"`: the [`VideoHead`] learns to denoise latents of
//! synthetic moving shapes ([`crate::shapes`]).
//!
//! An example is a scene seen at one frame: its clean latent `x₀`
//! `[channels, 1, height, width]`, its descriptor (the conditioning), and a
//! start latent `√ᾱ·x₀ + √(1 − ᾱ)·ε` with `ᾱ = Π_t α_t` over the head's
//! whole noise schedule, so that the head's deterministic chain of denoise
//! steps (each dividing by `√α_t`) maps the start back to the scale of `x₀`.
//! The loss is `MSE(head output, x₀) + ponder_weight · ponder cost`; the
//! head's ACT halting unit learns how many steps to take. Logged per step:
//! the denoising MSE, the ponder cost and the mean ACT steps per example.

use std::sync::Arc;

use arbitor_models::video::{VideoHead, VideoHeadConfig};
use burn::{
    module::Module,
    tensor::{backend::Backend, ElementConversion, Tensor, TensorData},
};
use burn_ternary::{optim::TernaryOptimizer, TernaryAutodiffBackend, TernaryBackend};
use rand::{rngs::SmallRng, Rng};

use crate::{
    config::{ConfigError, RunConfig, TrainSection, VideoSection},
    data::{BatchSource, SeededLoader},
    fit::{Guarded, Head, InnerModel, RunError, Task, TaskModel},
    metrics::TaskOutput,
    shapes::MovingShapes,
};

/// The per-step values a `video-head` run logs besides `Loss`.
pub const HEADS: &[Head] = &[
    Head::new("DenoiseLoss", "MSE of latents"),
    Head::new("PonderCost", "steps"),
    Head::new("ActSteps", "steps"),
];

/// A batch of noisy latents to denoise.
#[derive(Clone, Debug)]
pub struct VideoBatch<B: Backend> {
    /// Scene descriptors `[batch, d_cond]`.
    pub cond: Tensor<B, 2>,
    /// Start latents `√ᾱ·x₀ + √(1 − ᾱ)·ε`, `[batch, channels, 1, height, width]`.
    pub start: Tensor<B, 5>,
    /// Clean latents `x₀`, same shape.
    pub target: Tensor<B, 5>,
}

/// Random scenes of a [`MovingShapes`] generator, noised for a head whose
/// schedule gives `alpha_bar`.
pub struct ShapeScenes {
    /// The generator.
    pub shapes: MovingShapes,
    /// `ᾱ = Π_t α_t` of the head's schedule.
    pub alpha_bar: f64,
}

impl ShapeScenes {
    /// One example: descriptor, start latent and clean latent (host values).
    pub fn example(&self, rng: &mut SmallRng) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let scene = self.shapes.scene(rng);
        let clean = self.shapes.render(&scene);
        let (a, s) = (
            self.alpha_bar.sqrt() as f32,
            (1.0 - self.alpha_bar).sqrt() as f32,
        );
        let start = clean.iter().map(|x| a * x + s * normal(rng)).collect();
        (self.shapes.descriptor(&scene), start, clean)
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut SmallRng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()) as f32
}

impl<B: Backend> BatchSource<B> for ShapeScenes {
    type Batch = VideoBatch<B>;

    fn draw(
        &self,
        rng: &mut SmallRng,
        _index: usize,
        batch: usize,
        device: &B::Device,
    ) -> VideoBatch<B> {
        let g = &self.shapes;
        let (mut cond, mut start, mut target) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..batch {
            let (c, s, t) = self.example(rng);
            cond.extend(c);
            start.extend(s);
            target.extend(t);
        }
        let shape = [batch, g.channels, 1, g.height, g.width];
        VideoBatch {
            cond: Tensor::from_data(TensorData::new(cond, [batch, g.descriptor_width()]), device),
            start: Tensor::from_data(TensorData::new(start, shape), device),
            target: Tensor::from_data(TensorData::new(target, shape), device),
        }
    }
}

/// The shapes generator of a `[video]` section.
pub fn shapes(video: &VideoSection) -> MovingShapes {
    MovingShapes::new(
        video.head.channels,
        video.head.height,
        video.head.width,
        video.keys.shapes,
        video.keys.clip_frames,
    )
}

/// `ᾱ = Π_t α_t` over every step of `head`'s schedule.
pub fn alpha_bar<B: TernaryBackend>(head: &VideoHead<B>) -> f64 {
    (0..head.max_steps()).map(|t| head.alpha(t)).product()
}

/// The [`VideoHead`] config of a `[video]` section conditioned on `d_cond`
/// values, one frame per example.
pub fn head_config(video: &VideoSection, d_cond: usize) -> VideoHeadConfig {
    video.head.clone().with_d_cond(d_cond).with_frames(1)
}

/// The video head trained on moving shapes.
#[derive(Module, Debug)]
pub struct VideoTaskModel<B: Backend> {
    /// The head, conditioned on scene descriptors.
    pub head: VideoHead<B>,
    /// Weight of the ponder cost.
    pub ponder_weight: f64,
}

/// Builds the model of a `[video]` section.
pub fn model<B: Backend>(
    video: &VideoSection,
    device: &B::Device,
) -> Result<VideoTaskModel<B>, ConfigError> {
    let d_cond = shapes(video).descriptor_width();
    Ok(VideoTaskModel {
        head: head_config(video, d_cond)
            .try_init(device)
            .map_err(|e| ConfigError {
                path: "[video]".into(),
                reason: e.to_string(),
            })?,
        ponder_weight: video.keys.ponder_weight,
    })
}

/// The parts of the video loss, each `[1]`.
#[derive(Clone, Debug)]
pub struct VideoLoss<B: Backend> {
    /// `denoise + ponder_weight · ponder`.
    pub total: Tensor<B, 1>,
    /// Mean squared error of the denoised latents.
    pub denoise: Tensor<B, 1>,
    /// ACT ponder cost `N + R` (mean over the batch).
    pub ponder: Tensor<B, 1>,
    /// Mean steps per example before halting (no gradient).
    pub act_steps: Tensor<B, 1>,
    /// Steps the denoise loop ran (in inference it stops once all halted).
    pub loop_steps: usize,
}

/// The video loss of `head` on `start → target` under `cond`.
pub fn video_loss<B: TernaryBackend>(
    head: &VideoHead<B>,
    cond: Tensor<B, 2>,
    start: Tensor<B, 5>,
    target: Tensor<B, 5>,
    ponder_weight: f64,
    training: bool,
) -> VideoLoss<B> {
    let out = head.forward(cond, start, training);
    let denoise = (out.latents - target).powf_scalar(2.0).mean();
    VideoLoss {
        total: denoise.clone() + out.ponder_cost.clone().mul_scalar(ponder_weight),
        denoise,
        ponder: out.ponder_cost,
        act_steps: out.halt_steps.mean(),
        loop_steps: out.steps,
    }
}

impl<B: TernaryBackend> VideoTaskModel<B> {
    /// The loss of a batch.
    pub fn losses(&self, batch: VideoBatch<B>, training: bool) -> VideoLoss<B> {
        video_loss(
            &self.head,
            batch.cond,
            batch.start,
            batch.target,
            self.ponder_weight,
            training,
        )
    }
}

impl<B: TernaryBackend> TaskModel<B> for VideoTaskModel<B> {
    type Batch = VideoBatch<B>;
    type Output = TaskOutput<B>;

    /// In validation (inference mode) the denoise loop stops once every
    /// example halted.
    fn loss_and_output(
        &self,
        batch: VideoBatch<B>,
        training: bool,
    ) -> (Tensor<B, 1>, TaskOutput<B>) {
        let l = self.losses(batch, training);
        TaskOutput::new(
            l.total,
            vec![
                ("DenoiseLoss", l.denoise),
                ("PonderCost", l.ponder),
                ("ActSteps", l.act_steps),
            ],
        )
        .with_loss()
    }
}

/// Mean of a `[1]` tensor over batches, as f64.
fn mean_of<B: Backend>(values: impl Iterator<Item = Tensor<B, 1>>) -> f64 {
    let v: Vec<f64> = values.map(|t| t.into_scalar().elem::<f64>()).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// End-of-run measurements of a trained head on `batches`: denoising MSE,
/// mean ACT steps per example, steps the inference loop ran, and two
/// baselines (returning `start / √ᾱ` unchanged, and returning zeros).
pub fn measure<B: TernaryBackend>(
    head: &VideoHead<B>,
    batches: &[VideoBatch<B>],
    ponder_weight: f64,
) -> Vec<(String, f64)> {
    let alpha_bar = alpha_bar(head);
    let losses: Vec<VideoLoss<B>> = batches
        .iter()
        .map(|b| {
            video_loss(
                head,
                b.cond.clone(),
                b.start.clone(),
                b.target.clone(),
                ponder_weight,
                false,
            )
        })
        .collect();
    let loop_steps =
        losses.iter().map(|l| l.loop_steps as f64).sum::<f64>() / losses.len().max(1) as f64;
    vec![
        (
            "valid_denoise_mse".into(),
            mean_of(losses.iter().map(|l| l.denoise.clone())),
        ),
        (
            "act_steps_mean".into(),
            mean_of(losses.iter().map(|l| l.act_steps.clone())),
        ),
        ("inference_loop_steps_mean".into(), loop_steps),
        ("max_steps".into(), head.max_steps() as f64),
        (
            "baseline_identity_mse".into(),
            mean_of(batches.iter().map(|b| {
                (b.start.clone().div_scalar(alpha_bar.sqrt()) - b.target.clone())
                    .powf_scalar(2.0)
                    .mean()
            })),
        ),
        (
            "baseline_zero_mse".into(),
            mean_of(
                batches
                    .iter()
                    .map(|b| b.target.clone().powf_scalar(2.0).mean()),
            ),
        ),
    ]
}

/// `video-head`: the video head denoising moving shapes.
pub struct VideoTask {
    /// `[video]`.
    pub video: VideoSection,
}

impl VideoTask {
    /// The task of a `video-head` config (its data is synthetic).
    pub fn load(config: &RunConfig) -> Result<Self, RunError> {
        Ok(Self {
            video: config.video()?.clone(),
        })
    }
}

impl<B: TernaryAutodiffBackend> Task<B> for VideoTask {
    type Model = VideoTaskModel<B>;
    type Optim = TernaryOptimizer<Guarded<B, VideoTaskModel<B>>, B>;
    type Train = ShapeScenes;
    type Valid = ShapeScenes;

    fn heads(&self) -> &'static [Head] {
        HEADS
    }

    fn loss_unit(&self) -> &'static str {
        "MSE + ponder"
    }

    fn model(&self, device: &B::Device) -> Result<VideoTaskModel<B>, ConfigError> {
        model(&self.video, device)
    }

    fn optimizer(&self, train: &TrainSection, seed: u64) -> Self::Optim {
        train.ternary_optimizer(seed).init()
    }

    fn sources(&self, model: &VideoTaskModel<B>) -> (Arc<ShapeScenes>, Arc<ShapeScenes>) {
        let scenes = Arc::new(ShapeScenes {
            shapes: shapes(&self.video),
            alpha_bar: alpha_bar(&model.head),
        });
        (scenes.clone(), scenes)
    }

    /// The trained head on the validation scenes.
    fn measure(
        &self,
        trained: &InnerModel<B, Self>,
        valid: &SeededLoader<B::InnerBackend, ShapeScenes>,
        _device: &B::Device,
    ) -> Vec<(String, f64)> {
        measure(
            &trained.head,
            &valid.epoch_batches(0),
            self.video.keys.ponder_weight,
        )
    }
}
