//! Host conversions between transformers' BitNet weight layouts and
//! burn-ternary's, integer to integer where the upstream form is packed.
//!
//! transformers packs a ternary `[out, in]` weight into a uint8 `[R, in]`
//! tensor, `R = ceil(out / 4)` (`integrations/bitnet.py`, `pack_weights`):
//! output row `r = i·R + j` lives in bits `2i..2i+2` of byte row `j`, as the
//! code `t + 1` (0 is −1, 1 is 0, 2 is +1; 3 never occurs). burn-ternary
//! packs along the input dimension instead: 16 trits per `i32` word, trit
//! `c` of a row at bits `2(c mod 16)..` of word `c / 16`, code `0b01` for +1
//! and `0b10` for −1 ([`burn_ternary::packing`]).

use burn_ternary::{
    packing::{trit_words, TRITS_PER_WORD},
    types::UPDATE_THRESHOLD,
};

use super::error::{HfError, HfResult};

/// transformers' packed byte rows of an `[rows, cols]` weight: `ceil(rows / 4)`.
pub(crate) fn packed_rows(rows: usize) -> usize {
    rows.div_ceil(4)
}

/// Converts transformers' packed uint8 `[ceil(rows/4), cols]` trits into
/// burn-ternary's packed words `[rows, trit_words(cols)]`, naming `tensor`
/// (and the byte) when a 2-bit code is 3.
pub(crate) fn words_from_upstream(
    tensor: &str,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> HfResult<Vec<i32>> {
    let r_dim = packed_rows(rows);
    debug_assert_eq!(bytes.len(), r_dim * cols);
    let words = trit_words(cols);
    let mut out = vec![0i32; rows * words];
    for r in 0..rows {
        let (i, j) = (r / r_dim, r % r_dim);
        let shift = 2 * i;
        for c in 0..cols {
            let ours: u32 = match (bytes[j * cols + c] >> shift) & 3 {
                0 => 0b10,
                1 => 0,
                2 => 0b01,
                _ => {
                    return Err(HfError::BadValue {
                        tensor: tensor.to_string(),
                        reason: format!(
                            "byte [{j}, {c}] bits {shift}..{} hold code 3, which is no trit \
                             (0, 1, 2 stand for -1, 0, +1)",
                            shift + 2
                        ),
                    });
                }
            };
            out[r * words + c / TRITS_PER_WORD] |= (ours << (2 * (c % TRITS_PER_WORD))) as i32;
        }
    }
    Ok(out)
}

/// transformers' packed uint8 `[ceil(rows/4), cols]` of row-major trits
/// `[rows, cols]` (the inverse of [`words_from_upstream`] after unpacking).
pub(crate) fn upstream_from_trits(trits: &[i8], rows: usize, cols: usize) -> Vec<u8> {
    let r_dim = packed_rows(rows);
    let mut out = vec![0u8; r_dim * cols];
    for r in 0..rows {
        let (i, j) = (r / r_dim, r % r_dim);
        for c in 0..cols {
            out[j * cols + c] |= ((trits[r * cols + c] + 1) as u8) << (2 * i);
        }
    }
    out
}

/// A latent float weight ternarized as transformers' `WeightQuant` does
/// (online BitNet quantization), with the rounding residual for the update
/// memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ternarized {
    /// `T = clamp(round(W·s), −1, 1)`, row-major.
    pub trits: Vec<i8>,
    /// `M = clamp(round((W·s − T)·θ), −θ, θ)` with θ = [`UPDATE_THRESHOLD`].
    pub memory: Vec<i8>,
    /// `s = 1 / max(mean |W|, 1e-5)`: upstream's per-tensor scale (the
    /// dequantized weight is `T / s`).
    pub scale: f32,
}

/// Ternarizes `w` by its absolute mean, as upstream (`round` is
/// round-half-to-even like `torch.round`; `W·s` and the mean in `f32`, the
/// mean accumulated in `f64`).
pub(crate) fn ternarize_absmean(w: &[f32]) -> Ternarized {
    let mean = (w.iter().map(|v| v.abs() as f64).sum::<f64>() / w.len().max(1) as f64) as f32;
    let scale = 1.0 / mean.max(1e-5);
    let theta = UPDATE_THRESHOLD as f32;
    let (trits, memory) = w
        .iter()
        .map(|&v| {
            let r = v * scale;
            let t = r.round_ties_even().clamp(-1.0, 1.0);
            let m = ((r - t) * theta).round_ties_even().clamp(-theta, theta);
            (t as i8, m as i8)
        })
        .unzip();
    Ternarized {
        trits,
        memory,
        scale,
    }
}
