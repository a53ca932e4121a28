//! Sequencer blocks: a sequence mixer and a ternary MLP, each behind a
//! parameter-free RMS norm and a residual connection.

use burn::{
    config::Config,
    module::Module,
    tensor::{activation::gelu, backend::Backend, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    attention::{KvCache, TernaryAttention, TernaryAttentionConfig},
    layers::{ArbLinear, LayerKind},
    recurrent::{RecurrentMixer, RecurrentMixerConfig},
    util::{check_width, or_panic, positive, rms_norm},
};

/// Which sequence mixer a [`Sequencer`] uses.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum MixerKind {
    /// Causal multi-head [`TernaryAttention`].
    Attention,
    /// Gated linear [`RecurrentMixer`].
    Recurrent,
}

/// Configuration of a [`Sequencer`].
#[derive(Config, Debug)]
pub struct SequencerConfig {
    /// Model width.
    pub d_model: usize,
    /// Hidden width of the MLP.
    pub mlp_hidden: usize,
    /// The sequence mixer.
    #[config(default = "MixerKind::Attention")]
    pub kind: MixerKind,
    /// Attention heads (attention mixers only).
    #[config(default = 4)]
    pub n_heads: usize,
    /// Which layers it is built from.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl SequencerConfig {
    /// Builds the block, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<Sequencer<B>> {
        positive("d_model", self.d_model)?;
        positive("mlp_hidden", self.mlp_hidden)?;
        let (attention, recurrent) = match self.kind {
            MixerKind::Attention => (
                Some(
                    TernaryAttentionConfig::new(self.d_model)
                        .with_n_heads(self.n_heads)
                        .with_layers(self.layers)
                        .try_init(device)?,
                ),
                None,
            ),
            MixerKind::Recurrent => (
                None,
                Some(
                    RecurrentMixerConfig::new(self.d_model)
                        .with_layers(self.layers)
                        .try_init(device)?,
                ),
            ),
        };
        Ok(Sequencer {
            attention,
            recurrent,
            up: self.layers.linear(self.d_model, self.mlp_hidden, device)?,
            down: self.layers.linear(self.mlp_hidden, self.d_model, device)?,
        })
    }

    /// Builds the block.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Sequencer<B> {
        or_panic(self.try_init(device))
    }
}

/// What a [`Sequencer`]'s mixer keeps between decoding steps.
#[derive(Debug, Clone)]
pub enum MixerCache<B: Backend> {
    /// The keys and values of an attention mixer.
    Attention(KvCache<B>),
    /// The state of a recurrent mixer (`None` before the first position).
    Recurrent(Option<Tensor<B, 3>>),
}

/// A pre-norm residual block: `x + mixer(rms(x))`, then
/// `x + down(gelu(up(rms(x))))`. The norms have no gain, so the block holds
/// only the weights of its layers (ternary unless built with [`LayerKind::Dense`]).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::sequencer::{MixerKind, SequencerConfig};
///
/// let device = Default::default();
/// let block = SequencerConfig::new(16, 32).with_kind(MixerKind::Recurrent).init::<Flex>(&device);
/// assert_eq!(block.forward(Tensor::<Flex, 3>::ones([1, 3, 16], &device)).dims(), [1, 3, 16]);
/// ```
#[derive(Module, Debug)]
pub struct Sequencer<B: Backend> {
    /// The attention mixer, when the kind is [`MixerKind::Attention`].
    pub attention: Option<TernaryAttention<B>>,
    /// The recurrent mixer, when the kind is [`MixerKind::Recurrent`].
    pub recurrent: Option<RecurrentMixer<B>>,
    /// MLP up-projection.
    pub up: ArbLinear<B>,
    /// MLP down-projection.
    pub down: ArbLinear<B>,
}

impl<B: TernaryBackend> Sequencer<B> {
    /// Applies the block to `x: [batch, seq, d_model]`, or reports a width mismatch.
    pub fn try_forward(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let [d_model, _] = self.down.dims();
        check_width("x", &x, d_model)?;
        let mixed = match (&self.attention, &self.recurrent) {
            (Some(attention), _) => attention.try_forward(rms_norm(x.clone()))?,
            (None, Some(recurrent)) => recurrent.try_forward(rms_norm(x.clone()))?,
            (None, None) => {
                return Err(crate::util::config_error(
                    "kind",
                    "none",
                    "a Sequencer needs an attention or a recurrent mixer",
                ))
            }
        };
        self.mlp_residual(x + mixed)
    }

    /// Applies the block to the new positions `x: [batch, n, d_model]` of a
    /// sequence whose earlier positions left `cache` (keys and values of an
    /// attention mixer, the state of a recurrent one), and updates it.
    pub fn try_forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: &mut MixerCache<B>,
    ) -> TernaryResult<Tensor<B, 3>> {
        let [d_model, _] = self.down.dims();
        check_width("x", &x, d_model)?;
        let mixed = match (&self.attention, &self.recurrent, cache) {
            (Some(attention), _, MixerCache::Attention(kv)) => {
                attention.try_forward_cached(rms_norm(x.clone()), kv)?
            }
            (None, Some(recurrent), MixerCache::Recurrent(state)) => {
                recurrent.try_forward_cached(rms_norm(x.clone()), state)?
            }
            _ => {
                return Err(crate::util::config_error(
                    "cache",
                    "another kind",
                    "the cache must be of the block's mixer kind (see ArbCache::new)",
                ))
            }
        };
        self.mlp_residual(x + mixed)
    }

    /// The MLP half of the block on the mixed stream `x`.
    fn mlp_residual(&self, x: Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>> {
        let h = gelu(self.up.try_forward(rms_norm(x.clone()))?);
        Ok(x + self.down.try_forward(h)?)
    }

    /// Applies the block to `x: [batch, seq, d_model]`.
    ///
    /// # Panics
    /// If the last dimension of `x` is not `d_model`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        or_panic(self.try_forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn both_kinds_shapes_audit_and_train_step() {
        for (kind, mixer_weights) in [
            (MixerKind::Attention, 4 * 16 * 16),
            (MixerKind::Recurrent, 3 * 16 * 16),
        ] {
            let block = SequencerConfig::new(16, 40)
                .with_kind(kind)
                .init::<AD>(&Default::default());
            assert_audit(&block, mixer_weights + 2 * 16 * 40);
            let x = randn([2, 4, 16], 7);
            assert_eq!(block.forward(x.clone()).dims(), [2, 4, 16]);
            train_step(block, |m| m.forward(x.clone()).powf_scalar(2.0).mean(), &[]);
        }
    }
}
