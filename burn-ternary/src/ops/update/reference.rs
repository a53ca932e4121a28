//! Reference ternary update in Burn tensor ops (the default on every backend
//! and the oracle of the kernel tests). The counter-based noise is computed on
//! the host and uploaded.

use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::{code_steps, row_normalizers};
use crate::{
    ops::{float, int},
    packing::{
        pack_memory_tensor, pack_trits_tensor, unpack_memory_tensor, unpack_trits_tensor,
        PACKED_DTYPE, SCALE_CODE_RANGE,
    },
    types::{counter_uniform, NoiseKey, TernaryState, UpdateHyper, UPDATE_THRESHOLD},
};

/// The noise tensor `[n]` of one stream: `u_i` for counters `0..n`.
fn noise<B: Backend>(key: [u32; 2], n: usize, device: &B::Device) -> Tensor<B, 1> {
    let values: Vec<f32> = (0..n as u32).map(|i| counter_uniform(key, i)).collect();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// One update of one weight: `grad: [rows, cols]`, packed `state`; returns the new state.
pub fn update<B: Backend>(
    grad: burn::tensor::ops::FloatTensor<B>,
    state: TernaryState<B>,
    cols: usize,
    hyper: UpdateHyper,
    key: NoiseKey,
) -> TernaryState<B> {
    let grad = float::<B, 2>(grad);
    let [rows, _] = grad.dims();
    let device = grad.device();
    let theta = UPDATE_THRESHOLD as f64;
    let t = unpack_trits_tensor(int::<B, 2>(state.trits), cols).float();
    let m = unpack_memory_tensor(int::<B, 2>(state.memory), cols).float();
    let scale_code = int::<B, 1>(state.scale_code);

    // Scales first, from the trits the gradient was computed with.
    let dot = (grad.clone() * t.clone()).sum_dim(1).reshape([rows]);
    let code_step = code_steps(dot, scale_code.clone(), hyper.scale_lr);
    let code_delta = (code_step + noise::<B>(key.scale, rows, &device)).floor();
    let scale_code = (scale_code.float() - code_delta)
        .clamp(SCALE_CODE_RANGE.0 as f64, SCALE_CODE_RANGE.1 as f64)
        .int()
        .cast(PACKED_DTYPE);

    let sum_sq = grad.clone().powf_scalar(2.0).sum_dim(1).reshape([rows]);
    let rms = row_normalizers(sum_sq, cols, hyper.normalization).reshape([rows, 1]);
    let step = (grad / rms * (hyper.lr * theta)).clamp(-theta, theta);
    let u = noise::<B>(key.memory, rows * cols, &device).reshape([rows, cols]);
    let m = m - (step + u).floor();
    let up = m.clone().greater_elem(theta).float() * t.clone().lower_elem(1.0).float();
    let down = m.clone().lower_elem(-theta).float() * t.clone().greater_elem(-1.0).float();
    let t = t + up.clone() - down.clone();
    let m = (m - up * theta + down * theta).clamp(-theta, theta);

    TernaryState {
        trits: pack_trits_tensor(t.int()).into_primitive(),
        memory: pack_memory_tensor(m.int()).into_primitive(),
        scale_code: scale_code.into_primitive(),
    }
}
