//! The CubeCL kernels of `burn_ternary` against the reference
//! implementations on `NdArray`, on many random shapes: `m = 1`, `cols` not a
//! multiple of 16, sizes that are not multiples of any tile, every kernel of
//! the matmul route (`burn_ternary::ops::matmul::route`) and the launch
//! shapes other than the default, given as explicit values.
//!
//! The kernels run on `Wgpu` with the `wgpu` feature (e.g. lavapipe's software
//! Vulkan in CI), else on `Cuda` with the `cuda` feature.
//!
//! Where the GPU backend does not start, every check fails (a skip never
//! shows as a pass), unless `ARBITOR_ALLOW_NO_GPU=1` is set: then each check
//! prints `skipped` and returns. No check changes process-wide state, so
//! they run in parallel.
//!
//! Tolerance: relative L2 error `‖got − want‖ / ‖want‖ <= 1e-5` and max
//! absolute difference `<= 1e-5 · max(1, max |want|)` (f32).
//!
//! The timings and tables are the bench target `benches/cube_kernels.rs`.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

mod common;

use std::time::Instant;

use burn::tensor::{
    backend::Backend,
    ops::{FloatTensor, IntTensor},
    DType, Int, Tensor, TensorData, TensorPrimitive,
};
use burn_ternary::{
    ops::{
        act_quant, attention, conv1d, denoise, embedding,
        matmul::{
            self, launch,
            route::{
                plane_gemv_launches, route, tensor_core_gemv_blocks, MmaGemvTune, PlaneGemvTune,
                GEMV_PLANE_MAX_M,
            },
            DeviceCaps, F32TensorCores, MatmulPolicy, MatmulRoute,
        },
        relu2_gate, rms_norm, rope, update,
    },
    packing::{
        int_tensor, memory_words, pack_memory, pack_trits, trit_words, unpack_memory, unpack_trits,
    },
    types::{GradNormalization, NoiseKey, UpdateHyper},
    Conv1dGeometry, ConvEpilogue, TernaryBackend, TernaryState,
};
use common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The f32 FMA kernels (GEMV and tiled) against the reference, on the route
/// of `MatmulPolicy { f32_tensor_cores: Never, .. }` (the split-f16
/// tensor-core route, which CUDA would take for `m >= 64`, has its own
/// check). Case `i` runs the tiled kernel with register block
/// `[built-in, 1, 2, 4][i % 4]`, so every tile size meets about a quarter of
/// the shapes at no extra cost.
fn check_matmul(
    name: &str,
    seed: u64,
    m_range: (usize, usize),
    fixed: &[(usize, usize, usize)],
    random: usize,
    input_grad: bool,
) {
    {
        let gpu = gpu_device();
        let caps = gpu_caps();
        let policy = MatmulPolicy {
            f32_tensor_cores: F32TensorCores::Never,
            ..MatmulPolicy::default()
        };
        let cpu = Default::default();
        let mut rng = StdRng::seed_from_u64(seed);
        let shapes = matmul_shapes(&mut rng, m_range, (96, 300), fixed, random);
        let mut failures = Vec::new();
        for (case, &(m, rows, cols)) in shapes.iter().enumerate() {
            let block = [0, 1, 2, 4][case % 4];
            let mut route = route(DType::F32, m, rows, cols, input_grad, caps, policy);
            if let MatmulRoute::Tiled { block: b } = &mut route
                && block > 0
            {
                *b = block;
            }
            let weight = HostWeight::random(&mut rng, rows, cols);
            let inner = if input_grad { rows } else { cols };
            let x = random_values(&mut rng, m * inner);
            // Every fifth case feeds a transposed (non-contiguous) view.
            let transposed = case % 5 == 4;
            let gpu_x = if transposed {
                let mut t = vec![0f32; m * inner];
                for i in 0..m {
                    for k in 0..inner {
                        t[k * m + i] = x[i * inner + k];
                    }
                }
                let t = Tensor::<Gpu, 2>::from_data(TensorData::new(t, [inner, m]), &gpu);
                t.transpose().into_primitive().tensor()
            } else {
                float::<Gpu, 2>(&x, [m, inner], &gpu)
            };
            let w = weight.on::<Gpu>(&gpu);
            let got = read::<Gpu>(
                launch::run(&route, gpu_x, w.trits, w.scale, rows, cols, input_grad)
                    .expect("an FMA route"),
            );
            let want = read::<Cpu>(if input_grad {
                matmul::reference::input_grad::<Cpu>(
                    float::<Cpu, 2>(&x, [m, rows], &cpu),
                    &weight.on::<Cpu>(&cpu),
                )
            } else {
                matmul::reference::forward::<Cpu>(
                    float::<Cpu, 2>(&x, [m, cols], &cpu),
                    &weight.on::<Cpu>(&cpu),
                )
            });
            let label =
                format!("m={m} rows={rows} cols={cols} transposed_input={transposed} {route:?}");
            if let Err(e) = compare(&label, &got, &want) {
                failures.push(e);
            }
        }
        finish(name, shapes.len(), failures);
    }
}

/// `m <= 16` forwards: on CUDA `m <= 8` take the tensor-core GEMV and
/// `8 < m <= 16` the same in two row blocks; elsewhere the plane GEMV
/// (`m <= 8`) and the shared-memory GEMV.
#[test]
fn matmul_forward_gemv_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let fixed = [
        (1, 1, 1),
        (1, 1, 16),
        (1, 3, 17),
        (1, 64, 15),
        (1, 33, 31),
        (1, 7, 1000),
        (16, 5, 16),
        (16, 70, 33),
        (2, 1, 513),
        (5, 129, 47),
    ];
    check_matmul(
        "matmul forward (GEMV)",
        1,
        (1, 16),
        &fixed,
        RANDOM_SHAPES,
        false,
    );
}

/// `m <= 8` forwards on the default route (on CUDA the int8 tensor-core
/// GEMV; the plane GEMV on devices with plane operations; else the
/// shared-memory GEMV) and, where the device has them, the other launch
/// shapes of the GEMV kernels given as explicit values ([`gemv_variants`]), on 200
/// random shapes spanning several 256-column chunks, rows not multiples of 16
/// or 32, `cols` both multiples of 4 (vector loads) and not; every fourth
/// input has magnitudes spread over six decades and every fourth starts with
/// an all-zero chunk (the worst cases of the tensor-core path's per-chunk
/// block floating point).
#[test]
fn matmul_forward_small_m_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(21);
    let fixed = [
        (1, 1, 1),
        (1, 16, 256),
        (8, 16, 256),
        (1, 17, 257),
        (3, 31, 512),
        (8, 33, 1100),
        (2, 200, 40),
        (5, 48, 767),
        // Many chunks in the one-launch form's shared memory (56 and 28),
        // and 17 chunks over its 16 planes (few rows: every cube has an SM).
        (1, 37, 14336),
        (2, 33, 7000),
        (1, 40, 4100),
        // Rows for one wave of four-row-tile cubes on an H200 (129 and 79
        // cubes of 64 rows), where the one-launch form takes four row tiles.
        (1, 8200, 300),
        (2, 5000, 1100),
        // More than one wave of 64-row cubes (141): two row blocks per cube.
        (1, 9000, 300),
    ];
    let shapes = matmul_shapes(&mut rng, (1, 8), (80, 1100), &fixed, RANDOM_SHAPES);
    let caps = gpu_caps();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (case, &(m, rows, cols)) in shapes.iter().enumerate() {
        let weight = HostWeight::random(&mut rng, rows, cols);
        let mut x = random_values(&mut rng, m * cols);
        match case % 4 {
            1 => spread_over_six_decades(&mut rng, &mut x),
            2 => {
                for (i, v) in x.iter_mut().enumerate() {
                    if i % cols < 256 {
                        *v = 0.0;
                    }
                }
            }
            _ => {}
        }
        let want = read::<Cpu>(matmul::reference::forward::<Cpu>(
            float::<Cpu, 2>(&x, [m, cols], &cpu),
            &weight.on::<Cpu>(&cpu),
        ));
        // The backend op (the default route), then the other launch shapes.
        let w = weight.on::<Gpu>(&gpu);
        let got = read::<Gpu>(Gpu::ternary_matmul(
            float::<Gpu, 2>(&x, [m, cols], &gpu),
            w.clone(),
            empty_port::<Gpu>(&gpu),
        ));
        cases += 1;
        if let Err(e) = compare(
            &format!("m={m} rows={rows} cols={cols} case={case} default"),
            &got,
            &want,
        ) {
            failures.push(e);
        }
        for route in gemv_variants(case, m, rows, cols, caps) {
            let got = read::<Gpu>(
                launch::run(
                    &route,
                    float::<Gpu, 2>(&x, [m, cols], &gpu),
                    w.trits.clone(),
                    w.scale.clone(),
                    rows,
                    cols,
                    false,
                )
                .expect("a GEMV route"),
            );
            cases += 1;
            let label = format!("m={m} rows={rows} cols={cols} case={case} {route:?}");
            if let Err(e) = compare(&label, &got, &want) {
                failures.push(e);
            }
        }
    }
    finish("matmul forward, m <= 8", cases, failures);
}

/// The launch shapes of the forward GEMVs other than the default that case
/// `case` also runs, as explicit routes: on a device with int8 `mma` (CUDA)
/// the tensor-core GEMV's two-launch form on every case, and on every
/// second case one of row groups (3 blocks of one row tile), four row tiles
/// with three chunks in flight and at most 4 planes, or a 64 KiB fused
/// limit; on a device with plane operations the plane GEMV (on CUDA in place
/// of the tensor-core GEMV) on every case with its default shape and, on
/// every fourth, with 1 word per lane, 4 rows per cube, all rows in one
/// launch and at most 2 planes. None on lavapipe (no int8 `mma`, no fixed
/// plane size).
fn gemv_variants(
    case: usize,
    m: usize,
    rows: usize,
    cols: usize,
    caps: DeviceCaps,
) -> Vec<MatmulRoute> {
    let mut routes = Vec::new();
    if caps.int8_mma {
        let mut tunes = vec![MmaGemvTune {
            fused: false,
            ..MmaGemvTune::default()
        }];
        match case % 6 {
            1 => tunes.push(MmaGemvTune {
                groups: Some(3),
                row_tiles: Some(1),
                ..MmaGemvTune::default()
            }),
            3 => tunes.push(MmaGemvTune {
                row_tiles: Some(4),
                depth: Some(3),
                max_planes: Some(4),
                ..MmaGemvTune::default()
            }),
            5 => tunes.push(MmaGemvTune {
                fused_shared_bytes: Some(64 * 1024),
                ..MmaGemvTune::default()
            }),
            _ => {}
        }
        for tune in tunes {
            routes.push(MatmulRoute::TensorCoreGemv(tensor_core_gemv_blocks(
                m, rows, cols, caps, tune,
            )));
        }
    }
    if caps.plane_ops && m <= GEMV_PLANE_MAX_M {
        if caps.int8_mma {
            routes.push(MatmulRoute::PlaneGemv(plane_gemv_launches(
                m,
                rows,
                cols,
                caps,
                PlaneGemvTune::default(),
            )));
        }
        if case % 4 == 3 {
            routes.push(MatmulRoute::PlaneGemv(plane_gemv_launches(
                m,
                rows,
                cols,
                caps,
                PlaneGemvTune {
                    wpl: Some(1),
                    rb: Some(4),
                    group: Some(8),
                    max_planes: Some(2),
                },
            )));
        }
    }
    routes
}

/// `m <= 16` forwards with f16 activations and the weight's f32 scales (a
/// model on an f32 backend that casts its activations to half precision):
/// the GEMV kernels read the scales in their own type instead of casting
/// them per call. On CUDA `m <= 8` is the tensor-core GEMV in its one-launch
/// form (the two-launch form too on every fourth shape), `8 < m <= 16` its row blocks;
/// on WGPU the plane GEMV where the adapter has plane operations, else the
/// shared-memory GEMV (lavapipe), and the tiled kernel above `m = 8`.
#[test]
fn matmul_f16_gemv_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(23);
    let fixed = [
        (1, 1, 1),
        (1, 17, 257),
        (8, 33, 1100),
        (9, 16, 300),
        (16, 40, 513),
    ];
    let shapes = matmul_shapes(&mut rng, (1, 16), (80, 700), &fixed, RANDOM_SHAPES);
    let caps = gpu_caps();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (case, &(m, rows, cols)) in shapes.iter().enumerate() {
        let weight = HostWeight::random(&mut rng, rows, cols);
        let x = random_half_values(&mut rng, m * cols);
        let want = read::<Cpu>(matmul::reference::forward::<Cpu>(
            float::<Cpu, 2>(&x, [m, cols], &cpu),
            &weight.on::<Cpu>(&cpu),
        ));
        let forms: &[bool] = if caps.int8_mma && case % 4 == 0 {
            &[true, false]
        } else {
            &[true]
        };
        for &fused in forms {
            let w = weight.on::<Gpu>(&gpu);
            assert_eq!(w.scale.dtype, DType::F32, "the weight's scales");
            let got = read::<Gpu>(if fused {
                Gpu::ternary_matmul(gpu_half(&x, [m, cols]), w, empty_port::<Gpu>(&gpu))
            } else {
                let two_launch = MmaGemvTune {
                    fused: false,
                    ..MmaGemvTune::default()
                };
                let route = MatmulRoute::TensorCoreGemv(tensor_core_gemv_blocks(
                    m, rows, cols, caps, two_launch,
                ));
                launch::run(
                    &route,
                    gpu_half(&x, [m, cols]),
                    w.trits,
                    w.scale,
                    rows,
                    cols,
                    false,
                )
                .expect("the tensor-core GEMV")
            });
            cases += 1;
            let label = format!("f16 m={m} rows={rows} cols={cols} fused={fused}");
            if let Err(e) = compare_within(&label, &got, &want, HALF_TOLERANCE) {
                failures.push(e);
            }
        }
    }
    finish("matmul forward, f16 activations, m <= 16", cases, failures);
}

#[test]
fn matmul_forward_tiled_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let fixed = [
        (17, 1, 1),
        (17, 64, 16),
        (64, 64, 64),
        (65, 65, 17),
        (130, 3, 5),
        (33, 129, 31),
        (100, 1, 300),
    ];
    check_matmul(
        "matmul forward (tiled)",
        2,
        (17, 140),
        &fixed,
        RANDOM_SHAPES,
        false,
    );
}

#[test]
fn matmul_input_grad_gemv_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let fixed = [
        (1, 1, 1),
        (1, 1, 16),
        (1, 300, 17),
        (1, 2, 600),
        (16, 5, 15),
        (3, 40, 513),
        (7, 1, 33),
    ];
    check_matmul(
        "matmul input grad (GEMV-transposed)",
        3,
        (1, 16),
        &fixed,
        RANDOM_SHAPES,
        true,
    );
}

#[test]
fn matmul_input_grad_tiled_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let fixed = [
        (17, 1, 1),
        (17, 16, 16),
        (64, 64, 64),
        (65, 17, 65),
        (129, 3, 200),
        (40, 100, 7),
    ];
    check_matmul(
        "matmul input grad (tiled)",
        4,
        (17, 140),
        &fixed,
        RANDOM_SHAPES,
        true,
    );
}

/// f16 activations, tolerance for half precision.
const HALF_TOLERANCE: f64 = 1e-2;

/// f16 activations with `m >= TENSOR_CORE_MIN_M` take the unpack +
/// tensor-core matmul route (forward and input gradient); smaller `m` keep
/// the FMA kernels in f16. Both against the f32 reference fed the same
/// f16-rounded inputs.
///
/// The f16 tensors are made by casting on the f32 backend, not with a
/// `Cuda<f16>`/`Wgpu<f16>` backend type: Burn keys a device's default float
/// type by device, first use wins, so a half-precision backend type used
/// first in this process would turn every later "f32" tensor into f16.
#[test]
fn matmul_f16_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(11);
    // `(shape, through the dispatch)`. The dispatch uses Burn's autotuned
    // matmul for m >= 64, and tuning costs seconds for every new shape class
    // (~10 s on lavapipe): the fixed cases, and on CUDA a few random ones, go
    // through it; the other random cases with m >= 64 call the route directly
    // on Burn's default matmul kernel, those with m < 64 dispatch to the FMA
    // kernels.
    let mut shapes: Vec<((usize, usize, usize), bool)> = [
        (64, 64, 64),
        (65, 33, 17),
        (70, 40, 100),
        (16, 40, 100),
        (1, 9, 33),
    ]
    .into_iter()
    .map(|shape| (shape, true))
    .collect();
    let tuned_random = if cfg!(feature = "wgpu") { 0 } else { 8 };
    // Smaller random shapes on lavapipe, as in the f32 route's check.
    let (max_m, max_cols) = if cfg!(feature = "wgpu") {
        (150, 200)
    } else {
        (200, 300)
    };
    for i in 0..tuned_random + RANDOM_SHAPES {
        let shape = (
            rng.random_range(1..=max_m),
            rng.random_range(1..=96),
            rng.random_range(1..=max_cols),
        );
        shapes.push((shape, i < tuned_random));
    }
    let mut failures = Vec::new();
    let mut tensor_core_cases = 0;
    for &((m, rows, cols), dispatched) in &shapes {
        let weight = HostWeight::random(&mut rng, rows, cols);
        for input_grad in [false, true] {
            let inner = if input_grad { rows } else { cols };
            let x = random_half_values(&mut rng, m * inner);
            let gpu_x = gpu_half(&x, [m, inner]);
            let cpu_x = float::<Cpu, 2>(&x, [m, inner], &cpu);
            let w = weight.on::<Gpu>(&gpu);
            let tensor_cores = m >= matmul::TENSOR_CORE_MIN_M;
            let got = read::<Gpu>(if tensor_cores && !dispatched {
                launch::tensor_core_matmul(gpu_x, w.trits, w.scale, rows, cols, input_grad, false)
                    .expect("the half-precision route always has a matmul")
            } else if input_grad {
                Gpu::ternary_matmul_input_grad(gpu_x, w)
            } else {
                Gpu::ternary_matmul(gpu_x, w, empty_port::<Gpu>(&gpu))
            });
            let want = read::<Cpu>(if input_grad {
                matmul::reference::input_grad::<Cpu>(cpu_x, &weight.on::<Cpu>(&cpu))
            } else {
                matmul::reference::forward::<Cpu>(cpu_x, &weight.on::<Cpu>(&cpu))
            });
            if tensor_cores {
                tensor_core_cases += 1;
            }
            let label = format!("f16 m={m} rows={rows} cols={cols} input_grad={input_grad}");
            if let Err(e) = compare_within(&label, &got, &want, HALF_TOLERANCE) {
                failures.push(e);
            }
        }
    }
    let expected = if cfg!(feature = "wgpu") { 150 } else { 160 };
    assert!(
        tensor_core_cases >= expected,
        "only {tensor_core_cases} tensor-core cases"
    );
    finish(
        "matmul f16 (tensor-core route and FMA kernels)",
        shapes.len() * 2,
        failures,
    );
}

/// f32 activations through the split-f16 tensor-core route (two f16 limbs
/// per row-scaled activation, f32 accumulation), forward and input gradient,
/// at the f32 tolerance. Row magnitudes span 1e-3..1e3 (and some rows are
/// zero), and every output row is also checked against its own magnitude: a
/// scale shared by the whole tensor would fail that on small rows.
///
/// The route is called directly (`tensor_core_matmul`), so it runs on
/// lavapipe too (Burn's matmul without matrix instructions there). The fixed
/// cases, and on CUDA a few random ones, use Burn's autotuned matmul as the
/// ops do; the other random cases its default kernel, since tuning costs
/// seconds for every new shape class. On CUDA the test also checks that
/// `ternary_matmul` takes the route for `m >= 64`.
#[test]
fn matmul_f32_tensor_core_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(12);
    // `(shape, tuned)`.
    let mut shapes: Vec<((usize, usize, usize), bool)> =
        [(64, 64, 64), (70, 33, 17), (65, 40, 100)]
            .into_iter()
            .map(|shape| (shape, true))
            .collect();
    let tuned_random = if cfg!(feature = "wgpu") { 0 } else { 12 };
    // Lavapipe (CI's WGPU) runs Burn's matmul on the CPU: smaller random
    // shapes there, the same edge cases (odd sizes, every residue mod 4).
    let (max_m, max_rows, max_cols) = if cfg!(feature = "wgpu") {
        (160, 120, 200)
    } else {
        (300, 200, 400)
    };
    let started = Instant::now();
    for i in 0..tuned_random + RANDOM_SHAPES {
        let shape = (
            rng.random_range(64..=max_m),
            rng.random_range(1..=max_rows),
            rng.random_range(1..=max_cols),
        );
        shapes.push((shape, i < tuned_random));
    }
    let mut failures = Vec::new();
    for (case, &((m, rows, cols), tuned)) in shapes.iter().enumerate() {
        let weight = HostWeight::random(&mut rng, rows, cols);
        for input_grad in [false, true] {
            let (inner, outer) = if input_grad {
                (rows, cols)
            } else {
                (cols, rows)
            };
            let mut x = random_values(&mut rng, m * inner);
            for (i, row) in x.chunks_mut(inner).enumerate() {
                let magnitude = if (i + case) % 11 == 3 {
                    0.0
                } else {
                    10f32.powf(rng.random_range(-3.0..3.0))
                };
                row.iter_mut().for_each(|v| *v *= magnitude);
            }
            let w = weight.on::<Gpu>(&gpu);
            let got = launch::tensor_core_matmul(
                float::<Gpu, 2>(&x, [m, inner], &gpu),
                w.trits,
                w.scale,
                rows,
                cols,
                input_grad,
                tuned,
            )
            .map(read::<Gpu>);
            let cpu_x = float::<Cpu, 2>(&x, [m, inner], &cpu);
            let want = read::<Cpu>(if input_grad {
                matmul::reference::input_grad::<Cpu>(cpu_x, &weight.on::<Cpu>(&cpu))
            } else {
                matmul::reference::forward::<Cpu>(cpu_x, &weight.on::<Cpu>(&cpu))
            });
            let label = format!(
                "f32 tensor cores m={m} rows={rows} cols={cols} input_grad={input_grad} tuned={tuned}"
            );
            let Some(got) = got else {
                failures.push(format!("{label}: no matmul kernel took the f16 operands"));
                continue;
            };
            if let Err(e) = compare(&label, &got, &want) {
                failures.push(e);
                continue;
            }
            // Each row against its own magnitude: its largest output, or (when
            // its outputs cancel) its largest input times the largest scale.
            let max_scale = weight.scale.iter().fold(0f64, |a, &s| a.max(s as f64));
            let max_abs = |v: &[f32]| v.iter().fold(0f64, |a, &v| a.max(v.abs() as f64));
            for (i, ((g, w), a)) in got
                .chunks(outer)
                .zip(want.chunks(outer))
                .zip(x.chunks(inner))
                .enumerate()
            {
                let row_scale = max_abs(w).max(max_abs(a) * max_scale);
                let err = g
                    .iter()
                    .zip(w)
                    .fold(0f64, |a, (&g, &w)| a.max((g as f64 - w as f64).abs()));
                if err > TOLERANCE * row_scale {
                    failures.push(format!(
                        "{label}: output row {i} off by {err:.3e}, its magnitude {row_scale:.3e}"
                    ));
                    break;
                }
            }
        }
    }
    #[cfg(feature = "cuda")]
    {
        // The dispatch: f32 with m >= 64 takes this route on CUDA.
        let weight = HostWeight::random(&mut rng, 48, 80);
        let x = random_values(&mut rng, 96 * 80);
        let w = weight.on::<Gpu>(&gpu);
        let direct = read::<Gpu>(
            launch::tensor_core_matmul(
                float::<Gpu, 2>(&x, [96, 80], &gpu),
                w.trits.clone(),
                w.scale.clone(),
                48,
                80,
                false,
                true,
            )
            .expect("f16 matmul on CUDA"),
        );
        let always = MatmulPolicy {
            f32_tensor_cores: F32TensorCores::Always,
            ..MatmulPolicy::default()
        };
        assert_eq!(
            route(DType::F32, 96, 48, 80, false, gpu_caps(), always),
            MatmulRoute::SplitF16Gemm { tuned: true }
        );
        let dispatched = read::<Gpu>(launch::product(
            float::<Gpu, 2>(&x, [96, 80], &gpu),
            w.trits,
            w.scale,
            48,
            80,
            false,
            always,
        ));
        assert_eq!(
            direct, dispatched,
            "the matmul did not take the f32 tensor-core route"
        );
    }
    println!(
        "matmul f32 (split-f16 tensor-core route): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    finish(
        "matmul f32 (split-f16 tensor-core route)",
        shapes.len() * 2,
        failures,
    );
}

/// An implementation of the update op on backend `B`.
type UpdateFn<B> =
    fn(FloatTensor<B>, TernaryState<B>, usize, UpdateHyper, NoiseKey) -> TernaryState<B>;

/// The packed state of one weight after `update`, on the host.
fn run_update<B: TernaryBackend>(
    update: UpdateFn<B>,
    device: &B::Device,
    grad: &[f32],
    packed: (&[i32], &[i32], &[i32]),
    shape: (usize, usize),
    hyper: UpdateHyper,
    key: NoiseKey,
) -> (Vec<i8>, Vec<i8>, Vec<i32>) {
    let (rows, cols) = shape;
    let state = update(
        float::<B, 2>(grad, [rows, cols], device),
        TernaryState {
            trits: int_tensor::<B, 2>(packed.0.to_vec(), [rows, trit_words(cols)], device)
                .into_primitive(),
            memory: int_tensor::<B, 2>(packed.1.to_vec(), [rows, memory_words(cols)], device)
                .into_primitive(),
            scale_code: int_tensor::<B, 1>(packed.2.to_vec(), [rows], device).into_primitive(),
        },
        cols,
        hyper,
        key,
    );
    let ints = |t: IntTensor<B>, n: usize| -> Vec<i32> {
        let data = match n {
            1 => Tensor::<B, 1, Int>::from_primitive(t).into_data(),
            _ => Tensor::<B, 2, Int>::from_primitive(t).into_data(),
        };
        data.convert::<i32>().to_vec::<i32>().unwrap()
    };
    (
        unpack_trits(&ints(state.trits, 2), rows, cols),
        unpack_memory(&ints(state.memory, 2), rows, cols),
        ints(state.scale_code, 1),
    )
}

/// The fused update kernel against the reference update. The noise is the
/// same counter hash on both sides; the row normalizers are summed in another
/// order, so a `step + u` within an ulp of an integer may round the other
/// way: at most one entry in 10^4 may differ, and then by one latent unit.
#[test]
fn ternary_update_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(17);
    let mut failures = Vec::new();
    let mut shapes = vec![(1, 1), (1, 16), (3, 17), (2, 4), (130, 5), (5, 1000)];
    for _ in 0..RANDOM_SHAPES {
        shapes.push((rng.random_range(1..=90), rng.random_range(1..=300)));
    }
    let (mut checked, mut differing) = (0usize, 0usize);
    for (case, &(rows, cols)) in shapes.iter().enumerate() {
        let trits: Vec<i8> = (0..rows * cols)
            .map(|_| rng.random_range(-1i8..=1))
            .collect();
        let memory: Vec<i8> = (0..rows * cols)
            .map(|_| rng.random_range(-64i8..=64))
            .collect();
        let codes: Vec<i32> = (0..rows).map(|_| rng.random_range(-40..=20)).collect();
        let packed_trits = pack_trits(&trits, rows, cols);
        let packed_memory = pack_memory(&memory, rows, cols);
        let grad = random_values(&mut rng, rows * cols);
        let hyper = UpdateHyper {
            lr: rng.random_range(0.05..1.5),
            scale_lr: rng.random_range(0.0..2.0),
            normalization: if case % 2 == 0 {
                GradNormalization::Tensor
            } else {
                GradNormalization::Row
            },
        };
        let key = NoiseKey::new(case as u64, 3, 9);
        let packed = (&packed_trits[..], &packed_memory[..], &codes[..]);
        let got = run_update::<Gpu>(
            Gpu::ternary_update,
            &gpu,
            &grad,
            packed,
            (rows, cols),
            hyper,
            key,
        );
        let want = run_update::<Cpu>(
            update::reference::update::<Cpu>,
            &cpu,
            &grad,
            packed,
            (rows, cols),
            hyper,
            key,
        );
        for i in 0..rows * cols {
            checked += 1;
            let (g, w) = ((got.0[i], got.1[i]), (want.0[i], want.1[i]));
            if g != w {
                differing += 1;
                let latent = |(t, m): (i8, i8)| t as i32 * 64 + m as i32;
                if (latent(g) - latent(w)).abs() > 1 {
                    failures.push(format!("rows={rows} cols={cols} entry {i}: {g:?} vs {w:?}"));
                }
            }
        }
        for (r, (g, w)) in got.2.iter().zip(&want.2).enumerate() {
            checked += 1;
            if g != w {
                differing += 1;
                if (g - w).abs() > 1 {
                    failures.push(format!(
                        "rows={rows} cols={cols} scale code {r}: {g} vs {w}"
                    ));
                }
            }
        }
    }
    if differing * 10_000 > checked {
        failures.push(format!("{differing} of {checked} entries differ"));
    }
    println!("ternary update: {differing} of {checked} entries differ from the reference");

    // A constant gradient normalizes to exactly 1 and lr·θ = 32.5 makes the
    // step 32 + ⌊0.5 + u⌋: every entry shows the top bit of its noise draw,
    // which must be the host's bit for bit.
    let (rows, cols) = (37, 333);
    let zeros_t = vec![0; rows * trit_words(cols)];
    let zeros_m = vec![0; rows * memory_words(cols)];
    let codes = vec![0; rows];
    let hyper = UpdateHyper {
        lr: 32.5 / 64.0,
        scale_lr: 0.0,
        normalization: GradNormalization::Tensor,
    };
    let ones = vec![1.0; rows * cols];
    let packed = (&zeros_t[..], &zeros_m[..], &codes[..]);
    let key = NoiseKey::new(99, 1, 2);
    let got = run_update::<Gpu>(
        Gpu::ternary_update,
        &gpu,
        &ones,
        packed,
        (rows, cols),
        hyper,
        key,
    );
    let want = run_update::<Cpu>(
        update::reference::update::<Cpu>,
        &cpu,
        &ones,
        packed,
        (rows, cols),
        hyper,
        key,
    );
    if got != want {
        failures.push("constant gradient: the noise bits differ from the host's".into());
    }
    let ups = want.1.iter().filter(|m| **m == -33).count();
    if !(ups > rows * cols * 2 / 5 && ups < rows * cols * 3 / 5) {
        failures.push(format!(
            "constant gradient: {ups} of {} rounded up",
            rows * cols
        ));
    }
    finish("ternary update", shapes.len() + 1, failures);
}

/// Float values of a 1-D float primitive.
fn read1<B: Backend>(t: FloatTensor<B>) -> Vec<f32> {
    Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(t))
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn scale_decode_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(13);
    let mut failures = Vec::new();
    let mut lengths = vec![1, 2, 255, 256, 257, 1000];
    for _ in 0..RANDOM_SHAPES {
        lengths.push(rng.random_range(1..=5000));
    }
    for &rows in &lengths {
        // Codes well past the optimizer's range (scales 2^-37 .. 2^37).
        let codes: Vec<i32> = (0..rows).map(|_| rng.random_range(-600..=600)).collect();
        let got = read1::<Gpu>(Gpu::ternary_decode_scale(
            int_tensor::<Gpu, 1>(codes.clone(), [rows], &gpu).into_primitive(),
        ));
        let want = read1::<Cpu>(burn_ternary::ops::scale::reference::decode::<Cpu>(
            int_tensor::<Cpu, 1>(codes.clone(), [rows], &cpu).into_primitive(),
        ));
        // Per element: the scales span 2^±37, so a norm over the row would
        // only see the largest. The bound is the f32 rounding of the
        // argument `code · ln 2 / 16` (up to 26 here: 26 · 2^-24 ≈ 1.6e-6)
        // plus each `exp`'s few ulps.
        let worst = got
            .iter()
            .zip(&want)
            .zip(&codes)
            .map(|((&g, &w), &code)| ((g as f64 - w as f64).abs() / w as f64, code))
            .fold((0.0f64, 0), |a, b| if b.0 > a.0 { b } else { a });
        if got.len() != want.len() || worst.0 > 4e-6 {
            failures.push(format!(
                "rows={rows}: relative difference {:.2e} at code {} (lengths {} vs {})",
                worst.0,
                worst.1,
                got.len(),
                want.len()
            ));
        }
    }
    finish("scale decode", lengths.len(), failures);
}

#[test]
fn denoise_step_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(5);
    let mut failures = Vec::new();
    let mut shapes = vec![(1, 1), (1, 17), (3, 1), (7, 1000)];
    for _ in 0..RANDOM_SHAPES {
        shapes.push((rng.random_range(1..=9), rng.random_range(1..=700)));
    }
    for &(batch, features) in &shapes {
        let latent = random_values(&mut rng, batch * features);
        let eps = random_values(&mut rng, batch * features);
        let grad = random_values(&mut rng, batch * features);
        let alpha: Vec<f32> = (0..batch).map(|_| rng.random_range(0.02f32..1.0)).collect();
        let label = format!("batch={batch} features={features}");

        let got = read::<Gpu>(Gpu::denoise_step(
            float::<Gpu, 2>(&latent, [batch, features], &gpu),
            float::<Gpu, 2>(&eps, [batch, features], &gpu),
            float::<Gpu, 1>(&alpha, [batch], &gpu),
        ));
        let want = read::<Cpu>(denoise::reference::forward::<Cpu>(
            float::<Cpu, 2>(&latent, [batch, features], &cpu),
            float::<Cpu, 2>(&eps, [batch, features], &cpu),
            float::<Cpu, 1>(&alpha, [batch], &cpu),
        ));
        if let Err(e) = compare(&format!("forward {label}"), &got, &want) {
            failures.push(e);
        }

        let (gl, ge) = Gpu::denoise_step_backward(
            float::<Gpu, 2>(&grad, [batch, features], &gpu),
            float::<Gpu, 1>(&alpha, [batch], &gpu),
        );
        let (wl, we) = denoise::reference::backward::<Cpu>(
            float::<Cpu, 2>(&grad, [batch, features], &cpu),
            float::<Cpu, 1>(&alpha, [batch], &cpu),
        );
        if let Err(e) = compare(
            &format!("backward latent {label}"),
            &read::<Gpu>(gl),
            &read::<Cpu>(wl),
        ) {
            failures.push(e);
        }
        if let Err(e) = compare(
            &format!("backward eps {label}"),
            &read::<Gpu>(ge),
            &read::<Cpu>(we),
        ) {
            failures.push(e);
        }
    }
    finish("denoise step forward + backward", shapes.len(), failures);
}

/// The activation quantization kernel against the reference composition on
/// the same backend (so `round` and the division are the same instructions):
/// rows of many widths, beyond the 65,535 cubes of one grid dimension once,
/// magnitudes over six decades, an all-zero row. Entries may differ by one
/// quantization step where `x · s` lands on a rounding tie; at most 1 in
/// 10,000 may.
#[test]
fn act_quant_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let mut rng = StdRng::seed_from_u64(9);
    let mut failures = Vec::new();
    let mut shapes = vec![(1, 1), (1, 255), (3, 257), (5, 2560), (65_537, 2)];
    for _ in 0..RANDOM_SHAPES {
        shapes.push((rng.random_range(1..=40), rng.random_range(1..=3000)));
    }
    for &(rows, cols) in &shapes {
        let mut x = random_values(&mut rng, rows * cols);
        spread_over_six_decades(&mut rng, &mut x);
        x[..cols].iter_mut().for_each(|v| *v = 0.0);
        let got = read::<Gpu>(Gpu::quantize_activations(float::<Gpu, 2>(
            &x,
            [rows, cols],
            &gpu,
        )));
        let want = read::<Gpu>(act_quant::reference::forward::<Gpu>(float::<Gpu, 2>(
            &x,
            [rows, cols],
            &gpu,
        )));
        let mut off = 0;
        for (r, (g, w)) in got.chunks(cols).zip(want.chunks(cols)).enumerate() {
            let absmax = x[r * cols..(r + 1) * cols]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            let step = absmax.max(1e-5) / 127.0;
            for (a, b) in g.iter().zip(w) {
                let diff = (a - b).abs();
                if diff > 1e-6 * b.abs().max(step) {
                    off += 1;
                    if diff > 1.01 * step {
                        failures.push(format!("rows={rows} cols={cols}: {a} vs {b} (step {step})"));
                    }
                }
            }
        }
        if off * 10_000 > rows * cols {
            failures.push(format!(
                "rows={rows} cols={cols}: {off} entries off by a step"
            ));
        }
    }
    finish("activation quantization", shapes.len(), failures);
}

/// Checks a fused kernel against its reference composition on the same
/// backend for every case: `run(case, rng)` draws the case's inputs and
/// returns the kernel's output and the reference's; the failures are
/// reported together under `name`.
fn check_against_reference<C: std::fmt::Debug>(
    name: &str,
    seed: u64,
    cases: &[C],
    mut run: impl FnMut(&C, &mut StdRng) -> (Vec<f32>, Vec<f32>),
) {
    if !gpu_ready() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut failures = Vec::new();
    for case in cases {
        let (got, want) = run(case, &mut rng);
        if let Err(e) = compare(&format!("{case:?}"), &got, &want) {
            failures.push(e);
        }
    }
    finish(name, cases.len(), failures);
}

/// Float values of a float primitive of any rank.
fn read_any<B: Backend>(t: FloatTensor<B>) -> Vec<f32> {
    Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(t))
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap()
}

/// `count` random cases drawn by `draw` after the `fixed` ones.
fn with_random<C>(
    fixed: Vec<C>,
    seed: u64,
    count: usize,
    draw: impl Fn(&mut StdRng) -> C,
) -> Vec<C> {
    let mut rng = StdRng::seed_from_u64(seed);
    fixed
        .into_iter()
        .chain((0..count).map(|_| draw(&mut rng)))
        .collect()
}

/// The RMS norm kernel against the reference composition on the same
/// backend: rows of many widths, beyond the 65,535 cubes of one grid
/// dimension once, magnitudes over six decades, an all-zero row (kept at
/// zero by epsilon); every other case without a gain.
#[test]
fn rms_norm_matches_reference() {
    let cases = with_random(
        vec![
            (1, 1),
            (1, 255),
            (3, 257),
            (5, 2560),
            (2, 6912),
            (65_537, 2),
        ],
        10,
        RANDOM_SHAPES,
        |rng| (rng.random_range(1..=40), rng.random_range(1..=3000)),
    );
    check_against_reference("rms norm", 110, &cases, |&(rows, cols), rng| {
        let gpu = gpu_device();
        let mut x = random_values(rng, rows * cols);
        spread_over_six_decades(rng, &mut x);
        x[..cols].iter_mut().for_each(|v| *v = 0.0);
        let gamma = (rows % 2 == 1).then(|| random_values(rng, cols));
        let run = |fused: bool| {
            let x = float::<Gpu, 2>(&x, [rows, cols], &gpu);
            let g = gamma.as_ref().map(|g| float::<Gpu, 1>(g, [cols], &gpu));
            read::<Gpu>(if fused {
                Gpu::rms_norm(x, g, 1e-5)
            } else {
                rms_norm::reference::forward::<Gpu>(x, g, 1e-5)
            })
        };
        (run(true), run(false))
    });
}

/// The rotary embedding kernel against the reference composition on the
/// same backend: odd batch, token and head counts, head widths from 2 to
/// 256, start positions inside the tables, more than 65,535 cubes once.
#[test]
fn rope_matches_reference() {
    // (batch, n, heads, head_dim, start)
    let cases = with_random(
        vec![
            (1, 1, 1, 2, 0),
            (1, 1, 20, 128, 63),
            (8, 1, 5, 128, 300),
            (1, 600, 32, 128, 0),
        ],
        11,
        RANDOM_SHAPES,
        |rng| {
            (
                rng.random_range(1..=8),
                rng.random_range(1..=20),
                rng.random_range(1..=9),
                2 * rng.random_range(1..=128),
                rng.random_range(0..=50),
            )
        },
    );
    check_against_reference(
        "rotary embedding",
        111,
        &cases,
        |&(batch, n, heads, d, start), rng| {
            let gpu = gpu_device();
            let positions = start + n + 3;
            let x = random_values(rng, batch * n * heads * d);
            let cos = random_values(rng, positions * d);
            let sin = random_values(rng, positions * d);
            let run = |fused: bool| {
                let xt = float::<Gpu, 4>(&x, [batch, n, heads, d], &gpu);
                let c = float::<Gpu, 2>(&cos, [positions, d], &gpu);
                let s = float::<Gpu, 2>(&sin, [positions, d], &gpu);
                read_any::<Gpu>(if fused {
                    Gpu::rotary_embedding(xt, c, s, start)
                } else {
                    rope::reference::forward::<Gpu>(xt, c, s, start)
                })
            };
            (run(true), run(false))
        },
    );
}

/// The attention kernel against the reference composition on the same
/// backend: prefill and steps after a history, one to eight query heads
/// per key/value head, head widths 1 to 256 (one and two output dims per
/// unit), histories longer than a chunk, and keys and values read in place
/// from a longer cache (a strided view) as the decoders pass them.
#[test]
fn attention_matches_reference() {
    // (batch, n, heads, kv_heads, head_dim, start, spare cache positions)
    let cases = with_random(
        vec![
            (1, 1, 1, 1, 1, 0, 0),
            (1, 1, 20, 5, 128, 63, 100),
            (8, 1, 20, 5, 128, 300, 5),
            (1, 64, 20, 5, 128, 0, 4032),
            (2, 3, 4, 4, 256, 130, 0),
            (1, 2, 2, 1, 200, 129, 7),
        ],
        12,
        RANDOM_SHAPES / 2,
        |rng| {
            let kv_heads = rng.random_range(1..=4);
            (
                rng.random_range(1..=4),
                rng.random_range(1..=12),
                kv_heads * rng.random_range(1..=4),
                kv_heads,
                rng.random_range(1..=256),
                rng.random_range(0..=300),
                rng.random_range(0..=20),
            )
        },
    );
    check_against_reference(
        "causal attention",
        112,
        &cases,
        |&(batch, n, heads, kv_heads, d, start, spare), rng| {
            let gpu = gpu_device();
            let (total, cache) = (start + n, start + n + spare);
            let q = random_values(rng, batch * n * heads * d);
            let k = random_values(rng, batch * kv_heads * cache * d);
            let v = random_values(rng, batch * kv_heads * cache * d);
            let scale = 1.0 / (d as f64).sqrt();
            let view = |x: &[f32]| {
                Tensor::<Gpu, 4>::from_primitive(TensorPrimitive::Float(float::<Gpu, 4>(
                    x,
                    [batch, kv_heads, cache, d],
                    &gpu,
                )))
                .narrow(2, 0, total)
                .into_primitive()
                .tensor()
            };
            let run = |fused: bool| {
                let qt = float::<Gpu, 4>(&q, [batch, n, heads, d], &gpu);
                read_any::<Gpu>(if fused {
                    Gpu::causal_attention(qt, view(&k), view(&v), start, scale)
                } else {
                    attention::reference::forward::<Gpu>(qt, view(&k), view(&v), start, scale)
                })
            };
            (run(true), run(false))
        },
    );
}

/// The squared-ReLU gate kernel against the reference composition on the
/// same backend, on odd shapes and more than 65,535 cubes once.
#[test]
fn relu2_gate_matches_reference() {
    let cases = with_random(
        vec![(1, 1), (8, 6912), (70_000, 300)],
        13,
        RANDOM_SHAPES / 4,
        |rng| (rng.random_range(1..=40), rng.random_range(1..=3000)),
    );
    check_against_reference("relu2 gate", 113, &cases, |&(rows, cols), rng| {
        let gpu = gpu_device();
        let g = random_values(rng, rows * cols);
        let u = random_values(rng, rows * cols);
        let run = |fused: bool| {
            let gt = float::<Gpu, 2>(&g, [rows, cols], &gpu);
            let ut = float::<Gpu, 2>(&u, [rows, cols], &gpu);
            read::<Gpu>(if fused {
                Gpu::relu2_gate(gt, ut)
            } else {
                relu2_gate::reference::forward::<Gpu>(gt, ut)
            })
        };
        (run(true), run(false))
    });
}

#[test]
fn embedding_gather_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(6);
    let mut failures = Vec::new();
    let mut shapes = vec![(1, 1, 1), (1, 5, 16), (4, 3, 17), (9, 100, 33)];
    for _ in 0..RANDOM_SHAPES {
        shapes.push((
            rng.random_range(1..=40),
            rng.random_range(1..=120),
            rng.random_range(1..=200),
        ));
    }
    for &(n, rows, cols) in &shapes {
        let weight = HostWeight::random(&mut rng, rows, cols);
        let ids: Vec<i32> = (0..n).map(|_| rng.random_range(0..rows as i32)).collect();
        let gpu_ids = Tensor::<Gpu, 1, Int>::from_data(TensorData::new(ids.clone(), [n]), &gpu)
            .into_primitive();
        let cpu_ids =
            Tensor::<Cpu, 1, Int>::from_data(TensorData::new(ids, [n]), &cpu).into_primitive();
        let got = read::<Gpu>(Gpu::ternary_embedding(
            gpu_ids,
            weight.on::<Gpu>(&gpu),
            empty_port::<Gpu>(&gpu),
        ));
        let want = read::<Cpu>(embedding::reference::forward::<Cpu>(
            cpu_ids,
            &weight.on::<Cpu>(&cpu),
        ));
        if let Err(e) = compare(&format!("n={n} rows={rows} cols={cols}"), &got, &want) {
            failures.push(e);
        }
    }
    finish("embedding gather", shapes.len(), failures);
}

/// Random convolution cases `(batch, rows, length, geometry)` whose output
/// length is at least 1: fixed edge cases first.
fn conv_cases(rng: &mut StdRng, random: usize) -> Vec<(usize, usize, usize, Conv1dGeometry)> {
    let geo = |in_channels, kernel_size, stride, padding, dilation| Conv1dGeometry {
        in_channels,
        kernel_size,
        stride,
        padding,
        dilation,
    };
    let mut cases = vec![
        (1, 1, 1, geo(1, 1, 1, 0, 1)),
        (1, 16, 16, geo(16, 1, 1, 0, 1)),
        (1, 5, 17, geo(3, 3, 1, 1, 1)),
        (2, 65, 70, geo(17, 5, 2, 2, 2)),
        (1, 8, 9, geo(5, 7, 3, 3, 1)),
        (3, 1, 40, geo(33, 2, 4, 0, 3)),
        (1, 70, 130, geo(64, 3, 1, 1, 1)),
        (2, 3, 5, geo(7, 4, 2, 3, 2)),
    ];
    while cases.len() < 8 + random {
        let g = geo(
            rng.random_range(1..=40),
            rng.random_range(1..=7),
            rng.random_range(1..=4),
            rng.random_range(0..=3),
            rng.random_range(1..=3),
        );
        let length = rng.random_range(1..=150);
        if g.output_len(length).is_some() {
            cases.push((rng.random_range(1..=4), rng.random_range(1..=80), length, g));
        }
    }
    cases
}

/// `[d0, d1, d2]` values on the GPU, every fifth case through a permuted
/// (non-contiguous) view.
fn gpu_3d(values: &[f32], shape: [usize; 3], strided: bool) -> FloatTensor<Gpu> {
    let gpu = gpu_device();
    if !strided {
        return float::<Gpu, 3>(values, shape, &gpu);
    }
    let [d0, d1, d2] = shape;
    let mut t = vec![0f32; values.len()];
    for a in 0..d0 {
        for b in 0..d1 {
            for c in 0..d2 {
                t[(a * d2 + c) * d1 + b] = values[(a * d1 + b) * d2 + c];
            }
        }
    }
    Tensor::<Gpu, 3>::from_data(TensorData::new(t, [d0, d2, d1]), &gpu)
        .swap_dims(1, 2)
        .into_primitive()
        .tensor()
}

/// Register blocks the conv checks run case `case` with (0 = the backend
/// op, with the built-in choice): both sizes on
/// every case on CUDA; on WGPU (lavapipe in CI, where time is short) the
/// built-in one, and both on every fourth case.
fn conv_blocks(case: usize) -> &'static [usize] {
    if cfg!(feature = "cuda") || case.is_multiple_of(4) {
        &[4, 8]
    } else {
        &[0]
    }
}

/// Runs `run` with each register block of [`conv_blocks`]`(case)` (`None`
/// for 0) and compares it with `want` (failures labelled `label` and the
/// block); returns the number of runs.
fn check_conv_blocks(
    case: usize,
    label: &str,
    want: &[f32],
    failures: &mut Vec<String>,
    run: impl Fn(Option<usize>) -> Vec<f32>,
) -> usize {
    let blocks = conv_blocks(case);
    for &block in blocks {
        let got = run((block > 0).then_some(block));
        if let Err(e) = compare(&format!("{label} block={block}"), &got, want) {
            failures.push(e);
        }
    }
    blocks.len()
}

#[test]
fn conv1d_forward_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let cpu = Default::default();
    let gpu = gpu_device();
    let mut rng = StdRng::seed_from_u64(8);
    let cases = conv_cases(&mut rng, RANDOM_SHAPES);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (case, &(batch, rows, length, g)) in cases.iter().enumerate() {
        let weight = HostWeight::random(&mut rng, rows, g.in_channels * g.kernel_size);
        let x = random_values(&mut rng, batch * g.in_channels * length);
        let shape = [batch, g.in_channels, length];
        let strided = case % 5 == 4;
        let want = read3::<Cpu>(conv1d::reference::forward::<Cpu>(
            float::<Cpu, 3>(&x, shape, &cpu),
            &weight.on::<Cpu>(&cpu),
            g,
        ));
        let label = format!("batch={batch} rows={rows} length={length} {g:?} strided={strided}");
        checked += check_conv_blocks(case, &label, &want, &mut failures, |block| {
            let w = weight.on::<Gpu>(&gpu);
            read3::<Gpu>(match block {
                None => {
                    Gpu::ternary_conv1d(gpu_3d(&x, shape, strided), w, g, empty_port::<Gpu>(&gpu))
                }
                Some(_) => conv1d::kernel_forward(
                    gpu_3d(&x, shape, strided),
                    w.trits,
                    w.scale,
                    rows,
                    g,
                    block,
                ),
            })
        });
    }
    finish("conv1d forward (implicit im2col)", checked, failures);
}

#[test]
fn conv1d_input_grad_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let cpu = Default::default();
    let gpu = gpu_device();
    let mut rng = StdRng::seed_from_u64(9);
    let cases = conv_cases(&mut rng, RANDOM_SHAPES);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (case, &(batch, rows, length, g)) in cases.iter().enumerate() {
        let out_len = g.output_len(length).unwrap();
        let weight = HostWeight::random(&mut rng, rows, g.in_channels * g.kernel_size);
        let gy = random_values(&mut rng, batch * rows * out_len);
        let shape = [batch, rows, out_len];
        let strided = case % 5 == 4;
        let want = read3::<Cpu>(conv1d::reference::input_grad::<Cpu>(
            float::<Cpu, 3>(&gy, shape, &cpu),
            &weight.on::<Cpu>(&cpu),
            g,
            length,
        ));
        let label = format!("batch={batch} rows={rows} length={length} {g:?} strided={strided}");
        checked += check_conv_blocks(case, &label, &want, &mut failures, |block| {
            let w = weight.on::<Gpu>(&gpu);
            read3::<Gpu>(match block {
                None => Gpu::ternary_conv1d_input_grad(gpu_3d(&gy, shape, strided), w, g, length),
                Some(_) => conv1d::kernel_input_grad(
                    gpu_3d(&gy, shape, strided),
                    w.trits,
                    w.scale,
                    g,
                    length,
                    block,
                ),
            })
        });
    }
    finish(
        "conv1d input grad / conv-transpose (implicit col2im)",
        checked,
        failures,
    );
}

/// The epilogue `kind` (0 plain, 1 context (`context` holds three steps'),
/// 2 residual, 3 denoise step) of
/// the fused convolution on backend `B`, from host values.
fn fused_epilogue<B: Backend>(
    kind: usize,
    context: &[f32],
    extra: &[f32],
    alpha: &[f32],
    full: [usize; 3],
    device: &B::Device,
) -> ConvEpilogue<FloatTensor<B>> {
    let [batch, rows, _] = full;
    match kind {
        0 => ConvEpilogue::Plain,
        // Three steps' contexts; the case's batch picks one.
        1 => ConvEpilogue::AddContext {
            context: float::<B, 3>(context, [3, batch, rows], device),
            step: batch % 3,
        },
        2 => ConvEpilogue::AddResidual(float::<B, 3>(extra, full, device)),
        _ => ConvEpilogue::DenoiseStep {
            latent: float::<B, 3>(extra, full, device),
            alpha: float::<B, 1>(alpha, [batch], device),
        },
    }
}

/// The fused forward convolution (every epilogue, with and without the GELU
/// copy) against the reference composition, on the shapes of the conv
/// checks; residual cases whose shapes allow it add `x` itself (the same
/// buffer bound twice).
#[test]
fn conv1d_fused_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let cpu = Default::default();
    let gpu = gpu_device();
    let mut rng = StdRng::seed_from_u64(10);
    let cases = conv_cases(&mut rng, RANDOM_SHAPES);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (case, &(batch, rows, length, g)) in cases.iter().enumerate() {
        let out_len = g.output_len(length).unwrap();
        let weight = HostWeight::random(&mut rng, rows, g.in_channels * g.kernel_size);
        let x = random_values(&mut rng, batch * g.in_channels * length);
        let full = [batch, rows, out_len];
        let context = random_values(&mut rng, 3 * batch * rows);
        let alpha: Vec<f32> = (0..batch)
            .map(|_| rng.random_range(0.05f32..0.99))
            .collect();
        let (kind, gelu, strided) = (case % 4, case % 3 != 0, case % 5 == 4);
        let shape = [batch, g.in_channels, length];
        let alias = kind == 2 && !strided && [batch, g.in_channels, length] == full;
        let extra = if alias {
            x.clone()
        } else {
            random_values(&mut rng, batch * rows * out_len)
        };
        let (y, activated) = conv1d::reference::fused_forward::<Cpu>(
            float::<Cpu, 3>(&x, shape, &cpu),
            &weight.on::<Cpu>(&cpu),
            g,
            fused_epilogue::<Cpu>(kind, &context, &extra, &alpha, full, &cpu),
            gelu,
        );
        let mut want = read3::<Cpu>(y);
        want.extend(activated.map(read3::<Cpu>).unwrap_or_default());
        let label = format!(
            "batch={batch} rows={rows} length={length} {g:?} epilogue={kind} gelu={gelu} strided={strided} alias={alias}"
        );
        checked += check_conv_blocks(case, &label, &want, &mut failures, |block| {
            let w = weight.on::<Gpu>(&gpu);
            let x = gpu_3d(&x, shape, strided);
            let epilogue = if alias {
                ConvEpilogue::AddResidual(x.clone())
            } else {
                fused_epilogue::<Gpu>(kind, &context, &extra, &alpha, full, &gpu)
            };
            let (y, activated) = match block {
                None => Gpu::ternary_conv1d_fused(x, w, g, epilogue, gelu),
                Some(_) => conv1d::kernel_fused_forward(
                    x, w.trits, w.scale, rows, g, epilogue, gelu, block,
                ),
            };
            let mut got = read3::<Gpu>(y);
            got.extend(activated.map(read3::<Gpu>).unwrap_or_default());
            got
        });
    }
    finish(
        "conv1d fused forward (epilogues, GELU copy)",
        checked,
        failures,
    );
}

#[test]
fn embedding_weight_grad_matches_reference() {
    if !gpu_ready() {
        return;
    }
    let gpu = gpu_device();
    let cpu = Default::default();
    let mut rng = StdRng::seed_from_u64(10);
    let mut failures = Vec::new();
    // (n, rows, cols): repeated ids (n >> rows), rows never hit, n = 1.
    let mut shapes = vec![
        (1, 1, 1),
        (1, 7, 16),
        (64, 2, 17),
        (300, 5, 33),
        (3, 100, 8),
    ];
    for _ in 0..RANDOM_SHAPES {
        shapes.push((
            rng.random_range(1..=200),
            rng.random_range(1..=120),
            rng.random_range(1..=150),
        ));
    }
    for &(n, rows, cols) in &shapes {
        let ids: Vec<i32> = (0..n).map(|_| rng.random_range(0..rows as i32)).collect();
        let grad = random_values(&mut rng, n * cols);
        let gpu_ids = Tensor::<Gpu, 1, Int>::from_data(TensorData::new(ids.clone(), [n]), &gpu)
            .into_primitive();
        let cpu_ids =
            Tensor::<Cpu, 1, Int>::from_data(TensorData::new(ids, [n]), &cpu).into_primitive();
        let got = read::<Gpu>(Gpu::ternary_embedding_weight_grad(
            gpu_ids,
            float::<Gpu, 2>(&grad, [n, cols], &gpu),
            rows,
        ));
        let want = read::<Cpu>(embedding::reference::weight_grad::<Cpu>(
            cpu_ids,
            float::<Cpu, 2>(&grad, [n, cols], &cpu),
            rows,
        ));
        if let Err(e) = compare(&format!("n={n} rows={rows} cols={cols}"), &got, &want) {
            failures.push(e);
        }
    }
    finish(
        "embedding weight grad (scatter-add)",
        shapes.len(),
        failures,
    );
}
