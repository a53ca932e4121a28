use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;

use crate::{nn::TernaryEmbedding, ops::test_util::*};

#[test]
fn gather_and_gradient_match_dense_f64() {
    let device = Default::default();
    let mut r = rng(10);
    for _ in 0..25 {
        let (rows, cols, n) = (
            r.random_range(1..50),
            r.random_range(1..70),
            r.random_range(1..30),
        );
        let w = RandomWeight::new(rows, cols, &mut r);
        let ids: Vec<i64> = (0..n).map(|_| r.random_range(0..rows as i64)).collect();
        let table = TernaryEmbedding {
            weight: w.module::<AD>(&device),
        };
        let ids_t = Tensor::<AD, 1, Int>::from_data(TensorData::new(ids.clone(), [n]), &device);
        let out = table.try_lookup(ids_t).unwrap();
        let dense = w.dense();
        let expected: Vec<f64> = ids
            .iter()
            .flat_map(|i| dense[*i as usize * cols..(*i as usize + 1) * cols].to_vec())
            .collect();
        assert_close(&host(out.clone().inner()), &expected, 1e-6, "gather");

        let upstream = random_vec(n * cols, &mut r);
        let grads = (out * tensor::<AD, 2>(&upstream, [n, cols], &device))
            .sum()
            .backward();
        let grad = host(table.weight.grad_port.grad(&grads).unwrap());
        let mut expected = vec![0.0f64; rows * cols];
        for (k, id) in ids.iter().enumerate() {
            for c in 0..cols {
                expected[*id as usize * cols + c] += upstream[k * cols + c] as f64;
            }
        }
        assert_close(
            &grad,
            &expected,
            1e-6,
            "table gradient (repeated ids accumulate)",
        );
    }
}

#[test]
fn forward_shape_and_out_of_range_ids() {
    let device = Default::default();
    let table = crate::nn::TernaryEmbeddingConfig::new(10, 8).init::<TB>(&device);
    let ids = Tensor::<TB, 2, Int>::from_ints([[0, 9], [3, 4]], &device);
    assert_eq!(table.forward(ids).dims(), [2, 2, 8]);
    let bad = Tensor::<TB, 2, Int>::from_ints([[0, 10]], &device);
    let err = table.try_forward(bad).unwrap_err().to_string();
    assert_eq!(err, "tensor `ids` holds index 10, outside 0..10");
    let negative = Tensor::<TB, 2, Int>::from_ints([[-1, 2]], &device);
    assert!(table
        .try_forward(negative)
        .unwrap_err()
        .to_string()
        .contains("index -1"));
}

#[test]
#[should_panic(expected = "tensor `ids` holds index 12, outside 0..10")]
fn forward_panics_with_a_clear_message() {
    let device = Default::default();
    let table = crate::nn::TernaryEmbeddingConfig::new(10, 8).init::<TB>(&device);
    table.forward(Tensor::<TB, 2, Int>::from_ints([[12]], &device));
}
