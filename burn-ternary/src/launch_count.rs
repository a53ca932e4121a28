//! Counting the kernel launches of a piece of code on the CubeCL backends.
//!
//! CubeCL 0.10 has no launch counter, but its profiling logger at level
//! `minimal` writes one line `Executing <kernel>` per kernel that runs,
//! without timing it. [`log_launches`] turns that log on (to a file, before
//! the first device use: CubeCL reads its configuration once), and
//! [`CountLaunches::count_launches`] counts the lines a closure adds. The log
//! is written by a background thread, so a count first launches a marker
//! kernel of its own after the closure and waits until the marker's line
//! has been written: every launch before it has then been written too (one
//! queue, one writer, in order). The marker itself is not counted.
//!
//! The count covers every launch of the process while the closure runs
//! (count from one thread at a time), and includes Burn's own kernels
//! (element-wise ops, copies to contiguous layout, casts, fills), not host
//! uploads and reads.
//!
//! ```no_run
//! # #[cfg(feature = "wgpu")]
//! # fn main() {
//! use burn::backend::Wgpu;
//! use burn::tensor::Tensor;
//! use burn_ternary::launch_count::{log_launches, CountLaunches};
//!
//! // First thing in `main`, before any tensor is made on a GPU backend.
//! log_launches(&std::env::temp_dir().join("launches.log"));
//! let device = Default::default();
//! let x = Tensor::<Wgpu, 1>::ones([8], &device);
//! let (_, launches) = <Wgpu>::count_launches(&device, || (x.clone() + 1.0).exp());
//! println!("{launches:?} launches"); // Some(2)
//! # }
//! # #[cfg(not(feature = "wgpu"))]
//! # fn main() {}
//! ```

use std::path::Path;

use burn::tensor::backend::Backend;

/// Where [`log_launches`] sent the launch log.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
static LOG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Turns on CubeCL's launch log (profiling level `minimal`) to the file at
/// `path`, emptied first, keeping every other setting of a `cubecl.toml` /
/// `burn.toml` and of the `CUBECL_*` variables. Call it once, before any
/// CubeCL device is used; returns `false`, changing nothing, where CubeCL's
/// configuration was already read or set (by this or by
/// [`use_persistent_kernel_cache`](crate::use_persistent_kernel_cache)), or
/// where `path` cannot be written. Where it returns `false`,
/// [`CountLaunches::count_launches`] counts nothing.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub fn log_launches(path: &Path) -> bool {
    use cubecl::config::profiling::ProfilingLogLevel;
    if LOG.get().is_some() || std::fs::write(path, b"").is_err() {
        return false;
    }
    let installed = crate::kernel_cache::install_config(|config| {
        let logger = &mut config.profiling.logger;
        logger.level = ProfilingLogLevel::Minimal;
        logger.file = Some(path.to_path_buf());
        // Appended: each device's server opens the file for itself.
        logger.append = true;
    });
    installed && LOG.set(path.to_path_buf()).is_ok()
}

/// Without a CubeCL backend in the build there is nothing to log: returns `false`.
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
pub fn log_launches(path: &Path) -> bool {
    let _ = path;
    false
}

/// The launch log's lines so far: `(launches, marker launches)`.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn logged(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = (0, 0);
    for line in text.lines().filter(|l| l.starts_with("Executing ")) {
        counts.0 += 1;
        if is_marker(line) {
            counts.1 += 1;
        }
    }
    counts
}

/// Whether a log line names the marker kernel (its name is Rust's type name
/// of the kernel, shortened by CubeCL: matched without case and underscores).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn is_marker(line: &str) -> bool {
    line.to_lowercase()
        .replace('_', "")
        .contains("launchcountmarker")
}

/// Backends whose kernel launches can be counted.
pub trait CountLaunches: Backend {
    /// Runs `f` and returns its result with the number of kernel launches
    /// made while it ran (see the [module docs](self)): `None` on backends
    /// without kernels (the CPU ones), where [`log_launches`] was not
    /// called first, or where the log did not catch up within a minute.
    fn count_launches<T>(device: &Self::Device, f: impl FnOnce() -> T) -> (T, Option<usize>);
}

macro_rules! no_kernels {
    ($backend:ty) => {
        /// A CPU backend: no kernels, nothing to count.
        impl CountLaunches for $backend {
            fn count_launches<T>(
                _device: &Self::Device,
                f: impl FnOnce() -> T,
            ) -> (T, Option<usize>) {
                (f(), None)
            }
        }
    };
}

no_kernels!(burn::backend::NdArray<f32>);
no_kernels!(burn::backend::NdArray<f64>);
no_kernels!(burn::backend::Flex);

impl<B: CountLaunches, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy>
    CountLaunches for burn::backend::Autodiff<B, C>
{
    fn count_launches<T>(device: &Self::Device, f: impl FnOnce() -> T) -> (T, Option<usize>) {
        B::count_launches(device, f)
    }
}

#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod cube {
    use std::time::{Duration, Instant};

    use burn_cubecl::{
        element::BoolElement, ops::numeric::empty_device_contiguous_dtype, CubeBackend,
        CubeRuntime, FloatElement, IntElement,
    };
    use cubecl::prelude::*;

    use super::{logged, CountLaunches, LOG};

    /// The marker: one unit writes one word (a kernel that does nothing
    /// might be skipped by a compiler; this one cannot be).
    #[cube(launch)]
    fn launch_count_marker(out: &mut Array<u32>) {
        if ABSOLUTE_POS == 0 {
            out[0] = 1u32;
        }
    }

    /// Launches the marker on `device` and waits until the log shows it;
    /// returns the launches logged then (`None` after a minute without it).
    fn mark<R: CubeRuntime>(device: &R::Device, path: &std::path::Path) -> Option<usize> {
        let client = R::client(device);
        let markers = logged(path).1;
        let out = empty_device_contiguous_dtype::<R>(
            client.clone(),
            device.clone(),
            burn::tensor::Shape::new([1]),
            burn::tensor::DType::U32,
        );
        launch_count_marker::launch::<R>(
            &client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(1),
            out.into_array_arg(),
        );
        let _ = client.flush();
        let start = Instant::now();
        loop {
            let (launches, seen) = logged(path);
            if seen > markers {
                return Some(launches);
            }
            if start.elapsed() > Duration::from_secs(60) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    impl<R, F, I, BT> CountLaunches for CubeBackend<R, F, I, BT>
    where
        R: CubeRuntime,
        F: FloatElement,
        I: IntElement,
        BT: BoolElement,
    {
        fn count_launches<T>(device: &Self::Device, f: impl FnOnce() -> T) -> (T, Option<usize>) {
            let Some(path) = LOG.get() else {
                return (f(), None);
            };
            let before = mark::<R>(device, path);
            let out = f();
            let after = mark::<R>(device, path);
            // `after` includes its own marker, `before` its own.
            let count = before.zip(after).map(|(b, a)| a - b - 1);
            (out, count)
        }
    }
}
