use crate::functional::rotary_embedding;
use crate::ops::test_util::*;

/// The reference against the rotate-half formula in f64 on odd shapes, at a
/// start position inside the tables.
#[test]
fn rope_matches_f64_formula() {
    let device = Default::default();
    let mut r = rng(42);
    for (batch, n, heads, d, positions, start) in [
        (1, 1, 1, 2, 1, 0),
        (2, 3, 5, 6, 9, 4),
        (1, 7, 2, 128, 16, 9),
    ] {
        let x = random_vec(batch * n * heads * d, &mut r);
        let cos = random_vec(positions * d, &mut r);
        let sin = random_vec(positions * d, &mut r);
        let got = rotary_embedding(
            tensor::<AD, 4>(&x, [batch, n, heads, d], &device),
            tensor::<AD, 2>(&cos, [positions, d], &device),
            tensor::<AD, 2>(&sin, [positions, d], &device),
            start,
        );
        let want: Vec<f64> = (0..x.len())
            .map(|i| {
                let j = i % d;
                let t = (start + (i / (d * heads)) % n) * d + j;
                let partner = if j < d / 2 {
                    -(x[i + d / 2] as f64)
                } else {
                    x[i - d / 2] as f64
                };
                x[i] as f64 * cos[t] as f64 + partner * sin[t] as f64
            })
            .collect();
        assert_close(&host(got.inner()), &want, 1e-6, "rotary embedding");
    }
}
