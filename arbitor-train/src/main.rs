//! `arbitor`: train, audit and sample ternary models from config files.

use std::{path::PathBuf, process::ExitCode};

use arbitor_models::generation::Sampler;
use arbitor_train::{
    bridge::Outputs,
    generate::{decode_bench, generate, GenerateOptions, Generated},
    video_bench::{table as video_table, video_bench},
};
use arbitor_train::{
    config::{BackendKind, RunConfig},
    fit::FaultInjection,
    run::{train, TrainOptions},
};
use burn::backend::Flex;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "arbitor",
    about = "Train and inspect true ternary models",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the model of a run config (resumable; checkpoints after each epoch).
    Train {
        /// The run config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Backend: cpu (default), wgpu or cuda (the latter two need their cargo feature).
        #[arg(long)]
        backend: Option<BackendKind>,
        /// Continue from the run directory's last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Override a config key, `SECTION.KEY=VALUE` (VALUE in TOML syntax,
        /// a bare word is a string); repeatable. E.g. run a config's
        /// schedule at a tiny shape: `--set bitnet.hidden_size=64`.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        set: Vec<String>,
        /// Fault injection for the reliability tests (debug builds only):
        /// the loss of this train step and of every later one counts as NaN.
        #[cfg(debug_assertions)]
        #[arg(long, hide = true)]
        poison_loss_at_step: Option<usize>,
    },
    /// Print the audit table of the config's model (any model kind).
    Audit {
        /// The run config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Fail (non-zero exit) if any float state is found in the model core,
        /// or if any `[sidecars]` entry is trainable (each is named).
        #[arg(long)]
        strict: bool,
    },
    /// Build every model-zoo component at its default size and print its output shapes and audit.
    Smoke,
    /// Time incremental decoding of an ARBModel or BitNet config (random
    /// weights unless --checkpoint): prefill, tokens/s and ms per token for
    /// each batch size, then the model's weights.
    DecodeBench {
        /// The run config (arb-text, dense-arb-text, arb-multimodal or bitnet).
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, `SECTION.KEY=VALUE`; repeatable (as for `train`).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        set: Vec<String>,
        /// Trained weights (`<run dir>/model.safetensors`); random without.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Batch sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        batches: Vec<usize>,
        /// Prompt tokens (bytes for the ARBModel kinds).
        #[arg(long, default_value_t = 64)]
        prompt_len: usize,
        /// Tokens decoded after the prompt.
        #[arg(long, default_value_t = 256)]
        new: usize,
        /// Backend: cpu, wgpu or cuda (the last two need the build's features).
        #[arg(long, default_value = "cpu")]
        backend: BackendKind,
        /// Time without CubeCL's launch log (no launch counts); the log
        /// costs some host time per launch.
        #[arg(long)]
        no_launch_count: bool,
    },
    /// Time the inference loops of a config's video head (random weights,
    /// batch 1, the latents of its [video] section): ACT, fixed steps, and
    /// fixed steps with the fused convolutions; ms and kernel launches per clip.
    VideoBench {
        /// The run config (any kind with a [video] section).
        #[arg(long)]
        config: PathBuf,
        /// Backend: cpu, wgpu or cuda (the last two need the build's features).
        #[arg(long, default_value = "cpu")]
        backend: BackendKind,
        /// Clips timed per loop, after one warm-up clip.
        #[arg(long, default_value_t = 3)]
        clips: usize,
        /// Do not log kernel launches (the log adds a little host time per
        /// launch, so the loop with more launches pays more of it).
        #[arg(long)]
        no_launch_count: bool,
    },
    /// Measure a bitnet config's training state (bytes per weight, from the
    /// tensors) and peak resident memory over a few CPU training steps, with
    /// the ternary optimizer or as a dense f32 twin with AdamW (one per
    /// process: peak memory is the process's; scripts/cpu/bitnet_train_memory.sh
    /// runs both).
    TrainMemory {
        /// The run config (kind = "bitnet", with `[train]`).
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, `SECTION.KEY=VALUE`; repeatable.
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        set: Vec<String>,
        /// ternary (the BitNet model, ternary optimizer) or adamw (its dense twin).
        #[arg(long, default_value = "ternary")]
        optimizer: arbitor_train::train_memory::MemoryOptimizer,
        /// Training steps.
        #[arg(long, default_value_t = 3)]
        steps: usize,
    },
    /// Write a bitnet run's model as a transformers BitNet checkpoint
    /// (`--hf DIR`) and/or GGUF with TQ2_0 projections (`--gguf FILE`).
    Export {
        /// The run config the model was trained with.
        #[arg(long)]
        config: PathBuf,
        /// Override a config key, `SECTION.KEY=VALUE`; repeatable (as for `train`).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        set: Vec<String>,
        /// The trained model (`<run dir>/model.safetensors`); without it, the
        /// weights of `model.from` (or random ones).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Write a transformers checkpoint directory here.
        #[arg(long, value_name = "DIR")]
        hf: Option<PathBuf>,
        /// Write a GGUF file here.
        #[arg(long, value_name = "FILE")]
        gguf: Option<PathBuf>,
    },
    /// Continue a prompt with a trained text model (byte MLPs, arb-text,
    /// dense-arb-text, arb-multimodal, bitnet) or a Hugging Face BitNet
    /// checkpoint (`--hf`), streaming the text, then the speed.
    Generate {
        /// The run config the model was trained with.
        #[arg(long, required_unless_present = "hf", conflicts_with = "hf")]
        config: Option<PathBuf>,
        /// A transformers BitNet checkpoint directory (`config.json`,
        /// `model.safetensors` or its shards, `tokenizer.json` if the prompt
        /// is not bytes), e.g. microsoft/bitnet-b1.58-2B-4T: generate from it
        /// without a run config.
        #[arg(long, value_name = "DIR")]
        hf: Option<PathBuf>,
        /// Override a config key, `SECTION.KEY=VALUE`; repeatable (as for `train`).
        #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
        set: Vec<String>,
        /// The exported model (`<run dir>/model.safetensors`); optional for
        /// bitnet (without it: the weights of `model.from`, or random).
        #[arg(long, conflicts_with = "hf")]
        checkpoint: Option<PathBuf>,
        /// Text to continue.
        #[arg(long, default_value = "ROMEO:")]
        prompt: String,
        /// Bytes to generate (tokens for bitnet).
        #[arg(long, alias = "length", default_value_t = 200)]
        max_new: usize,
        /// Sampling temperature (0: the most likely byte each step).
        #[arg(long, default_value_t = 0.8)]
        temperature: f64,
        /// Keep only the K most likely bytes.
        #[arg(long)]
        top_k: Option<usize>,
        /// Keep the smallest set of most likely bytes whose probability reaches P.
        #[arg(long)]
        top_p: Option<f64>,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Backend: cpu, wgpu or cuda (the last two need the build's features).
        #[arg(long, default_value = "cpu")]
        backend: BackendKind,
        /// arb-multimodal: produce a video clip whatever the router says.
        #[arg(long)]
        video: bool,
        /// arb-multimodal: produce speech whatever the router says.
        #[arg(long)]
        speech: bool,
        /// arb-multimodal: frames of a video clip.
        #[arg(long, default_value_t = 4)]
        frames: usize,
        /// arb-multimodal: where frames, GIF, WAV or raw outputs go.
        #[arg(long, default_value = "generated")]
        out_dir: PathBuf,
    },
}

/// Evaluates `$body` with `$B` naming the backend type `$backend` selects
/// (Flex, Wgpu or Cuda), or says that this build lacks its feature.
macro_rules! on_backend {
    ($backend:expr, $B:ident => $body:expr) => {
        match $backend {
            BackendKind::Cpu => {
                type $B = Flex;
                $body
            }
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => {
                type $B = burn::backend::Wgpu;
                $body
            }
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => {
                type $B = burn::backend::Cuda;
                $body
            }
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "--backend {}: this build has no {} feature (cargo build --features {})",
                other.name(),
                other.name(),
                other.name()
            )),
        }
    };
}

/// CubeCL's launch log for a bench's launch counts
/// ([`burn_ternary::launch_count`]): on where `wanted` on a GPU backend,
/// removed when dropped. Start it before the first device use: CubeCL reads
/// its configuration once.
struct LaunchLog(Option<PathBuf>);

impl LaunchLog {
    fn start(wanted: bool, backend: BackendKind) -> Self {
        let path =
            std::env::temp_dir().join(format!("arbitor-launches-{}.log", std::process::id()));
        let on = wanted
            && backend != BackendKind::Cpu
            && burn_ternary::launch_count::log_launches(&path);
        Self(on.then_some(path))
    }
}

impl Drop for LaunchLog {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Train {
            config,
            backend,
            resume,
            set,
            #[cfg(debug_assertions)]
            poison_loss_at_step,
        } => {
            let options = TrainOptions {
                backend,
                resume,
                faults: FaultInjection {
                    #[cfg(debug_assertions)]
                    poison_loss_at_step,
                },
            };
            let result = RunConfig::load_with_overrides(&config, &set)
                .map_err(arbitor_train::fit::RunError::from)
                .and_then(|config| train(&config, &options));
            match result {
                Ok(summary) => {
                    println!();
                    print!("{}", summary.report());
                    println!(
                        "summary written to {}",
                        summary.dir.join("summary.toml").display()
                    );
                    println!();
                    print!("{}", summary.audit);
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit { config, strict } => {
            let audit = RunConfig::load(&config)
                .map_err(|e| e.to_string())
                .and_then(|config| arbitor_train::sidecars::audit_run_config(&config));
            match audit {
                Ok(audit) => {
                    print!("{audit}");
                    let violations = audit.strict_violations();
                    if strict && !violations.is_empty() {
                        for violation in violations {
                            eprintln!("error: strict audit failed: {violation}");
                        }
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::TrainMemory {
            config,
            set,
            optimizer,
            steps,
        } => {
            let result = RunConfig::load_with_overrides(&config, &set)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    arbitor_train::train_memory::train_memory(&config, optimizer, steps)
                });
            match result {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Export {
            config,
            set,
            checkpoint,
            hf,
            gguf,
        } => {
            let targets = arbitor_train::export::ExportTargets { hf, gguf };
            let result = RunConfig::load_with_overrides(&config, &set)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    arbitor_train::export::export_bitnet(&config, checkpoint.as_deref(), &targets)
                });
            match result {
                Ok(written) => {
                    for path in written {
                        println!("wrote {}", path.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Smoke => {
            let reports = arbitor_models::smoke::smoke_reports::<burn::backend::Autodiff<Flex>>(
                &Default::default(),
            );
            for report in reports {
                println!("{report}");
            }
            ExitCode::SUCCESS
        }
        Command::DecodeBench {
            config,
            set,
            checkpoint,
            batches,
            prompt_len,
            new,
            backend,
            no_launch_count,
        } => {
            let _log = LaunchLog::start(!no_launch_count, backend);
            let result = RunConfig::load_with_overrides(&config, &set)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    let ckpt = checkpoint.as_deref();
                    on_backend!(backend, B => decode_bench::<B>(
                        &config,
                        ckpt,
                        &batches,
                        prompt_len,
                        new,
                        &Default::default(),
                    ))
                });
            match result {
                Ok(bench) => {
                    println!(
                        "batch  prompt  new  prefill ms  tokens/s  ms/token  launches/token  ({} backend)",
                        backend.name()
                    );
                    for (t, launches) in bench.timings.iter().zip(&bench.launches_per_token) {
                        let launches = launches.map_or("-".to_string(), |l| format!("{l:.1}"));
                        println!(
                            "{:>5}  {:>6}  {:>3}  {:>10.2}  {:>8.1}  {:>8.3}  {:>14}",
                            t.batch,
                            t.prompt_len,
                            t.new,
                            t.prefill_ms,
                            t.tokens_per_s,
                            t.ms_per_token,
                            launches
                        );
                    }
                    println!("model: {}", bench.model);
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::VideoBench {
            config,
            backend,
            clips,
            no_launch_count,
        } => {
            let _log = LaunchLog::start(!no_launch_count, backend);
            let result = RunConfig::load(&config)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    on_backend!(backend, B => video_bench::<B>(&config, clips, &Default::default()))
                });
            match result {
                Ok(rows) => {
                    print!("{}", video_table(&rows, backend.name(), clips));
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Generate {
            config,
            hf,
            set,
            checkpoint,
            prompt,
            max_new,
            temperature,
            top_k,
            top_p,
            seed,
            backend,
            video,
            speech,
            frames,
            out_dir,
        } => {
            let mut sampler = Sampler::new(temperature).with_seed(seed);
            sampler.top_k = top_k;
            sampler.top_p = top_p;
            let options = GenerateOptions {
                prompt: prompt.clone(),
                max_new,
                sampler,
                outputs: (video || speech).then_some(Outputs { video, speech }),
                frames,
                out_dir,
            };
            print!("{prompt}");
            let config = match (&config, &hf) {
                (Some(path), _) => RunConfig::load_with_overrides(path, &set),
                (None, Some(dir)) => RunConfig::from_hf_dir(dir, &set),
                (None, None) => unreachable!("clap requires --config or --hf"),
            };
            let result = config
                .map_err(|e| e.to_string())
                .and_then(|config| generate_on(backend, &config, checkpoint.as_deref(), &options));
            match result {
                Ok(generated) => {
                    println!();
                    let out = &generated.text;
                    eprintln!(
                        "{} bytes in {:.2} s: {:.1} bytes/s ({} backend)",
                        out.bytes[0].len(),
                        out.seconds,
                        out.tokens_per_s,
                        backend.name()
                    );
                    if let Some(report) = &generated.bridge {
                        for path in report.frames.iter().chain(&report.gif).chain(&report.wav) {
                            eprintln!("wrote {}", path.display());
                        }
                        for (missing, raw) in report.missing.iter().zip(&report.raw) {
                            eprintln!(
                                "no {missing} in [sidecars]: wrote the raw output to {}",
                                raw.display()
                            );
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    println!();
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs `generate` on the chosen backend, printing each byte as it comes.
fn generate_on(
    backend: BackendKind,
    config: &RunConfig,
    checkpoint: Option<&std::path::Path>,
    options: &GenerateOptions,
) -> Result<Generated, String> {
    use std::io::Write;
    let stream = |_: usize, byte: u8| {
        let mut out = std::io::stdout();
        let _ = out.write_all(&[byte]);
        let _ = out.flush();
    };
    on_backend!(backend, B => generate::<B>(config, checkpoint, options, &Default::default(), stream))
}
