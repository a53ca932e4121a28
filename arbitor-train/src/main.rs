//! `arbitor`: train, audit and sample ternary models from config files.

use std::{path::PathBuf, process::ExitCode};

use arbitor_train::{
    config::{BackendKind, ModelKind, RunConfig},
    lm::{dense_model, ternary_model},
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
    },
    /// Print the audit table of the config's model.
    Audit {
        /// The run config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Fail (non-zero exit) if any float state is found in the model.
        #[arg(long)]
        strict: bool,
    },
    /// Build every model-zoo component at its default size and print its output shapes and audit.
    Smoke,
    /// Sample text from a trained model.
    Generate {
        /// The run config the model was trained with.
        #[arg(long)]
        config: PathBuf,
        /// The exported model (`<run dir>/model.safetensors`).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Text to continue.
        #[arg(long, default_value = "ROMEO:")]
        prompt: String,
        /// Bytes to generate.
        #[arg(long, default_value_t = 200)]
        length: usize,
        /// Sampling temperature.
        #[arg(long, default_value_t = 0.8)]
        temperature: f64,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Train {
            config,
            backend,
            resume,
        } => {
            let options = TrainOptions {
                config,
                backend,
                resume,
            };
            match train(&options) {
                Ok(summary) => {
                    println!();
                    println!("run directory: {}", summary.dir.display());
                    println!("epoch  train loss  valid loss  valid bits/byte");
                    for (epoch, train, valid) in &summary.curve {
                        println!(
                            "{epoch:>5}  {train:>10.4}  {valid:>10.4}  {:>15.4}",
                            valid / core::f64::consts::LN_2
                        );
                    }
                    println!(
                        "unigram entropy of the validation bytes: {:.4} nats",
                        summary.unigram_entropy
                    );
                    println!(
                        "final validation loss: {:.4} nats",
                        summary.final_val_loss()
                    );
                    println!("throughput: {:.0} bytes/s", summary.tokens_per_second);
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
            match RunConfig::load(&config) {
                Ok(config) => {
                    let device = Default::default();
                    let report = match config.model.kind {
                        ModelKind::TernaryByteMlp => burn_ternary::audit::audit(&ternary_model::<
                            burn::backend::Autodiff<Flex>,
                        >(
                            &config.model,
                            &device,
                        )),
                        ModelKind::DenseByteMlp => burn_ternary::audit::audit(&dense_model::<
                            burn::backend::Autodiff<Flex>,
                        >(
                            &config.model,
                            &device,
                        )),
                    };
                    print!("{report}");
                    if strict && !report.is_pure_ternary() {
                        eprintln!("error: strict audit failed: the model holds float state (see the table)");
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
        Command::Smoke => {
            let reports = arbitor_models::smoke::smoke_reports::<burn::backend::Autodiff<Flex>>(
                &Default::default(),
            );
            for report in reports {
                println!("{report}");
            }
            ExitCode::SUCCESS
        }
        Command::Generate {
            config,
            checkpoint,
            prompt,
            length,
            temperature,
            seed,
        } => {
            let result = RunConfig::load(&config)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    arbitor_train::generate::generate::<Flex>(
                        &config,
                        &checkpoint,
                        &prompt,
                        length,
                        temperature,
                        seed,
                        &Default::default(),
                    )
                });
            match result {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
