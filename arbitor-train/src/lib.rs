//! Config-driven training runs for Arbitor models on Burn's `Learner`, and the
//! `arbitor` command line.
#![warn(missing_docs)]

pub mod audio_task;
pub mod bitnet_task;
pub mod bridge;
pub mod byte_mlp;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub mod compile_progress;
pub mod config;
pub mod data;
pub mod data_parallel;
pub mod export;
pub mod fit;
pub mod generate;
pub mod lm;
pub mod logger;
pub mod metrics;
pub mod multimodal_task;
pub mod plot;
pub mod progress;
pub mod recorder;
pub mod run;
pub mod shapes;
pub mod sidecars;
pub mod speech;
pub mod text_task;
pub mod throughput;
pub mod tokenizer;
pub mod train_memory;
pub mod video_bench;
pub mod video_task;
