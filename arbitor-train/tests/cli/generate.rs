//! `arbitor generate` with an `arb-text` checkpoint trained here: the bytes
//! stream after the prompt, the same seed gives the same text, and bad input
//! is named with a non-zero exit.

use std::path::{Path, PathBuf};

use super::{arbitor, scratch, workspace};

fn arb_text_config(dir: &Path, run: &Path) -> PathBuf {
    let text = format!(
        r#"
[run]
dir = "{run}"
seed = 1
[model]
kind = "arb-text"
[data]
path = "{data}"
[arb]
d_model = 32
n_layers = 2
n_heads = 2
mlp_hidden = 48
trigram_buckets = 128
vq_codes = 16
memory_slots = 8
memory_d_key = 8
expert_hidden = 16
seq = 24
[video]
hidden = 8
[train]
epochs = 1
steps_per_epoch = 5
batch = 4
lr = 0.05
"#,
        run = run.display(),
        data = scratch_text(dir).display(),
    );
    let path = dir.join("arb-text.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// 6,000 bytes of Tiny Shakespeare (a short validation pass).
fn scratch_text(dir: &Path) -> PathBuf {
    let text = std::fs::read(workspace().join("data/tinyshakespeare.txt")).unwrap();
    let path = dir.join("text.txt");
    std::fs::write(&path, &text[..6_000]).unwrap();
    path
}

/// Trains the tiny `arb-text` config in a scratch folder named by `name`;
/// returns the config and the exported model.
fn trained_arb_text(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch("generate", name);
    let run = dir.join("run");
    let config = arb_text_config(&dir, &run);
    let out = arbitor(&["train", "--config", config.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (config, run.join("model.safetensors"))
}

#[test]
fn generate_streams_from_an_arb_text_checkpoint_and_names_bad_input() {
    let (config, checkpoint) = trained_arb_text("arb-text");
    let cfg = config.to_str().unwrap();
    let ckpt = checkpoint.to_str().unwrap();
    let generate = |extra: &[&str]| {
        let mut args = vec!["generate", "--config", cfg, "--checkpoint", ckpt];
        args.extend_from_slice(extra);
        arbitor(&args, &[])
    };
    let seeded = [
        "--prompt",
        "ROMEO:",
        "--max-new",
        "16",
        "--seed",
        "4",
        "--top-k",
        "40",
    ];
    let first = generate(&seeded);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = first.stdout.clone();
    assert!(stdout.starts_with(b"ROMEO:"));
    assert_eq!(
        stdout.len(),
        "ROMEO:".len() + 16 + 1,
        "prompt, 16 bytes, a newline"
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("bytes/s"));
    let again = generate(&seeded);
    assert_eq!(again.stdout, stdout, "the same seed gives the same bytes");

    let named = |extra: &[&str], needle: &str| {
        let out = generate(extra);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{extra:?} should fail");
        assert!(err.contains(needle), "{extra:?}: {err}");
    };
    named(&["--prompt", &"x".repeat(30)], "--prompt");
    named(&["--prompt", ""], "--prompt");
    named(&["--temperature=-1"], "--temperature");
    named(&["--top-p", "1.5"], "--top-p");
    // A checkpoint of another model: a byte-level MLP's config.
    let other = arbitor(
        &[
            "generate",
            "--config",
            workspace()
                .join("configs/quickstart.toml")
                .to_str()
                .unwrap(),
            "--checkpoint",
            ckpt,
        ],
        &[],
    );
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("checkpoint"));
}

/// `arbitor generate --backend wgpu` (lavapipe in CI) continues the prompt
/// like the CPU backend: greedy bytes from the same checkpoint.
#[cfg(feature = "wgpu")]
#[test]
fn generate_on_wgpu_matches_the_cpu() {
    let (config, ckpt) = trained_arb_text("wgpu");
    let cfg = config.to_str().unwrap();
    let on = |backend: &str| {
        let out = arbitor(
            &[
                "generate",
                "--config",
                cfg,
                "--checkpoint",
                ckpt.to_str().unwrap(),
                "--prompt",
                "KING:",
                "--max-new",
                "12",
                "--temperature",
                "0",
                "--backend",
                backend,
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let (cpu, wgpu) = (on("cpu"), on("wgpu"));
    assert_eq!(wgpu.len(), "KING:".len() + 12 + 1);
    assert_eq!(wgpu, cpu, "greedy bytes differ between WGPU and the CPU");
}

/// `arbitor decode-bench` times every batch size of an ARBModel config and
/// names a kind it cannot time.
#[test]
fn decode_bench_prints_a_row_per_batch_size() {
    let dir = scratch("generate", "decode-bench");
    let config = arb_text_config(&dir, &dir.join("run"));
    let cfg = config.to_str().unwrap();
    let out = arbitor(
        &[
            "decode-bench",
            "--config",
            cfg,
            "--batches",
            "1,3",
            "--prompt-len",
            "5",
            "--new",
            "4",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let rows: Vec<&str> = table
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("model:"))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(table.contains("ternary weights"), "{table}");
    assert!(rows[1].trim_start().starts_with("3 "), "{table}");
    let quickstart = workspace().join("configs/quickstart.toml");
    let out = arbitor(
        &["decode-bench", "--config", quickstart.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.kind"));
}

/// `arbitor decode-bench` times the BitNet decoder of a config (random
/// ternary weights) and reports its weights; `train` (the config has no
/// `[train]`) and bad `[bitnet]` values are refused with the reason.
#[test]
fn decode_bench_times_a_bitnet_config() {
    let tiny = workspace().join("configs/bitnet-tiny.toml");
    let cfg = tiny.to_str().unwrap();
    let out = arbitor(
        &[
            "decode-bench",
            "--config",
            cfg,
            "--batches",
            "1,2",
            "--prompt-len",
            "6",
            "--new",
            "5",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout.lines().skip(1).take(2).collect();
    assert!(rows[0].trim_start().starts_with("1 "), "{stdout}");
    assert!(rows[1].trim_start().starts_with("2 "), "{stdout}");
    // 2 layers of q, o 48², k, v 48·16, gate, up 48·100 and down 100·48;
    // rows of 48 and 100 trits pad to 3 and 7 words.
    let weights = 2 * (2 * 48 * 48 + 2 * 48 * 16 + 3 * 48 * 100);
    let bytes = 2 * 4 * (3 * (48 + 16 + 16 + 48 + 100 + 100) + 7 * 48);
    let model = stdout.lines().nth(3).unwrap_or_default();
    assert!(
        model.starts_with(&format!(
            "model: {weights} ternary weights, {bytes} bytes of packed trits"
        )),
        "{stdout}"
    );
    let out = arbitor(&["train", "--config", cfg], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no `[train]` section") && stderr.contains("decode-bench"),
        "{stderr}"
    );
    let dir = scratch("generate", "bitnet-bad");
    let bad = dir.join("bad.toml");
    let text = std::fs::read_to_string(&tiny)
        .unwrap()
        .replace("num_key_value_heads = 2", "num_key_value_heads = 4");
    std::fs::write(&bad, text).unwrap();
    let out = arbitor(&["decode-bench", "--config", bad.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("num_key_value_heads"), "{stderr}");
}

/// A `video-head` config at a tiny size with one residual block and
/// `fixed_steps` steps in fixed mode.
fn tiny_video_config(dir: &Path, fixed_steps: usize) -> PathBuf {
    let text = format!(
        r#"
[run]
dir = "{run}"

[model]
kind = "video-head"

[video]
channels = 4
height = 4
width = 4
hidden = 16
blocks = 1
kernel_size = 3
max_steps = 4
fixed_steps = {fixed_steps}
shapes = 1
clip_frames = 4

[train]
epochs = 1
steps_per_epoch = 1
batch = 2
lr = 0.05
eval_batches = 1
"#,
        run = dir.join("run").display()
    );
    let path = dir.join(format!("video-{fixed_steps}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `arbitor video-bench`'s table on `backend`: `(loop, steps/clip,
/// launches/clip)` per row, or the command's stderr.
fn video_bench(config: &Path, backend: &str) -> Vec<(String, f64, Option<f64>)> {
    let out = arbitor(
        &[
            "video-bench",
            "--config",
            config.to_str().unwrap(),
            "--backend",
            backend,
            "--clips",
            "2",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    table
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells.len(), 4, "{table}");
            let number = |s: &str| s.parse::<f64>().unwrap();
            (
                cells[0].to_string(),
                number(cells[1]),
                cells[3].parse().ok(),
            )
        })
        .collect()
}

/// `arbitor video-bench` prints one row per inference loop; the CPU counts
/// no launches; a config without `[video]` is named.
#[test]
fn video_bench_prints_the_three_loops() {
    let dir = scratch("generate", "video-bench");
    let rows = video_bench(&tiny_video_config(&dir, 2), "cpu");
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["act", "fixed", "fixed-fused"]);
    assert!((1.0..=4.0).contains(&rows[0].1), "{rows:?}");
    assert_eq!((rows[1].1, rows[2].1), (2.0, 2.0));
    assert!(rows.iter().all(|r| r.2.is_none()), "{rows:?}");
    let quickstart = workspace().join("configs/quickstart.toml");
    let out = arbitor(
        &["video-bench", "--config", quickstart.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[video]"));
}

/// On WGPU (lavapipe in CI) the fused loop adds exactly one launch per
/// convolution per step (conv_in, one block, conv_out: 3) and the unfused
/// loop more: the launches of 1 and 3 fixed steps, differenced.
#[cfg(feature = "wgpu")]
#[test]
fn video_bench_fused_loop_launches_one_kernel_per_convolution_on_wgpu() {
    let dir = scratch("generate", "video-bench-wgpu");
    let launches = |steps| {
        let rows = video_bench(&tiny_video_config(&dir, steps), "wgpu");
        assert_eq!(rows[2].1, steps as f64, "{rows:?}");
        let count = |row: usize| rows[row].2.unwrap_or_else(|| panic!("no count: {rows:?}"));
        (count(1), count(2))
    };
    let (one, three) = (launches(1), launches(3));
    let per_step = |a: f64, b: f64| (b - a) / 2.0;
    assert_eq!(per_step(one.1, three.1), 3.0, "fused: {one:?} {three:?}");
    assert!(per_step(one.0, three.0) > 3.0, "unfused: {one:?} {three:?}");
}
