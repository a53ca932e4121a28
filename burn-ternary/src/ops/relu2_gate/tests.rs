use crate::functional::relu2_gate;
use crate::ops::test_util::*;

/// The reference against `max(g, 0)² · u` in f64, and its gradients
/// (`2·relu(g)·u` for the gate, `relu(g)²` for up) on `Autodiff`.
#[test]
fn relu2_gate_matches_f64_formula_and_differentiates() {
    let device = Default::default();
    let mut r = rng(44);
    let (rows, cols) = (3, 37);
    let g = random_vec(rows * cols, &mut r);
    let u = random_vec(rows * cols, &mut r);
    let gt = tensor::<AD, 2>(&g, [rows, cols], &device).require_grad();
    let ut = tensor::<AD, 2>(&u, [rows, cols], &device).require_grad();
    let y = relu2_gate(gt.clone(), ut.clone());
    let relu = |v: f32| (v as f64).max(0.0);
    let want: Vec<f64> = g
        .iter()
        .zip(&u)
        .map(|(g, u)| relu(*g).powi(2) * *u as f64)
        .collect();
    assert_close(&host(y.clone().inner()), &want, 1e-6, "relu2 gate");
    let grads = y.sum().backward();
    let dg: Vec<f64> = g
        .iter()
        .zip(&u)
        .map(|(g, u)| 2.0 * relu(*g) * *u as f64)
        .collect();
    let du: Vec<f64> = g.iter().map(|g| relu(*g).powi(2)).collect();
    assert_close(&host(gt.grad(&grads).unwrap()), &dg, 1e-5, "gate gradient");
    assert_close(&host(ut.grad(&grads).unwrap()), &du, 1e-5, "up gradient");
}
