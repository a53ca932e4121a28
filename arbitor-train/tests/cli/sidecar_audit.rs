//! `arbitor audit --strict` with `[sidecars]`: frozen sidecars are listed
//! apart from the ternary core and pass; a trainable sidecar (the
//! `trainable = true` demonstration switch) fails the audit, naming it.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use super::{arbitor, workspace};

fn fixtures() -> PathBuf {
    workspace().join("arbitor-models/tests/fixtures/sidecars")
}

/// Writes a config of a small ternary byte MLP with a `[sidecars]` section.
fn config(name: &str, sidecars: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arbitor-sidecar-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        r#"
[run]
dir = "{run}"

[model]
kind = "ternary-byte-mlp"
context = 4
d_embed = 8
hidden = 16

[data]
path = "data/tinyshakespeare.txt"

[train]
epochs = 1
steps_per_epoch = 1
batch = 4
lr = 0.05

[sidecars]
{sidecars}
"#,
        run = dir.join("run").display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn audit(config: &Path) -> Output {
    arbitor(
        &["audit", "--strict", "--config", config.to_str().unwrap()],
        &[],
    )
}

fn sidecar_lines() -> String {
    format!(
        "vae = \"{}\"\ncodec = \"{}\"\n",
        fixtures().join("taesd_w8_s3").display(),
        fixtures().join("codec_289").display()
    )
}

#[test]
fn strict_audit_passes_with_frozen_sidecars() {
    let out = audit(&config("frozen", &sidecar_lines()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("trainable float params"), "{stdout}");
    assert!(
        stdout.contains("sidecars (imported float networks, apart from the ternary core)"),
        "{stdout}"
    );
    for name in ["pig_vae", "codec"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("sidecar {name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"));
        assert!(line.ends_with("frozen"), "{line}");
        assert!(line.contains(" params, "), "{line}");
    }
    // On the autodiff audit backend int8 falls back, and says so.
    assert!(
        stdout.contains("storage decision: autodiff<flex>: int8 quantization unsupported"),
        "{stdout}"
    );
}

#[test]
fn strict_audit_fails_naming_a_trainable_sidecar() {
    let out = audit(&config(
        "trainable",
        &format!("{}trainable = true\n", sidecar_lines()),
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("TRAINABLE"), "{stdout}");
    for name in ["pig_vae", "codec"] {
        assert!(
            stderr.contains(&format!(
                "strict audit failed: sidecar `{name}` is trainable"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn audit_names_a_missing_sidecar_directory() {
    let out = audit(&config("missing", "vae = \"/nonexistent/pig_vae\"\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/nonexistent/pig_vae/config.json"),
        "{stderr}"
    );
}

#[test]
fn unknown_sidecar_key_is_named() {
    let out = audit(&config("unknown", "decoder = \"x\"\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("decoder"), "{stderr}");
}
