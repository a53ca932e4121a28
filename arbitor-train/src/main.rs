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
        Command::Audit { config } => match RunConfig::load(&config) {
            Ok(config) => {
                let device = Default::default();
                let report = match config.model.kind {
                    ModelKind::TernaryByteMlp => {
                        burn_ternary::audit::audit(&ternary_model::<burn::backend::Autodiff<Flex>>(
                            &config.model,
                            &device,
                        ))
                    }
                    ModelKind::DenseByteMlp => {
                        burn_ternary::audit::audit(&dense_model::<burn::backend::Autodiff<Flex>>(
                            &config.model,
                            &device,
                        ))
                    }
                };
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
    }
}
