//! Progress lines while a GPU backend JIT-compiles kernels: the first steps
//! of a run on CUDA or WGPU compile every kernel they meet (ours and Burn's),
//! which takes seconds to a minute from an empty cache, and nothing else
//! would print meanwhile.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Prints, every `every` while kernels are being compiled, how many the
/// compilation log at `log` counts so far (each line followed by `note`);
/// stops when dropped.
///
/// ```
/// use std::time::Duration;
/// use arbitor_train::compile_progress::CompileProgress;
/// let log = std::env::temp_dir().join("arbitor-doc-kernels.log");
/// let progress = CompileProgress::start(log, Duration::from_secs(10), "cached on disk");
/// drop(progress); // stops the thread
/// ```
pub struct CompileProgress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CompileProgress {
    /// Starts watching the compilation log `log` (see
    /// `burn_ternary::use_persistent_kernel_cache_with_log`).
    pub fn start(log: PathBuf, every: Duration, note: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let tick = Duration::from_millis(200);
            let (mut reported, mut last) = (0, started);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                let n = burn_ternary::kernel_cache::compiled_kernels(&log);
                if n > reported {
                    println!(
                        "[{:>5.0} s] compiling GPU kernels: {n} compiled so far (+{} in the last {} s; {note})",
                        started.elapsed().as_secs_f64(),
                        n - reported,
                        every.as_secs()
                    );
                    reported = n;
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CompileProgress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count itself is `burn_ternary::kernel_cache::compiled_kernels`,
    /// tested there; this checks the thread starts on a log and stops.
    #[test]
    fn starts_and_stops_on_a_log() {
        let path =
            std::env::temp_dir().join(format!("compile-progress-{}.log", std::process::id()));
        std::fs::write(&path, "kernel a\nkernel b\n").unwrap();
        let progress = CompileProgress::start(path.clone(), Duration::from_millis(10), "test");
        std::thread::sleep(Duration::from_millis(300));
        drop(progress);
        std::fs::remove_file(&path).unwrap();
    }
}
