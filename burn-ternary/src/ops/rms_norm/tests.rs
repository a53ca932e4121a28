use crate::functional::rms_norm;
use crate::ops::test_util::*;

/// The reference against the formula in f64 on odd shapes, and its
/// gradient with respect to `x` (the default on `Autodiff`) against a
/// central difference.
#[test]
fn rms_norm_matches_f64_formula_and_differentiates() {
    let device = Default::default();
    let mut r = rng(41);
    for (batch, seq, cols) in [(1, 1, 1), (2, 3, 17), (1, 5, 300), (3, 1, 2560)] {
        let x = random_vec(batch * seq * cols, &mut r);
        let gamma = random_vec(cols, &mut r);
        let eps = 1e-5;
        let got = rms_norm(
            tensor::<AD, 3>(&x, [batch, seq, cols], &device),
            Some(tensor::<AD, 1>(&gamma, [cols], &device)),
            eps,
        );
        let want: Vec<f64> = x
            .chunks(cols)
            .flat_map(|row| {
                let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / cols as f64;
                let inv = 1.0 / (ms + eps).sqrt();
                row.iter()
                    .zip(&gamma)
                    .map(move |(v, g)| *v as f64 * inv * *g as f64)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_close(&host(got.inner()), &want, 1e-5, "rms norm");
    }
    // d/dx of Σ w · rms_norm(x) against a central difference in f64.
    let cols = 7;
    let x = random_vec(cols, &mut r);
    let gamma = random_vec(cols, &mut r);
    let w = random_vec(cols, &mut r);
    let loss = |x: &[f64]| {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / cols as f64;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        (0..cols)
            .map(|c| x[c] * inv * gamma[c] as f64 * w[c] as f64)
            .sum::<f64>()
    };
    let xt = tensor::<AD, 2>(&x, [1, cols], &device).require_grad();
    let y = rms_norm(
        xt.clone(),
        Some(tensor::<AD, 1>(&gamma, [cols], &device)),
        1e-5,
    );
    let grads = (y * tensor::<AD, 2>(&w, [1, cols], &device))
        .sum()
        .backward();
    let got = host(xt.grad(&grads).unwrap());
    let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let want: Vec<f64> = (0..cols)
        .map(|c| {
            let h = 1e-6;
            let (mut a, mut b) = (x64.clone(), x64.clone());
            a[c] += h;
            b[c] -= h;
            (loss(&a) - loss(&b)) / (2.0 * h)
        })
        .collect();
    assert_close(&got, &want, 1e-3, "rms norm gradient");
}
