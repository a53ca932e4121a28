//! `arbitor-train`: for now, the quickstart run (a ternary byte-level language
//! model on Tiny Shakespeare, on the CPU).

use arbitor_train::quickstart::{run, QuickstartConfig};
use burn::backend::{Autodiff, Flex};

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "data/tinyshakespeare.txt".to_string());
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: cannot read training text `{path}`: {err}");
            std::process::exit(2);
        }
    };
    let config = QuickstartConfig::new();
    println!(
        "quickstart: ternary byte MLP on {path} ({} bytes), {config}",
        text.len()
    );
    let device = Default::default();
    let report = run::<Autodiff<Flex>>(&config, &text, &device, |p| {
        println!(
            "step {:>5}  train loss {:>7.4}  val loss {:.4}",
            p.step, p.train_loss, p.val_loss
        );
    });
    println!();
    println!(
        "unigram entropy of the validation bytes: {:.4} nats",
        report.unigram_entropy
    );
    println!(
        "validation loss: {:.4} -> {:.4} nats",
        report.initial_val_loss(),
        report.final_val_loss()
    );
    println!("throughput: {:.0} bytes/s", report.tokens_per_second);
    println!();
    print!("{}", report.audit);
}
