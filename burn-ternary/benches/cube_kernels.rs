//! Timings of the CubeCL kernels of `burn_ternary` on a real GPU, printed as
//! markdown tables. Run one table by name (or several; none runs them all):
//!
//! ```text
//! cargo bench -p burn-ternary --features cuda --bench cube_kernels -- gemv_benchmarks
//! ```
//!
//! or build the executable once (`cargo bench --profile gpu -p burn-ternary
//! --features cuda --bench cube_kernels --no-run`) and run it where the GPU
//! is with the table names as arguments (`--list` prints them). Names:
//! `all_tables` (every table below in one run), `gemv_benchmarks` (the m = 1
//! and m = 8 GEMV table; `GemvSetup` lists the environment variables for
//! other launch shapes), `gemm_benchmarks`, `conv_benchmarks`,
//! `denoise_benchmarks`, `embedding_benchmarks`, `update_benchmarks`,
//! `kernel_timings`, `f32_route_sweep`, `gemv_tuning`, `plane_gemv_tuning`
//! (`PLANE_TUNES="wpl rb group max_planes,..."`), `gemv_device_profile` (for
//! `scripts/ncu_gemv.py`), `launch_cost_benchmarks`,
//! `module_forward_benchmarks`, `small_shape_benchmarks`.
#![cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(unused))]

#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[path = "../tests/common/mod.rs"]
mod common;

#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
fn main() {
    eprintln!("the CubeCL kernel benchmarks need the `cuda` or `wgpu` feature");
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn main() {
    benches::main();
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod benches {
    use std::time::Instant;

    use burn::tensor::{
        backend::Backend, ops::FloatTensor, DType, Distribution, Int, Tensor, TensorData,
        TensorPrimitive,
    };
    use burn_ternary::{
        ops::{
            conv1d, denoise, dense_weight, embedding,
            matmul::{
                launch,
                route::{
                    plane_gemv_launches, route, tensor_core_gemv_blocks, MmaGemvTune,
                    PlaneGemvTune, GEMV_PLANE_MAX_M,
                },
                F32TensorCores, MatmulPolicy, MatmulRoute,
            },
            update,
        },
        packing::{int_tensor, memory_words, trit_words, unpack_trits},
        types::{GradNormalization, NoiseKey, UpdateHyper},
        Conv1dGeometry, TernaryBackend, TernaryPrimitive, TernaryState,
    };
    use rand::{rngs::StdRng, Rng, SeedableRng};

    use super::common::*;

    /// The tables by name, in the order `all` would run them.
    const TABLES: &[(&str, fn())] = &[
        ("kernel_timings", kernel_timings),
        ("all_tables", all_tables),
        ("denoise_benchmarks", denoise_benchmarks),
        ("embedding_benchmarks", embedding_benchmarks),
        ("gemm_benchmarks", gemm_benchmarks),
        ("f32_route_sweep", f32_route_sweep),
        ("conv_benchmarks", conv_benchmarks),
        ("gemv_tuning", gemv_tuning),
        ("plane_gemv_tuning", plane_gemv_tuning),
        ("gemv_device_profile", gemv_device_profile),
        ("gemv_benchmarks", gemv_benchmarks),
        ("update_benchmarks", update_benchmarks),
        ("launch_cost_benchmarks", launch_cost_benchmarks),
        ("module_forward_benchmarks", module_forward_benchmarks),
        ("small_shape_benchmarks", small_shape_benchmarks),
    ];

    pub fn main() {
        // `cargo bench` passes `--bench`; libtest-style flags are ignored.
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with("--") || a == "--list")
            .collect();
        if args.iter().any(|a| a == "--list") {
            for (name, _) in TABLES {
                println!("{name}");
            }
            return;
        }
        if args.is_empty() {
            all_tables();
            return;
        }
        for name in &args {
            let Some((_, run)) = TABLES.iter().find(|(table, _)| table == name) else {
                eprintln!("unknown table {name:?}; `--list` prints the names");
                std::process::exit(2);
            };
            println!("## {name}\n");
            run();
        }
    }

    /// Loose agreement check for the timing run: Burn's dense f32 matmul may use
    /// TF32 tensor cores on CUDA (about 1e-3 relative error), so only gross
    /// errors are caught here; exactness is what the other tests check.
    fn sanity(case: &str, got: &[f32], want: &[f32]) {
        let diff2: f64 = got
            .iter()
            .zip(want)
            .map(|(&g, &w)| (g as f64 - w as f64).powi(2))
            .sum();
        let want2: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
        let rel = (diff2 / want2).sqrt();
        assert!(
            got.len() == want.len() && rel < 1e-2,
            "{case}: relative L2 {rel:.3e} vs dense"
        );
    }

    /// Median wall time of `f` over `iters` runs, after two warm-up runs, each
    /// run ending with a device sync.
    fn time_ms<T>(iters: usize, mut f: impl FnMut() -> T) -> f64 {
        let device = gpu_device();
        let mut samples = Vec::with_capacity(iters);
        for i in 0..iters + 2 {
            let start = Instant::now();
            let out = f();
            Gpu::sync(&device).unwrap();
            drop(out);
            if i >= 2 {
                samples.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        samples[samples.len() / 2]
    }

    /// Times the ternary kernels against Burn's dense f32 matmul with the same
    /// (already unpacked) weight on the same device, and checks the results agree.
    fn kernel_timings() {
        let device = gpu_device();
        let mut rng = StdRng::seed_from_u64(7);
        let (rows, cols) = (4096, 4096);
        let weight = HostWeight::random(&mut rng, rows, cols);
        let w = weight.on::<Gpu>(&device);
        let dense = dense_weight::<Gpu>(&w);
        let dense_t = dense.clone().transpose().into_data();
        let dense_t = Tensor::<Gpu, 2>::from_data(dense_t, &device);
        println!("shape rows={rows} cols={cols}; median ms of 20 runs; dense = Burn f32 matmul");
        println!(
            "{:<24} {:>6} {:>10} {:>10} {:>8}",
            "op", "m", "ternary", "dense", "speedup"
        );
        for m in [1usize, 4, 16, 17, 128, 1024, 4096] {
            let x = Tensor::<Gpu, 2>::random([m, cols], Distribution::Uniform(-1.0, 1.0), &device);
            let gy = Tensor::<Gpu, 2>::random([m, rows], Distribution::Uniform(-1.0, 1.0), &device);
            let prim = |t: &Tensor<Gpu, 2>| t.clone().into_primitive().tensor();

            let fwd = || Gpu::ternary_matmul(prim(&x), w.clone(), empty_port::<Gpu>(&device));
            let dense_fwd = || x.clone().matmul(dense_t.clone());
            let got = read::<Gpu>(fwd());
            let want = dense_fwd().into_data().to_vec::<f32>().unwrap();
            sanity(&format!("forward m={m}"), &got, &want);
            let t_tern = time_ms(20, fwd);
            let t_dense = time_ms(20, dense_fwd);
            println!(
                "{:<24} {:>6} {:>10.4} {:>10.4} {:>7.2}x",
                "forward",
                m,
                t_tern,
                t_dense,
                t_dense / t_tern
            );

            let bwd = || Gpu::ternary_matmul_input_grad(prim(&gy), w.clone());
            let dense_bwd = || gy.clone().matmul(dense.clone());
            let got = read::<Gpu>(bwd());
            let want = dense_bwd().into_data().to_vec::<f32>().unwrap();
            sanity(&format!("input grad m={m}"), &got, &want);
            let t_tern = time_ms(20, bwd);
            let t_dense = time_ms(20, dense_bwd);
            println!(
                "{:<24} {:>6} {:>10.4} {:>10.4} {:>7.2}x",
                "input grad",
                m,
                t_tern,
                t_dense,
                t_dense / t_tern
            );
        }

        let (batch, features) = (64, 65536);
        let latent = Tensor::<Gpu, 2>::random([batch, features], Distribution::Default, &device);
        let eps = Tensor::<Gpu, 2>::random([batch, features], Distribution::Default, &device);
        let alpha = Tensor::<Gpu, 1>::random([batch], Distribution::Uniform(0.1, 1.0), &device);
        let fused = || {
            Gpu::denoise_step(
                latent.clone().into_primitive().tensor(),
                eps.clone().into_primitive().tensor(),
                alpha.clone().into_primitive().tensor(),
            )
        };
        let unfused = || {
            denoise::reference::forward::<Gpu>(
                latent.clone().into_primitive().tensor(),
                eps.clone().into_primitive().tensor(),
                alpha.clone().into_primitive().tensor(),
            )
        };
        let t_fused = time_ms(20, fused);
        let t_ref = time_ms(20, unfused);
        println!(
            "{:<24} {:>6} {:>10.4} {:>10.4} {:>7.2}x   (dense = reference element-wise ops)",
            "denoise step",
            batch,
            t_fused,
            t_ref,
            t_ref / t_fused
        );
    }

    /// Least warm-up before each [`stream_ms`] measurement. Three calls were not
    /// enough on WGPU on the H200: there the same kernel measured up to 4×
    /// slower in the first column of a table than in a later one.
    const STREAM_WARMUP: std::time::Duration = std::time::Duration::from_millis(300);

    /// How the tables' `stream_ms` figures were taken, printed above them.
    const STREAM_TIMING: &str = "timing: mean of N back-to-back calls, one sync, best of 3 batches, after ≥ 300 ms of warm-up (stream_ms)";

    /// Mean time per call in ms of `f` over `iters` back-to-back calls with one
    /// device sync at the end (launch overhead overlaps with execution, as in a
    /// model's stream of kernels); best of three such batches, after a warm-up
    /// of at least three calls and [`STREAM_WARMUP`].
    fn stream_ms<T>(iters: usize, mut f: impl FnMut() -> T) -> f64 {
        let device = gpu_device();
        let warmup = Instant::now();
        let mut calls = 0;
        while calls < 3 || warmup.elapsed() < STREAM_WARMUP {
            drop(f());
            calls += 1;
            if calls % 8 == 0 {
                // Bounds the queue, so the clock measures executed work.
                Gpu::sync(&device).unwrap();
            }
        }
        Gpu::sync(&device).unwrap();
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            for _ in 0..iters {
                drop(f());
            }
            Gpu::sync(&device).unwrap();
            best = best.min(start.elapsed().as_secs_f64() * 1e3 / iters as f64);
        }
        best
    }

    /// Extra device memory reserved while running `f` once (the pool's reserved
    /// bytes after minus before, with a cleanup first): an upper bound of the op's
    /// peak temporary + output memory, rounded up to the pool's pages.
    fn reserved_delta_mib<T>(probe: &FloatTensor<Gpu>, f: impl FnOnce() -> T) -> f64 {
        let device = gpu_device();
        Gpu::sync(&device).unwrap();
        probe.client.memory_cleanup();
        let before = probe.client.memory_usage().unwrap().bytes_reserved;
        let out = f();
        Gpu::sync(&device).unwrap();
        let after = probe.client.memory_usage().unwrap().bytes_reserved;
        drop(out);
        (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0)
    }

    fn prim2(t: &Tensor<Gpu, 2>) -> FloatTensor<Gpu> {
        t.clone().into_primitive().tensor()
    }

    fn prim3(t: &Tensor<Gpu, 3>) -> FloatTensor<Gpu> {
        t.clone().into_primitive().tensor()
    }

    /// Every table (GEMV, GEMM, conv, denoise, embedding gradient, optimizer
    /// update), in markdown. Ternary weights are random trits with random row
    /// scales; dense operands are random tensors of the same logical shape.
    fn all_tables() {
        let mut rng = StdRng::seed_from_u64(11);
        println!("{STREAM_TIMING}");

        let copy_gbs = copy_bandwidth();
        println!();

        gemv_table(&mut rng, copy_gbs, GemvSetup::default());

        gemm_table(&mut rng);

        conv_table(&mut rng);

        denoise_table(copy_gbs);

        embedding_grad_table(&mut rng);

        update_table(&mut rng, copy_gbs);
    }

    /// The denoise rows of the benchmark table: the fused forward + backward
    /// kernels against the same formula composed of Burn ops, and the fused
    /// pair's bandwidth against `copy_gbs`.
    fn denoise_table(copy_gbs: f64) {
        let device = gpu_device();
        println!("\n### Denoise step, forward + backward, f32\n");
        println!("| shape | fused ms | reference ms | ref / fused | fused GB/s | % of copy |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (batch, features) in [(64usize, 65536usize), (128, 262144)] {
            let latent =
                Tensor::<Gpu, 2>::random([batch, features], Distribution::Default, &device);
            let eps = Tensor::<Gpu, 2>::random([batch, features], Distribution::Default, &device);
            let grad = Tensor::<Gpu, 2>::random([batch, features], Distribution::Default, &device);
            let alpha = Tensor::<Gpu, 1>::random([batch], Distribution::Uniform(0.1, 1.0), &device);
            let a = || alpha.clone().into_primitive().tensor();
            let fused = || {
                let y = Gpu::denoise_step(prim2(&latent), prim2(&eps), a());
                (y, Gpu::denoise_step_backward(prim2(&grad), a()))
            };
            let reference = || {
                let y = denoise::reference::forward::<Gpu>(prim2(&latent), prim2(&eps), a());
                (y, denoise::reference::backward::<Gpu>(prim2(&grad), a()))
            };
            let tf = stream_ms(20, fused);
            let tr = stream_ms(20, reference);
            // forward: 2 reads + 1 write; backward: 1 read + 2 writes (4 B each).
            let bytes = 24.0 * (batch * features) as f64;
            let gbs = bytes / (tf * 1e6);
            println!(
                "| {batch} × {features} | {tf:.4} | {tr:.4} | {:.2}× | {gbs:.0} | {:.0}% |",
                tr / tf,
                100.0 * gbs / copy_gbs
            );
        }
    }

    /// The denoise table alone (see [`all_tables`]).
    fn denoise_benchmarks() {
        let copy_gbs = copy_bandwidth();
        denoise_table(copy_gbs);
    }

    /// The embedding-gradient rows of the benchmark table: the scatter-add
    /// kernel against the reference (checked to agree first).
    fn embedding_grad_table(rng: &mut StdRng) {
        let device = gpu_device();
        println!("\n### Embedding table gradient (scatter-add), f32\n");
        println!("| n | rows | cols | kernel ms | reference ms | ref / kernel |");
        println!("|---:|---:|---:|---:|---:|---:|");
        for (n, rows, cols) in [(8192usize, 32000usize, 1024usize), (65536, 256, 512)] {
            let ids: Vec<i32> = (0..n).map(|_| rng.random_range(0..rows as i32)).collect();
            let ids = Tensor::<Gpu, 1, Int>::from_data(TensorData::new(ids, [n]), &device);
            let grad = Tensor::<Gpu, 2>::random([n, cols], Distribution::Default, &device);
            let got = read::<Gpu>(Gpu::ternary_embedding_weight_grad(
                ids.clone().into_primitive(),
                prim2(&grad),
                rows,
            ));
            let want = read::<Gpu>(embedding::reference::weight_grad::<Gpu>(
                ids.clone().into_primitive(),
                prim2(&grad),
                rows,
            ));
            sanity(&format!("embedding grad n={n} rows={rows}"), &got, &want);
            let tk = stream_ms(10, || {
                Gpu::ternary_embedding_weight_grad(ids.clone().into_primitive(), prim2(&grad), rows)
            });
            let tr = stream_ms(10, || {
                embedding::reference::weight_grad::<Gpu>(
                    ids.clone().into_primitive(),
                    prim2(&grad),
                    rows,
                )
            });
            println!(
                "| {n} | {rows} | {cols} | {tk:.3} | {tr:.3} | {:.2}× |",
                tr / tk
            );
        }
    }

    /// The embedding-gradient table alone (see [`all_tables`]).
    fn embedding_benchmarks() {
        embedding_grad_table(&mut StdRng::seed_from_u64(11));
    }

    /// The GEMM rows of the benchmark table (M = 8192, K = N = 4096, forward and
    /// input gradient): f32 activations on the split-f16 tensor-core route (the
    /// default on CUDA) and on the FMA kernels, f16 activations, Burn's dense
    /// f32 (TF32 on tensor cores) and f16 matmul; then each route's error on
    /// 64 rows against an f64 product on the host.
    fn gemm_table(rng: &mut StdRng) {
        use burn::tensor::FloatDType;
        let device = gpu_device();
        let (m, k, n) = (8192usize, 4096usize, 4096usize);
        let weight = HostWeight::random(rng, n, k);
        let w = weight.on::<Gpu>(&device);
        let dense = dense_weight::<Gpu>(&w); // [n, k], f32, the same logical weight
        let x = Tensor::<Gpu, 2>::random([m, k], Distribution::Uniform(-1.0, 1.0), &device);
        let gy = Tensor::<Gpu, 2>::random([m, n], Distribution::Uniform(-1.0, 1.0), &device);
        let dense16 = dense.clone().cast(FloatDType::F16);
        let x16 = x.clone().cast(FloatDType::F16);
        let gy16 = gy.clone().cast(FloatDType::F16);
        let flops = 2.0 * (m * n * k) as f64;

        println!("\n### GEMM: M = 8192, K = N = 4096\n");
        println!("f32 TC: f32 activations on the split-f16 tensor-core route (two f16 limbs, f32 accumulation); f32 FMA: the exact FMA kernels; f32 default: whichever `F32TensorCores::Auto` picks on this device (TC on CUDA at this size); dense f32 is Burn's matmul (TF32 on tensor cores where it has them).\n");
        println!("| op | ternary f32 TC ms | ternary f32 FMA ms | ternary f32 default ms | ternary f16 ms | dense f32 ms | dense f16 ms | f32 TC TFLOP/s | f32 TC / dense f32 | f32 TC / dense f16 | f16 / dense f16 | FMA / f32 TC |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        // `a · Wᵀ`, or `a · W` for the input gradient: the ternary op, and Burn's
        // matmul on the dense weight.
        let ternary = |a: &Tensor<Gpu, 2>, input_grad: bool, f32_tensor_cores: F32TensorCores| {
            let policy = MatmulPolicy {
                f32_tensor_cores,
                ..MatmulPolicy::default()
            };
            matmul_with(prim2(a), &w, input_grad, policy)
        };
        let dense_product = |a: &Tensor<Gpu, 2>, weight: &Tensor<Gpu, 2>, input_grad: bool| {
            if input_grad {
                a.clone().matmul(weight.clone())
            } else {
                a.clone().matmul(weight.clone().transpose())
            }
        };
        for input_grad in [false, true] {
            let ternary = |a: &Tensor<Gpu, 2>, policy| ternary(a, input_grad, policy);
            let (a, a16) = if input_grad { (&gy, &gy16) } else { (&x, &x16) };
            let t_tc = stream_ms(5, || ternary(a, F32TensorCores::Always));
            let t_fma = stream_ms(5, || ternary(a, F32TensorCores::Never));
            let t_auto = stream_ms(5, || ternary(a, F32TensorCores::Auto));
            let t_16 = stream_ms(5, || ternary(a16, F32TensorCores::Auto));
            let t32 = stream_ms(5, || dense_product(a, &dense, input_grad));
            let t16 = stream_ms(5, || dense_product(a16, &dense16, input_grad));
            println!(
            "| {} | {t_tc:.3} | {t_fma:.3} | {t_auto:.3} | {t_16:.3} | {t32:.3} | {t16:.3} | {:.1} | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
            if input_grad { "input grad" } else { "forward" },
            flops / (t_tc * 1e9),
            t_tc / t32,
            t_tc / t16,
            t_16 / t16,
            t_fma / t_tc
        );
        }

        // Accuracy on the first 64 rows, against f64 on the host.
        let rows = 64;
        let trits = unpack_trits(&weight.packed, n, k);
        println!("\nError on {rows} rows vs an f64 product on the host (relative L2; max abs error / max |want|):\n");
        println!("| op | f32 TC | f32 FMA | dense f32 (TF32) | f16 |");
        println!("|---|---|---|---|---|");
        for input_grad in [false, true] {
            let (a, inner, outer) = if input_grad { (&gy, n, k) } else { (&x, k, n) };
            let a = a.clone().slice([0..rows, 0..inner]);
            let host_a = a.clone().into_data().to_vec::<f32>().unwrap();
            let mut want = vec![0f64; rows * outer];
            for i in 0..rows {
                let xi = &host_a[i * inner..(i + 1) * inner];
                let out = &mut want[i * outer..(i + 1) * outer];
                if input_grad {
                    // Row by row of the weight, so that the trits are read in order.
                    for (r, &g) in xi.iter().enumerate() {
                        let a = g as f64 * weight.scale[r] as f64;
                        for (slot, &t) in out.iter_mut().zip(&trits[r * k..(r + 1) * k]) {
                            *slot += a * t as f64;
                        }
                    }
                } else {
                    for (o, slot) in out.iter_mut().enumerate() {
                        let row = &trits[o * k..(o + 1) * k];
                        let dot: f64 = xi.iter().zip(row).map(|(&x, &t)| x as f64 * t as f64).sum();
                        *slot = weight.scale[o] as f64 * dot;
                    }
                }
            }
            let error = |got: Vec<f32>| {
                let (mut diff, mut norm, mut max_abs, mut max_want) = (0f64, 0f64, 0f64, 0f64);
                for (g, w) in got.iter().zip(&want) {
                    let d = *g as f64 - w;
                    diff += d * d;
                    norm += w * w;
                    max_abs = max_abs.max(d.abs());
                    max_want = max_want.max(w.abs());
                }
                format!("{:.1e}; {:.1e}", (diff / norm).sqrt(), max_abs / max_want)
            };
            // The tensor-core route needs m >= 64: exactly these 64 rows.
            let ternary = |a: &Tensor<Gpu, 2>, policy| {
                read::<Gpu>(
                    Tensor::<Gpu, 2>::from_primitive(TensorPrimitive::Float(ternary(
                        a, input_grad, policy,
                    )))
                    .cast(FloatDType::F32)
                    .into_primitive()
                    .tensor(),
                )
            };
            let tc = error(ternary(&a, F32TensorCores::Always));
            let fma = error(ternary(&a, F32TensorCores::Never));
            let half = error(ternary(
                &a.clone().cast(FloatDType::F16),
                F32TensorCores::Auto,
            ));
            let tf32 = error(
                dense_product(&a, &dense, input_grad)
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap(),
            );
            println!(
                "| {} | {tc} | {fma} | {tf32} | {half} |",
                if input_grad { "input grad" } else { "forward" }
            );
        }
    }

    /// The GEMM table alone (see [`gemm_table`]).
    fn gemm_benchmarks() {
        println!("{STREAM_TIMING}");
        gemm_table(&mut StdRng::seed_from_u64(13));
    }

    /// Where the split-f16 route pays: f32 forward and input gradient through
    /// the route (`F32TensorCores::Always`) and the FMA kernels (`Never`) over a
    /// grid of `m` and square weights, stream time per call (autotuned matmul,
    /// as in training). Where `F32TensorCores::Auto` takes the route comes from
    /// this table.
    fn f32_route_sweep() {
        let device = gpu_device();
        let mut rng = StdRng::seed_from_u64(14);
        println!("{STREAM_TIMING}");
        println!("one tiny Burn op: {:.4} ms\n", launch_floor_ms());
        println!("| m | k = n | m·k·n | fwd FMA ms | fwd route ms | FMA / route | grad FMA ms | grad route ms | FMA / route |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for size in [256usize, 512, 1024, 2048, 4096] {
            let weight = HostWeight::random(&mut rng, size, size);
            let w = weight.on::<Gpu>(&device);
            for m in [64usize, 128, 256, 512, 1024, 2048, 4096] {
                let macs = (m * size * size) as f64;
                let iters = (4e9 / macs).clamp(3.0, 100.0) as usize;
                let a =
                    Tensor::<Gpu, 2>::random([m, size], Distribution::Uniform(-1.0, 1.0), &device);
                let mut cells = Vec::new();
                for input_grad in [false, true] {
                    let run = |f32_tensor_cores| {
                        let policy = MatmulPolicy {
                            f32_tensor_cores,
                            ..MatmulPolicy::default()
                        };
                        let (a, w) = (&a, &w);
                        move || matmul_with(prim2(a), w, input_grad, policy)
                    };
                    let fma = stream_ms(iters, run(F32TensorCores::Never));
                    let route = stream_ms(iters, run(F32TensorCores::Always));
                    cells.push(format!("{fma:.4} | {route:.4} | {:.2}×", fma / route));
                }
                println!(
                    "| {m} | {size} | {:.2e} | {} | {} |",
                    macs, cells[0], cells[1]
                );
            }
        }
    }

    /// Per-call floor of one tiny Burn launch (8 floats + 1), ms: below this a
    /// stream of back-to-back calls is bound by the host, not the kernel.
    fn launch_floor_ms() -> f64 {
        let tiny = Tensor::<Gpu, 1>::random([8], Distribution::Default, &gpu_device());
        stream_ms(200, || tiny.clone().add_scalar(1.0))
    }

    /// The GEMV rows of the benchmark table: the default path (on CUDA the int8
    /// tensor-core GEMV for `m <= 8`), the plane GEMV it replaced, f16
    /// activations, and Burn's dense f32/f16 matmul of the same logical shape.
    fn gemv_table(rng: &mut StdRng, copy_gbs: f64, setup: GemvSetup) {
        use burn::tensor::FloatDType;
        let device = gpu_device();
        println!(
            "launch floor (one tiny Burn op, back-to-back): {:.4} ms\n",
            launch_floor_ms()
        );
        println!("### GEMV: y[M, N] = x[M, K] · Wᵀ, W ternary [N, K]\n");
        println!("ms per call of back-to-back calls with one sync (`stream_ms`); a Burn op costs at least the launch floor above on the host, so the decode shapes (16–28 MiB of packed trits, 4–7 µs at copy speed) are host-bound; the 32768 × 32768 rows (256 MiB) show the kernels' device-bound rate.\n");
        println!("\"ternary f32\" is the default path (on CUDA the tensor-core GEMV, in one launch where the limbs fit in shared memory); \"two-launch\" forces its prepass form.\n");
        println!("| M | K | N | ternary f32 ms | two-launch f32 ms | plane GEMV f32 ms | ternary f16 ms | dense f32 ms | dense f16 ms | f16 dense / ternary f32 | f16 dense / ternary f16 | packed weight GB/s (f32) | % of copy |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (k, n) in GEMV_SHAPES {
            // Burn's WGPU matmul on a 4 GiB dense f32 weight (the 32768² peer)
            // lost the device on the H200's Vulkan driver, which
            // ends the whole run; the ternary kernels themselves are not at issue.
            if cfg!(feature = "wgpu") && k * n * 4 > u32::MAX as usize {
                println!("| – | {k} | {n} | skipped on WGPU: the dense f32 peer weight is 4 GiB or more | | | | | | | | | |");
                continue;
            }
            let weight = HostWeight::random(rng, n, k);
            let w = weight.on::<Gpu>(&device);
            let dense_f32 = Tensor::<Gpu, 2>::random([k, n], Distribution::Default, &device);
            let dense_f16 = dense_f32.clone().cast(FloatDType::F16);
            for m in [1usize, 8] {
                // Sanity: both GEMV paths against Burn's matmul on the unpacked weight.
                let x = Tensor::<Gpu, 2>::random([m, k], Distribution::Default, &device);
                let want = x
                    .clone()
                    .matmul(dense_weight::<Gpu>(&w).transpose())
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap();
                for tensor_cores in [true, false] {
                    let policy = MatmulPolicy {
                        tensor_core_gemv: tensor_cores,
                        ..MatmulPolicy::default()
                    };
                    let got = read::<Gpu>(matmul_with(prim2(&x), &w, false, policy));
                    sanity(
                        &format!("gemv m={m} K={k} N={n} tensor_cores={tensor_cores}"),
                        &got,
                        &want,
                    );
                }
                let x16 = x.clone().cast(FloatDType::F16);
                let iters = 200;
                let plane = GemvSetup {
                    plane: true,
                    ..setup
                };
                let two_launch = GemvSetup {
                    mma: MmaGemvTune {
                        fused: false,
                        ..setup.mma
                    },
                    ..setup
                };
                let on = |setup: GemvSetup| gemv_route(setup, m, n, k);
                let (route_plane, route_two, route) = (on(plane), on(two_launch), on(setup));
                let t_plane = stream_ms(iters, || matmul_on(&route_plane, prim2(&x), &w, false));
                let t_two = stream_ms(iters, || matmul_on(&route_two, prim2(&x), &w, false));
                let t_tern = stream_ms(iters, || matmul_on(&route, prim2(&x), &w, false));
                let t_tern16 = stream_ms(iters, || matmul_on(&route, prim2(&x16), &w, false));
                let t_f32 = stream_ms(iters, || x.clone().matmul(dense_f32.clone()));
                let t_f16 = stream_ms(iters, || x16.clone().matmul(dense_f16.clone()));
                let packed = (n * trit_words(k) * 4) as f64;
                let gbs = packed / (t_tern * 1e6);
                println!(
                "| {m} | {k} | {n} | {t_tern:.4} | {t_two:.4} | {t_plane:.4} | {t_tern16:.4} | {t_f32:.4} | {t_f16:.4} | {:.2}× | {:.2}× | {gbs:.0} | {:.0}% |",
                t_f16 / t_tern,
                t_f16 / t_tern16,
                100.0 * gbs / copy_gbs
            );
            }
        }
    }

    /// The conv1d rows of the benchmark table: the implicit-im2col kernels
    /// against the reference (explicit unfold + matmul for the forward, Burn's
    /// `conv_transpose1d` on the unpacked weight for the input gradient), time
    /// and the memory pool's growth.
    fn conv_table(rng: &mut StdRng) {
        let device = gpu_device();
        println!("\n### Conv1d: implicit-im2col kernel vs reference (explicit unfold + matmul; Burn conv_transpose1d for the input grad)\n");
        println!("\"kernel ms\" is the built-in register block; \"block 4/8 ms\" force each.\n");
        println!("| op | shape | kernel ms | block 4 ms | block 8 ms | reference ms | ref / kernel | kernel extra MiB | reference extra MiB |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        // ms per call for the built-in block, block 4 and block 8.
        let per_block = |f: &dyn Fn(Option<usize>) -> FloatTensor<Gpu>| -> [f64; 3] {
            [None, Some(4), Some(8)].map(|block| stream_ms(10, || f(block)))
        };
        for (batch, c, length, rows, ks, stride, pad, dil) in [
            (
                8usize, 256usize, 4096usize, 256usize, 3usize, 1usize, 1usize, 1usize,
            ),
            (4, 512, 2048, 512, 5, 2, 2, 1),
            (4, 256, 4096, 256, 8, 4, 2, 1),
        ] {
            let g = Conv1dGeometry {
                in_channels: c,
                kernel_size: ks,
                stride,
                padding: pad,
                dilation: dil,
            };
            let out_len = g.output_len(length).unwrap();
            let weight = HostWeight::random(rng, rows, c * ks);
            let w = weight.on::<Gpu>(&device);
            let x = Tensor::<Gpu, 3>::random([batch, c, length], Distribution::Default, &device);
            let gy =
                Tensor::<Gpu, 3>::random([batch, rows, out_len], Distribution::Default, &device);
            let shape =
                format!("b={batch} C={c} L={length} rows={rows} K={ks} s={stride} p={pad} d={dil}");
            let got = read3::<Gpu>(Gpu::ternary_conv1d(
                prim3(&x),
                w.clone(),
                g,
                empty_port::<Gpu>(&device),
            ));
            let want = read3::<Gpu>(conv1d::reference::forward::<Gpu>(prim3(&x), &w, g));
            sanity(&format!("conv forward {shape}"), &got, &want);
            let probe = prim3(&x);
            let mem_k = reserved_delta_mib(&probe, || {
                Gpu::ternary_conv1d(prim3(&x), w.clone(), g, empty_port::<Gpu>(&device))
            });
            let mem_r = reserved_delta_mib(&probe, || {
                conv1d::reference::forward::<Gpu>(prim3(&x), &w, g)
            });
            let [tk, t4, t8] = per_block(&|block| {
                conv1d::kernel_forward(prim3(&x), w.trits.clone(), w.scale.clone(), rows, g, block)
            });
            let tr = stream_ms(10, || conv1d::reference::forward::<Gpu>(prim3(&x), &w, g));
            println!(
            "| forward | {shape} | {tk:.3} | {t4:.3} | {t8:.3} | {tr:.3} | {:.2}× | {mem_k:.0} | {mem_r:.0} |",
            tr / tk
        );
            let got = read3::<Gpu>(Gpu::ternary_conv1d_input_grad(
                prim3(&gy),
                w.clone(),
                g,
                length,
            ));
            let want = read3::<Gpu>(conv1d::reference::input_grad::<Gpu>(
                prim3(&gy),
                &w,
                g,
                length,
            ));
            sanity(&format!("conv input grad {shape}"), &got, &want);
            let mem_k = reserved_delta_mib(&probe, || {
                Gpu::ternary_conv1d_input_grad(prim3(&gy), w.clone(), g, length)
            });
            let mem_r = reserved_delta_mib(&probe, || {
                conv1d::reference::input_grad::<Gpu>(prim3(&gy), &w, g, length)
            });
            let [tk, t4, t8] = per_block(&|block| {
                conv1d::kernel_input_grad(
                    prim3(&gy),
                    w.trits.clone(),
                    w.scale.clone(),
                    g,
                    length,
                    block,
                )
            });
            let tr = stream_ms(10, || {
                conv1d::reference::input_grad::<Gpu>(prim3(&gy), &w, g, length)
            });
            println!(
            "| input grad | {shape} | {tk:.3} | {t4:.3} | {t8:.3} | {tr:.3} | {:.2}× | {mem_k:.0} | {mem_r:.0} |",
            tr / tk
        );
        }
    }

    /// The conv1d table alone (see [`conv_table`]).
    fn conv_benchmarks() {
        let mut rng = StdRng::seed_from_u64(11);
        conv_table(&mut rng);
    }

    /// The tensor-core GEMV's launch shape: row tiles per cube × chunks in
    /// flight per plane × planes aimed for, on a device-bound shape and one of
    /// the decode shapes.
    fn gemv_tuning() {
        let device = gpu_device();
        assert!(
            gpu_caps().int8_mma,
            "gemv_tuning times the tensor-core GEMV: a device with int8 mma (CUDA)"
        );
        let mut rng = StdRng::seed_from_u64(5);
        println!("| M | K = N | row tiles | chunks in flight | planes aimed for | ms |");
        println!("|---:|---:|---:|---:|---:|---:|");
        for k in [8192usize, 32768] {
            let w = HostWeight::random(&mut rng, k, k).on::<Gpu>(&device);
            for m in [1usize, 8] {
                let x = Tensor::<Gpu, 2>::random([m, k], Distribution::Default, &device);
                for row_tiles in [1, 2] {
                    for depth in [1, 2, 3] {
                        for planes in [4096, 8192] {
                            let tune = MmaGemvTune {
                                row_tiles: Some(row_tiles),
                                target_planes: Some(planes),
                                depth: Some(depth),
                                ..MmaGemvTune::default()
                            };
                            let route = MatmulRoute::TensorCoreGemv(tensor_core_gemv_blocks(
                                m,
                                k,
                                k,
                                gpu_caps(),
                                tune,
                            ));
                            let t = stream_ms(100, || matmul_on(&route, prim2(&x), &w, false));
                            println!("| {m} | {k} | {row_tiles} | {depth} | {planes} | {t:.4} |");
                        }
                    }
                }
            }
        }
    }

    /// The plane GEMV's launch shapes at the decode GEMV
    /// shapes, `m` = 1, 2, 4 and 8: one row per `PLANE_TUNES` entry
    /// (`"wpl rb group max_planes"`, comma-separated; 0 = built-in; default: the
    /// built-in choice alone), each timed in two passes over the entries (the
    /// first timing after a new weight can read slow on WGPU); the row shows
    /// both and their minimum.
    fn plane_gemv_tuning() {
        let device = gpu_device();
        let mut rng = StdRng::seed_from_u64(5);
        let tunes = std::env::var("PLANE_TUNES").unwrap_or_else(|_| "0 0 0 0".into());
        let tunes: Vec<[usize; 4]> = tunes
            .split(',')
            .map(|t| knobs::<4>("PLANE_TUNES", t))
            .collect();
        println!("{STREAM_TIMING}");
        println!("| M | K | N | wpl rb group planes | ms (pass 1 / pass 2) | ms |");
        println!("|---:|---:|---:|---|---|---:|");
        for (k, n) in &GEMV_SHAPES[..3] {
            let w = HostWeight::random(&mut rng, *n, *k).on::<Gpu>(&device);
            for m in [1usize, 2, 4, 8] {
                let x = Tensor::<Gpu, 2>::random([m, *k], Distribution::Default, &device);
                let mut times = vec![Vec::new(); tunes.len()];
                for _pass in 0..2 {
                    for (tune, t) in tunes.iter().zip(&mut times) {
                        let route = gemv_route(
                            GemvSetup {
                                plane: true,
                                plane_tune: plane_tune(*tune),
                                ..GemvSetup::default()
                            },
                            m,
                            *n,
                            *k,
                        );
                        t.push(stream_ms(200, || matmul_on(&route, prim2(&x), &w, false)));
                    }
                }
                for (tune, t) in tunes.iter().zip(&times) {
                    println!(
                        "| {m} | {k} | {n} | {} {} {} {} | {:.4} / {:.4} | {:.4} |",
                        tune[0],
                        tune[1],
                        tune[2],
                        tune[3],
                        t[0],
                        t[1],
                        t[0].min(t[1])
                    );
                }
            }
        }
    }

    /// Shapes of the GEMV table, `(K, N)`: three decode shapes of a 7-8 B model (8192², 4096 × 14336, 14336 × 4096) and one whose
    /// 256 MiB of trits is far larger than the L2 cache.
    const GEMV_SHAPES: [(usize, usize); 4] =
        [(8192, 8192), (4096, 14336), (14336, 4096), (32768, 32768)];

    /// `N` whitespace-separated unsigned integers from `text`, the value of the
    /// environment variable `name` (or one comma-separated entry of it).
    ///
    /// # Panics
    ///
    /// Naming `name` and `text`, if `text` is not exactly `N` unsigned integers.
    fn knobs<const N: usize>(name: &str, text: &str) -> [usize; N] {
        let knobs: Vec<usize> = text
            .split_whitespace()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}: {N} unsigned integers, got {text:?}"))
            })
            .collect();
        knobs
            .try_into()
            .unwrap_or_else(|_| panic!("{name}: expected {N} values, got {text:?}"))
    }

    /// The GEMV launch shapes the GEMV table and profile run (the route's own by
    /// default): `GEMV_PATH` (`mma`, the default; `prepass`, the tensor-core
    /// GEMV's two-launch form; `plane`, the plane GEMV),
    /// `GEMV_TUNE="row_tiles target_planes depth max_planes"` for the
    /// tensor-core GEMV, `GEMV_FUSED_KIB` for the shared memory its one-launch
    /// form may use, `GEMV_GROUPS` for its row groups per cube, and
    /// `PLANE_TUNE="wpl rb group max_planes"` for the plane GEMV (0 = the
    /// built-in choice for any value).
    #[derive(Clone, Copy, Debug, Default)]
    struct GemvSetup {
        /// The plane GEMV (else the tensor-core GEMV where the device has it).
        plane: bool,
        mma: MmaGemvTune,
        plane_tune: PlaneGemvTune,
    }

    /// `0` as `None` (the built-in choice).
    fn given(value: usize) -> Option<usize> {
        (value > 0).then_some(value)
    }

    /// The plane GEMV's tuning values from `[wpl, rb, group, max_planes]`.
    fn plane_tune([wpl, rb, group, max_planes]: [usize; 4]) -> PlaneGemvTune {
        PlaneGemvTune {
            wpl: given(wpl),
            rb: given(rb),
            group: given(group),
            max_planes: given(max_planes),
        }
    }

    fn gemv_setup_from_env() -> GemvSetup {
        let mut setup = GemvSetup::default();
        match std::env::var("GEMV_PATH").unwrap_or_default().as_str() {
            "" | "mma" => {}
            "prepass" => setup.mma.fused = false,
            "plane" => setup.plane = true,
            other => panic!("GEMV_PATH: mma, prepass or plane, got {other:?}"),
        }
        if let Ok(tune) = std::env::var("PLANE_TUNE") {
            setup.plane_tune = plane_tune(knobs::<4>("PLANE_TUNE", &tune));
        }
        if let Ok(tune) = std::env::var("GEMV_TUNE") {
            let [row_tiles, target_planes, depth, max_planes] = knobs::<4>("GEMV_TUNE", &tune);
            setup.mma.row_tiles = given(row_tiles);
            setup.mma.target_planes = given(target_planes);
            setup.mma.depth = given(depth);
            setup.mma.max_planes = given(max_planes);
        }
        if let Some(kib) = env_usize("GEMV_FUSED_KIB", "KiB") {
            setup.mma.fused_shared_bytes = given(kib * 1024);
        }
        if let Some(groups) = env_usize("GEMV_GROUPS", "row blocks per cube") {
            setup.mma.groups = given(groups);
        }
        setup
    }

    /// The forward GEMV route of `setup` for `m <= 16` rows against a
    /// `rows x cols` weight: the tensor-core GEMV where the device has int8
    /// `mma` (unless `setup.plane`), else the plane GEMV where it has plane
    /// operations and `m <= 8`, else the route's own (shared-memory GEMV).
    fn gemv_route(setup: GemvSetup, m: usize, rows: usize, cols: usize) -> MatmulRoute {
        let caps = gpu_caps();
        if caps.int8_mma && !setup.plane && m <= 16 {
            MatmulRoute::TensorCoreGemv(tensor_core_gemv_blocks(m, rows, cols, caps, setup.mma))
        } else if caps.plane_ops && m <= GEMV_PLANE_MAX_M {
            MatmulRoute::PlaneGemv(plane_gemv_launches(m, rows, cols, caps, setup.plane_tune))
        } else {
            let policy = MatmulPolicy {
                tensor_core_gemv: false,
                ..MatmulPolicy::default()
            };
            route(DType::F32, m, rows, cols, false, caps, policy)
        }
    }

    /// `a · Wᵀ`, or `a · W` with `input_grad`, on the route `policy` picks.
    fn matmul_with(
        a: FloatTensor<Gpu>,
        w: &TernaryPrimitive<Gpu>,
        input_grad: bool,
        policy: MatmulPolicy,
    ) -> FloatTensor<Gpu> {
        launch::product(
            a,
            w.trits.clone(),
            w.scale.clone(),
            w.rows,
            w.cols,
            input_grad,
            policy,
        )
    }

    /// `a · Wᵀ`, or `a · W` with `input_grad`, on `route`.
    fn matmul_on(
        route: &MatmulRoute,
        a: FloatTensor<Gpu>,
        w: &TernaryPrimitive<Gpu>,
        input_grad: bool,
    ) -> FloatTensor<Gpu> {
        launch::run(
            route,
            a,
            w.trits.clone(),
            w.scale.clone(),
            w.rows,
            w.cols,
            input_grad,
        )
        .expect("a route with a matmul kernel on this device")
    }

    /// The unsigned integer in environment variable `name`, if set; panics
    /// naming the variable and what it holds (`what`) if it does not parse.
    fn env_usize(name: &str, what: &str) -> Option<usize> {
        let text = std::env::var(name).ok()?;
        Some(text.trim().parse().unwrap_or_else(|_| {
            panic!("{name}: expected an unsigned integer ({what}), got {text:?}")
        }))
    }

    /// Calls for `scripts/ncu_gemv.py`, which runs this under Nsight Compute
    /// and reads the kernels' device durations: three synchronized calls of the
    /// path named by `GEMV_PATH` (`mma`, the default; `prepass`, its two-launch
    /// form; or `plane`) for each GEMV
    /// shape and `M`, or only for `GEMV_ONLY="M K N"`. Prints one
    /// `PROFILE M K N calls` line per shape. The launch shapes: see
    /// [`GemvSetup`].
    fn gemv_device_profile() {
        let device = gpu_device();
        let mut rng = StdRng::seed_from_u64(13);
        let setup = gemv_setup_from_env();
        let calls = 3;
        let only = std::env::var("GEMV_ONLY").ok();
        let wanted = |m: usize, k: usize, n: usize| {
            only.as_ref()
                .is_none_or(|only| *only == format!("{m} {k} {n}"))
        };
        for (k, n) in GEMV_SHAPES {
            if !wanted(1, k, n) && !wanted(8, k, n) {
                continue;
            }
            let w = HostWeight::random(&mut rng, n, k).on::<Gpu>(&device);
            for m in [1usize, 8] {
                if !wanted(m, k, n) {
                    continue;
                }
                let x = Tensor::<Gpu, 2>::random([m, k], Distribution::Default, &device);
                Gpu::sync(&device).unwrap();
                println!("PROFILE {m} {k} {n} {calls}");
                let route = gemv_route(setup, m, n, k);
                for _ in 0..calls {
                    drop(matmul_on(&route, prim2(&x), &w, false));
                    Gpu::sync(&device).unwrap();
                }
            }
        }
    }

    /// The GEMV table alone (see [`gemv_table`]).
    fn gemv_benchmarks() {
        let setup = gemv_setup_from_env();
        let mut rng = StdRng::seed_from_u64(11);
        let copy_gbs = copy_bandwidth();
        println!();
        gemv_table(&mut rng, copy_gbs, setup);
    }

    /// Copy bandwidth through Burn (1 GiB f32 read + 1 GiB written), GB/s,
    /// also printed: every table's "% of copy" is against it.
    fn copy_bandwidth() -> f64 {
        let big = Tensor::<Gpu, 1>::random([1 << 28], Distribution::Default, &gpu_device());
        let t_copy = stream_ms(10, || big.clone().add_scalar(1.0));
        let copy_gbs = 2.0 * (1u64 << 30) as f64 / (t_copy * 1e6);
        println!("copy bandwidth (Burn add_scalar, 1 GiB in + 1 GiB out): {copy_gbs:.0} GB/s");
        copy_gbs
    }

    /// The optimizer-update rows of the benchmark table: the fused kernels vs the
    /// reference (Burn ops on the same device) vs one dense AdamW step.
    fn update_table(rng: &mut StdRng, copy_gbs: f64) {
        let device = gpu_device();
        println!("\n### Ternary optimizer update of one weight (f32 gradient)\n");
        println!("| rows × cols | fused kernels ms | reference ms | ref / kernel | dense AdamW (Burn ops) ms | AdamW / kernel | GB/s | % of copy |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (rows, cols) in [(4096usize, 4096usize), (14336, 4096), (256, 1024)] {
            let weight = HostWeight::random(rng, rows, cols);
            let trits =
                int_tensor::<Gpu, 2>(weight.packed.clone(), [rows, trit_words(cols)], &device);
            let memory = int_tensor::<Gpu, 2>(
                vec![0; rows * memory_words(cols)],
                [rows, memory_words(cols)],
                &device,
            );
            let codes = int_tensor::<Gpu, 1>(vec![0; rows], [rows], &device);
            let grad = Tensor::<Gpu, 2>::random([rows, cols], Distribution::Default, &device);
            let hyper = UpdateHyper {
                lr: 0.1,
                scale_lr: 0.05,
                normalization: GradNormalization::Tensor,
            };
            let state = || TernaryState {
                trits: trits.clone().into_primitive(),
                memory: memory.clone().into_primitive(),
                scale_code: codes.clone().into_primitive(),
            };
            let key = NoiseKey::new(1, 2, 3);
            let tk = stream_ms(20, || {
                Gpu::ternary_update(prim2(&grad), state(), cols, hyper, key)
            });
            let tr = stream_ms(3, || {
                update::reference::update::<Gpu>(prim2(&grad), state(), cols, hyper, key)
            });
            // The dense peer: one AdamW step on an f32 weight in Burn ops.
            let w = Tensor::<Gpu, 2>::random([rows, cols], Distribution::Default, &device);
            let m1 = Tensor::<Gpu, 2>::zeros([rows, cols], &device);
            let m2 = Tensor::<Gpu, 2>::zeros([rows, cols], &device);
            let ta = stream_ms(20, || {
                let m = m1.clone() * 0.9 + grad.clone() * 0.1;
                let v = m2.clone() * 0.999 + grad.clone().powf_scalar(2.0) * 0.001;
                let step = m.clone() / (v.clone().sqrt() + 1e-8) * 1e-3;
                (w.clone() * (1.0 - 1e-5) - step, m, v)
            });
            // Bytes the update must move: gradient in, trits and memory in and out.
            let bytes =
                (rows * cols * 4 + 2 * rows * (trit_words(cols) + memory_words(cols)) * 4) as f64;
            let gbs = bytes / (tk * 1e6);
            println!(
            "| {rows} × {cols} | {tk:.4} | {tr:.3} | {:.1}× | {ta:.4} | {:.2}× | {gbs:.0} | {:.0}% |",
            tr / tk,
            ta / tk,
            100.0 * gbs / copy_gbs
        );
        }
    }

    /// The optimizer-update table alone (see [`all_tables`]).
    fn update_benchmarks() {
        let copy_gbs = copy_bandwidth();
        update_table(&mut StdRng::seed_from_u64(12), copy_gbs);
    }

    /// Host cost of one launch by argument kind. CubeCL 0.10 sends every
    /// `Tensor` argument's shape and strides as per-launch metadata: on CUDA a
    /// pool allocation and a host-to-device copy per launch (grid constants
    /// carry only scalars and lengths), which `Array` arguments do not need.
    /// The kernels here add one to 8 floats; only the host side is timed.
    mod launch_cost {
        use burn_cubecl::{
            ops::numeric::empty_device_contiguous_dtype, tensor::CubeTensor, CubeRuntime,
        };
        use cubecl::prelude::*;

        #[cube(launch_unchecked)]
        fn add_one_tensor(input: &Tensor<f32>, output: &mut Tensor<f32>) {
            let i = ABSOLUTE_POS;
            if i < output.len() {
                output[i] = input[i] + 1.0f32;
            }
        }

        #[cube(launch_unchecked)]
        fn add_one_array(input: &Array<f32>, output: &mut Array<f32>) {
            let i = ABSOLUTE_POS;
            if i < output.len() {
                output[i] = input[i] + 1.0f32;
            }
        }

        /// A new output like `x` (the pool allocation every op pays).
        pub fn empty_like<R: CubeRuntime>(x: &CubeTensor<R>) -> CubeTensor<R> {
            empty_device_contiguous_dtype(
                x.client.clone(),
                x.device.clone(),
                x.meta.shape().clone(),
                x.dtype,
            )
        }

        /// `x + 1` through `Tensor` (`arrays == false`) or `Array` arguments.
        pub fn add_one<R: CubeRuntime>(x: &CubeTensor<R>, arrays: bool) -> CubeTensor<R> {
            let out = empty_like(x);
            let n = x.meta.shape().iter().product::<usize>() as u32;
            let count = CubeCount::Static(n.div_ceil(32), 1, 1);
            let dim = CubeDim::new_1d(32);
            // SAFETY: the kernels guard every index by the output's length.
            unsafe {
                if arrays {
                    add_one_array::launch_unchecked::<R>(
                        &x.client,
                        count,
                        dim,
                        x.clone().into_array_arg(),
                        out.clone().into_array_arg(),
                    );
                } else {
                    add_one_tensor::launch_unchecked::<R>(
                        &x.client,
                        count,
                        dim,
                        x.clone().into_tensor_arg(),
                        out.clone().into_tensor_arg(),
                    );
                }
            }
            out
        }
    }

    /// Prints the host cost per call of back-to-back launches: a Burn op, an
    /// allocation alone, and one kernel with `Tensor` or with `Array` arguments
    /// (see [`launch_cost`]); checks that both kernels compute `x + 1`.
    fn launch_cost_benchmarks() {
        let x = Tensor::<Gpu, 1>::random([8], Distribution::Default, &gpu_device());
        let want: Vec<f32> = x.to_data().to_vec::<f32>().unwrap();
        let px = x.clone().into_primitive().tensor();
        for arrays in [false, true] {
            let got = Tensor::<Gpu, 1>::from_primitive(TensorPrimitive::Float(
                launch_cost::add_one(&px, arrays),
            ))
            .into_data()
            .to_vec::<f32>()
            .unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - (w + 1.0)).abs() < 1e-6,
                    "arrays={arrays}: {g} vs {w} + 1"
                );
            }
        }
        let iters = 2000;
        let burn_op = stream_ms(iters, || x.clone().add_scalar(1.0));
        let alloc = stream_ms(iters, || launch_cost::empty_like(&px));
        let tensor_args = stream_ms(iters, || launch_cost::add_one(&px, false));
        let array_args = stream_ms(iters, || launch_cost::add_one(&px, true));
        println!("| per call, back-to-back (µs) | Burn add_scalar | allocation only | kernel, Tensor args | kernel, Array args |");
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| host cost | {:.2} | {:.2} | {:.2} | {:.2} |",
            burn_op * 1e3,
            alloc * 1e3,
            tensor_args * 1e3,
            array_args * 1e3
        );
    }

    /// Host cost of a module forward as users call it (`TernaryLinear`, a
    /// decode step: `m = 1`, 4096 × 4096): the scale decode through the
    /// backend op (one kernel) and through the reference Burn ops (three), and
    /// the whole forward, ms per call of back-to-back calls.
    fn module_forward_benchmarks() {
        use burn_ternary::{
            functional::decode_scale, nn::TernaryLinearConfig, ops::scale::reference,
        };
        let device = gpu_device();
        let layer = TernaryLinearConfig::new(4096, 4096).init::<Gpu>(&device);
        let codes = layer.weight.scale_code.val();
        let x = Tensor::<Gpu, 2>::random([1, 4096], Distribution::Default, &device);
        let kernel = stream_ms(500, || decode_scale(codes.clone()));
        let composed = stream_ms(500, || {
            reference::decode::<Gpu>(codes.clone().into_primitive())
        });
        let forward = stream_ms(500, || layer.forward(x.clone()));
        let op_only = stream_ms(500, || {
            Gpu::ternary_matmul(
                prim2(&x),
                layer.weight.primitive(),
                empty_port::<Gpu>(&device),
            )
        });
        println!("| per call, back-to-back (ms) | decode kernel | decode, Burn ops | primitive() + ternary_matmul | TernaryLinear::forward |");
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| 4096 × 4096, m = 1 | {kernel:.4} | {composed:.4} | {op_only:.4} | {forward:.4} |"
        );
    }

    /// Per-call time of the ops at small shapes, where the host's launch cost
    /// bounds a stream of calls (µs per call, 1,000 back-to-back calls): each
    /// matmul kernel and route of `kernel.rs` / `gemm_split.rs` and both conv
    /// kernels, with Burn's `add_scalar` as the launch floor of the same run.
    /// Run with two executables (before and after a launch change) in one call
    /// to compare them.
    fn small_shape_benchmarks() {
        let device = gpu_device();
        let mut rng = StdRng::seed_from_u64(5);
        let (rows, cols) = (512usize, 512usize);
        let policy = |tensor_core_gemv: bool, f32_tensor_cores: F32TensorCores| MatmulPolicy {
            tensor_core_gemv,
            f32_tensor_cores,
        };
        let (default, no_tc_gemv) = (
            policy(true, F32TensorCores::Auto),
            policy(false, F32TensorCores::Auto),
        );
        let w = HostWeight::random(&mut rng, rows, cols).on::<Gpu>(&device);
        let iters = 1000;
        let us = |f: &mut dyn FnMut() -> FloatTensor<Gpu>| stream_ms(iters, f) * 1e3;
        let floor = Tensor::<Gpu, 1>::random([8], Distribution::Default, &device);
        let mut table: Vec<(String, f64)> = vec![(
            "Burn add_scalar, 8 floats (launch floor)".into(),
            stream_ms(iters, || floor.clone().add_scalar(1.0)) * 1e3,
        )];
        let x = |m: usize| Tensor::<Gpu, 2>::random([m, cols], Distribution::Default, &device);
        let gy = |m: usize| Tensor::<Gpu, 2>::random([m, rows], Distribution::Default, &device);
        let forward = |a: &Tensor<Gpu, 2>, policy: MatmulPolicy| {
            let (a, w) = (prim2(a), w.clone());
            move || matmul_with(a.clone(), &w, false, policy)
        };
        let input_grad = |a: &Tensor<Gpu, 2>, policy: MatmulPolicy| {
            let (a, w) = (prim2(a), w.clone());
            move || matmul_with(a.clone(), &w, true, policy)
        };
        let (x1, x4, x16, x32, x64) = (x(1), x(4), x(16), x(32), x(64));
        let (g16, g32, g64) = (gy(16), gy(32), gy(64));
        table.push((
            "forward m = 1, tensor-core GEMV".into(),
            us(&mut forward(&x1, default)),
        ));
        table.push((
            "forward m = 4, plane GEMV".into(),
            us(&mut forward(&x4, no_tc_gemv)),
        ));
        table.push((
            "forward m = 16 (CUDA: tensor-core GEMV, two row blocks)".into(),
            us(&mut forward(&x16, default)),
        ));
        table.push((
            "forward m = 16, shared-memory GEMV".into(),
            us(&mut forward(&x16, no_tc_gemv)),
        ));
        // m = 9 and 16 on a 4096² weight, where the weight stream, not the
        // launch, sets the time: the two paths for 8 < m <= 16.
        let big = HostWeight::random(&mut rng, 4096, 4096).on::<Gpu>(&device);
        let x16_big = Tensor::<Gpu, 2>::random([16, 4096], Distribution::Default, &device);
        let x9_big = Tensor::<Gpu, 2>::random([9, 4096], Distribution::Default, &device);
        for tensor_cores in [true, false] {
            let p = policy(tensor_cores, F32TensorCores::Auto);
            let path = if tensor_cores {
                "tensor-core GEMV, two row blocks"
            } else {
                "shared-memory GEMV"
            };
            for (m, x) in [(16, &x16_big), (9, &x9_big)] {
                table.push((
                    format!("forward m = {m}, 4096² weight, {path}"),
                    us(&mut || matmul_with(prim2(x), &big, false, p)),
                ));
            }
        }
        table.push((
            "input grad m = 16, GEMV-transposed".into(),
            us(&mut input_grad(&g16, default)),
        ));
        table.push((
            "forward m = 32, tiled".into(),
            us(&mut forward(&x32, default)),
        ));
        table.push((
            "input grad m = 32, tiled".into(),
            us(&mut input_grad(&g32, default)),
        ));
        if !cfg!(feature = "wgpu") {
            // Each register block of the tiled kernel forced, f32 FMA kernels
            // (the split route off): m = 32 on the 512² weight, and the
            // Shakespeare configs' 256-wide layer at m = 512.
            let x512 = Tensor::<Gpu, 2>::random([512, 2048], Distribution::Default, &device);
            let g512 = Tensor::<Gpu, 2>::random([512, 256], Distribution::Default, &device);
            let narrow = HostWeight::random(&mut rng, 256, 2048).on::<Gpu>(&device);
            let never = policy(true, F32TensorCores::Never);
            // The FMA route's tiled kernel with `block` (0: the built-in choice).
            let tiled =
                |block: usize, a: &Tensor<Gpu, 2>, w: &TernaryPrimitive<Gpu>, input_grad| {
                    let m = a.dims()[0];
                    let mut route =
                        route(DType::F32, m, w.rows, w.cols, input_grad, gpu_caps(), never);
                    if let MatmulRoute::Tiled { block: b } = &mut route
                        && block > 0
                    {
                        *b = block;
                    }
                    let (a, w) = (prim2(a), w.clone());
                    move || matmul_on(&route, a.clone(), &w, input_grad)
                };
            for block in [0usize, 1, 2, 4] {
                let name = if block == 0 {
                    "built-in".to_string()
                } else {
                    format!("{block}")
                };
                table.push((
                    format!("forward m = 32, tiled, block {name}"),
                    us(&mut tiled(block, &x32, &w, false)),
                ));
                table.push((
                    format!("input grad m = 32, tiled, block {name}"),
                    us(&mut tiled(block, &g32, &w, true)),
                ));
                table.push((
                    format!("forward m = 512, 256 × 2048 weight, tiled, block {name}"),
                    us(&mut tiled(block, &x512, &narrow, false)),
                ));
                table.push((
                    format!("input grad m = 512, 256 × 2048 weight, tiled, block {name}"),
                    us(&mut tiled(block, &g512, &narrow, true)),
                ));
            }
        }
        let always = policy(true, F32TensorCores::Always);
        table.push((
            "forward m = 64, split-f16 route".into(),
            us(&mut forward(&x64, always)),
        ));
        table.push((
            "input grad m = 64, split-f16 route".into(),
            us(&mut input_grad(&g64, always)),
        ));
        let g = Conv1dGeometry {
            in_channels: 64,
            kernel_size: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        let cw = HostWeight::random(&mut rng, 64, 64 * 3).on::<Gpu>(&device);
        let cx = Tensor::<Gpu, 3>::random([2, 64, 128], Distribution::Default, &device);
        let cgy = Tensor::<Gpu, 3>::random([2, 64, 128], Distribution::Default, &device);
        table.push((
            "conv1d forward b=2 C=64 L=128 rows=64 K=3".into(),
            us(&mut || Gpu::ternary_conv1d(prim3(&cx), cw.clone(), g, empty_port::<Gpu>(&device))),
        ));
        table.push((
            "conv1d input grad, same shape".into(),
            us(&mut || Gpu::ternary_conv1d_input_grad(prim3(&cgy), cw.clone(), g, 128)),
        ));
        println!("\n| op (512 × 512 weight unless said) | µs per call |");
        println!("|---|---:|");
        for (op, t) in table {
            println!("| {op} | {t:.2} |");
        }
    }
}
