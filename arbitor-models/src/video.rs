//! The video head: ACT-style diffusion with a shared-weight ternary denoiser.

use burn::{
    config::Config,
    module::Module,
    tensor::{
        activation::{gelu, sigmoid},
        backend::Backend,
        ElementConversion, Int, Tensor, TensorData,
    },
};
use burn_ternary::{
    functional::{conv1d_fused, denoise_step},
    nn::{
        TernaryConv1d, TernaryConv1dConfig, TernaryEmbedding, TernaryEmbeddingConfig,
        TernaryLinear, TernaryLinearConfig,
    },
    ConvEpilogue, TernaryBackend, TernaryResult,
};

use crate::{
    util::{config_error, or_panic, positive, rms_norm, shape_error},
    vocab::TRIGRAM_DIM,
};

/// How many denoise steps a [`VideoHead`] takes.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum StepMode {
    /// ACT halting: each sample stops once its cumulative halting probability
    /// reaches `halt_threshold` (at most `max_steps`).
    Adaptive,
    /// Exactly `fixed_steps` steps for every sample.
    Fixed,
}

/// Configuration of a [`VideoHead`]. The defaults give latents
/// `(batch, 16, 1, 32, 32)`: 16 latent channels, 1 frame, 32×32.
#[derive(Config, Debug)]
pub struct VideoHeadConfig {
    /// Width of the conditioning hidden state.
    #[config(default = 128)]
    pub d_cond: usize,
    /// Latent channels.
    #[config(default = 16)]
    pub channels: usize,
    /// Latent frames.
    #[config(default = 1)]
    pub frames: usize,
    /// Latent height.
    #[config(default = 32)]
    pub height: usize,
    /// Latent width.
    #[config(default = 32)]
    pub width: usize,
    /// Hidden channels of the denoiser.
    #[config(default = 64)]
    pub hidden: usize,
    /// Kernel width of the denoiser's convolutions over the flattened latent
    /// (odd; padding keeps the length).
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Residual blocks `x + conv(gelu(x))` (`hidden → hidden` convolutions)
    /// between the denoiser's input and output convolutions; each adds
    /// `hidden² · kernel_size` weights.
    #[config(default = 0)]
    pub blocks: usize,
    /// Rows of `noise_embed`: the most steps a run can take.
    #[config(default = 4)]
    pub max_steps: usize,
    /// Step count in [`StepMode::Fixed`] (at most `max_steps`).
    #[config(default = 2)]
    pub fixed_steps: usize,
    /// Halting threshold `1 − ε` of ACT.
    #[config(default = 0.99)]
    pub halt_threshold: f64,
    /// Noise schedule: `β` of the first and last diffusion step (`α = 1 − β`).
    #[config(default = 0.01)]
    pub beta_start: f64,
    /// See `beta_start`.
    #[config(default = 0.2)]
    pub beta_end: f64,
    /// Adaptive or fixed steps.
    #[config(default = "StepMode::Adaptive")]
    pub mode: StepMode,
}

impl VideoHeadConfig {
    /// Builds the head, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<VideoHead<B>> {
        for (key, value) in [
            ("d_cond", self.d_cond),
            ("channels", self.channels),
            ("frames", self.frames),
            ("height", self.height),
            ("width", self.width),
            ("hidden", self.hidden),
            ("kernel_size", self.kernel_size),
            ("max_steps", self.max_steps),
            ("fixed_steps", self.fixed_steps),
        ] {
            positive(key, value)?;
        }
        if self.kernel_size.is_multiple_of(2) {
            return Err(config_error("kernel_size", self.kernel_size, "must be odd"));
        }
        if self.fixed_steps > self.max_steps {
            return Err(config_error(
                "fixed_steps",
                self.fixed_steps,
                &format!("must not exceed max_steps = {}", self.max_steps),
            ));
        }
        if !(self.halt_threshold > 0.0 && self.halt_threshold <= 1.0) {
            return Err(config_error(
                "halt_threshold",
                self.halt_threshold,
                "must be in (0, 1]",
            ));
        }
        for (key, beta) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
            if !(beta > 0.0 && beta < 1.0) {
                return Err(config_error(key, beta, "must be in (0, 1)"));
            }
        }
        let conv = |c_in, c_out| {
            TernaryConv1dConfig::new(c_in, c_out, self.kernel_size)
                .with_padding(self.kernel_size / 2)
                .try_init(device)
        };
        Ok(VideoHead {
            conv_in: conv(self.channels, self.hidden)?,
            blocks: (0..self.blocks)
                .map(|_| conv(self.hidden, self.hidden))
                .collect::<TernaryResult<Vec<_>>>()?,
            cond_proj: TernaryLinearConfig::new(self.d_cond, self.hidden).try_init(device)?,
            noise_embed: TernaryEmbeddingConfig::new(self.max_steps, TRIGRAM_DIM)
                .try_init(device)?,
            noise_proj: TernaryLinearConfig::new(TRIGRAM_DIM, self.hidden).try_init(device)?,
            conv_out: conv(self.hidden, self.channels)?,
            halt: TernaryLinearConfig::new(self.hidden, 1).try_init(device)?,
            latent_shape: [self.channels, self.frames, self.height, self.width],
            fixed_steps: self.fixed_steps,
            halt_threshold: self.halt_threshold,
            beta_start: self.beta_start,
            beta_end: self.beta_end,
            adaptive: self.mode == StepMode::Adaptive,
        })
    }

    /// Builds the head.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> VideoHead<B> {
        or_panic(self.try_init(device))
    }
}

/// What a [`VideoHead`] returns.
#[derive(Debug, Clone)]
pub struct VideoOutput<B: Backend> {
    /// Latents `[batch, channels, frames, height, width]`: in adaptive mode
    /// the ACT mixture `Σ_n w_n · latent_n`, in fixed mode the last latent.
    pub latents: Tensor<B, 5>,
    /// Mean ponder cost `N + R` over the batch (ACT; the step count in fixed
    /// mode), `[1]`. Differentiable through the halting probabilities.
    pub ponder_cost: Tensor<B, 1>,
    /// Denoise steps run (in inference, adaptive mode stops once every sample halted).
    pub steps: usize,
    /// Steps each sample used before it halted (ACT's `N`; `fixed_steps` in
    /// fixed mode), `[batch]`, as floats without gradient.
    pub halt_steps: Tensor<B, 1>,
}

/// ACT-style latent diffusion conditioned on a hidden state.
///
/// One shared-weight denoiser predicts the noise `ε̂` of the flattened latent
/// `[batch, channels, frames·height·width]`:
/// `conv_out(gelu(x))`, where
/// `x = conv_in(latent) + cond_proj(cond) + noise_proj(noise_embed[t])`
/// goes through the residual `blocks` first (`x ← x + block(gelu(x))`, none
/// by default) and `noise_embed` is a
/// [`TernaryEmbedding`]`(max_steps, TRIGRAM_DIM)` indexed by the diffusion
/// step `t` (counting down from `max_steps − 1`).
/// Each step updates the latent with the fused
/// [`denoise_step`]
/// `latent' = (latent − (1 − α_t)·ε̂) / √α_t`.
///
/// In adaptive mode a halting unit gives each sample a probability `p_n`
/// per step (from the pooled denoiser activations); a sample halts once
/// `Σ p ≥ halt_threshold` (or at `max_steps`), its output is the ACT mixture
/// of its step latents and its ponder cost `N + R` (Graves, 2016). In
/// training every step runs (masked per sample) so the result is
/// differentiable; in inference the loop exits early once all samples halted.
///
/// In fixed mode, [`generate`](Self::generate) and
/// [`forward_fused`](Self::forward_fused) run the inference loop with the
/// fused convolutions: one launch per convolution per step on the GPU
/// backends, the same latents as `forward` within float rounding.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::video::VideoHeadConfig;
///
/// let device = Default::default();
/// let head = VideoHeadConfig::new().init::<Flex>(&device);
/// let cond = Tensor::<Flex, 2>::ones([1, 128], &device);
/// let out = head.generate(cond, 7);
/// assert_eq!(out.latents.dims(), [1, 16, 1, 32, 32]);
/// ```
#[derive(Module, Debug)]
pub struct VideoHead<B: Backend> {
    /// Denoiser input convolution.
    pub conv_in: TernaryConv1d<B>,
    /// Residual denoiser blocks, `hidden → hidden`.
    pub blocks: Vec<TernaryConv1d<B>>,
    /// Conditioning projection.
    pub cond_proj: TernaryLinear<B>,
    /// Diffusion-step embedding `[max_steps, TRIGRAM_DIM]`.
    pub noise_embed: TernaryEmbedding<B>,
    /// Projection of the step embedding to the denoiser width.
    pub noise_proj: TernaryLinear<B>,
    /// Denoiser output convolution (predicts `ε̂`).
    pub conv_out: TernaryConv1d<B>,
    /// Halting unit.
    pub halt: TernaryLinear<B>,
    /// `[channels, frames, height, width]`.
    pub latent_shape: [usize; 4],
    /// Steps in fixed mode.
    pub fixed_steps: usize,
    /// ACT halting threshold.
    pub halt_threshold: f64,
    /// First `β` of the schedule.
    pub beta_start: f64,
    /// Last `β` of the schedule.
    pub beta_end: f64,
    /// Adaptive (ACT) or fixed steps.
    pub adaptive: bool,
}

impl<B: TernaryBackend> VideoHead<B> {
    /// Number of rows of `noise_embed`: the step limit.
    pub fn max_steps(&self) -> usize {
        self.noise_embed.weight.dims()[0]
    }

    /// `α_t = 1 − β_t` of diffusion step `t`, with `β` linear in `t`.
    pub fn alpha(&self, t: usize) -> f64 {
        let last = (self.max_steps() - 1).max(1) as f64;
        1.0 - (self.beta_start + (self.beta_end - self.beta_start) * t as f64 / last)
    }

    /// The denoiser's per-step context for the steps `t = n_steps - 1, ..., 0`
    /// (in loop order), `[n_steps, batch, hidden]`: the step-invariant
    /// `cond_proj(cond)` once, plus every step's noise embedding through
    /// `noise_proj` in one lookup and one ternary matmul, instead of two
    /// projections and a lookup (and a host upload of the step ids) per step.
    fn step_contexts(&self, cond: Tensor<B, 2>, n_steps: usize) -> TernaryResult<Tensor<B, 3>> {
        let batch = cond.dims()[0];
        let device = cond.device();
        let ids: Vec<i64> = (0..n_steps)
            .flat_map(|n| std::iter::repeat_n((n_steps - 1 - n) as i64, batch))
            .collect();
        let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [n_steps * batch]), &device);
        let noise = self
            .noise_proj
            .try_forward(self.noise_embed.try_lookup(ids)?)?;
        let hidden = noise.dims()[1];
        let cond = self.cond_proj.try_forward(cond)?;
        Ok(noise.reshape([n_steps, batch, hidden]) + cond.unsqueeze_dim::<3>(0))
    }

    /// One denoiser call on `latent: [batch, channels, positions]` with the
    /// step's `context: [batch, hidden]`: `(ε̂, halting probability)`; the
    /// halting unit only runs when `halting` (adaptive mode).
    fn denoise(
        &self,
        latent: Tensor<B, 3>,
        context: Tensor<B, 2>,
        halting: bool,
    ) -> TernaryResult<(Tensor<B, 3>, Option<Tensor<B, 1>>)> {
        let batch = latent.dims()[0];
        let mut x = self.conv_in.try_forward(latent)? + context.unsqueeze_dim::<3>(2);
        for block in &self.blocks {
            x = x.clone() + block.try_forward(gelu(x))?;
        }
        let h = gelu(x);
        let p = if halting {
            let pooled = rms_norm(h.clone().mean_dim(2).squeeze_dim::<2>(2));
            Some(sigmoid(self.halt.try_forward(pooled)?).reshape([batch]))
        } else {
            None
        };
        Ok((self.conv_out.try_forward(h)?, p))
    }

    /// The schedule's `α` for the steps `t = n_steps - 1, ..., 0` (in loop
    /// order), `[n_steps, batch]`: all steps in one upload; step `n` uses row `n`.
    fn step_alphas(&self, n_steps: usize, batch: usize, device: &B::Device) -> Tensor<B, 2> {
        let values: Vec<f32> = (0..n_steps)
            .flat_map(|n| std::iter::repeat_n(self.alpha(n_steps - 1 - n) as f32, batch))
            .collect();
        Tensor::<B, 2>::from_data(TensorData::new(values, [n_steps, batch]), device)
    }

    /// Checks `cond: [batch, d_cond]` and `noise: [batch, channels, frames,
    /// height, width]`; returns the batch size.
    fn check_inputs(&self, cond: &Tensor<B, 2>, noise: &Tensor<B, 5>) -> TernaryResult<usize> {
        let [c, f, h, w] = self.latent_shape;
        let dims = noise.dims();
        if dims[1..] != self.latent_shape {
            return Err(shape_error(
                "noise",
                format!("[batch, {c}, {f}, {h}, {w}]"),
                &dims,
            ));
        }
        let batch = dims[0];
        let d_cond = self.cond_proj.weight.dims()[1];
        if cond.dims() != [batch, d_cond] {
            return Err(shape_error(
                "cond",
                format!("[{batch}, {d_cond}] (batch of noise, d_cond)"),
                &cond.dims(),
            ));
        }
        Ok(batch)
    }

    /// Runs the diffusion from `noise: [batch, channels, frames, height, width]`
    /// conditioned on `cond: [batch, d_cond]`, or reports a bad shape.
    /// `training` runs every adaptive step (masked), so the output is
    /// differentiable; otherwise the loop exits once every sample halted.
    pub fn try_forward(
        &self,
        cond: Tensor<B, 2>,
        noise: Tensor<B, 5>,
        training: bool,
    ) -> TernaryResult<VideoOutput<B>> {
        let batch = self.check_inputs(&cond, &noise)?;
        let [c, f, h, w] = self.latent_shape;
        let device = noise.device();
        let mut latent = noise.reshape([batch, c, f * h * w]);
        let alphas = |n_steps: usize| self.step_alphas(n_steps, batch, &device);
        let row = |t: Tensor<B, 2>, n: usize| t.narrow(0, n, 1).reshape([batch]);
        let context_row = |t: &Tensor<B, 3>, n: usize| {
            let hidden = t.dims()[2];
            t.clone().narrow(0, n, 1).reshape([batch, hidden])
        };
        let max_steps = self.max_steps();
        if !self.adaptive {
            // Fixed steps: no data-dependent break, no halting unit, no host
            // read-back; per step the denoiser plus one fused update launch.
            let contexts = self.step_contexts(cond, self.fixed_steps)?;
            let alpha = alphas(self.fixed_steps);
            for n in 0..self.fixed_steps {
                let (eps, _) = self.denoise(latent.clone(), context_row(&contexts, n), false)?;
                latent = denoise_step(latent, eps, row(alpha.clone(), n))?;
            }
            return Ok(VideoOutput {
                latents: latent.reshape([batch, c, f, h, w]),
                ponder_cost: Tensor::full([1], self.fixed_steps as f64, &device),
                steps: self.fixed_steps,
                halt_steps: Tensor::full([batch], self.fixed_steps as f64, &device),
            });
        }
        let mut output = Tensor::<B, 3>::zeros([batch, c, f * h * w], &device);
        let mut running = Tensor::<B, 1>::ones([batch], &device);
        let mut cumulative = Tensor::<B, 1>::zeros([batch], &device);
        let mut ponder = Tensor::<B, 1>::zeros([batch], &device);
        let mut used = Tensor::<B, 1>::zeros([batch], &device);
        let mut steps = 0;
        let contexts = self.step_contexts(cond, max_steps)?;
        let alpha = alphas(max_steps);
        for n in 0..max_steps {
            let (eps, p) = self.denoise(latent.clone(), context_row(&contexts, n), true)?;
            let p = p.expect("the halting unit runs in adaptive mode");
            latent = denoise_step(latent, eps, row(alpha.clone(), n))?;
            steps += 1;
            let p = if n + 1 == max_steps { p.ones_like() } else { p };
            let halts = (cumulative.clone().detach() + p.clone().detach())
                .greater_equal_elem(self.halt_threshold)
                .float()
                * running.clone();
            let remainder = cumulative.clone().neg().add_scalar(1.0);
            let continuing = running.clone() - halts.clone();
            let weight = halts.clone() * remainder.clone() + continuing.clone() * p.clone();
            output = output + latent.clone() * weight.reshape([batch, 1, 1]);
            used = used + running.clone().detach();
            ponder = ponder + running.clone() + halts * remainder;
            cumulative = cumulative + continuing.clone() * p;
            running = continuing;
            if !training && running.clone().sum().into_scalar().elem::<f64>() == 0.0 {
                break;
            }
        }
        Ok(VideoOutput {
            latents: output.reshape([batch, c, f, h, w]),
            ponder_cost: ponder.mean(),
            steps,
            halt_steps: used,
        })
    }

    /// Runs the diffusion (see [`try_forward`](Self::try_forward)).
    ///
    /// # Panics
    /// On a shape mismatch (the message names the tensor).
    pub fn forward(
        &self,
        cond: Tensor<B, 2>,
        noise: Tensor<B, 5>,
        training: bool,
    ) -> VideoOutput<B> {
        or_panic(self.try_forward(cond, noise, training))
    }

    /// The fixed-step diffusion of inference with the fused convolutions
    /// ([`conv1d_fused`]): `fixed_steps` steps from `noise` conditioned on
    /// `cond` (whatever the mode), the same result as
    /// [`try_forward`](Self::try_forward) in fixed mode, or a bad shape named.
    ///
    /// The denoiser's weights are decoded once, before the loop, and every
    /// step is one launch per convolution and nothing else on the CubeCL
    /// backends: `conv_in` adds the step's context in its epilogue and also
    /// writes `gelu(x)`; each residual block reads that, adds its residual
    /// and writes the next `x` and `gelu(x)`; `conv_out` applies the denoise
    /// update to the latent in its epilogue. The step-invariant work (the
    /// contexts, the schedule) runs before the loop, as in `try_forward`.
    ///
    /// Inference only: the latents carry no gradient (on an autodiff backend
    /// the convolutions run on the inner backend); training uses
    /// [`forward`](Self::forward) with `training = true`.
    pub fn try_forward_fused(
        &self,
        cond: Tensor<B, 2>,
        noise: Tensor<B, 5>,
    ) -> TernaryResult<VideoOutput<B>> {
        let batch = self.check_inputs(&cond, &noise)?;
        let [c, f, h, w] = self.latent_shape;
        let device = noise.device();
        let steps = self.fixed_steps;
        let mut latent = noise.reshape([batch, c, f * h * w]);
        // Every step's context stays one tensor, indexed by the kernel; each
        // step's α is an upload of its own (a slice of one tensor would be
        // copied, one launch, where its offset is not aligned).
        let contexts = self.step_contexts(cond, steps)?.into_primitive().tensor();
        let alphas: Vec<Tensor<B, 1>> = (0..steps)
            .map(|n| {
                let alpha = vec![self.alpha(steps - 1 - n) as f32; batch];
                Tensor::from_data(TensorData::new(alpha, [batch]), &device)
            })
            .collect();
        let resident = |conv: &TernaryConv1d<B>| (conv.weight.primitive(), conv.geometry());
        let conv_in = resident(&self.conv_in);
        let blocks: Vec<_> = self.blocks.iter().map(resident).collect();
        let conv_out = resident(&self.conv_out);
        let prim3 = |t: Tensor<B, 3>| t.into_primitive().tensor();
        let gelu_of = |activated: Option<Tensor<B, 3>>| {
            activated.expect("conv1d_fused returns gelu(y) when asked for it")
        };
        for (n, alpha) in alphas.into_iter().enumerate() {
            let context = ConvEpilogue::AddContext {
                context: contexts.clone(),
                step: n,
            };
            let (mut x, activated) =
                conv1d_fused(latent.clone(), &conv_in.0, conv_in.1, context, true)?;
            let mut activated = gelu_of(activated);
            for (weight, geometry) in &blocks {
                let residual = ConvEpilogue::AddResidual(prim3(x));
                let (next, next_activated) =
                    conv1d_fused(activated, weight, *geometry, residual, true)?;
                (x, activated) = (next, gelu_of(next_activated));
            }
            let update = ConvEpilogue::DenoiseStep {
                latent: prim3(latent),
                alpha: alpha.into_primitive().tensor(),
            };
            latent = conv1d_fused(activated, &conv_out.0, conv_out.1, update, false)?.0;
        }
        Ok(VideoOutput {
            latents: latent.reshape([batch, c, f, h, w]),
            ponder_cost: Tensor::full([1], steps as f64, &device),
            steps,
            halt_steps: Tensor::full([batch], steps as f64, &device),
        })
    }

    /// [`try_forward_fused`](Self::try_forward_fused).
    ///
    /// # Panics
    /// On a shape mismatch (the message names the tensor).
    pub fn forward_fused(&self, cond: Tensor<B, 2>, noise: Tensor<B, 5>) -> VideoOutput<B> {
        or_panic(self.try_forward_fused(cond, noise))
    }

    /// Inference from seeded Gaussian noise: draws the starting latents with
    /// a host RNG seeded by `seed`, then runs, in fixed mode, the fused loop
    /// ([`forward_fused`](Self::forward_fused): one launch per convolution
    /// per step on the GPU backends), in adaptive mode the ACT loop of
    /// [`forward`](Self::forward) with `training = false`. The result is not
    /// differentiable in fixed mode; training calls `forward`.
    pub fn generate(&self, cond: Tensor<B, 2>, seed: u64) -> VideoOutput<B> {
        let [c, f, h, w] = self.latent_shape;
        let batch = cond.dims()[0];
        let noise = crate::util::seeded_normal::<B, 5>([batch, c, f, h, w], seed, &cond.device());
        if self.adaptive {
            self.forward(cond, noise, false)
        } else {
            self.forward_fused(cond, noise)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn small() -> VideoHeadConfig {
        VideoHeadConfig::new()
            .with_d_cond(8)
            .with_channels(4)
            .with_height(4)
            .with_width(4)
            .with_hidden(16)
    }

    #[test]
    fn default_shapes_and_weight_count() {
        let c = VideoHeadConfig::new();
        let head = c.init::<AD>(&Default::default());
        let expected = c.hidden * c.channels * c.kernel_size // conv_in
            + c.hidden * c.d_cond // cond_proj
            + c.max_steps * TRIGRAM_DIM // noise_embed
            + c.hidden * TRIGRAM_DIM // noise_proj
            + c.channels * c.hidden * c.kernel_size // conv_out
            + c.hidden; // halt
        assert_audit(&head, expected);
        let out = head.generate(randn([1, 128], 1), 0);
        assert_eq!(out.latents.dims(), [1, 16, 1, 32, 32]);
        assert!((1..=4).contains(&out.steps));
        let fixed = c.with_mode(StepMode::Fixed).init::<AD>(&Default::default());
        let out = fixed.generate(randn([1, 128], 1), 0);
        assert_eq!((out.latents.dims(), out.steps), ([1, 16, 1, 32, 32], 2));
    }

    /// A conditioning, a noisy start and a target of the `small()` head.
    fn denoise_example() -> (Tensor<AD, 2>, Tensor<AD, 5>, Tensor<AD, 5>) {
        (
            randn([2, 8], 1),
            randn([2, 4, 1, 4, 4], 2),
            randn([2, 4, 1, 4, 4], 3),
        )
    }

    /// One training step of `head` on the denoising MSE plus its ponder cost.
    fn denoise_train_step(
        head: VideoHead<AD>,
        cond: &Tensor<AD, 2>,
        noise: &Tensor<AD, 5>,
        target: &Tensor<AD, 5>,
    ) {
        train_step(
            head,
            |m| {
                let out = m.forward(cond.clone(), noise.clone(), true);
                (out.latents - target.clone()).powf_scalar(2.0).mean()
                    + out.ponder_cost.mul_scalar(0.01)
            },
            &[],
        );
    }

    #[test]
    fn residual_blocks_shapes_weight_count_and_train_step() {
        let plain = small().init::<AD>(&Default::default());
        assert!(plain.blocks.is_empty());
        let base = burn_ternary::audit::audit::<AD, _>(&plain).logical_ternary_weights;
        let c = small().with_blocks(2);
        let head = c.init::<AD>(&Default::default());
        assert_audit(&head, base + 2 * c.hidden * c.hidden * c.kernel_size);
        let (cond, noise, target) = denoise_example();
        let out = head.forward(cond.clone(), noise.clone(), false);
        assert_eq!(out.latents.dims(), [2, 4, 1, 4, 4]);
        denoise_train_step(head, &cond, &noise, &target);
    }

    #[test]
    fn adaptive_train_step_reaches_every_weight() {
        let head = small().init::<AD>(&Default::default());
        let (cond, noise, target) = denoise_example();
        denoise_train_step(head, &cond, &noise, &target);
    }

    #[test]
    fn fixed_train_step_skips_only_the_halting_unit() {
        let head = small()
            .with_mode(StepMode::Fixed)
            .init::<AD>(&Default::default());
        let (cond, noise) = (randn([2, 8], 1), randn([2, 4, 1, 4, 4], 2));
        train_step(
            head,
            |m| {
                m.forward(cond.clone(), noise.clone(), true)
                    .latents
                    .powf_scalar(2.0)
                    .mean()
            },
            &["halt"],
        );
    }

    #[test]
    fn early_exit_in_inference_matches_the_training_result() {
        // A threshold this low halts every sample at its first step.
        let head = small()
            .with_halt_threshold(1e-6)
            .init::<AD>(&Default::default());
        let (cond, noise) = (randn([3, 8], 4), randn([3, 4, 1, 4, 4], 5));
        let inference = head.forward(cond.clone(), noise.clone(), false);
        let training = head.forward(cond, noise.clone(), true);
        assert_eq!((inference.steps, training.steps), (1, 4));
        for out in [&inference, &training] {
            let used: Vec<f32> = out.halt_steps.clone().into_data().to_vec().unwrap();
            assert_eq!(used, vec![1.0; 3], "every sample halts after one step");
        }
        let a: Vec<f32> = inference.latents.into_data().to_vec().unwrap();
        let b: Vec<f32> = training.latents.into_data().to_vec().unwrap();
        assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-5));
        let ponder: f32 = inference.ponder_cost.into_scalar();
        // N = 1 and R = 1 − 0 for every sample.
        assert!((ponder - 2.0).abs() < 1e-6, "{ponder}");
        // One step is exactly one fused denoise update of the noise.
        let full = head.forward(randn([3, 8], 4), noise.clone(), false);
        // Step t = 3 is the first of the 4 steps: context row 0.
        let contexts = head.step_contexts(randn([3, 8], 4), 4).unwrap();
        let hidden = contexts.dims()[2];
        let context = contexts.narrow(0, 0, 1).reshape([3, hidden]);
        let (eps, _) = head
            .denoise(noise.clone().reshape([3, 4, 16]), context, true)
            .unwrap();
        let alpha = head.alpha(3);
        let want: Vec<f32> = ((noise.reshape([3, 4, 16]) - eps.mul_scalar(1.0 - alpha))
            / alpha.sqrt())
        .into_data()
        .to_vec()
        .unwrap();
        let got: Vec<f32> = full.latents.into_data().to_vec().unwrap();
        assert!(want.iter().zip(&got).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    /// Relative L2 distance `‖a − b‖ / ‖b‖`.
    fn relative_distance<BK: Backend>(a: Tensor<BK, 5>, b: Tensor<BK, 5>) -> f64 {
        let a: Vec<f32> = a.into_data().to_vec().unwrap();
        let b: Vec<f32> = b.into_data().to_vec().unwrap();
        let diff: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum();
        let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (diff / norm).sqrt()
    }

    #[test]
    fn fused_fixed_loop_matches_the_unfused_loop() {
        for blocks in [0, 2] {
            let head = small()
                .with_blocks(blocks)
                .with_mode(StepMode::Fixed)
                .with_fixed_steps(3)
                .init::<AD>(&Default::default());
            let (cond, noise) = (randn([2, 8], 6), randn([2, 4, 1, 4, 4], 7));
            let unfused = head.forward(cond.clone(), noise.clone(), false);
            let fused = head.forward_fused(cond.clone(), noise);
            assert_eq!((fused.steps, unfused.steps), (3, 3));
            let distance = relative_distance(fused.latents, unfused.latents);
            assert!(
                distance < 1e-5,
                "blocks {blocks}: relative distance {distance:e}"
            );
            // `generate` takes the fused loop in fixed mode.
            let generated = head.generate(cond, 3);
            assert_eq!(generated.latents.dims(), [2, 4, 1, 4, 4]);
        }
    }

    #[test]
    fn fused_loop_names_bad_shapes() {
        let head = small().init::<AD>(&Default::default());
        let err = head
            .try_forward_fused(randn([2, 8], 0), randn([2, 4, 1, 4, 5], 0))
            .unwrap_err();
        assert!(err.to_string().contains("noise"), "{err}");
    }

    #[test]
    fn bad_shapes_and_config_are_named() {
        let head = small().init::<AD>(&Default::default());
        let err = head
            .try_forward(randn([1, 8], 0), randn([1, 4, 1, 4, 5], 0), false)
            .unwrap_err();
        assert!(err.to_string().contains("noise"), "{err}");
        let err = head
            .try_forward(randn([2, 8], 0), randn([1, 4, 1, 4, 4], 0), false)
            .unwrap_err();
        assert!(err.to_string().contains("cond"), "{err}");
        let err = small()
            .with_fixed_steps(9)
            .try_init::<AD>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("fixed_steps"), "{err}");
    }
}
