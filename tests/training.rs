//! End to end: the README's quickstart (`configs/quickstart.toml`) through
//! the code `arbitor train` runs, sized down for CI: a small ternary model
//! learns next-byte prediction on Tiny Shakespeare on the CPU, with nothing
//! float trained.

use std::path::Path;

use arbitor_train::{
    config::RunConfig,
    run::{train, TrainOptions},
};

#[test]
fn ternary_byte_model_learns_tiny_shakespeare() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = RunConfig::load(&root.join("configs/quickstart.toml"))
        .expect("the quickstart config loads");
    // The data path is relative to the workspace root, where the README runs it.
    config.data.path = config.data.path.map(|p| root.join(p));
    let dir = std::env::temp_dir().join(format!("arbitor-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    config.run.dir = dir.clone();
    // A smaller, shorter run than the quickstart's, sized for CI: 2 × 250
    // steps of 64 windows, hidden width 256.
    config
        .model
        .byte_mlp
        .as_mut()
        .expect("the quickstart is a byte-level model")
        .hidden = 256;
    config.train.epochs = 2;
    config.train.steps_per_epoch = 250;
    config.train.batch = 64;
    config.train.eval_batches = 20;

    let summary = train(&config, &TrainOptions::default()).expect("the run trains");
    eprint!("{}", summary.report());
    let unigram = summary.unigram_entropy.expect("a text run reports it");
    let loss = &summary.series[0];
    assert_eq!(loss.name, "Loss");
    assert_eq!(loss.train.len(), 500, "one logged loss per step");
    let (start, end) = (loss.train[0].2, summary.final_val_loss());
    eprintln!(
        "loss of the first batch {start:.4} -> validation {end:.4} nats; unigram entropy {unigram:.4} nats"
    );
    assert!(
        (3.2..3.5).contains(&unigram),
        "unigram entropy of Shakespeare bytes is about 3.3 nats, got {unigram}"
    );
    assert!(
        start > unigram,
        "an untrained model ({start}) is worse than the unigram predictor ({unigram})"
    );
    assert!(
        end < 0.85 * unigram,
        "validation loss {end} is not well below the unigram entropy {unigram}"
    );
    assert_eq!(summary.audit.trainable_float_params, 0);
    assert!(summary.audit.is_pure_ternary());
    assert_eq!(
        summary.audit.logical_ternary_weights,
        256 * 32 + 8 * 32 * 256 + 256 * 256 + 256 * 256
    );
    for file in [
        "model.safetensors",
        "metrics.csv",
        "steps.csv",
        "loss_curve.png",
        "loss_curve.svg",
        "summary.toml",
    ] {
        assert!(dir.join(file).exists(), "{file} is written");
    }
    let steps = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().count(), 501, "a header and one row per step");
    std::fs::remove_dir_all(dir).unwrap();
}
