//! The device's streaming-multiprocessor count for the kernels' launch
//! rules, where the runtime does not report it (CubeCL's WGPU runtime).

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    OnceLock,
};

/// Environment variable read where neither the runtime nor
/// [`set_sm_count_hint`] gives the device's streaming multiprocessors
/// (compute units): a positive integer.
pub const SM_COUNT_ENV: &str = "BURN_TERNARY_SM_COUNT";

static HINT: AtomicUsize = AtomicUsize::new(0);
static FROM_ENV: OnceLock<usize> = OnceLock::new();

/// Tells the launch rules of the tiled matmul, conv and GEMV kernels how
/// many streaming multiprocessors (compute units) the device has, where
/// the runtime does not report it; `0` clears the hint. No effect on the
/// CPU backends.
///
/// CubeCL's CUDA runtime reports the count; its WGPU runtime does not, and
/// without a count the rules take the largest register block, which can
/// leave most of a large GPU idle on a small grid (on the H200 through
/// Vulkan, one conv shape ran 1.5× slower for it). A count the runtime
/// reports always wins over the hint. Without a hint, the
/// [`SM_COUNT_ENV`] environment variable (`BURN_TERNARY_SM_COUNT`) is read
/// once, at the first kernel launch that needs it.
///
/// # Example
///
/// ```
/// // An RTX 4090 (128 SMs) driven through WGPU.
/// burn_ternary::set_sm_count_hint(128);
/// # burn_ternary::set_sm_count_hint(0);
/// ```
pub fn set_sm_count_hint(sms: usize) {
    HINT.store(sms, Ordering::Relaxed);
}

/// The count the launch rules use, given what the runtime reported: the
/// report, else the hint, else [`SM_COUNT_ENV`] (read once), else 0
/// (unknown).
#[cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code))]
pub(crate) fn effective_sm_count(reported: Option<u32>) -> usize {
    let hint = HINT.load(Ordering::Relaxed);
    // The environment only where the report and the hint give nothing, so
    // that a stray value there cannot stop a CUDA run.
    if reported.is_some_and(|sms| sms > 0) || hint > 0 {
        return resolve(reported, hint, None);
    }
    *FROM_ENV.get_or_init(|| resolve(None, 0, std::env::var(SM_COUNT_ENV).ok().as_deref()))
}

/// The runtime's report if it gave one, else `hint` if set, else `env` (the
/// value of [`SM_COUNT_ENV`]), else 0.
///
/// # Panics
///
/// If `env` is set but not a positive integer, naming the variable and the
/// value: a mistyped count would silently pick other launch shapes.
fn resolve(reported: Option<u32>, hint: usize, env: Option<&str>) -> usize {
    if let Some(sms) = reported.filter(|&sms| sms > 0) {
        return sms as usize;
    }
    if hint > 0 {
        return hint;
    }
    match env {
        None => 0,
        Some(value) => match value.trim().parse::<usize>() {
            Ok(sms) if sms > 0 => sms,
            _ => panic!(
                "{SM_COUNT_ENV} must be a positive integer (the device's streaming \
                 multiprocessors), got {value:?}"
            ),
        },
    }
}

/// Planes per cube for a grid of `cubes` cubes whose planes (of
/// `plane_dim` lanes) split `chunks` reduction chunks: about one wave of 512
/// lanes per SM (what the plane GEMV, at 128 registers per lane, keeps
/// resident), as the nearest power of two, at least 2 and at most
/// `min(chunks, 256 / plane_dim)`; `fallback` (clamped the same way) where
/// the SM count is unknown (0). Fewer planes per cube means more chunks per
/// plane: on the H200 (CUDA and WGPU) this count was the fastest
/// of 2, 4 and 8 for the plane GEMV at m = 2, 4 and 8 on each of the
/// three decode GEMV shapes, up to 1.7× faster than the slowest.
pub(crate) fn planes_for_one_wave(
    sms: usize,
    cubes: usize,
    chunks: usize,
    plane_dim: usize,
    fallback: usize,
) -> usize {
    let cap = (256 / plane_dim.max(1)).clamp(1, chunks.max(1));
    let floor = 2.min(cap);
    if sms == 0 {
        return fallback.clamp(floor, cap);
    }
    let per_cube = (sms * 512) as f64 / (cubes.max(1) * plane_dim.max(1)) as f64;
    let nearest = 2f64.powi(per_cube.log2().round() as i32) as usize;
    nearest.clamp(floor, cap)
}

/// The first of `blocks` (register blocks, largest first) whose grid of
/// `cubes_at(block)` cubes covers more than half of the `sms` streaming
/// multiprocessors (0: unknown, then the first), else `fallback`. A larger
/// block does more FMAs per shared-memory load, but each cube of the tiled
/// kernels walks the whole reduction, so a grid under half the SMs leaves
/// most of them idle. The launch rule of the tiled matmul and the conv
/// kernels.
pub(crate) fn largest_block_covering_sms(
    sms: usize,
    blocks: &[usize],
    fallback: usize,
    cubes_at: impl Fn(usize) -> usize,
) -> usize {
    blocks
        .iter()
        .copied()
        .find(|&block| 2 * cubes_at(block) > sms)
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_report_wins_then_the_hint_then_the_environment() {
        assert_eq!(resolve(Some(132), 64, Some("16")), 132);
        assert_eq!(resolve(None, 64, Some("16")), 64);
        assert_eq!(resolve(Some(0), 64, None), 64);
        assert_eq!(resolve(None, 0, Some(" 16 ")), 16);
        assert_eq!(resolve(None, 0, None), 0);
    }

    #[test]
    fn a_bad_environment_value_names_the_variable_and_the_value() {
        for bad in ["", "0", "-3", "many"] {
            let err = std::panic::catch_unwind(|| resolve(None, 0, Some(bad)))
                .expect_err("a bad value must not pass");
            let message = err.downcast_ref::<String>().expect("a formatted message");
            assert!(message.contains(SM_COUNT_ENV), "{message}");
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
    }

    #[test]
    fn the_hint_is_used_where_the_runtime_reports_nothing() {
        set_sm_count_hint(96);
        assert_eq!(effective_sm_count(None), 96);
        assert_eq!(effective_sm_count(Some(132)), 132);
        set_sm_count_hint(0);
    }

    #[test]
    fn planes_for_one_wave_matches_the_h200_sweep() {
        // (cubes, chunks) of the plane GEMV's launches at the decode shapes
        // on the H200 (132 SMs, 32-lane planes), and the plane count that
        // was fastest there.
        let m4_8192 = (1024, 16);
        let m4_4096x14336 = (1792, 8);
        let m4_14336x4096 = (512, 28);
        let m2_8192 = (512, 8);
        let m2_4096x14336 = (896, 4);
        let m2_14336x4096 = (256, 14);
        for ((cubes, chunks), best) in [
            (m4_8192, 2),
            (m4_4096x14336, 2),
            (m4_14336x4096, 4),
            (m2_8192, 4),
            (m2_4096x14336, 2),
            (m2_14336x4096, 8),
        ] {
            assert_eq!(planes_for_one_wave(132, cubes, chunks, 32, 4), best);
        }
    }

    #[test]
    fn planes_for_one_wave_stays_within_the_chunks_and_the_cube() {
        // Few chunks: never more planes than chunks.
        assert_eq!(planes_for_one_wave(132, 16, 3, 32, 4), 3);
        assert_eq!(planes_for_one_wave(132, 16, 1, 32, 4), 1);
        // A huge grid: still 2 planes.
        assert_eq!(planes_for_one_wave(132, 1 << 20, 64, 32, 4), 2);
        // 64-lane planes: at most 4 per cube.
        assert_eq!(planes_for_one_wave(132, 1, 64, 64, 4), 4);
        // Unknown SM count: the fallback, within the same bounds.
        assert_eq!(planes_for_one_wave(0, 1024, 16, 32, 4), 4);
        assert_eq!(planes_for_one_wave(0, 1024, 3, 32, 4), 3);
    }
}
