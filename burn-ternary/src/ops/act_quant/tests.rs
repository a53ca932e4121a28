use crate::functional::quantize_activations;
use crate::ops::test_util::*;

/// The reference against the formula in f64, on odd shapes with one
/// all-zero row (which the floor keeps at zero).
#[test]
fn quantization_matches_f64_formula() {
    let device = Default::default();
    let mut r = rng(40);
    for (batch, seq, cols) in [(1, 1, 1), (2, 3, 17), (1, 5, 300), (3, 1, 2560)] {
        let mut x = random_vec(batch * seq * cols, &mut r);
        x[..cols].iter_mut().for_each(|v| *v = 0.0);
        let got = quantize_activations(tensor::<AD, 3>(&x, [batch, seq, cols], &device));
        let mut want = vec![0.0; x.len()];
        for (row, out) in x.chunks(cols).zip(want.chunks_mut(cols)) {
            let absmax = row.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            let s = 127.0 / absmax.max(1e-5);
            for (o, v) in out.iter_mut().zip(row) {
                *o = (*v as f64 * s).round_ties_even().clamp(-128.0, 127.0) / s;
            }
        }
        assert_close(&host(got.inner()), &want, 1e-6, "quantized activations");
    }
}

/// Under `Autodiff` the gradient is straight-through: `d(Σ w·q(x))/dx = w`
/// for every entry, the row maxima included (composed of Burn's ops, the
/// rounding would pass nothing and only the maxima would get a gradient);
/// the forward is the inner backend's.
#[test]
fn the_gradient_is_straight_through() {
    let device = Default::default();
    let mut r = rng(41);
    let (rows, cols) = (3, 37);
    let x = random_vec(rows * cols, &mut r);
    let w = random_vec(rows * cols, &mut r);
    let xt = tensor::<AD, 2>(&x, [rows, cols], &device).require_grad();
    let wt = tensor::<AD, 2>(&w, [rows, cols], &device);
    let q = quantize_activations(xt.clone());
    let inner = quantize_activations(tensor::<TB, 2>(&x, [rows, cols], &device));
    assert_close(
        &host(q.clone().inner()),
        &f64s(&host(inner)),
        0.0,
        "forward under autodiff",
    );
    let grads = (q * wt).sum().backward();
    let grad = host(xt.grad(&grads).expect("x has a gradient"));
    assert_close(&grad, &f64s(&w), 0.0, "straight-through gradient");
}
