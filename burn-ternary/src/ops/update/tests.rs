use burn::tensor::{ops::FloatTensor, Int, Tensor};
use rand::Rng;

use super::{host, reference};
use crate::{
    functional::ternary_update,
    ops::test_util::*,
    packing::{
        int_tensor, memory_words, pack_memory, pack_trits, trit_words, unpack_memory, unpack_trits,
    },
    types::{
        counter_uniform, GradNormalization, NoiseKey, TernaryState, UpdateHyper, UPDATE_THRESHOLD,
    },
    TernaryError,
};

#[test]
fn counter_noise_is_uniform_independent_and_keyed() {
    let key = NoiseKey::new(1, 2, 3);
    let n = 1 << 17;
    let u: Vec<f64> = (0..n).map(|i| key.memory_uniform(i) as f64).collect();
    assert!(u.iter().all(|u| (0.0..1.0).contains(u)));
    let mean = u.iter().sum::<f64>() / n as f64;
    // Standard error of the mean: 1/sqrt(12n) = 8e-4.
    assert!((mean - 0.5).abs() < 4e-3, "mean {mean}");
    // 16 bins, chi-square with 15 degrees of freedom: p = 1e-4 at 44.3.
    let mut bins = [0f64; 16];
    for v in &u {
        bins[(v * 16.0) as usize] += 1.0;
    }
    let expected = n as f64 / 16.0;
    let chi2: f64 = bins.iter().map(|b| (b - expected).powi(2) / expected).sum();
    assert!(chi2 < 44.3, "chi-square {chi2} over 16 bins");
    // Neighbouring counters are uncorrelated (standard error 1/sqrt(n) = 2.8e-3).
    let var = u.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    let lag1 = u
        .windows(2)
        .map(|w| (w[0] - mean) * (w[1] - mean))
        .sum::<f64>();
    assert!(
        (lag1 / var).abs() < 0.015,
        "lag-1 correlation {}",
        lag1 / var
    );
    // Streams differ across steps, weights and between memory and scales.
    let other = [NoiseKey::new(1, 3, 3), NoiseKey::new(1, 2, 4)];
    for k in other {
        let same = (0..1000)
            .filter(|&i| k.memory_uniform(i) == key.memory_uniform(i))
            .count();
        assert!(same < 5, "{same} equal draws between two keys");
    }
    assert_ne!(key.memory, key.scale);
    assert_eq!(counter_uniform(key.scale, 9), key.scale_uniform(9));
}

/// An implementation of the update op.
type UpdateFn =
    fn(FloatTensor<TB>, TernaryState<TB>, usize, UpdateHyper, NoiseKey) -> TernaryState<TB>;

/// Runs one update implementation on the host-side state, returning the
/// unpacked trits, memory and scale codes.
fn run(
    update: UpdateFn,
    grad: &[f32],
    state: (&[i8], &[i8], &[i32]),
    (rows, cols): (usize, usize),
    hyper: UpdateHyper,
    key: NoiseKey,
) -> (Vec<i8>, Vec<i8>, Vec<i32>) {
    let device = Default::default();
    let out = update(
        tensor::<TB, 2>(grad, [rows, cols], &device)
            .into_primitive()
            .tensor(),
        TernaryState {
            trits: int_tensor::<TB, 2>(
                pack_trits(state.0, rows, cols),
                [rows, trit_words(cols)],
                &device,
            )
            .into_primitive(),
            memory: int_tensor::<TB, 2>(
                pack_memory(state.1, rows, cols),
                [rows, memory_words(cols)],
                &device,
            )
            .into_primitive(),
            scale_code: int_tensor::<TB, 1>(state.2.to_vec(), [rows], &device).into_primitive(),
        },
        cols,
        hyper,
        key,
    );
    let ints =
        |t: Tensor<TB, 2, Int>| -> Vec<i32> { t.into_data().convert::<i32>().into_vec().unwrap() };
    (
        unpack_trits(&ints(Tensor::from_primitive(out.trits)), rows, cols),
        unpack_memory(&ints(Tensor::from_primitive(out.memory)), rows, cols),
        Tensor::<TB, 1, Int>::from_primitive(out.scale_code)
            .into_data()
            .convert::<i32>()
            .into_vec()
            .unwrap(),
    )
}

#[test]
fn host_pass_matches_the_reference() {
    let mut r = rng(41);
    let (mut checked, mut mismatched) = (0, 0);
    // Random small shapes, and two large enough to be split over threads.
    let mut shapes: Vec<(usize, usize)> = (0..24)
        .map(|_| (r.random_range(1..20), r.random_range(1..70)))
        .collect();
    shapes.extend([(300, 301), (1000, 77)]);
    for (case, &(rows, cols)) in shapes.iter().enumerate() {
        let w = RandomWeight::new(rows, cols, &mut r);
        let memory: Vec<i8> = (0..rows * cols).map(|_| r.random_range(-64..=64)).collect();
        let grad: Vec<f32> = random_vec(rows * cols, &mut r)
            .iter()
            .map(|g| g * 10f32.powi(r.random_range(-3..3)))
            .collect();
        let hyper = UpdateHyper {
            lr: r.random_range(0.01..2.0),
            scale_lr: r.random_range(0.0..2.0),
            normalization: if case % 2 == 0 {
                GradNormalization::Tensor
            } else {
                GradNormalization::Row
            },
        };
        let key = NoiseKey::new(case as u64, 7, 1);
        let state = (&w.trits[..], &memory[..], &w.codes[..]);
        let got = run(host::update::<TB>, &grad, state, (rows, cols), hyper, key);
        let want = run(
            reference::update::<TB>,
            &grad,
            state,
            (rows, cols),
            hyper,
            key,
        );
        // Normalizers summed in another order may move a `step + u` that sits
        // within an ulp of an integer across it: allow one such entry in 10^3,
        // by one latent unit.
        let latent = |t: i8, m: i8| t as i32 * UPDATE_THRESHOLD + m as i32;
        for i in 0..rows * cols {
            checked += 1;
            if (got.0[i], got.1[i]) != (want.0[i], want.1[i]) {
                mismatched += 1;
                let moved = latent(got.0[i], got.1[i]) - latent(want.0[i], want.1[i]);
                assert!(
                    moved.abs() <= 1,
                    "case {case} entry {i}: {got:?} vs {want:?}"
                );
            }
        }
        for (g, w) in got.2.iter().zip(&want.2) {
            checked += 1;
            assert!((g - w).abs() <= 1, "case {case}: scale code {g} vs {w}");
            mismatched += (g != w) as usize;
        }
    }
    assert!(
        mismatched * 1000 <= checked,
        "{mismatched} of {checked} entries differ"
    );
}

#[test]
fn autodiff_backend_runs_the_inner_update() {
    let mut r = rng(5);
    let (rows, cols) = (33, 45);
    let w = RandomWeight::new(rows, cols, &mut r);
    let memory: Vec<i8> = (0..rows * cols).map(|_| r.random_range(-64..=64)).collect();
    let grad = random_vec(rows * cols, &mut r);
    let hyper = UpdateHyper {
        lr: 0.7,
        scale_lr: 0.5,
        normalization: GradNormalization::Row,
    };
    let key = NoiseKey::new(1, 2, 3);
    let device = Default::default();
    let on = |words: Vec<i32>, cols: usize| int_tensor::<AD, 2>(words, [rows, cols], &device);
    let updated = ternary_update::<AD>(
        tensor::<AD, 2>(&grad, [rows, cols], &device).require_grad(),
        on(pack_trits(&w.trits, rows, cols), trit_words(cols)),
        on(pack_memory(&memory, rows, cols), memory_words(cols)),
        int_tensor(w.codes.clone(), [rows], &device),
        hyper,
        key,
    )
    .unwrap();
    let state = (&w.trits[..], &memory[..], &w.codes[..]);
    let want = run(host::update::<TB>, &grad, state, (rows, cols), hyper, key);
    let ints =
        |t: Tensor<AD, 2, Int>| -> Vec<i32> { t.into_data().convert::<i32>().into_vec().unwrap() };
    assert_eq!(unpack_trits(&ints(updated.trits), rows, cols), want.0);
    assert_eq!(unpack_memory(&ints(updated.memory), rows, cols), want.1);
    let codes: Vec<i32> = updated
        .scale_code
        .into_data()
        .convert::<i32>()
        .into_vec()
        .unwrap();
    assert_eq!(codes, want.2);
}

#[test]
fn mis_shaped_state_is_named() {
    let device = Default::default();
    let grad = Tensor::<TB, 2>::zeros([3, 20], &device);
    let words = |n| int_tensor::<TB, 2>(vec![0; 3 * n], [3, n], &device);
    let hyper = UpdateHyper {
        lr: 0.1,
        scale_lr: 0.1,
        normalization: GradNormalization::Tensor,
    };
    let codes = || int_tensor::<TB, 1>(vec![0; 3], [3], &device);
    let err = ternary_update(
        grad.clone(),
        words(1),
        words(5),
        codes(),
        hyper,
        NoiseKey::new(0, 0, 0),
    )
    .unwrap_err();
    assert!(
        matches!(&err, TernaryError::ShapeMismatch { tensor, .. } if tensor == "trits"),
        "{err}"
    );
    let err = ternary_update(
        grad,
        words(2),
        words(4),
        codes(),
        hyper,
        NoiseKey::new(0, 0, 0),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `memory` has shape [3, 4], expected [3, 5]"
    );
}
