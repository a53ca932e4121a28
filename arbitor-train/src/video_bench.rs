//! `arbitor video-bench`: the time and the kernel launches per generated
//! clip of a config's video head (random weights, batch 1) for its three
//! inference loops: ACT (adaptive steps, a host read-back per step), the
//! fixed-step loop of Burn ops around the convolutions, and the fused
//! fixed-step loop ([`VideoHead::forward_fused`]).

use std::time::Instant;

use arbitor_models::{
    util::seeded_normal,
    video::{VideoHead, VideoOutput},
};
use burn::tensor::{ElementConversion, Tensor};
use burn_ternary::{launch_count::CountLaunches, TernaryBackend};

use crate::{config::RunConfig, video_task};

/// The inference loops `video-bench` compares, in table order.
pub const LOOPS: [&str; 3] = ["act", "fixed", "fixed-fused"];

/// One row of the `video-bench` table: one inference loop.
#[derive(Clone, Debug)]
pub struct VideoLoopTiming {
    /// The loop (one of [`LOOPS`]).
    pub name: &'static str,
    /// Denoise steps per clip (the mean over the timed clips; ACT stops once
    /// the sample halted).
    pub steps: f64,
    /// Milliseconds per clip (the mean over the timed clips, after one
    /// untimed warm-up clip that compiles the kernels on a GPU).
    pub ms_per_clip: f64,
    /// Kernel launches per clip (the mean); `None` where they are not
    /// counted (a CPU backend, or no launch log).
    pub launches_per_clip: Option<f64>,
}

/// Times `clips` clips (after a warm-up) of each loop of [`LOOPS`] for the
/// video head of `config`'s `[video]` section (conditioned as its run kind
/// conditions it: on the ARBModel's width for `arb-multimodal`, on the
/// shapes' descriptors for `video-head`), with random weights and batch 1;
/// the fixed loops take the section's `fixed_steps`. Launches are counted
/// with [`CountLaunches`] (see [`burn_ternary::launch_count`]).
pub fn video_bench<B: TernaryBackend + CountLaunches>(
    config: &RunConfig,
    clips: usize,
    device: &B::Device,
) -> Result<Vec<VideoLoopTiming>, String> {
    if clips == 0 {
        return Err("--clips must be at least 1".into());
    }
    let video = config.video().map_err(|e| {
        format!(
            "model.kind = \"{}\": video-bench needs a [video] section ({})",
            config.model.kind.name(),
            e.reason
        )
    })?;
    let d_cond = match config.arb() {
        Ok(arb) => arb.model.d_model,
        Err(_) => video_task::shapes(video).descriptor_width(),
    };
    let base: VideoHead<B> = video_task::head_config(video, d_cond)
        .try_init(device)
        .map_err(|e| format!("[video]: {e}"))?;
    // The same weights in both modes, whatever mode the section names.
    let (mut act, mut fixed) = (base.clone(), base);
    (act.adaptive, fixed.adaptive) = (true, false);
    let cond = seeded_normal::<B, 2>([1, d_cond], 1, device);
    let [c, f, h, w] = act.latent_shape;
    let noise = |clip: usize| seeded_normal::<B, 5>([1, c, f, h, w], 100 + clip as u64, device);
    let run = |name: &str, noise: Tensor<B, 5>| -> VideoOutput<B> {
        match name {
            "act" => act.forward(cond.clone(), noise, false),
            "fixed" => fixed.forward(cond.clone(), noise, false),
            _ => fixed.forward_fused(cond.clone(), noise),
        }
    };
    LOOPS
        .iter()
        .map(|&name| {
            // The warm-up compiles every kernel of this loop (on a GPU).
            let _ = run(name, noise(0)).latents.into_data();
            let (mut ms, mut launches, mut steps) = (0.0, Some(0usize), 0usize);
            for clip in 1..=clips {
                let noise = noise(clip);
                let ((elapsed, out), count) = B::count_launches(device, || {
                    let start = Instant::now();
                    let out = run(name, noise);
                    let _ = B::sync(device);
                    (start.elapsed(), out)
                });
                ms += elapsed.as_secs_f64() * 1e3;
                steps += out.steps;
                launches = launches.zip(count).map(|(a, b)| a + b);
                let finite = out
                    .latents
                    .abs()
                    .max()
                    .into_scalar()
                    .elem::<f64>()
                    .is_finite();
                if !finite {
                    return Err(format!("{name}: clip {clip} has non-finite latents"));
                }
            }
            let per_clip = |total: f64| total / clips as f64;
            Ok(VideoLoopTiming {
                name,
                steps: per_clip(steps as f64),
                ms_per_clip: per_clip(ms),
                launches_per_clip: launches.map(|l| per_clip(l as f64)),
            })
        })
        .collect()
}

/// The table `arbitor video-bench` prints for `rows`.
pub fn table(rows: &[VideoLoopTiming], backend: &str, clips: usize) -> String {
    let mut out = format!(
        "loop          steps/clip  ms/clip  launches/clip  ({backend} backend, {clips} clips after a warm-up)\n"
    );
    for r in rows {
        let launches = r
            .launches_per_clip
            .map_or_else(|| "-".to_string(), |l| format!("{l:.1}"));
        out.push_str(&format!(
            "{:<12}  {:>10.2}  {:>7.2}  {:>13}\n",
            r.name, r.steps, r.ms_per_clip, launches
        ));
    }
    out
}
