//! Bit layouts of the ternary state, on the host and as Burn tensor ops.
//!
//! * Trits: 2 bits each, 16 per 32-bit word, packed along the reduction
//!   (column) dimension; each row is padded to a whole number of words.
//!   Code `0b00` is 0, `0b01` is +1, `0b10` is -1 (`0b11` never occurs and
//!   decodes to 0). Trit `j` of a word sits at bits `2j..2j+2`.
//! * Update memory: one signed byte per weight, 4 per 32-bit word (byte `j`
//!   at bits `8j..8j+8`, two's complement), rows padded to whole words.
//! * Scales: one integer code per row; the scale is `2^(code / 16)`
//!   ([`SCALE_CODE_STEPS_PER_OCTAVE`] steps per doubling, about 4.4% apart).
//!
//! All packed words are stored as `i32` ([`PACKED_DTYPE`]) on every backend,
//! so one layout serves CPU, CUDA and WGPU (WGSL has no 8-bit integers).

use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};

/// Trits per packed 32-bit word.
pub const TRITS_PER_WORD: usize = 16;
/// Update-memory bytes per packed 32-bit word.
pub const MEMORY_PER_WORD: usize = 4;
/// Scale codes per doubling of the scale: `scale = 2^(code / 16)`.
pub const SCALE_CODE_STEPS_PER_OCTAVE: i32 = 16;
/// Smallest and largest scale code (`2^-32 ..= 2^32`).
pub const SCALE_CODE_RANGE: (i32, i32) = (-32 * 16, 32 * 16);
/// The integer dtype every packed ternary tensor is stored in.
pub const PACKED_DTYPE: DType = DType::I32;

/// Words per row needed for `cols` trits.
pub fn trit_words(cols: usize) -> usize {
    cols.div_ceil(TRITS_PER_WORD)
}

/// Words per row needed for `cols` bytes of update memory.
pub fn memory_words(cols: usize) -> usize {
    cols.div_ceil(MEMORY_PER_WORD)
}

/// The 2-bit code of a trit value.
///
/// # Panics
/// If `t` is not in {-1, 0, 1}.
pub(crate) fn trit_code(t: i8) -> u32 {
    match t {
        1 => 0b01,
        -1 => 0b10,
        0 => 0,
        other => panic!("trit value {other} is not in {{-1, 0, 1}}"),
    }
}

/// The trit value of the low 2 bits of `code`.
pub(crate) fn trit_value(code: u32) -> i8 {
    match code & 3 {
        0b01 => 1,
        0b10 => -1,
        _ => 0,
    }
}

/// Packs a row-major `[rows, cols]` matrix of trits into `[rows, trit_words(cols)]` words.
///
/// # Panics
/// If `trits.len() != rows * cols` or a value is not in {-1, 0, 1}.
pub fn pack_trits(trits: &[i8], rows: usize, cols: usize) -> Vec<i32> {
    assert_eq!(
        trits.len(),
        rows * cols,
        "trits: expected {rows}x{cols} values"
    );
    let words = trit_words(cols);
    let mut out = vec![0i32; rows * words];
    for r in 0..rows {
        for c in 0..cols {
            let code = trit_code(trits[r * cols + c]);
            out[r * words + c / TRITS_PER_WORD] |= (code << (2 * (c % TRITS_PER_WORD))) as i32;
        }
    }
    out
}

/// Inverse of [`pack_trits`].
pub fn unpack_trits(words: &[i32], rows: usize, cols: usize) -> Vec<i8> {
    let per_row = trit_words(cols);
    assert_eq!(
        words.len(),
        rows * per_row,
        "packed trits: expected {rows}x{per_row} words"
    );
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let w = words[r * per_row + c / TRITS_PER_WORD] as u32;
            out.push(trit_value(w >> (2 * (c % TRITS_PER_WORD))));
        }
    }
    out
}

/// Packs a row-major `[rows, cols]` matrix of signed bytes into `[rows, memory_words(cols)]` words.
pub fn pack_memory(memory: &[i8], rows: usize, cols: usize) -> Vec<i32> {
    assert_eq!(
        memory.len(),
        rows * cols,
        "memory: expected {rows}x{cols} values"
    );
    let words = memory_words(cols);
    let mut out = vec![0i32; rows * words];
    for r in 0..rows {
        for c in 0..cols {
            let byte = memory[r * cols + c] as u8 as u32;
            out[r * words + c / MEMORY_PER_WORD] |= (byte << (8 * (c % MEMORY_PER_WORD))) as i32;
        }
    }
    out
}

/// Inverse of [`pack_memory`].
pub fn unpack_memory(words: &[i32], rows: usize, cols: usize) -> Vec<i8> {
    let per_row = memory_words(cols);
    assert_eq!(
        words.len(),
        rows * per_row,
        "packed memory: expected {rows}x{per_row} words"
    );
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let w = words[r * per_row + c / MEMORY_PER_WORD] as u32;
            out.push((w >> (8 * (c % MEMORY_PER_WORD))) as u8 as i8);
        }
    }
    out
}

/// Decodes a scale code into the scale it stands for.
pub fn decode_scale(code: i32) -> f32 {
    (code as f32 / SCALE_CODE_STEPS_PER_OCTAVE as f32).exp2()
}

/// Nearest scale code for a positive scale, clamped to [`SCALE_CODE_RANGE`].
pub fn encode_scale(scale: f32) -> i32 {
    let code = if scale > 0.0 && scale.is_finite() {
        (scale.log2() * SCALE_CODE_STEPS_PER_OCTAVE as f32).round() as i32
    } else {
        SCALE_CODE_RANGE.0
    };
    code.clamp(SCALE_CODE_RANGE.0, SCALE_CODE_RANGE.1)
}

/// An `i32` tensor on `device`, whatever the backend's default integer type.
pub fn int_tensor<B: Backend, const D: usize>(
    values: Vec<i32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(values, shape), (device, PACKED_DTYPE))
}

fn lane_shifts<B: Backend>(lanes: usize, bits: usize, device: &B::Device) -> Tensor<B, 3, Int> {
    let shifts = (0..lanes).map(|j| (j * bits) as i32).collect();
    int_tensor::<B, 1>(shifts, [lanes], device).reshape([1, 1, lanes])
}

/// Splits packed words `[rows, words]` into their `lanes` fields of `bits` bits
/// each, giving `[rows, words * lanes]` unsigned field values.
fn split_fields<B: Backend>(
    packed: Tensor<B, 2, Int>,
    lanes: usize,
    bits: usize,
) -> Tensor<B, 2, Int> {
    let [rows, words] = packed.dims();
    let device = packed.device();
    let mask = (1i64 << bits) - 1;
    packed
        .cast(PACKED_DTYPE)
        .reshape([rows, words, 1])
        .repeat_dim(2, lanes)
        .bitwise_right_shift(
            lane_shifts::<B>(lanes, bits, &device)
                .repeat_dim(0, rows)
                .repeat_dim(1, words),
        )
        .bitwise_and_scalar(burn::tensor::ElementConversion::elem(mask))
        .reshape([rows, words * lanes])
}

/// Joins unsigned field values `[rows, words * lanes]` back into words `[rows, words]`.
fn join_fields<B: Backend>(
    fields: Tensor<B, 2, Int>,
    lanes: usize,
    bits: usize,
) -> Tensor<B, 2, Int> {
    let [rows, cols] = fields.dims();
    let words = cols / lanes;
    let device = fields.device();
    let fields = fields.cast(PACKED_DTYPE).reshape([rows, words, lanes]);
    // The top field is taken as signed so that shifting it into the sign bit
    // stays inside the i32 range on every backend (some shift in i64 and
    // check the narrowing cast).
    let half = 1i32 << (bits - 1);
    let wrap = (0..lanes)
        .map(|j| if j + 1 == lanes { 1 << bits } else { 0 })
        .collect();
    let wrap = int_tensor::<B, 1>(wrap, [lanes], &device).reshape([1, 1, lanes]);
    let signed = fields.clone() - fields.greater_equal_elem(half).int().cast(PACKED_DTYPE) * wrap;
    // The fields occupy disjoint bits, so their sum is their bitwise or.
    signed
        .bitwise_left_shift(
            lane_shifts::<B>(lanes, bits, &device)
                .repeat_dim(0, rows)
                .repeat_dim(1, words),
        )
        .sum_dim(2)
        .reshape([rows, words])
}

fn pad_cols<B: Backend>(t: Tensor<B, 2, Int>, to: usize) -> Tensor<B, 2, Int> {
    let [rows, cols] = t.dims();
    if cols == to {
        return t;
    }
    let pad = int_tensor::<B, 2>(vec![0; rows * (to - cols)], [rows, to - cols], &t.device());
    Tensor::cat(vec![t.cast(PACKED_DTYPE), pad], 1)
}

/// Unpacks trits `[rows, trit_words(cols)]` into values in {-1, 0, 1}, `[rows, cols]`.
pub fn unpack_trits_tensor<B: Backend>(
    packed: Tensor<B, 2, Int>,
    cols: usize,
) -> Tensor<B, 2, Int> {
    let codes = split_fields(packed, TRITS_PER_WORD, 2);
    let rows = codes.dims()[0];
    let codes = codes.slice([0..rows, 0..cols]);
    // (c & 1) - (c >> 1): 0b01 -> +1, 0b10 -> -1, 0b00 and 0b11 -> 0.
    let low = codes
        .clone()
        .bitwise_and_scalar(burn::tensor::ElementConversion::elem(1));
    let high = codes.bitwise_right_shift_scalar(burn::tensor::ElementConversion::elem(1));
    low - high
}

/// Packs trits `[rows, cols]` (values in {-1, 0, 1}) into `[rows, trit_words(cols)]` words.
pub fn pack_trits_tensor<B: Backend>(trits: Tensor<B, 2, Int>) -> Tensor<B, 2, Int> {
    let trits = trits.cast(PACKED_DTYPE);
    let cols = trits.dims()[1];
    // -1 -> 0b10, 0 -> 0b00, +1 -> 0b01: |t| + (t < 0).
    let negative = trits.clone().lower_elem(0).int().cast(PACKED_DTYPE);
    let codes = trits.abs() + negative;
    join_fields(
        pad_cols(codes, trit_words(cols) * TRITS_PER_WORD),
        TRITS_PER_WORD,
        2,
    )
}

/// Unpacks update memory `[rows, memory_words(cols)]` into signed values `[rows, cols]`.
pub fn unpack_memory_tensor<B: Backend>(
    packed: Tensor<B, 2, Int>,
    cols: usize,
) -> Tensor<B, 2, Int> {
    let bytes = split_fields(packed, MEMORY_PER_WORD, 8);
    let rows = bytes.dims()[0];
    let bytes = bytes.slice([0..rows, 0..cols]);
    let negative = bytes.clone().greater_elem(127).int().cast(PACKED_DTYPE);
    bytes - negative * 256
}

/// Packs signed update memory `[rows, cols]` (values in -128..=127) into words.
pub fn pack_memory_tensor<B: Backend>(memory: Tensor<B, 2, Int>) -> Tensor<B, 2, Int> {
    let memory = memory.cast(PACKED_DTYPE);
    let cols = memory.dims()[1];
    let negative = memory.clone().lower_elem(0).int().cast(PACKED_DTYPE);
    let bytes = memory + negative * 256;
    join_fields(
        pad_cols(bytes, memory_words(cols) * MEMORY_PER_WORD),
        MEMORY_PER_WORD,
        8,
    )
}

/// Decodes scale codes `[rows]` into float scales `2^(code / 16)`.
pub fn decode_scale_tensor<B: Backend>(codes: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    (codes.float() * (core::f32::consts::LN_2 / SCALE_CODE_STEPS_PER_OCTAVE as f32)).exp()
}
