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
