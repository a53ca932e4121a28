//! Per-token int8 activation quantization, as BitNet b1.58's W1.58A8
//! layers quantize their inputs: each row of `x: [rows, cols]` is scaled so
//! that its largest magnitude maps to 127, rounded, clamped to `[−128, 127]`
//! and scaled back (`absmax` quantization, in float). The tensor-level entry
//! point is [`functional::quantize_activations`](crate::functional::quantize_activations).
//! Under `Autodiff` its gradient is straight-through (the identity), as
//! BitNet trains it ([`backward`]).

pub(crate) mod backward;

#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub(crate) mod kernel;
pub mod reference;
#[cfg(test)]
mod tests;
