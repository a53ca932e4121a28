//! The reference decode against `2^(code / 16)` in `f64`.

use burn::{backend::NdArray, tensor::Tensor};

use super::reference;
use crate::functional::decode_scale;
use crate::ops::{float, int};

#[test]
fn decode_matches_powers_of_two() {
    let device = Default::default();
    // Every code the optimizer keeps (scales 2^-32 .. 2^32) and a few beyond.
    let codes: Vec<i32> = (-600..=600).step_by(7).collect();
    let tensor = Tensor::<NdArray, 1, burn::tensor::Int>::from_ints(codes.as_slice(), &device);
    let got = float::<NdArray, 1>(reference::decode::<NdArray>(
        tensor.clone().into_primitive(),
    ))
    .into_data()
    .to_vec::<f32>()
    .unwrap();
    for (code, value) in codes.iter().zip(&got) {
        let want = (*code as f64 / 16.0).exp2();
        let rel = (*value as f64 - want).abs() / want;
        // f32 rounding of the argument `code · ln 2 / 16` (|x| ≤ 26 here:
        // 26 · 2^-24 ≈ 1.6e-6) plus the `exp`'s own few ulps.
        assert!(rel <= 4e-6, "code {code}: {value} vs {want} (rel {rel:e})");
    }
    let via_op = decode_scale(int::<NdArray, 1>(tensor.into_primitive()))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(via_op, got, "decode_scale must be the reference on NdArray");
}
