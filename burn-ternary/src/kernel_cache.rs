//! A persistent cache of compiled kernels for the CubeCL backends.
//!
//! CubeCL compiles every kernel specialization (ours and Burn's) at its first
//! launch, and by default keeps nothing between processes: a model with many
//! distinct ops and shapes pays the whole JIT again at every start. CubeCL
//! 0.10 can keep the compiled kernels on disk (`compilation.cache`), but only
//! when asked to, through a `cubecl.toml` or before the runtime first reads its
//! configuration.

use cubecl::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};

/// Turns on CubeCL's on-disk cache of compiled kernels for this process, in
/// the same place as CubeCL's autotune cache (the `target/` folder of the
/// nearest `Cargo.toml` above the working directory, else the user's cache
/// folder, `~/.cache/cubecl`), keeping every other setting of
/// a `cubecl.toml` / `burn.toml` found from the working directory and of the
/// `CUBECL_*` environment variables. A cache location the file names is kept.
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
    if CubeClRuntimeConfig::storage().lock().is_some() {
        return false;
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if config.compilation.cache.is_none() {
        config.compilation.cache = Some(CacheConfig::Target);
    }
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
}
