//! The audio, video and multimodal run kinds through the `arbitor` command
//! line, CI-sized: each trains, its loss falls by a real margin, every head's
//! loss is logged, and the end-of-run summary (stdout and `summary.toml`)
//! holds the codebook usage and ACT steps. Bad keys in the new config
//! sections are rejected with the key named.

use std::path::{Path, PathBuf};

use arbitor_train::{
    fit::checkpoint_epochs,
    logger::{read_curve, read_metric_curve},
};

use super::{arbitor, scratch};

/// Writes a config: `[run]` into `run`, then `body` (the other sections).
fn write_config(dir: &Path, run: &Path, body: &str) -> PathBuf {
    let path = dir.join("run.toml");
    let text = format!("[run]\ndir = \"{}\"\nseed = 3\n\n{body}", run.display());
    std::fs::write(&path, text).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn train(config: &Path) -> String {
    let out = arbitor(&["train", "--config", config.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn summary(run: &Path) -> toml::Value {
    let file = std::fs::read_to_string(run.join("summary.toml")).expect("summary.toml is written");
    toml::from_str(&file).unwrap()
}

fn number(summary: &toml::Value, table: &str, key: &str) -> f64 {
    summary[table][key]
        .as_float()
        .unwrap_or_else(|| panic!("summary.toml has no {table}.{key}: {summary}"))
}

/// Every head has finite first and last train and validation means in `summary.toml`.
fn assert_heads(summary: &toml::Value, heads: &[&str]) {
    for head in heads {
        for field in ["first_train", "last_train", "first_valid", "last_valid"] {
            let v = summary["heads"][head][field].as_float();
            assert!(
                v.is_some_and(f64::is_finite),
                "heads.{head}.{field} = {v:?} in {summary}"
            );
        }
    }
}

/// The trained ACT head halts before its last step (measured: 2.0 mean steps
/// of 3 in both runs), and the inference loop, which stops once every
/// example halted, runs no fewer steps than the examples took and fewer than
/// the most (a loop that ignores halting runs all `max_steps`).
fn assert_act_halts_early(summary: &toml::Value, max_steps: f64) {
    let steps = number(summary, "measured", "act_steps_mean");
    let looped = number(summary, "measured", "inference_loop_steps_mean");
    assert_eq!(number(summary, "measured", "max_steps"), max_steps);
    assert!(
        steps < max_steps - 0.5,
        "mean ACT steps {steps} of {max_steps}: the head does not halt early"
    );
    assert!(
        steps <= looped && looped < max_steps,
        "the inference loop ran {looped} steps for examples halting after {steps} (most {max_steps})"
    );
}

/// `(first epoch, last epoch)` mean training value of a metric.
fn train_ends(run: &Path, metric: &str, epochs: usize) -> (f64, f64) {
    let curve = read_metric_curve(run, metric, epochs);
    assert_eq!(curve.len(), epochs, "{metric} logged for every epoch");
    (curve[0].1, curve[epochs - 1].1)
}

fn assert_falls(run: &Path, metric: &str, epochs: usize, factor: f64) {
    let (first, last) = train_ends(run, metric, epochs);
    eprintln!("{metric}: train mean {first:.4} -> {last:.4}");
    assert!(
        last < factor * first,
        "{metric}: train mean {first:.4} -> {last:.4}, expected below {factor} × the first epoch"
    );
}

const AUDIO: &str = r#"
[model]
kind = "audio-vq"

[data]
speech = "data/speech"

[audio]
frames = 32
hidden = 16
d_code = 8
n_codes = 64
decoder_hidden = 16

[train]
epochs = 4
steps_per_epoch = 50
batch = 8
lr = 0.05
eval_batches = 4
"#;

#[test]
fn audio_vq_learns_a_codebook_on_speech() {
    let dir = scratch("mm", "audio");
    let run = dir.join("run");
    let stdout = train(&write_config(&dir, &run, AUDIO));
    assert_falls(&run, "Loss", 4, 0.8);
    assert_falls(&run, "ReconLoss", 4, 0.85);
    let s = summary(&run);
    assert_eq!(s["kind"].as_str(), Some("audio-vq"));
    // No codebook collapse: measured (seed 3) 18 of the 64 codes on the
    // training utterances (0.28), 11 on the held-out ones (0.17), perplexity
    // 4.7 and 5.2; a collapse to one or two codes fails these.
    for (split, min_used, min_perplexity) in [("valid", 0.1, 3.0), ("train", 0.15, 3.0)] {
        let used = number(&s, "measured", &format!("codebook_used_fraction_{split}"));
        let perplexity = number(&s, "measured", &format!("codebook_perplexity_{split}"));
        assert!(
            used >= min_used,
            "{split}: {used} of the codebook used, expected at least {min_used}"
        );
        assert!(
            perplexity >= min_perplexity,
            "{split}: code perplexity {perplexity}, expected at least {min_perplexity}"
        );
        assert!(stdout.contains(&format!("codebook_used_fraction_{split}: ")));
    }
    assert_heads(
        &s,
        &["ReconLoss", "VqLoss", "NextCodeLoss", "CodePerplexity"],
    );
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("epoch,train_loss,valid_loss,train_ReconLoss,valid_ReconLoss"));
    assert!(run.join("model.safetensors").exists() && run.join("loss_curve.png").exists());
    assert_eq!(s["audit"]["trainable_float_params"].as_integer(), Some(0));
    std::fs::remove_dir_all(dir).unwrap();
}

const VIDEO: &str = r#"
[model]
kind = "video-head"

[video]
height = 8
width = 8
hidden = 32
max_steps = 3

[train]
epochs = EPOCHS
steps_per_epoch = 60
batch = 8
lr = 0.05
eval_batches = 4
"#;

#[test]
fn video_head_learns_to_denoise_moving_shapes_and_resumes() {
    let dir = scratch("mm", "video");
    let run = dir.join("run");
    let stdout = train(&write_config(&dir, &run, &VIDEO.replace("EPOCHS", "3")));
    assert!(stdout.contains("act_steps_mean: "), "{stdout}");
    let epoch_1 = std::fs::read(run.join("train/epoch-1/Loss.log")).unwrap();
    // Resume the finished run for one more epoch.
    let config = write_config(&dir, &run, &VIDEO.replace("EPOCHS", "4"));
    let out = arbitor(
        &["train", "--config", config.to_str().unwrap(), "--resume"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(checkpoint_epochs(&run).last(), Some(&4));
    assert_eq!(read_curve(&run, 4).len(), 4, "epoch 4 is logged as epoch 4");
    assert_eq!(
        std::fs::read(run.join("train/epoch-1/Loss.log")).unwrap(),
        epoch_1,
        "the resumed epoch did not overwrite the logs of epoch 1"
    );
    assert_falls(&run, "Loss", 4, 0.85);
    assert_falls(&run, "DenoiseLoss", 4, 0.85);
    let s = summary(&run);
    assert_heads(&s, &["DenoiseLoss", "PonderCost", "ActSteps"]);
    assert_act_halts_early(&s, 3.0);
    let denoised = number(&s, "measured", "valid_denoise_mse");
    let identity = number(&s, "measured", "baseline_identity_mse");
    assert!(
        denoised < 0.7 * identity,
        "denoised {denoised} vs the noisy input {identity}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

const MULTIMODAL: &str = r#"
[model]
kind = "arb-multimodal"

[data]
path = "data/tinyshakespeare.txt"
speech = "data/speech"

[arb]
d_model = 32
n_heads = 2
mlp_hidden = 64
trigram_buckets = 256
vq_codes = 32
memory_slots = 16
memory_d_key = 8
expert_hidden = 32
seq = 16

[audio]
frames = 96
hidden = 16
d_code = 8
n_codes = 64
decoder_hidden = 16

[video]
height = 8
width = 8
hidden = 16
max_steps = 3

[train]
epochs = 4
steps_per_epoch = 40
batch = 4
lr = 0.05
eval_batches = 4
"#;

#[test]
fn arb_multimodal_trains_every_head() {
    let dir = scratch("mm", "multimodal");
    let run = dir.join("run");
    let stdout = train(&write_config(&dir, &run, MULTIMODAL));
    assert_falls(&run, "Loss", 4, 0.8);
    // Measured (seed 3): reconstruction 0.98 -> 0.38 and talker 3.28 -> 1.50
    // (train means of the first and last epoch).
    assert_falls(&run, "AudioReconLoss", 4, 0.6);
    assert_falls(&run, "TalkerLoss", 4, 0.65);
    let s = summary(&run);
    let heads: Vec<&str> = arbitor_train::multimodal_task::HEADS
        .iter()
        .map(|h| h.name)
        .collect();
    assert_heads(&s, &heads);
    for head in &heads {
        assert!(stdout.contains(head), "{head} in the report:\n{stdout}");
    }
    // The text head learns at least the byte statistics: validation 3.30
    // nats against a unigram entropy of 3.34 (an untrained head: 5.5).
    let unigram = number(&s, "measured", "unigram_entropy");
    let text = s["heads"]["TextLoss"]["last_valid"].as_float().unwrap();
    assert!(
        text < unigram + 0.1,
        "text validation loss {text} vs the unigram entropy {unigram}"
    );
    // The video head denoises: measured 0.325 against 0.403 for returning
    // the noisy start unchanged.
    let denoised = number(&s, "measured", "valid_denoise_mse");
    let identity = number(&s, "measured", "baseline_identity_mse");
    assert!(
        denoised < 0.9 * identity,
        "denoised {denoised} vs the noisy input {identity}"
    );
    // No codebook collapse (measured: 15 of 64 codes, perplexity 4.3 and 4.9).
    let used = number(&s, "measured", "codebook_used_fraction_train");
    let perplexity = number(&s, "measured", "codebook_perplexity_valid");
    assert!(used >= 0.12, "{used} of the codebook used");
    assert!(perplexity >= 2.5, "code perplexity {perplexity}");
    assert_act_halts_early(&s, 3.0);
    assert_eq!(s["audit"]["trainable_float_params"].as_integer(), Some(0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_keys_in_the_new_sections_are_named() {
    let dir = scratch("mm", "bad");
    let run = dir.join("run");
    let cases = [
        (
            AUDIO.replace("frames = 32", "frames = 32\nhiden = 3"),
            "unknown field `hiden`",
        ),
        (
            VIDEO
                .replace("EPOCHS", "1")
                .replace("max_steps = 3", "max_steps = 3\nhalt = 0.5"),
            "unknown field `halt`",
        ),
        (
            MULTIMODAL.replace("seq = 16", "seq = 16\nsequence = 8"),
            "unknown field `sequence`",
        ),
        (
            AUDIO.replace("frames = 32", "frames = 30"),
            "`audio.frames` = 30: must be a multiple of audio.stride² = 4",
        ),
        (
            AUDIO.replace("[train]", "[video]\nheight = 4\n\n[train]"),
            "section `[video]` does not apply to model.kind = \"audio-vq\"",
        ),
        (
            AUDIO.replace("speech = \"data/speech\"", "val_fraction = 0.2"),
            "`data.speech` is missing: model.kind = \"audio-vq\" needs it",
        ),
        (
            VIDEO.replace("EPOCHS", "1").replace(
                "kind = \"video-head\"",
                "kind = \"video-head\"\ncontext = 8",
            ),
            "`model.context` does not apply to model.kind = \"video-head\"",
        ),
        (
            MULTIMODAL.replace("n_heads = 2", "n_heads = 3"),
            "`arb.n_heads` = 3: must divide arb.d_model = 32",
        ),
        (
            AUDIO.replace("data/speech", "data/no-speech"),
            "no-speech/index.tsv",
        ),
    ];
    for (i, (body, expected)) in cases.iter().enumerate() {
        let config = write_config(&dir, &run, body);
        let out = arbitor(&["train", "--config", config.to_str().unwrap()], &[]);
        assert!(!out.status.success(), "case {i} should fail");
        assert!(
            text(&out.stderr).contains(expected),
            "case {i}: expected `{expected}` in:\n{}",
            text(&out.stderr)
        );
        assert!(!run.exists(), "case {i}: nothing was written");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn audit_covers_every_new_config() {
    for config in [
        "configs/audio-vq.toml",
        "configs/video-head.toml",
        "configs/arb-multimodal.toml",
    ] {
        let out = arbitor(&["audit", "--config", config, "--strict"], &[]);
        assert!(out.status.success(), "{config}: {}", text(&out.stderr));
        let report = text(&out.stdout);
        assert!(
            report.contains("trainable float params  : 0"),
            "{config}:\n{report}"
        );
    }
}
