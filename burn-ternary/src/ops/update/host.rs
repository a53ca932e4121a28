//! The ternary update as one pass over the packed words on the host: the
//! update op of the CPU backends (NdArray, Flex), where reading a tensor is a
//! copy in the same memory. Same rule and noise as the [reference](super::reference),
//! without the ~25 full-size tensor ops on unpacked float copies; rows are
//! split over the available cores.

use burn::tensor::{backend::Backend, ops::FloatTensor, Int, Tensor};

use super::LN2_PER_CODE;
use crate::{
    ops::{float, int},
    packing::{
        decode_scale, int_tensor, memory_words, trit_code, trit_value, trit_words, MEMORY_PER_WORD,
        SCALE_CODE_RANGE, TRITS_PER_WORD,
    },
    types::{
        counter_uniform, GradNormalization, NoiseKey, TernaryState, UpdateHyper, UPDATE_THRESHOLD,
    },
};

fn host_ints<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i32> {
    t.into_data()
        .convert::<i32>()
        .into_vec()
        .expect("packed ternary state converts to i32")
}

/// One update of one weight (see [`crate::backend::TernaryBackend::ternary_update`]).
pub fn update<B: Backend>(
    grad: FloatTensor<B>,
    state: TernaryState<B>,
    cols: usize,
    hyper: UpdateHyper,
    key: NoiseKey,
) -> TernaryState<B> {
    let grad = float::<B, 2>(grad);
    let [rows, _] = grad.dims();
    let device = grad.device();
    let grad: Vec<f32> = grad
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("gradient converts to f32");
    let mut trits = host_ints(int::<B, 2>(state.trits));
    let mut memory = host_ints(int::<B, 2>(state.memory));
    let codes = host_ints(int::<B, 1>(state.scale_code));
    let (tw, mw) = (trit_words(cols), memory_words(cols));

    // Row statistics, then the normalizers and scale codes (f64 sums).
    let mut dot = vec![0f64; rows];
    let mut sum_sq = vec![0f64; rows];
    for r in 0..rows {
        for c in 0..cols {
            let g = grad[r * cols + c] as f64;
            dot[r] += g * trit(trits[r * tw + c / TRITS_PER_WORD] as u32, c) as f64;
            sum_sq[r] += g * g;
        }
    }
    let total_rms = (sum_sq.iter().sum::<f64>() / (rows * cols) as f64).sqrt() + 1e-30;
    let grad_code: Vec<f64> = (0..rows)
        .map(|r| dot[r] * decode_scale(codes[r]) as f64 * LN2_PER_CODE)
        .collect();
    let code_rms = (grad_code.iter().map(|g| g * g).sum::<f64>() / rows as f64).sqrt() + 1e-30;
    let new_codes: Vec<i32> = (0..rows)
        .map(|r| {
            let step = (grad_code[r] / code_rms * hyper.scale_lr).clamp(-1.0, 1.0) as f32;
            let delta = (step + key.scale_uniform(r as u32)).floor() as i32;
            (codes[r] - delta).clamp(SCALE_CODE_RANGE.0, SCALE_CODE_RANGE.1)
        })
        .collect();
    let rms: Vec<f32> = (0..rows)
        .map(|r| match hyper.normalization {
            GradNormalization::Tensor => total_rms as f32,
            GradNormalization::Row => ((sum_sq[r] / cols as f64).sqrt() + 1e-30) as f32,
        })
        .collect();

    // The packed words, rows split over the cores.
    let lr_theta = (hyper.lr * UPDATE_THRESHOLD as f64) as f32;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows_per_part = if rows * cols < (1 << 16) {
        rows.max(1)
    } else {
        rows.div_ceil(threads).max(1)
    };
    std::thread::scope(|scope| {
        let parts = trits
            .chunks_mut(rows_per_part * tw)
            .zip(memory.chunks_mut(rows_per_part * mw))
            .enumerate();
        for (part, (trit_rows, memory_rows)) in parts {
            let (grad, rms) = (&grad, &rms);
            scope.spawn(move || {
                let first = part * rows_per_part;
                for (i, (t_row, m_row)) in trit_rows
                    .chunks_mut(tw)
                    .zip(memory_rows.chunks_mut(mw))
                    .enumerate()
                {
                    let r = first + i;
                    let row = RowUpdate {
                        grad: &grad[r * cols..(r + 1) * cols],
                        rms: rms[r],
                        lr_theta,
                        key: key.memory,
                        first_counter: (r * cols) as u32,
                    };
                    row.apply(t_row, m_row);
                }
            });
        }
    });

    TernaryState {
        trits: int_tensor::<B, 2>(trits, [rows, tw], &device).into_primitive(),
        memory: int_tensor::<B, 2>(memory, [rows, mw], &device).into_primitive(),
        scale_code: int_tensor::<B, 1>(new_codes, [rows], &device).into_primitive(),
    }
}

/// Trit of column `c` in its packed word, as -1, 0 or 1.
fn trit(word: u32, c: usize) -> i32 {
    trit_value(word >> (2 * (c % TRITS_PER_WORD))) as i32
}

/// The memory step, carries and clamp of one row, in place on its packed words.
struct RowUpdate<'a> {
    grad: &'a [f32],
    rms: f32,
    lr_theta: f32,
    key: [u32; 2],
    first_counter: u32,
}

impl RowUpdate<'_> {
    fn apply(&self, trit_words: &mut [i32], memory_words: &mut [i32]) {
        let theta = UPDATE_THRESHOLD;
        for (w, word) in trit_words.iter_mut().enumerate() {
            let mut new_word = 0u32;
            for j in 0..TRITS_PER_WORD {
                let c = w * TRITS_PER_WORD + j;
                let Some(&g) = self.grad.get(c) else { break };
                let t = trit(*word as u32, c);
                let shift = 8 * (c % MEMORY_PER_WORD);
                let m_word = &mut memory_words[c / MEMORY_PER_WORD];
                let old = ((*m_word as u32 >> shift) as u8) as i8 as i32;
                let step = (g / self.rms * self.lr_theta).clamp(-theta as f32, theta as f32);
                let u = counter_uniform(self.key, self.first_counter.wrapping_add(c as u32));
                let (mut t, mut m) = (t, old - (step + u).floor() as i32);
                if m > theta && t < 1 {
                    (t, m) = (t + 1, m - theta);
                } else if m < -theta && t > -1 {
                    (t, m) = (t - 1, m + theta);
                }
                let m = m.clamp(-theta, theta);
                *m_word =
                    ((*m_word as u32 & !(0xFF << shift)) | ((m as u8 as u32) << shift)) as i32;
                new_word |= trit_code(t as i8) << (2 * j);
            }
            *word = new_word as i32;
        }
    }
}
