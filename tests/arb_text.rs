//! End to end on the CPU, sized for CI: `arb-text` (the ternary ARBModel on
//! text alone) and its dense twin through the code `arbitor train` runs,
//! each validated by a full pass over the validation split.

use std::path::{Path, PathBuf};

use arbitor_train::{
    config::RunConfig,
    run::{train, TrainOptions},
};

/// A 24,000-byte prefix of Tiny Shakespeare in a temporary folder.
fn small_text(tag: &str) -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(root.join("data/tinyshakespeare.txt")).expect("the data file");
    let dir = std::env::temp_dir().join(format!("arbitor-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("text.txt");
    std::fs::write(&path, &text[..24_000]).unwrap();
    (path, dir.join("run"))
}

fn tiny(kind: &str, lr: f64, tag: &str) -> (RunConfig, usize) {
    let (data, dir) = small_text(tag);
    let toml = format!(
        r#"
[run]
dir = "{dir}"
seed = 0
[model]
kind = "{kind}"
[data]
path = "{data}"
val_fraction = 0.1
[arb]
d_model = 32
n_layers = 2
n_heads = 2
mlp_hidden = 64
trigram_buckets = 256
vq_codes = 16
memory_slots = 8
memory_d_key = 8
expert_hidden = 32
seq = 32
[video]
hidden = 8
[train]
epochs = 2
steps_per_epoch = 30
batch = 16
lr = {lr}
"#,
        dir = dir.display(),
        data = data.display()
    );
    let config = RunConfig::parse(&toml).expect("the config parses");
    // Every byte after the split's first is predicted once.
    let scored = 24_000 - (24_000f64 * 0.9) as usize - 1;
    (config, scored)
}

fn check(kind: &str, lr: f64, tag: &str) -> f64 {
    let (config, scored) = tiny(kind, lr, tag);
    let summary = train(&config, &TrainOptions::default()).expect("the run trains");
    eprint!("{}", summary.report());
    let measured = |name: &str| {
        summary
            .measured
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is measured"))
            .1
    };
    assert_eq!(measured("valid_full_pass_bytes") as usize, scored);
    let full_pass = measured("valid_full_pass_nats_per_byte");
    // Far below a uniform guess over the 297-entry vocabulary (5.69 nats).
    assert!(
        full_pass < 3.6,
        "{kind}: full-pass validation loss {full_pass}"
    );
    let sample = std::fs::read(config.run.dir.join("sample.txt")).expect("a sample is written");
    assert!(sample.starts_with(b"ROMEO:\n") && sample.len() == 207);
    full_pass
}

#[test]
fn ternary_arb_text_learns_and_is_validated_on_the_whole_split() {
    let loss = check("arb-text", 0.05, "arb-text");
    eprintln!("ternary arb-text full-pass validation: {loss:.4} nats/byte");
}

#[test]
fn the_dense_twin_trains_float_layers_with_adamw() {
    let (config, _) = tiny("dense-arb-text", 3e-3, "arb-text-dense-audit");
    let audit = arbitor_train::run::audit_config(&config).unwrap();
    assert!(audit.trainable_float_params > 0);
    let loss = check("dense-arb-text", 3e-3, "arb-text-dense");
    eprintln!("dense twin full-pass validation: {loss:.4} nats/byte");
}

/// `configs/arb-seed.toml` and `configs/arb-text.toml` are within ±5% of the
/// original's reported sizes, part by part, and build the same ARBModel.
#[test]
fn seed_presets_match_the_original_sizes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let parts = |name: &str| {
        let config = RunConfig::load(&root.join("configs").join(name)).expect("the preset loads");
        let (total, parts) = arbitor_train::run::audit_config_parts(&config).unwrap();
        assert!(total.is_pure_ternary() || name.contains("dense"));
        parts
            .into_iter()
            .map(|(part, audit)| (part, audit.logical_ternary_weights))
            .collect::<Vec<_>>()
    };
    let count = |parts: &[(String, usize)], prefix: &str| {
        parts
            .iter()
            .find(|(name, _)| name.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no part {prefix} in {parts:?}"))
            .1
    };
    let seed = parts("arb-seed.toml");
    for (prefix, original) in [
        ("ARBModel", 41_087_552usize),
        ("of which video_head", 17_040_896),
        ("audio encoder", 404_864),
    ] {
        let ours = count(&seed, prefix);
        let ratio = ours as f64 / original as f64;
        assert!(
            (0.95..=1.05).contains(&ratio),
            "{prefix}: {ours} against the original's {original} ({ratio:.3})"
        );
    }
    let text = parts("arb-text.toml");
    assert_eq!(count(&text, "ARBModel"), count(&seed, "ARBModel"));
}
