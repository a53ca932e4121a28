//! The Arbitor model zoo: every component is a Burn [`Module`](burn::module::Module)
//! built only from `burn-ternary` layers, with zero float parameters and
//! parameter-free norms. The core components can instead be built from Burn's
//! float layers ([`LayerKind::Dense`](layers::LayerKind::Dense)), the dense
//! twin that the ternary model is measured against.
//!
//! | component | module |
//! | --- | --- |
//! | [`AudioVQEncoder`](audio::AudioVQEncoder) | [`audio`] |
//! | [`VideoHead`](video::VideoHead) | [`video`] |
//! | [`TalkerHead`](talker::TalkerHead) | [`talker`] |
//! | [`OutputRouter`](router::OutputRouter) | [`router`] |
//! | [`VectorQuantizer`](vq::VectorQuantizer) (VQ) | [`vq`] |
//! | [`Graph`](graph::Graph) | [`graph`] |
//! | [`Memory`](memory::Memory) | [`memory`] |
//! | [`MoE`](moe::MoE) | [`moe`] |
//! | [`Sequencer`](sequencer::Sequencer) ([`TernaryAttention`](attention::TernaryAttention), [`RecurrentMixer`](recurrent::RecurrentMixer)) | [`sequencer`] |
//! | [`ARBModel`](arb::ARBModel) | [`arb`] |
//! | [`ArbLinear`](layers::ArbLinear), [`ArbEmbedding`](layers::ArbEmbedding) (ternary or dense, [`LayerKind`](layers::LayerKind)) | [`layers`] |
//! | [`BitNetForCausalLM`](bitnet::BitNetForCausalLM), a BitNet b1.58 decoder shaped like transformers' (ternary projections, float frozen embeddings, key/value cache) | [`bitnet`] |
//! | frozen imported sidecars (VAE, codec, audio and vision encoders) | [`sidecars`] |
//!
//! The vocabularies (297 text entries, 289 audio entries) are described in
//! [`vocab`]; [`smoke::smoke_reports`] builds every default component, runs
//! it and audits it.
#![warn(missing_docs)]

pub mod arb;
pub mod attention;
pub mod audio;
pub mod bitnet;
pub mod generation;
pub mod graph;
pub mod layers;
pub mod memory;
pub mod moe;
pub mod recurrent;
pub mod router;
pub mod sequencer;
pub mod sidecars;
pub mod smoke;
pub mod talker;
pub mod util;
pub mod video;
pub mod vocab;
pub mod vq;

#[cfg(test)]
pub(crate) mod testing;
