//! Training runs for Arbitor models. For now: the quickstart, a small ternary
//! byte-level language model trained on Tiny Shakespeare on the CPU.

pub mod quickstart;
