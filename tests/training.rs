//! End to end: a small ternary model learns next-byte prediction on Tiny
//! Shakespeare on the CPU, with nothing float trained.

use arbitor_train::quickstart::{run, QuickstartConfig};
use burn::backend::{Autodiff, Flex};

#[test]
fn ternary_byte_model_learns_tiny_shakespeare() {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/tinyshakespeare.txt"
    ))
    .expect("data/tinyshakespeare.txt is part of the repository");
    // A smaller, shorter run than the quickstart's default, sized for CI.
    let config = QuickstartConfig::new()
        .with_hidden(256)
        .with_steps(500)
        .with_batch(64)
        .with_eval_every(250)
        .with_eval_batches(20);
    let report = run::<Autodiff<Flex>>(&config, &text, &Default::default(), |p| {
        eprintln!(
            "step {} train {:.4} val {:.4}",
            p.step, p.train_loss, p.val_loss
        );
    });
    let (start, end, unigram) = (
        report.initial_val_loss(),
        report.final_val_loss(),
        report.unigram_entropy,
    );
    eprintln!("validation loss {start:.4} -> {end:.4} nats; unigram entropy {unigram:.4} nats");
    assert!(
        (3.2..3.5).contains(&unigram),
        "unigram entropy of Shakespeare bytes is about 3.3 nats, got {unigram}"
    );
    assert!(
        start > unigram,
        "an untrained model is worse than the unigram predictor"
    );
    assert!(
        end < 0.85 * unigram,
        "validation loss {end} is not well below the unigram entropy {unigram}"
    );
    assert_eq!(report.audit.trainable_float_params, 0);
    assert!(report.audit.is_pure_ternary());
    assert_eq!(
        report.audit.logical_ternary_weights,
        256 * 32 + 8 * 32 * 256 + 256 * 256 + 256 * 256
    );
}
