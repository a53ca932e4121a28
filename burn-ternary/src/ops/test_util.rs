//! Shared helpers for the op tests: random ternary weights and dense f64 oracles.

use burn::{
    backend::{Autodiff, NdArray},
    tensor::{backend::Backend, Tensor, TensorData},
};
use rand::{rngs::SmallRng, Rng, SeedableRng};

use crate::{packing::decode_scale, weight::TernaryWeight};

pub type TB = NdArray<f32>;
pub type AD = Autodiff<TB>;

pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// A random ternary weight and its dense f64 matrix (row-major `[rows, cols]`).
pub struct RandomWeight {
    pub trits: Vec<i8>,
    pub codes: Vec<i32>,
    pub rows: usize,
    pub cols: usize,
}

impl RandomWeight {
    pub fn new(rows: usize, cols: usize, rng: &mut SmallRng) -> Self {
        let trits = (0..rows * cols)
            .map(|_| rng.random_range(-1i8..=1))
            .collect();
        let codes = (0..rows).map(|_| rng.random_range(-24..=8)).collect();
        Self {
            trits,
            codes,
            rows,
            cols,
        }
    }

    pub fn module<B: Backend>(&self, device: &B::Device) -> TernaryWeight<B> {
        let memory = vec![0i8; self.rows * self.cols];
        TernaryWeight::from_host(
            &self.trits,
            &memory,
            &self.codes,
            self.rows,
            self.cols,
            device,
        )
        .unwrap()
    }

    pub fn dense(&self) -> Vec<f64> {
        (0..self.rows * self.cols)
            .map(|i| self.trits[i] as f64 * decode_scale(self.codes[i / self.cols]) as f64)
            .collect()
    }
}

pub fn random_vec(n: usize, rng: &mut SmallRng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

pub fn tensor<B: Backend, const D: usize>(
    values: &[f32],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec().unwrap()
}

/// `a: [m, k] · b: [k, n]` in f64.
pub fn matmul_f64(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let a_ip = a[i * k + p];
            for j in 0..n {
                out[i * n + j] += a_ip * b[p * n + j];
            }
        }
    }
    out
}

pub fn transpose_f64(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = a[r * cols + c];
        }
    }
    out
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

/// Asserts `‖actual − expected‖ / ‖expected‖ ≤ tol` and that no element is off by
/// more than `tol` relative to the largest expected magnitude.
pub fn assert_close(actual: &[f32], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let mut diff = 0.0;
    let mut norm = 0.0;
    let mut max_abs: f64 = 0.0;
    let scale = expected
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-30);
    for (a, e) in actual.iter().zip(expected) {
        assert!(a.is_finite(), "{what}: non-finite output");
        diff += (*a as f64 - e).powi(2);
        norm += e * e;
        max_abs = max_abs.max((*a as f64 - e).abs());
    }
    let rel = diff.sqrt() / norm.sqrt().max(1e-30);
    assert!(
        rel <= tol && max_abs / scale <= tol,
        "{what}: relative error {rel:.3e}, max abs error {max_abs:.3e} (scale {scale:.3e}), tolerance {tol:e}"
    );
}
