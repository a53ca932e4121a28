//! The `arbitor` command-line tests, in one test binary (one link instead
//! of three; CI builds on two cores): resume and errors (`cli`), BitNet
//! training from its fine-tuning config at a tiny shape (`bitnet`), the
//! multimodal run kinds (`multimodal`) and the sidecar audit
//! (`sidecar_audit`). What they share is here.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

mod bitnet;
mod cli;
mod generate;
mod multimodal;
mod sidecar_audit;

/// The `arbitor` executable that cargo built for these tests.
const BIN: &str = env!("CARGO_BIN_EXE_arbitor");

/// The workspace root, where the commands run (configs name paths from it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// An empty scratch directory for one test, named by `group`, the process
/// and `name` so that concurrent tests and runs do not share it.
fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arbitor-{group}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `arbitor args` from the workspace root with `env` added, to the end.
fn arbitor(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(workspace());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}
