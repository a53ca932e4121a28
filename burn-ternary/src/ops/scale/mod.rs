//! Decoding a weight's integer scale codes into the float scales the other
//! ops take: `scale = 2^(code / 16)` per row. The tensor-level entry point is
//! [`functional::decode_scale`](crate::functional::decode_scale).
//!
//! Every forward of a ternary module decodes its codes once. In Burn ops
//! that is three launches on a GPU backend (int-to-float cast, multiply,
//! `exp`), each of which costs more host time than a decode-size GEMV; the
//! CubeCL kernel (`kernel.rs`) does it in one.

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;
