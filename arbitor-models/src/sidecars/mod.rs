//! Sidecars: frozen, imported float networks beside the ternary core.
//!
//! Sidecars load upstream weights (safetensors with the upstream tensor
//! names) into `burn::nn` modules, are frozen (`no_grad`) and stored as int8
//! with Burn's own quantization where the backend supports it (frozen BF16
//! or F32 otherwise; see [`freeze`]). The audit lists them apart from the
//! ternary core with a [`SidecarReport`] each.
//!
//! | module | what |
//! | --- | --- |
//! | [`error`] | [`SidecarError`]: missing tensor, wrong shape, bad dtype, corrupt file, bad config key |
//! | [`weights`] | [`SafetensorsWeights`]: named, shape-checked tensors and `burn::nn` builders from PyTorch names |
//! | [`freeze`] | [`freeze_and_quantize`], [`int8_supported`], [`SidecarReport`], [`Sidecar`] |
//! | [`json`] | [`json::parse`], [`json::load`]: upstream `config.json` into `#[derive(Deserialize)]` config structs, errors naming the key |
//! | [`vae`] | [`PigVae`](vae::PigVae): diffusers `AutoencoderTiny` (TAESD), decodes VideoHead latents |
//! | [`codec`] | [`TinyNeuralCodec`](codec::TinyNeuralCodec), [`LazyCodec`](codec::LazyCodec), [`TernaryCodec`](codec::TernaryCodec): talker tokens to waveform |
//!
//! ```
//! use arbitor_models::sidecars::{freeze_and_quantize, sidecar_report, SidecarStorage};
//! use burn::{backend::Flex, nn::LinearConfig};
//!
//! let layer = LinearConfig::new(8, 8).init::<Flex>(&Default::default());
//! let frozen = freeze_and_quantize(layer, SidecarStorage::Int8);
//! println!("{}", sidecar_report("demo", &frozen));
//! ```

pub mod codec;
pub mod error;
pub mod freeze;
pub mod hf;
pub mod json;
pub mod moonshine;
pub mod vae;
pub mod vision;
pub mod weights;

pub use error::{SidecarError, SidecarResult};
pub use freeze::{
    compute_dtype, freeze_and_quantize, int8_scheme, int8_scheme_for, int8_supported,
    resolve_storage, sidecar_report, Sidecar, SidecarReport, SidecarStorage, StorageDecision,
};
pub use weights::SafetensorsWeights;
