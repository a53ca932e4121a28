//! Generation and decode timing of a [`BitNetForCausalLM`] with a
//! [`BitNetCache`].

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use burn_ternary::{TernaryBackend, TernaryResult};
use rand::{rngs::SmallRng, SeedableRng};

use super::{cache::BitNetCache, model::BitNetForCausalLM};
use crate::{
    generation::{decode_loop, time_greedy, DecodeTiming, Sampler},
    util::shape_error,
};

/// What [`BitNetForCausalLM::generate`] returns.
#[derive(Debug, Clone)]
pub struct TokenGeneration {
    /// The new token ids of each row.
    pub tokens: Vec<Vec<u32>>,
    /// Wall time of the whole generation, prompt included.
    pub seconds: f64,
    /// New tokens per second over all rows.
    pub tokens_per_s: f64,
}

impl<B: TernaryBackend> BitNetForCausalLM<B> {
    /// Continues every prompt of `prompts` (token ids, all of one length) by
    /// `max_new` tokens drawn by `sampler` (its byte-free id sampling,
    /// [`Sampler::pick_ids`]), decoding the rows together with a
    /// [`BitNetCache`] of `prompt + max_new` positions; `on_token(row, id)`
    /// sees each token as it comes. Names `prompts` when they are empty, of
    /// different lengths, or longer than `max_position_embeddings` together
    /// with `max_new`, and `ids` when an id is out of range.
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use arbitor_models::{bitnet::BitNetConfig, generation::Sampler};
    ///
    /// let model = BitNetConfig::new(32, 48, 2, 4, 2, 50).init::<Flex>(&Default::default());
    /// let out = model.generate(&[vec![1, 2, 3]], 4, &Sampler::greedy(), |_, _| {}).unwrap();
    /// assert_eq!(out.tokens[0].len(), 4);
    /// assert!(out.tokens[0].iter().all(|&t| t < 50));
    /// ```
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        max_new: usize,
        sampler: &Sampler,
        mut on_token: impl FnMut(usize, u32),
    ) -> TernaryResult<TokenGeneration> {
        let batch = prompts.len();
        let len = prompts.first().map(Vec::len).unwrap_or(0);
        let max = self.config.max_position_embeddings;
        if batch == 0 || len == 0 || len + max_new > max || prompts.iter().any(|p| p.len() != len) {
            return Err(shape_error(
                "prompts",
                format!(
                    "1 or more prompts of one length in 1..={} (max_position_embeddings = {max} less max_new = {max_new})",
                    max.saturating_sub(max_new)
                ),
                &prompts.iter().map(Vec::len).collect::<Vec<_>>(),
            ));
        }
        let device = self.model.embed_tokens.weight.device();
        let started = Instant::now();
        let mut cache = BitNetCache::new(&self.config, batch, len + max_new, &device)?;
        let mut rng = SmallRng::seed_from_u64(sampler.seed);
        let ids = prompts.iter().flatten().map(|&t| t as i64).collect();
        let prompt = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, len]), &device);
        let mut out: Vec<Vec<u32>> = vec![Vec::with_capacity(max_new); batch];
        decode_loop(
            prompt,
            max_new,
            |ids, checked| self.cached_step(ids, &mut cache, checked),
            |last| {
                let ids = sampler.pick_ids(last, &mut rng);
                ids.into_iter().map(i64::from).collect()
            },
            |row, id| {
                out[row].push(id as u32);
                on_token(row, id as u32);
            },
        )?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(TokenGeneration {
            tokens_per_s: (batch * max_new) as f64 / seconds.max(1e-9),
            tokens: out,
            seconds,
        })
    }

    /// Times greedy decoding of `new` positions after the prompt
    /// `prompt_ids: [batch, prompt_len]`, with a cache of `prompt_len + new`
    /// positions: the prompt in one call, then `new` steps whose argmax stays
    /// on the device and feeds the next step (steps queue without waiting);
    /// the clock stops when the last step's ids are read back.
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use burn::tensor::{Int, Tensor};
    /// use arbitor_models::bitnet::BitNetConfig;
    ///
    /// let device = Default::default();
    /// let model = BitNetConfig::new(32, 48, 2, 4, 2, 50).init::<Flex>(&device);
    /// let prompt = Tensor::<Flex, 2, Int>::from_ints([[1, 2, 3]], &device);
    /// let timing = model.time_decode(prompt, 5).unwrap();
    /// assert_eq!((timing.batch, timing.prompt_len, timing.new), (1, 3, 5));
    /// ```
    pub fn time_decode(
        &self,
        prompt_ids: Tensor<B, 2, Int>,
        new: usize,
    ) -> TernaryResult<DecodeTiming> {
        let [batch, prompt_len] = prompt_ids.dims();
        let device = prompt_ids.device();
        let mut cache = BitNetCache::new(&self.config, batch, prompt_len + new, &device)?;
        time_greedy(prompt_ids, new, None, |ids, checked| {
            self.cached_step(ids, &mut cache, checked)
        })
    }

    /// One cached call: checked ids (the prompt's) through
    /// [`try_forward_cached`](Self::try_forward_cached), the model's own
    /// through [`forward_cached_trusted`](Self::forward_cached_trusted).
    fn cached_step(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut BitNetCache<B>,
        checked: bool,
    ) -> TernaryResult<Tensor<B, 3>> {
        if checked {
            self.try_forward_cached(ids, cache)
        } else {
            self.forward_cached_trusted(ids, cache)
        }
    }
}
