//! `arbitor train` on a `bitnet` config: the 2B-4T fine-tuning config run at
//! a tiny shape on the CPU (`--set`), exact resume after a stopped run, and
//! a tokenizer that does not fit the vocabulary refused by name.

use std::path::{Path, PathBuf};

use arbitor_train::fit::checkpoint_epochs;

use super::{arbitor, scratch};

const CONFIG: &str = "configs/bitnet-2b4t-finetune.toml";

/// `--set` overrides that shrink the fine-tuning config to a CPU test:
/// one layer of width 32, the 512-id tokenizer's vocabulary, 2 epochs of 3
/// steps of 2 windows of 16 tokens.
fn tiny(run: &Path) -> Vec<String> {
    [
        "run.backend=cpu",
        "bitnet.hidden_size=32",
        "bitnet.intermediate_size=48",
        "bitnet.num_hidden_layers=1",
        "bitnet.num_attention_heads=4",
        "bitnet.num_key_value_heads=2",
        "bitnet.vocab_size=512",
        "bitnet.max_position_embeddings=64",
        "bitnet.seq=16",
        "train.epochs=2",
        "train.steps_per_epoch=3",
        "train.batch=2",
        "train.lr=0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("run.dir={}", run.display())])
    .collect()
}

fn train(run: &Path, extra: &[&str]) -> std::process::Output {
    let sets = tiny(run);
    let mut args: Vec<&str> = vec!["train", "--config", CONFIG];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    args.extend(extra);
    arbitor(&args, &[])
}

fn summary(run: &Path) -> toml::Table {
    std::fs::read_to_string(run.join("summary.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_finetune_config_trains_at_a_tiny_shape_and_resumes_exactly() {
    let dir = scratch("bitnet", "finetune");
    let full: PathBuf = dir.join("full");
    let out = train(&full, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tokens/s"), "{stdout}");
    assert!(stdout.contains("valid_nats_per_token"), "{stdout}");
    let s = summary(&full);
    let loss = s["loss"].as_table().unwrap();
    for key in ["first_train", "last_train", "first_valid", "last_valid"] {
        let v = loss[key].as_float().unwrap();
        // Finite and near ln 512 = 6.24 at this size and step count.
        assert!(v.is_finite() && v > 3.0 && v < 9.0, "{key} = {v}");
    }
    let audit = s["audit"].as_table().unwrap();
    // Only the ternary projections train: the float parts are frozen.
    assert_eq!(audit["trainable_float_params"].as_integer(), Some(0));
    assert_eq!(
        audit["logical_ternary_weights"].as_integer(),
        Some(2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 48)
    );
    assert_eq!(checkpoint_epochs(&full), [1, 2]);

    // A run whose first step of epoch 2 turns NaN stops with epoch 1's
    // checkpoint; resuming it ends with the same model as the full run.
    let stopped = dir.join("stopped");
    let out = train(&stopped, &["--poison-loss-at-step", "3"]);
    assert!(!out.status.success());
    assert_eq!(checkpoint_epochs(&stopped), [1]);
    let out = train(&stopped, &["--resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(
        model(&full) == model(&stopped),
        "the resumed model differs from the uninterrupted run's"
    );

    // `generate` continues a prompt with the trained checkpoint, through the
    // tokenizer; `decode-bench` times it.
    let checkpoint = full.join("model.safetensors");
    let sets = tiny(&full);
    let mut args: Vec<&str> = vec!["generate", "--config", CONFIG];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let ckpt = checkpoint.to_str().unwrap();
    let with = |extra: &[&'static str]| [&args[..], &["--checkpoint", ckpt], extra].concat();
    let out = arbitor(&with(&["--prompt", "ROMEO:", "--max-new", "12"]), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("ROMEO:") && stdout.len() > "ROMEO:\n".len(),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("bytes/s"), "{stderr}");
    // A checkpoint of another shape is refused by name.
    let other = with(&["--set", "bitnet.hidden_size=64"]);
    let out = arbitor(&other, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("checkpoint") && stderr.contains("model.safetensors"),
        "{stderr}"
    );
    let mut bench: Vec<&str> = vec!["decode-bench", "--config", CONFIG];
    for s in &sets {
        bench.extend(["--set", s.as_str()]);
    }
    let bench = [
        &bench[..],
        &[
            "--checkpoint",
            ckpt,
            "--batches",
            "1",
            "--prompt-len",
            "4",
            "--new",
            "4",
        ],
    ]
    .concat();
    let out = arbitor(&bench, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_tokenizer_with_more_ids_than_the_vocabulary_is_refused() {
    let dir = scratch("bitnet", "vocab");
    let run = dir.join("run");
    let out = train(&run, &["--set", "bitnet.vocab_size=300"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data/tokenizer/tokenizer.json has 512 token ids")
            && stderr.contains("vocab_size is 300"),
        "{stderr}"
    );
    assert!(checkpoint_epochs(&run).is_empty());
    let out = train(&run, &["--set", "model.tokenizer=data/no-such.json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tokenizer data/no-such.json: cannot read"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn train_float_trains_the_embedding_and_norms_too() {
    let dir = scratch("bitnet", "float");
    let (frozen, trained) = (dir.join("frozen"), dir.join("trained"));
    let one_epoch = ["--set", "train.epochs=1"];
    let out = train(&frozen, &one_epoch);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = train(
        &trained,
        &[&one_epoch[..], &["--set", "bitnet.train_float=true"]].concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Embedding 512 × 32, per layer two norms of 32, the attention sub-norm
    // of 32 and the MLP's of 48, and the final norm.
    let floats = 512 * 32 + 3 * 32 + 48 + 32;
    let audit = |run: &Path| summary(run)["audit"].as_table().unwrap().clone();
    assert_eq!(
        audit(&frozen)["trainable_float_params"].as_integer(),
        Some(0)
    );
    assert_eq!(
        audit(&frozen)["frozen_float_params"].as_integer(),
        Some(floats)
    );
    assert_eq!(
        audit(&trained)["trainable_float_params"].as_integer(),
        Some(floats)
    );
    let tensor = |run: &Path, name: &str| {
        let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        st.tensor(name)
            .unwrap_or_else(|e| panic!("{name}: {e}; has {:?}", st.names()))
            .data()
            .to_vec()
    };
    for name in ["model.embed_tokens.weight", "model.norm.gamma"] {
        assert!(
            tensor(&frozen, name) != tensor(&trained, name),
            "{name} did not train"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The transformers checkpoint fixture with the repository's tokenizer
/// (`scripts/hf/make_bitnet_fixtures.py`).
const HF_FIXTURE: &str = "arbitor-models/tests/fixtures/bitnet/packed_c";

/// Sampled text (temperature 1, seed 3: it differs where any logit
/// differs) of `generate` with `source` (`--hf DIR` or `--config C
/// --checkpoint M`).
fn sampled(source: &[&str]) -> String {
    let mut args = vec!["generate"];
    args.extend(source);
    args.extend([
        "--prompt",
        "ROMEO:",
        "--max-new",
        "12",
        "--temperature",
        "1",
        "--seed",
        "3",
    ]);
    let out = arbitor(&args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Hugging Face BitNet checkpoint as the CLI user meets it: `generate
/// --hf`, fine-tuning from it (`[model] from`, the shape and the tokenizer
/// taken from the checkpoint), `export --hf` of the trained run, whose
/// export samples exactly what the run's own checkpoint samples; bad input
/// named.
#[test]
fn hugging_face_checkpoints_generate_fine_tune_and_export() {
    let dir = scratch("bitnet", "hf");
    let imported = sampled(&["--hf", HF_FIXTURE]);
    assert!(imported.starts_with("ROMEO:") && imported.len() > "ROMEO:".len());

    let run = dir.join("run");
    let config = dir.join("from.toml");
    std::fs::write(
        &config,
        format!(
            "[run]\ndir = {run:?}\n\n[model]\nkind = \"bitnet\"\nfrom = {HF_FIXTURE:?}\n\n\
             [data]\npath = \"data/tinyshakespeare.txt\"\nval_fraction = 0.1\n\n\
             [bitnet]\nseq = 16\n\n[train]\nepochs = 1\nsteps_per_epoch = 4\nbatch = 2\n\
             lr = 0.1\neval_batches = 1\ntrain_scales = false\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = arbitor(&["train", "--config", config], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = run.join("model.safetensors");
    let model = model.to_str().unwrap();
    let trained = sampled(&["--config", config, "--checkpoint", model]);
    assert_ne!(trained, imported, "four steps at lr 0.1 changed nothing");

    let exported = dir.join("exported");
    let out = arbitor(
        &["export", "--config", config, "--checkpoint", model, "--hf"]
            .into_iter()
            .chain([exported.to_str().unwrap()])
            .collect::<Vec<_>>(),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(exported.join("tokenizer.json").is_file());
    assert_eq!(sampled(&["--hf", exported.to_str().unwrap()]), trained);

    // GGUF cannot hold the fixture's 40-wide rows: refused before anything is written.
    let refused = dir.join("refused");
    let gguf = dir.join("refused.gguf");
    let out = arbitor(
        &[
            "export",
            "--config",
            config,
            "--hf",
            refused.to_str().unwrap(),
            "--gguf",
            gguf.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("blk.0.attn_q.weight"), "{stderr}");
    assert!(!refused.exists() && !gguf.exists());

    // Bad input, named: no checkpoint there; a shape key the checkpoint sets.
    let out = arbitor(&["generate", "--hf", "/no/such/dir", "--prompt", "a"], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/no/such/dir/config.json"), "{stderr}");
    let out = arbitor(
        &[
            "train",
            "--config",
            config,
            "--set",
            "bitnet.hidden_size=64",
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`bitnet.hidden_size` is set by the run (the checkpoint's config.json"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `arbitor export --gguf` of a run with a tokenizer writes it into the
/// file (llama.cpp's gpt2 vocabulary), so llama.cpp takes text.
#[test]
fn gguf_export_carries_the_runs_tokenizer() {
    use arbitor_models::bitnet::hf::{GgufFile, GgufValue};

    let dir = scratch("bitnet", "gguf-tokenizer");
    let gguf = dir.join("model.gguf");
    let out = arbitor(
        &[
            "export",
            "--config",
            "configs/bitnet-tiny-train.toml",
            "--set",
            "bitnet.hidden_size=256",
            "--gguf",
            gguf.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = GgufFile::open(&gguf).unwrap();
    assert_eq!(
        file.get("tokenizer.ggml.pre"),
        Some(&GgufValue::String("gpt-2".into()))
    );
    assert!(
        matches!(file.get("tokenizer.ggml.tokens"), Some(GgufValue::Array(t)) if t.len() == 512)
    );
    std::fs::remove_dir_all(dir).unwrap();
}
