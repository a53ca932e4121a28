use burn::tensor::{Tensor, TensorPrimitive};

use crate::{backend::TernaryBackend, nn::TernaryLinear, ops::test_util::*};

const TOL: f64 = 1e-5;

fn shapes() -> Vec<(usize, usize, usize)> {
    // (m, rows, cols): single rows, K below/above/not a multiple of 16.
    let mut r = rng(1);
    let mut shapes = vec![
        (1, 1, 1),
        (1, 7, 16),
        (3, 5, 17),
        (1, 33, 31),
        (17, 9, 64),
        (2, 16, 100),
    ];
    for _ in 0..24 {
        use rand::Rng;
        shapes.push((
            r.random_range(1..20),
            r.random_range(1..40),
            r.random_range(1..90),
        ));
    }
    shapes
}

/// `TernaryLinear::forward` of `x: [m, cols]` on `B` against the dense f64
/// product with `w`.
fn assert_forward_matches<B: TernaryBackend>(w: &RandomWeight, x: &[f32], m: usize, what: &str) {
    let device = Default::default();
    let (rows, cols) = (w.rows, w.cols);
    let layer = TernaryLinear {
        weight: w.module::<B>(&device),
    };
    let y = layer.forward(tensor::<B, 2>(x, [m, cols], &device));
    let expected = matmul_f64(
        &f64s(x),
        &transpose_f64(&w.dense(), rows, cols),
        m,
        cols,
        rows,
    );
    assert_close(
        &host(y),
        &expected,
        TOL,
        &format!("{what} {m}x{cols} · ({rows}x{cols})ᵀ"),
    );
}

#[test]
fn forward_matches_dense_f64() {
    let mut r = rng(2);
    for (m, rows, cols) in shapes() {
        let w = RandomWeight::new(rows, cols, &mut r);
        let x = random_vec(m * cols, &mut r);
        assert_forward_matches::<TB>(&w, &x, m, "forward");
    }
}

#[test]
fn forward_keeps_batch_dims() {
    let device = Default::default();
    let mut r = rng(3);
    let w = RandomWeight::new(6, 21, &mut r);
    let x = random_vec(2 * 3 * 21, &mut r);
    let layer = TernaryLinear {
        weight: w.module::<TB>(&device),
    };
    let y = layer.forward(tensor::<TB, 3>(&x, [2, 3, 21], &device));
    assert_eq!(y.dims(), [2, 3, 6]);
    let expected = matmul_f64(&f64s(&x), &transpose_f64(&w.dense(), 6, 21), 6, 21, 6);
    assert_close(&host(y.reshape([6, 6])), &expected, TOL, "batched forward");
}

#[test]
fn gradients_match_dense_f64() {
    let device = Default::default();
    let mut r = rng(4);
    for (m, rows, cols) in shapes() {
        let w = RandomWeight::new(rows, cols, &mut r);
        let x = random_vec(m * cols, &mut r);
        let upstream = random_vec(m * rows, &mut r);
        let layer = TernaryLinear {
            weight: w.module::<AD>(&device),
        };
        let x_t = tensor::<AD, 2>(&x, [m, cols], &device).require_grad();
        let loss =
            (layer.forward(x_t.clone()) * tensor::<AD, 2>(&upstream, [m, rows], &device)).sum();
        let grads = loss.backward();
        let grad_x = x_t.grad(&grads).unwrap();
        let grad_w = layer.weight.grad_port.grad(&grads).unwrap();
        // dL/dx = U · W, dL/dW = Uᵀ · x.
        let expected_x = matmul_f64(&f64s(&upstream), &w.dense(), m, rows, cols);
        let expected_w = matmul_f64(
            &transpose_f64(&f64s(&upstream), m, rows),
            &f64s(&x),
            rows,
            m,
            cols,
        );
        assert_close(
            &host(grad_x),
            &expected_x,
            TOL,
            &format!("grad_x {m}x{rows}x{cols}"),
        );
        assert_eq!(grad_w.dims(), [rows, cols]);
        assert_close(
            &host(grad_w),
            &expected_w,
            TOL,
            &format!("grad_w {m}x{rows}x{cols}"),
        );
    }
}

#[test]
fn weight_gradient_equals_dense_linear_gradient() {
    // The port's gradient is the gradient of the same loss through a dense f32
    // matrix W = s ⊙ T tracked by autodiff.
    let device = Default::default();
    let mut r = rng(5);
    let w = RandomWeight::new(12, 37, &mut r);
    let x = random_vec(5 * 37, &mut r);
    let layer = TernaryLinear {
        weight: w.module::<AD>(&device),
    };
    let loss = layer
        .forward(tensor::<AD, 2>(&x, [5, 37], &device))
        .powf_scalar(2.0)
        .sum();
    let ternary_grad = host(layer.weight.grad_port.grad(&loss.backward()).unwrap());

    let dense = Tensor::<AD, 2>::from_inner(layer.weight.to_dense().inner()).require_grad();
    let loss = tensor::<AD, 2>(&x, [5, 37], &device)
        .matmul(dense.clone().transpose())
        .powf_scalar(2.0)
        .sum();
    let dense_grad = host(dense.grad(&loss.backward()).unwrap());
    assert_close(
        &ternary_grad,
        &f64s(&dense_grad),
        TOL,
        "port gradient vs dense gradient",
    );
}

#[test]
fn untracked_forward_on_autodiff_matches_inner() {
    let device = Default::default();
    let mut r = rng(6);
    let w = RandomWeight::new(4, 19, &mut r);
    let x = random_vec(3 * 19, &mut r);
    let ad = TernaryLinear {
        weight: w.module::<AD>(&device),
    };
    let y = host(ad.forward(tensor::<AD, 2>(&x, [3, 19], &device)).inner());
    let inner = <TB as TernaryBackend>::ternary_matmul(
        tensor::<TB, 2>(&x, [3, 19], &device)
            .into_primitive()
            .tensor(),
        w.module::<TB>(&device).primitive(),
        w.module::<TB>(&device).port(),
    );
    let inner = host(Tensor::<TB, 2>::from_primitive(TensorPrimitive::Float(
        inner,
    )));
    assert_eq!(y, inner);
}

/// The CPU backends' host GEMV (every `m <= 16` forward on NdArray and Flex)
/// against the dense f64 product: activation rows 1 to 16, weight rows
/// across several parallel tasks of 32, widths that are no multiple of the
/// 16-trit word, all-zero words; and on NdArray<f64>, which keeps the
/// reference.
#[test]
fn host_gemv_matches_dense_f64() {
    use super::host::HOST_GEMV_MAX_M;
    use burn::backend::{Flex, NdArray};
    use rand::Rng;

    fn check<B: TernaryBackend>(m: usize, rows: usize, cols: usize, r: &mut rand::rngs::SmallRng) {
        let mut w = RandomWeight::new(rows, cols, r);
        if rows > 2 {
            // A row of zeros, whose words are all skipped.
            w.trits[cols..2 * cols].iter_mut().for_each(|t| *t = 0);
        }
        let x = random_vec(m * cols, r);
        assert_forward_matches::<B>(&w, &x, m, "host GEMV");
    }

    let mut r = rng(9);
    for m in 1..=HOST_GEMV_MAX_M {
        let (rows, cols) = (r.random_range(1..150), r.random_range(1..300));
        check::<Flex>(m, rows, cols, &mut r);
        check::<TB>(m, rows, cols, &mut r);
    }
    for (m, rows, cols) in [
        (1, 1, 1),
        (1, 31, 15),
        (2, 33, 16),
        (1, 64, 17),
        (16, 97, 255),
    ] {
        check::<Flex>(m, rows, cols, &mut r);
    }
    check::<NdArray<f64>>(3, 40, 50, &mut r);
}
