//! [`BitNetCache`]: the keys and values of every attention layer of a
//! [`BitNetForCausalLM`](super::BitNetForCausalLM) for incremental decoding.

use burn::tensor::{backend::Backend, Tensor};
use burn_ternary::TernaryResult;

use super::{config::BitNetConfig, rope::RotaryTables};
use crate::util::{config_error, positive, shape_error};

/// The keys and values of one layer, preallocated `[batch, kv_heads,
/// max_seq, head_dim]` and written in place.
#[derive(Debug, Clone)]
pub(crate) struct LayerKv<B: Backend> {
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
}

impl<B: Backend> LayerKv<B> {
    /// Writes `k, v: [batch, kv_heads, n, head_dim]` at positions
    /// `start..start + n` and returns positions `0..start + n` of both.
    /// [`BitNetCache::check_room`] has checked that they fit.
    pub(crate) fn write(
        &mut self,
        start: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [batch, heads, n, head_dim] = k.dims();
        let range = [0..batch, 0..heads, start..start + n, 0..head_dim];
        self.keys = self.keys.clone().slice_assign(range.clone(), k);
        self.values = self.values.clone().slice_assign(range, v);
        (
            self.keys.clone().narrow(2, 0, start + n),
            self.values.clone().narrow(2, 0, start + n),
        )
    }
}

/// What a [`BitNetForCausalLM`](super::BitNetForCausalLM) keeps between
/// decoding steps of a batch: per layer the keys and values, preallocated
/// `[batch, num_key_value_heads, max_seq, head_dim]` and written in place,
/// and the rotary tables of its `max_seq` positions. It never slides: a step
/// that would pass `max_seq` is an error.
///
/// ```
/// use burn::backend::Flex;
/// use arbitor_models::bitnet::{BitNetCache, BitNetConfig};
///
/// let config = BitNetConfig::new(32, 48, 2, 4, 2, 50);
/// let mut cache = BitNetCache::<Flex>::new(&config, 2, 16, &Default::default()).unwrap();
/// assert_eq!((cache.len(), cache.max_seq(), cache.batch()), (0, 16, 2));
/// cache.reset();
/// assert!(cache.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct BitNetCache<B: Backend> {
    pub(crate) layers: Vec<LayerKv<B>>,
    pub(crate) rope: RotaryTables<B>,
    batch: usize,
    max_seq: usize,
    len: usize,
}

impl<B: Backend> BitNetCache<B> {
    /// An empty cache for `batch` sequences of at most `max_seq` positions
    /// (at most `config.max_position_embeddings`) of a model of `config`.
    pub fn new(
        config: &BitNetConfig,
        batch: usize,
        max_seq: usize,
        device: &B::Device,
    ) -> TernaryResult<Self> {
        config.validate()?;
        positive("batch", batch)?;
        positive("max_seq", max_seq)?;
        if max_seq > config.max_position_embeddings {
            return Err(config_error(
                "max_seq",
                max_seq,
                &format!(
                    "must not exceed max_position_embeddings = {}",
                    config.max_position_embeddings
                ),
            ));
        }
        let shape = [
            batch,
            config.num_key_value_heads,
            max_seq,
            config.head_dim(),
        ];
        let layers = (0..config.num_hidden_layers)
            .map(|_| LayerKv {
                keys: Tensor::zeros(shape, device),
                values: Tensor::zeros(shape, device),
            })
            .collect();
        Ok(Self {
            layers,
            rope: RotaryTables::new(config.head_dim(), config.rope_theta, max_seq, device),
            batch,
            max_seq,
            len: 0,
        })
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no position.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows decoded together.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Most positions it holds.
    pub fn max_seq(&self) -> usize {
        self.max_seq
    }

    /// Forgets every position: the next step starts new sequences (the
    /// buffers stay allocated; stale entries are never read).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Checks that `ids: [batch, n]` fits: the cache's batch, `n ≥ 1`, and
    /// room for `n` more positions; names `ids` otherwise.
    pub(crate) fn check_room(&self, dims: [usize; 2]) -> TernaryResult<()> {
        let [batch, n] = dims;
        if self.len == self.max_seq {
            return Err(shape_error(
                "ids",
                format!(
                    "no more positions: the cache is full ({} positions; reset it or make a larger one)",
                    self.max_seq
                ),
                &dims,
            ));
        }
        if batch != self.batch || n == 0 || self.len + n > self.max_seq {
            return Err(shape_error(
                "ids",
                format!(
                    "[{}, 1..={}] (the cache's batch; it holds {} of max_seq = {} positions)",
                    self.batch,
                    self.max_seq - self.len,
                    self.len,
                    self.max_seq
                ),
                &dims,
            ));
        }
        Ok(())
    }

    /// `[layers, kv_heads, head_dim]` of the model it was made for.
    pub(crate) fn model_shape(&self) -> [usize; 3] {
        let dims = self.layers.first().map(|l| l.keys.dims()).unwrap_or([0; 4]);
        [self.layers.len(), dims[1], dims[3]]
    }

    /// Counts `n` positions as written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
