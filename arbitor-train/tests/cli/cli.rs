//! The `arbitor` command line: exact resume after `kill -9`, clear errors on
//! bad input with no checkpoint overwritten, and the NaN guard.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use arbitor_train::fit::checkpoint_epochs;

use super::{arbitor, scratch, workspace, BIN};

fn config(dir: &Path, run: &Path, epochs: usize, steps: usize, hidden: usize) -> PathBuf {
    let text = format!(
        r#"
[run]
dir = "{run}"
seed = 7

[model]
kind = "ternary-byte-mlp"
context = 4
d_embed = 8
hidden = {hidden}

[data]
path = "{data}"

[train]
epochs = {epochs}
steps_per_epoch = {steps}
batch = 16
lr = 0.05
eval_batches = 2
"#,
        run = run.display(),
        data = workspace().join("data/tinyshakespeare.txt").display(),
    );
    let path = dir.join(format!("run-{epochs}-{steps}-{hidden}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("checkpoint"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().to_string(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn kill_9_then_resume_matches_an_uninterrupted_run() {
    let dir = scratch("cli", "resume");
    let (full_dir, killed_dir) = (dir.join("full"), dir.join("killed"));
    let (epochs, steps) = (5, 120);
    let full = arbitor(
        &[
            "train",
            "--config",
            config(&dir, &full_dir, epochs, steps, 32).to_str().unwrap(),
        ],
        &[],
    );
    assert!(full.status.success(), "{}", stderr(&full));

    let killed_config = config(&dir, &killed_dir, epochs, steps, 32);
    // Start, wait for the first checkpoint, kill -9.
    let mut child = Command::new(BIN)
        .args(["train", "--config", killed_config.to_str().unwrap()])
        .current_dir(workspace())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while checkpoint_epochs(&killed_dir).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = checkpoint_epochs(&killed_dir);
    assert!(
        *at_kill.last().unwrap() < epochs,
        "the run finished before the kill: {at_kill:?}"
    );

    let resumed = arbitor(
        &[
            "train",
            "--config",
            killed_config.to_str().unwrap(),
            "--resume",
        ],
        &[],
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));

    // The final optimizer state (step count, seed) and LR schedule are
    // identical byte for byte; model records carry per-process parameter ids,
    // so the model is compared by its exported tensors below.
    let last = |d: &Path, kind: &str| {
        std::fs::read(d.join("checkpoint").join(format!("{kind}-{epochs}.mpk"))).unwrap()
    };
    for kind in ["optim", "scheduler"] {
        assert!(
            last(&full_dir, kind) == last(&killed_dir, kind),
            "{kind} checkpoints differ"
        );
    }
    let model = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    let load = |bytes: Vec<u8>| {
        let cfg = arbitor_train::config::RunConfig::load(&killed_config).unwrap();
        let fresh = arbitor_train::lm::ternary_model::<burn::backend::Flex>(
            &cfg.model,
            &Default::default(),
        );
        let m = burn_ternary::io::from_safetensors_bytes(fresh, &bytes).unwrap();
        burn_ternary::visit::collect::<burn::backend::Flex, _>(&m)
            .ternary
            .iter()
            .map(|w| {
                (
                    w.trits.1.clone().into_data().to_vec::<i32>().unwrap(),
                    w.memory.1.clone().into_data().to_vec::<i32>().unwrap(),
                    w.scale_code.1.clone().into_data().to_vec::<i32>().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (load(model(&full_dir)), load(model(&killed_dir)));
    assert_eq!(a.len(), 4);
    assert!(
        a == b,
        "the resumed model's trits, memory or scales differ from the uninterrupted run"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_configs_are_rejected_with_the_key_named() {
    let dir = scratch("cli", "configs");
    let good = std::fs::read_to_string(config(&dir, &dir.join("run"), 1, 1, 8)).unwrap();
    let cases = [
        (
            good.replace("seed = 7", "seed = 7\nsead = 3"),
            "unknown field `sead`",
        ),
        (
            good.replace("batch = 16", "batch = \"sixteen\""),
            "invalid type: string \"sixteen\", expected usize",
        ),
        (
            good.replace("batch = 16", "batch = 0"),
            "`train.batch` = 0: must be at least 1",
        ),
        (
            good.replace("kind = \"ternary-byte-mlp\"", "kind = \"resnet\""),
            "unknown variant `resnet`",
        ),
        (
            good.replace("tinyshakespeare.txt", "missing.txt"),
            "missing.txt: No such file",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = arbitor(&["train", "--config", path.to_str().unwrap()], &[]);
        assert!(!out.status.success(), "case {i} should fail");
        assert!(
            stderr(&out).contains(expected),
            "case {i}: expected `{expected}` in:\n{}",
            stderr(&out)
        );
    }
    let out = arbitor(&["train", "--config", "/nonexistent.toml"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("config /nonexistent.toml: cannot read"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_checkpoints_fail_cleanly_and_overwrite_nothing() {
    let dir = scratch("cli", "checkpoints");
    let run = dir.join("run");
    let cfg = config(&dir, &run, 2, 5, 16);
    let first = arbitor(&["train", "--config", cfg.to_str().unwrap()], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = snapshot(&run);

    // Training again into a directory with checkpoints, without --resume.
    let out = arbitor(&["train", "--config", cfg.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds checkpoints"),
        "{}",
        stderr(&out)
    );

    // A checkpoint from a different model.
    let other = config(&dir, &run, 3, 5, 24);
    let out = arbitor(
        &["train", "--config", other.to_str().unwrap(), "--resume"],
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("different model"), "{}", stderr(&out));
    assert_eq!(snapshot(&run), before, "nothing was overwritten");

    // Truncated model and optimizer checkpoints.
    for file in ["model-2.mpk", "optim-2.mpk"] {
        let path = run.join("checkpoint").join(file);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let truncated = snapshot(&run);
        let longer = config(&dir, &run, 3, 5, 16);
        let out = arbitor(
            &["train", "--config", longer.to_str().unwrap(), "--resume"],
            &[],
        );
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(file) && stderr(&out).contains("corrupt, truncated"),
            "{}",
            stderr(&out)
        );
        assert_eq!(snapshot(&run), truncated, "nothing was overwritten");
        std::fs::write(&path, bytes).unwrap();
    }

    // --resume with nothing to resume from.
    let empty = config(&dir, &dir.join("empty"), 1, 1, 16);
    let out = arbitor(
        &["train", "--config", empty.to_str().unwrap(), "--resume"],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no complete checkpoint"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `cfg` with the loss of train step `step` poisoned and checks that the
/// run fails, names the NaN and the last good checkpoint, and kept epochs
/// `1..=last_good` only.
fn fails_on_a_nan_loss_at(cfg: &Path, run: &Path, step: usize, last_good: usize) {
    let step = step.to_string();
    let out = arbitor(
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--poison-loss-at-step",
            &step,
        ],
        &[],
    );
    assert!(!out.status.success(), "a NaN loss must fail the run");
    let err = stderr(&out);
    assert!(err.contains("training loss became NaN"), "{err}");
    assert!(
        err.contains(&format!("last good checkpoint (epoch {last_good}")),
        "{err}"
    );
    assert_eq!(checkpoint_epochs(run), (1..=last_good).collect::<Vec<_>>());
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = scratch("cli", "nan");
    let run = dir.join("run");
    let cfg = config(&dir, &run, 4, 10, 16);
    // Steps 0..19 are epochs 1 and 2; the loss of step 25 (epoch 3) is poisoned.
    fails_on_a_nan_loss_at(&cfg, &run, 25, 2);
    // The good checkpoint still resumes.
    let resumed = arbitor(
        &["train", "--config", cfg.to_str().unwrap(), "--resume"],
        &[],
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(checkpoint_epochs(&run).last(), Some(&4));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A config of `epochs` × `steps` with two data-parallel workers on the one
/// CPU device, `mode` being `run.data_parallel`.
fn two_worker_config(dir: &Path, run: &Path, epochs: usize, steps: usize, mode: &str) -> PathBuf {
    let cfg = config(dir, run, epochs, steps, 32);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "seed = 7",
        &format!("seed = 7\ndevices = [0, 0]\ndata_parallel = \"{mode}\""),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn data_parallel_training_over_two_cpu_workers() {
    for mode in ["collective", "main-device"] {
        let dir = scratch("cli", &format!("parallel-{mode}"));
        let run = dir.join("run");
        let cfg = two_worker_config(&dir, &run, 3, 30, mode);
        let out = arbitor(&["train", "--config", cfg.to_str().unwrap()], &[]);
        let err = stderr(&out);
        assert!(out.status.success(), "{mode}: {err}");
        let curve = arbitor_train::logger::read_curve(&run, 3);
        assert_eq!(curve.len(), 3, "{mode}: three epochs logged");
        // Measured: validation 4.42 -> 3.52 (collective), 4.34 -> 3.01
        // (main device).
        assert!(
            curve[2].2 < 0.88 * curve[0].2,
            "{mode}: validation loss falls by at least 12%: {curve:?}"
        );
        assert_eq!(checkpoint_epochs(&run).last(), Some(&3), "{mode}");
        // The collective strategy compares every replica's full state after
        // every epoch and fails the run if any bit differs.
        assert_eq!(
            err.contains("data parallel: 2 replicas bit-identical after epoch 3"),
            mode == "collective",
            "{mode}: {err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_nan_loss_on_one_collective_worker_stops_every_worker() {
    // 2 workers × 10 batches per epoch: the guard counts the steps of both, so
    // steps 0..19 are epoch 1 and step 25 is in epoch 2, on one worker only.
    // Without the collective stop vote the other worker would wait in an
    // all-reduce forever.
    let dir = scratch("cli", "parallel-nan");
    let run = dir.join("run");
    let cfg = two_worker_config(&dir, &run, 3, 20, "collective");
    fails_on_a_nan_loss_at(&cfg, &run, 25, 1);
    std::fs::remove_dir_all(dir).unwrap();
}
