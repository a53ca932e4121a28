//! The `arbitor` command-line tests, in one test binary (one link instead
//! of three; CI builds on two cores): resume and errors (`cli`), the
//! multimodal run kinds (`multimodal`) and the sidecar audit
//! (`sidecar_audit`).

mod cli;
mod multimodal;
mod sidecar_audit;
