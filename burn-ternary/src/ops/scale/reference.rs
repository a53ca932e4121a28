//! Reference scale decode composed of Burn ops.

use burn::tensor::{
    backend::Backend,
    ops::{FloatTensor, IntTensor},
};

use crate::{
    ops::{int, prim},
    packing::decode_scale_tensor,
};

/// `2^(code / 16)` for each code of `codes: [rows]`, computed as
/// `exp(code · ln 2 / 16)` in the backend's float type.
pub fn decode<B: Backend>(codes: IntTensor<B>) -> FloatTensor<B> {
    prim(decode_scale_tensor(int::<B, 1>(codes)))
}
