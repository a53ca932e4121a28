//! A persistent cache of compiled kernels for the CubeCL backends.
//!
//! CubeCL compiles every kernel specialization (ours and Burn's) at its first
//! launch, and by default keeps nothing between processes: a model with many
//! distinct ops and shapes pays the whole JIT again at every start. CubeCL
//! 0.10 can keep the compiled kernels on disk (`compilation.cache`), but only
//! when asked to, through a `cubecl.toml` or before the runtime first reads its
//! configuration.

use std::path::{Path, PathBuf};

use cubecl::config::{
    cache::CacheConfig, compilation::CompilationLogLevel, CubeClRuntimeConfig, RuntimeConfig,
};

/// Turns on CubeCL's on-disk cache of compiled kernels for this process, in
/// the same place as CubeCL's autotune cache (the `target/` folder of the
/// nearest `Cargo.toml` above the working directory, else the user's cache
/// folder, `~/.cache/cubecl`), keeping every other setting of
/// a `cubecl.toml` / `burn.toml` found from the working directory and of the
/// `CUBECL_*` environment variables. A cache location the file names is kept.
///
/// CubeCL 0.10 reads this cache in its CUDA compiler (and in the SPIR-V
/// compiler of Burn's `vulkan` feature); the WGSL shaders of Burn's `wgpu`
/// feature stay in memory, so a WGPU launch compiles them again.
///
/// Call it once at the start of the program, before any CubeCL device is
/// used. Returns `false`, changing nothing, where CubeCL's configuration was
/// already read or set.
///
/// ```
/// // First thing in `main`, before any tensor is made on a GPU backend.
/// let _ = burn_ternary::use_persistent_kernel_cache();
/// ```
pub fn use_persistent_kernel_cache() -> bool {
    configure(None)
}

/// [`use_persistent_kernel_cache`], and CubeCL's compilation log written to
/// `compile_log` (one line per kernel compiled), unless a `cubecl.toml` or
/// `CUBECL_*` variable already turned that log on: counting its lines shows
/// a user how far the JIT compilation of a first step has come (see
/// [`compiled_kernels`]).
///
/// ```no_run
/// let log = std::env::temp_dir().join("kernels.log");
/// let _ = burn_ternary::use_persistent_kernel_cache_with_log(&log);
/// // ... later, from a progress thread:
/// println!("{} kernels compiled", burn_ternary::kernel_cache::compiled_kernels(&log));
/// ```
pub fn use_persistent_kernel_cache_with_log(compile_log: &Path) -> bool {
    configure(Some(compile_log.to_path_buf()))
}

/// Kernels compiled so far according to the compilation log at `path`
/// (0 when it does not exist yet).
pub fn compiled_kernels(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
        .unwrap_or(0)
}

fn configure(compile_log: Option<PathBuf>) -> bool {
    install_config(|config| {
        if config.compilation.cache.is_none() {
            config.compilation.cache = Some(CacheConfig::Target);
        }
        if let Some(path) = compile_log {
            let logger = &mut config.compilation.logger;
            if matches!(logger.level, CompilationLogLevel::Disabled) {
                logger.level = CompilationLogLevel::Basic;
                logger.file = Some(path);
                logger.append = false;
            }
        }
    })
}

/// Sets CubeCL's process-wide configuration to the one of the working
/// directory's `cubecl.toml` / `burn.toml` and the `CUBECL_*` variables,
/// changed by `modify`; returns `false`, changing nothing, where it was
/// already read or set (CubeCL reads it once, at the first device use).
pub(crate) fn install_config(modify: impl FnOnce(&mut CubeClRuntimeConfig)) -> bool {
    if CubeClRuntimeConfig::storage().lock().is_some() {
        return false;
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    modify(&mut config);
    let mut storage = CubeClRuntimeConfig::storage().lock();
    if storage.is_some() {
        return false;
    }
    *storage = Some(std::sync::Arc::new(config));
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_second_call_changes_nothing() {
        let first = super::use_persistent_kernel_cache();
        assert!(!super::use_persistent_kernel_cache());
        if first {
            let config =
                <cubecl::config::CubeClRuntimeConfig as cubecl::config::RuntimeConfig>::get();
            assert!(config.compilation.cache.is_some());
        }
    }

    #[test]
    fn compiled_kernels_counts_log_lines() {
        let path = std::env::temp_dir().join(format!("kernels-{}.log", std::process::id()));
        assert_eq!(super::compiled_kernels(&path), 0);
        std::fs::write(&path, "a\nb\n").unwrap();
        assert_eq!(super::compiled_kernels(&path), 2);
        std::fs::remove_file(&path).unwrap();
    }
}
