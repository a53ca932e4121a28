use burn::tensor::Tensor;

use crate::functional::denoise_step;
use crate::ops::test_util::*;

#[test]
fn forward_and_gradients_match_f64_formula() {
    let device = Default::default();
    let mut r = rng(30);
    for (batch, c, h, w) in [(1, 16, 4, 4), (3, 2, 5, 7), (2, 1, 1, 1), (4, 3, 9, 2)] {
        let n = c * h * w;
        let latent = random_vec(batch * n, &mut r);
        let eps = random_vec(batch * n, &mut r);
        let alpha: Vec<f32> = random_vec(batch, &mut r)
            .iter()
            .map(|a| 0.05 + 0.9 * a.abs())
            .collect();
        let upstream = random_vec(batch * n, &mut r);
        let l = tensor::<AD, 4>(&latent, [batch, c, h, w], &device).require_grad();
        let e = tensor::<AD, 4>(&eps, [batch, c, h, w], &device).require_grad();
        let out = denoise_step(
            l.clone(),
            e.clone(),
            tensor::<AD, 1>(&alpha, [batch], &device),
        )
        .unwrap();
        let grads = (out.clone() * tensor::<AD, 4>(&upstream, [batch, c, h, w], &device))
            .sum()
            .backward();
        let mut expected = vec![0.0; batch * n];
        let mut expected_gl = vec![0.0; batch * n];
        let mut expected_ge = vec![0.0; batch * n];
        for i in 0..batch * n {
            let a = alpha[i / n] as f64;
            expected[i] = (latent[i] as f64 - (1.0 - a) * eps[i] as f64) / a.sqrt();
            expected_gl[i] = upstream[i] as f64 / a.sqrt();
            expected_ge[i] = -upstream[i] as f64 * (1.0 - a) / a.sqrt();
        }
        assert_close(&host(out.inner()), &expected, 1e-6, "denoise forward");
        assert_close(
            &host(l.grad(&grads).unwrap()),
            &expected_gl,
            1e-6,
            "denoise grad latent",
        );
        assert_close(
            &host(e.grad(&grads).unwrap()),
            &expected_ge,
            1e-6,
            "denoise grad eps",
        );
    }
}

#[test]
fn mismatched_inputs_are_named() {
    let device = Default::default();
    let latent = Tensor::<TB, 2>::zeros([2, 3], &device);
    let err = denoise_step(
        latent.clone(),
        Tensor::zeros([2, 4], &device),
        Tensor::ones([2], &device),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `eps` has shape [2, 4], expected [2, 3] (the shape of latent)"
    );
    let err = denoise_step(latent.clone(), latent, Tensor::ones([3], &device)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `alpha` has shape [3], expected [2] (one per sample)"
    );
}
