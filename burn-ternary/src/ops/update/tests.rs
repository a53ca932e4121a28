use burn::tensor::Tensor;
use rand::Rng;

use super::{counter_uniform, ternary_update, NoiseKey, UpdateHyper};
use crate::{
    nn::UPDATE_THRESHOLD,
    ops::test_util::*,
    optim::GradNormalization,
    packing::{
        decode_scale, int_tensor, memory_words, pack_memory, pack_trits, trit_words, unpack_memory,
        unpack_trits, SCALE_CODE_RANGE,
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

/// The update rule on the host, entry by entry (f32 arithmetic in the
/// reference's order, normalizers in f64).
fn oracle(
    grad: &[f32],
    w: &RandomWeight,
    memory: &[i8],
    hyper: UpdateHyper,
    key: NoiseKey,
) -> (Vec<i8>, Vec<i8>, Vec<i32>) {
    let (rows, cols) = (w.rows, w.cols);
    let theta = UPDATE_THRESHOLD;
    let row_sq: Vec<f64> = (0..rows)
        .map(|r| {
            grad[r * cols..(r + 1) * cols]
                .iter()
                .map(|g| (*g as f64).powi(2))
                .sum()
        })
        .collect();
    let total_rms = (row_sq.iter().sum::<f64>() / (rows * cols) as f64).sqrt() + 1e-30;
    let grad_code: Vec<f64> = (0..rows)
        .map(|r| {
            let dot: f64 = (0..cols)
                .map(|c| grad[r * cols + c] as f64 * w.trits[r * cols + c] as f64)
                .sum();
            dot * decode_scale(w.codes[r]) as f64 * super::LN2_PER_CODE
        })
        .collect();
    let code_rms = (grad_code.iter().map(|g| g * g).sum::<f64>() / rows as f64).sqrt() + 1e-30;
    let codes = (0..rows)
        .map(|r| {
            let step = (grad_code[r] / code_rms * hyper.scale_lr).clamp(-1.0, 1.0) as f32;
            let delta = (step + key.scale_uniform(r as u32)).floor() as i32;
            (w.codes[r] - delta).clamp(SCALE_CODE_RANGE.0, SCALE_CODE_RANGE.1)
        })
        .collect();
    let lr_theta = (hyper.lr * theta as f64) as f32;
    let (mut trits, mut mem) = (w.trits.clone(), memory.to_vec());
    for r in 0..rows {
        let rms = match hyper.normalization {
            GradNormalization::Tensor => total_rms,
            GradNormalization::Row => (row_sq[r] / cols as f64).sqrt() + 1e-30,
        } as f32;
        for c in 0..cols {
            let i = r * cols + c;
            let step = (grad[i] / rms * lr_theta).clamp(-theta as f32, theta as f32);
            let delta = (step + key.memory_uniform(i as u32)).floor() as i32;
            let (mut t, mut m) = (trits[i] as i32, mem[i] as i32 - delta);
            if m > theta && t < 1 {
                (t, m) = (t + 1, m - theta);
            } else if m < -theta && t > -1 {
                (t, m) = (t - 1, m + theta);
            }
            trits[i] = t as i8;
            mem[i] = m.clamp(-theta, theta) as i8;
        }
    }
    (trits, mem, codes)
}

#[test]
fn reference_matches_the_entrywise_rule() {
    let device = Default::default();
    let mut r = rng(41);
    let mut checked = 0;
    let mut mismatched = 0;
    for case in 0..24 {
        let rows = r.random_range(1..20);
        let cols = r.random_range(1..70);
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
        let key = NoiseKey::new(case, 7, 1);
        let updated = ternary_update::<TB>(
            tensor::<TB, 2>(&grad, [rows, cols], &device),
            int_tensor(
                pack_trits(&w.trits, rows, cols),
                [rows, trit_words(cols)],
                &device,
            ),
            int_tensor(
                pack_memory(&memory, rows, cols),
                [rows, memory_words(cols)],
                &device,
            ),
            int_tensor(w.codes.clone(), [rows], &device),
            hyper,
            key,
        )
        .unwrap();
        let words = |t: Tensor<TB, 2, burn::tensor::Int>| -> Vec<i32> {
            t.into_data().convert::<i32>().into_vec().unwrap()
        };
        let got_trits = unpack_trits(&words(updated.trits), rows, cols);
        let got_memory = unpack_memory(&words(updated.memory), rows, cols);
        let got_codes: Vec<i32> = updated
            .scale_code
            .into_data()
            .convert::<i32>()
            .into_vec()
            .unwrap();
        let (trits, mem, codes) = oracle(&grad, &w, &memory, hyper, key);
        // Normalizers summed in another order may move a `step + u` that sits
        // within an ulp of an integer across it: allow one such entry in 10^3.
        for i in 0..rows * cols {
            checked += 1;
            if (got_trits[i], got_memory[i]) != (trits[i], mem[i]) {
                mismatched += 1;
                let latent = |t: i8, m: i8| t as i32 * UPDATE_THRESHOLD + m as i32;
                assert!(
                    (latent(got_trits[i], got_memory[i]) - latent(trits[i], mem[i])).abs() <= 1,
                    "case {case} entry {i}: ({}, {}) vs ({}, {})",
                    got_trits[i],
                    got_memory[i],
                    trits[i],
                    mem[i]
                );
            }
        }
        for (g, w) in got_codes.iter().zip(&codes) {
            assert!((g - w).abs() <= 1, "case {case}: scale code {g} vs {w}");
        }
        mismatched += got_codes.iter().zip(&codes).filter(|(g, w)| g != w).count();
    }
    assert!(
        mismatched * 1000 <= checked,
        "{mismatched} of {checked} entries differ from the rule"
    );
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
