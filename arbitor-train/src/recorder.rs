//! A Burn file recorder that never leaves a half-written checkpoint: it writes
//! Burn's named MessagePack format to a temporary file, syncs it, then renames
//! it over the target, so a crash (even `kill -9`) leaves either the old
//! checkpoint or the new one.

use std::{io::Write, path::PathBuf};

use burn::{
    record::{FileRecorder, FullPrecisionSettings, NamedMpkFileRecorder, Recorder, RecorderError},
    tensor::backend::Backend,
};
use serde::{de::DeserializeOwned, Serialize};

/// Atomic variant of [`NamedMpkFileRecorder`] (same `.mpk` format, readable by it).
#[derive(Clone, Debug, Default)]
pub struct AtomicMpkRecorder {
    inner: NamedMpkFileRecorder<FullPrecisionSettings>,
}

impl<B: Backend> Recorder<B> for AtomicMpkRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, file: PathBuf) -> Result<(), RecorderError> {
        let target = file.with_extension(<Self as FileRecorder<B>>::file_extension());
        let tmp = file.with_extension("mpk.tmp");
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| RecorderError::Unknown(e.to_string()))?;
        }
        let bytes = rmp_serde::encode::to_vec_named(&item)
            .map_err(|e| RecorderError::Unknown(e.to_string()))?;
        let io = |e: std::io::Error| RecorderError::Unknown(format!("{}: {e}", tmp.display()));
        let mut out = std::fs::File::create(&tmp).map_err(io)?;
        out.write_all(&bytes).map_err(io)?;
        out.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &target).map_err(io)
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        <NamedMpkFileRecorder<FullPrecisionSettings> as Recorder<B>>::load_item(&self.inner, file)
    }
}

impl<B: Backend> FileRecorder<B> for AtomicMpkRecorder {
    fn file_extension() -> &'static str {
        "mpk"
    }
}
