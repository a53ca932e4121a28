use crate::functional::causal_attention;
use crate::ops::test_util::*;

/// The reference against causal grouped-query attention in f64: prefill
/// (start 0, keys of the same tokens), a step after a history (start > 0,
/// keys of all positions), odd sizes, two query heads per key/value head.
#[test]
fn attention_matches_f64_formula() {
    let device = Default::default();
    let mut r = rng(43);
    for (batch, n, heads, kv_heads, d, start) in [
        (1, 1, 1, 1, 2, 0),
        (2, 3, 4, 2, 6, 0),
        (1, 2, 6, 3, 5, 7),
        (2, 1, 2, 1, 8, 4),
    ] {
        let total = start + n;
        let q = random_vec(batch * n * heads * d, &mut r);
        let k = random_vec(batch * kv_heads * total * d, &mut r);
        let v = random_vec(batch * kv_heads * total * d, &mut r);
        let scale = 1.0 / (d as f64).sqrt();
        let got = causal_attention(
            tensor::<AD, 4>(&q, [batch, n, heads, d], &device),
            tensor::<AD, 4>(&k, [batch, kv_heads, total, d], &device),
            tensor::<AD, 4>(&v, [batch, kv_heads, total, d], &device),
            start,
            scale,
        );
        let mut want = vec![0f64; q.len()];
        for b in 0..batch {
            for t in 0..n {
                for h in 0..heads {
                    let g = h / (heads / kv_heads);
                    let qrow = &q[((b * n + t) * heads + h) * d..][..d];
                    let kv = |x: &[f32], p: usize, e: usize| {
                        x[((b * kv_heads + g) * total + p) * d + e] as f64
                    };
                    let visible = start + t + 1;
                    let scores: Vec<f64> = (0..visible)
                        .map(|p| (0..d).map(|e| qrow[e] as f64 * kv(&k, p, e)).sum::<f64>() * scale)
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = w.iter().sum();
                    for e in 0..d {
                        want[((b * n + t) * heads + h) * d + e] =
                            (0..visible).map(|p| w[p] * kv(&v, p, e)).sum::<f64>() / sum;
                    }
                }
            }
        }
        assert_close(&host(got.inner()), &want, 1e-5, "causal attention");
    }
}
