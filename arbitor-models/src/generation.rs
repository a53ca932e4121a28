//! Incremental decoding of the [`ARBModel`]: a cache of everything the
//! model carries between positions (each attention layer's keys and values,
//! each recurrent mixer's state, the graph's recent inputs, the last two ids
//! for the trigram hash), and text generation with seeded samplers.
//!
//! Decoding with the cache gives the logits a full-window recomputation
//! gives, while the sequence fits `max_seq`; past it, attention slides over
//! the last `max_seq` positions and the recurrent state keeps running.

use std::time::Instant;

use burn::{
    module::Module,
    tensor::{activation::softmax, backend::Backend, Int, Tensor, TensorData},
};
use burn_ternary::{TernaryBackend, TernaryResult};
use rand::{rngs::SmallRng, Rng, SeedableRng};

use crate::{
    arb::ARBModel, attention::KvCache, sequencer::MixerCache, util::shape_error, vocab::BOS,
};

/// What an [`ARBModel`] keeps between decoding steps of a batch.
#[derive(Debug, Clone)]
pub struct ArbCache<B: Backend> {
    mixers: Vec<MixerCache<B>>,
    graph: Vec<Option<Tensor<B, 3>>>,
    /// The last two ids of every row, `[batch, 2]` ([`BOS`] before the start).
    last_ids: Tensor<B, 2, Int>,
    batch: usize,
    max_seq: usize,
    len: usize,
}

impl<B: Backend> ArbCache<B> {
    /// An empty cache for `batch` sequences of `model`, its attention layers
    /// holding at most `max_seq` positions (preallocated).
    pub fn new(model: &ARBModel<B>, batch: usize, max_seq: usize, device: &B::Device) -> Self {
        let mixers = model
            .sequencers
            .iter()
            .map(|block| match &block.attention {
                Some(attention) => {
                    let d_model = attention.out.dims()[0];
                    let heads = attention.n_heads;
                    MixerCache::Attention(KvCache::new(
                        batch,
                        heads,
                        max_seq,
                        d_model / heads,
                        device,
                    ))
                }
                None => MixerCache::Recurrent(None),
            })
            .collect();
        Self {
            mixers,
            graph: Vec::new(),
            last_ids: Tensor::full([batch, 2], BOS as i64, device),
            batch,
            max_seq,
            len: 0,
        }
    }

    /// Positions decoded so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position: the next step starts a new sequence.
    pub fn reset(&mut self) {
        for mixer in &mut self.mixers {
            match mixer {
                MixerCache::Attention(kv) => kv.reset(),
                MixerCache::Recurrent(state) => *state = None,
            }
        }
        self.graph.clear();
        self.last_ids = Tensor::full([self.batch, 2], BOS as i64, &self.last_ids.device());
        self.len = 0;
    }
}

impl<B: TernaryBackend> ARBModel<B> {
    /// Text logits `[batch, n, 297]` of the new positions `ids: [batch, n]`
    /// (a prompt, then one id per step) after the positions `cache` holds,
    /// in inference mode; updates `cache`. Equal to the last `n` positions of
    /// [`try_forward`](Self::try_forward) over the whole sequence while it
    /// fits the cache.
    pub fn try_forward_cached(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut ArbCache<B>,
    ) -> TernaryResult<Tensor<B, 3>> {
        crate::util::check_ids(&ids, self.byte_embed.dims()[0], "ids")?;
        self.forward_cached_trusted(ids, cache)
    }

    /// [`try_forward_cached`](Self::try_forward_cached) for ids the model
    /// produced itself (its own argmax or samples over the byte range): no id
    /// is read back from the device to check its range, so decoding steps
    /// can be queued without waiting for the previous one.
    pub fn forward_cached_trusted(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut ArbCache<B>,
    ) -> TernaryResult<Tensor<B, 3>> {
        let [batch, n] = ids.dims();
        if batch != cache.batch || n == 0 || n > cache.max_seq {
            return Err(shape_error(
                "ids",
                format!(
                    "[{}, 1..={}] (the cache's batch and max_seq)",
                    cache.batch, cache.max_seq
                ),
                &[batch, n],
            ));
        }
        let before = cache.last_ids.clone();
        let last_ids = Tensor::cat(vec![before.clone(), ids.clone()], 1).narrow(1, n, 2);
        let mut h = self.embed_unchecked(before, ids)?;
        for (block, mixer) in self.sequencers.iter().zip(cache.mixers.iter_mut()) {
            h = block.try_forward_cached(h, mixer)?;
        }
        let graph = &mut cache.graph;
        let out = self.finish(h, false, |normed| {
            self.graph.try_forward_cached(normed, graph)
        })?;
        cache.last_ids = last_ids;
        cache.len += n;
        Ok(out.logits)
    }

    /// Continues every prompt of `prompts` (bytes, all of one length, at
    /// most `max_seq`) by `max_new` bytes drawn by `sampler`, decoding the
    /// rows together with an [`ArbCache`] of `max_seq` positions;
    /// `on_byte(row, byte)` sees each byte as it comes (for streaming).
    pub fn generate(
        &self,
        prompts: &[Vec<u8>],
        max_new: usize,
        max_seq: usize,
        sampler: &Sampler,
        mut on_byte: impl FnMut(usize, u8),
    ) -> TernaryResult<GenerationOutput> {
        let batch = prompts.len();
        let len = prompts.first().map(Vec::len).unwrap_or(0);
        if batch == 0 || len == 0 || len > max_seq || prompts.iter().any(|p| p.len() != len) {
            return Err(shape_error(
                "prompts",
                format!("1 or more prompts of one length in 1..={max_seq}"),
                &prompts.iter().map(Vec::len).collect::<Vec<_>>(),
            ));
        }
        let device = self.byte_embed.devices()[0].clone();
        let started = Instant::now();
        let mut cache = ArbCache::new(self, batch, max_seq, &device);
        let mut rng = SmallRng::seed_from_u64(sampler.seed);
        let ids: Vec<i64> = prompts.iter().flatten().map(|b| *b as i64).collect();
        let prompt = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, len]), &device);
        let mut out: Vec<Vec<u8>> = vec![Vec::with_capacity(max_new); batch];
        decode_loop(
            prompt,
            max_new,
            |ids, checked| self.cached_step(ids, &mut cache, checked),
            // The next byte of each row: only byte ids (0..256) are text.
            |last| {
                let bytes = sampler.pick(last.narrow(1, 0, 256), &mut rng);
                bytes.into_iter().map(i64::from).collect()
            },
            |row, id| {
                out[row].push(id as u8);
                on_byte(row, id as u8);
            },
        )?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(GenerationOutput {
            tokens_per_s: (batch * max_new) as f64 / seconds.max(1e-9),
            text: out
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect(),
            bytes: out,
            seconds,
        })
    }
}

/// Prefill and decode times of [`ARBModel::time_decode`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeTiming {
    /// Rows decoded together.
    pub batch: usize,
    /// Prompt positions, filled in one call.
    pub prompt_len: usize,
    /// Positions decoded one at a time after the prompt.
    pub new: usize,
    /// Milliseconds of the prompt's call.
    pub prefill_ms: f64,
    /// New positions per second over all rows.
    pub tokens_per_s: f64,
    /// Milliseconds per decoding step (one position of every row).
    pub ms_per_token: f64,
}

impl<B: TernaryBackend> ARBModel<B> {
    /// Times greedy decoding of `new` positions after a `prompt_len`-byte
    /// prompt (ids `prompt_ids: [batch, prompt_len]`) with a cache of
    /// `prompt_len + new` positions. Each step's argmax stays on the device
    /// and feeds the next step, so steps are queued without waiting; the
    /// clock stops when the last step's ids are read back.
    pub fn time_decode(
        &self,
        prompt_ids: Tensor<B, 2, Int>,
        new: usize,
    ) -> TernaryResult<DecodeTiming> {
        let [batch, prompt_len] = prompt_ids.dims();
        let mut cache = ArbCache::new(self, batch, prompt_len + new, &prompt_ids.device());
        time_greedy(prompt_ids, new, Some(256), |ids, checked| {
            self.cached_step(ids, &mut cache, checked)
        })
    }

    /// One cached call: [`try_forward_cached`](Self::try_forward_cached)
    /// where `checked` (ids from outside), else the unchecked
    /// [`forward_cached_trusted`](Self::forward_cached_trusted) for the
    /// model's own ids.
    fn cached_step(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut ArbCache<B>,
        checked: bool,
    ) -> TernaryResult<Tensor<B, 3>> {
        if checked {
            self.try_forward_cached(ids, cache)
        } else {
            self.forward_cached_trusted(ids, cache)
        }
    }
}

/// The decoding loop of every cached model: the prompt `[batch, n]` in one
/// `step(ids, true)` call, then `max_new − 1` single-position calls
/// `step(ids, false)` on the ids just picked (the model's own, so the step
/// may skip their range check). `pick` turns each call's last-position
/// logits `[batch, vocab]` into every row's next id; `on_id(row, id)` sees
/// them as they come.
pub(crate) fn decode_loop<B: Backend>(
    prompt: Tensor<B, 2, Int>,
    max_new: usize,
    mut step: impl FnMut(Tensor<B, 2, Int>, bool) -> TernaryResult<Tensor<B, 3>>,
    mut pick: impl FnMut(Tensor<B, 2>) -> Vec<i64>,
    mut on_id: impl FnMut(usize, i64),
) -> TernaryResult<()> {
    let batch = prompt.dims()[0];
    let device = prompt.device();
    let mut input = prompt;
    for call in 0..max_new {
        let n = input.dims()[1];
        let logits = step(input, call == 0)?;
        let vocab = logits.dims()[2];
        let next = pick(logits.narrow(1, n - 1, 1).reshape([batch, vocab]));
        for (row, &id) in next.iter().enumerate() {
            on_id(row, id);
        }
        input = Tensor::from_data(TensorData::new(next, [batch, 1]), &device);
    }
    Ok(())
}

/// Times greedy decoding of `new` positions after `prompt: [batch,
/// prompt_len]` through a cached `step` (as in [`decode_loop`]), the argmax
/// over the first `vocab` ids (all where `None`): the prompt in one call,
/// then `new` steps whose argmax stays on the device and feeds the next, so
/// the steps queue without waiting; the clock stops when the last step's
/// ids are read back.
pub(crate) fn time_greedy<B: Backend>(
    prompt: Tensor<B, 2, Int>,
    new: usize,
    vocab: Option<usize>,
    mut step: impl FnMut(Tensor<B, 2, Int>, bool) -> TernaryResult<Tensor<B, 3>>,
) -> TernaryResult<DecodeTiming> {
    let [batch, prompt_len] = prompt.dims();
    let argmax = |logits: Tensor<B, 3>| {
        let logits = match vocab {
            Some(v) => logits.narrow(2, 0, v),
            None => logits,
        };
        logits.argmax(2).reshape([batch, 1])
    };
    let started = Instant::now();
    let logits = step(prompt, true)?;
    let mut next = argmax(logits.narrow(1, prompt_len - 1, 1));
    let _ = next.clone().into_data(); // waits for the prefill
    let prefill = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..new {
        next = argmax(step(next, false)?);
    }
    let _ = next.into_data(); // waits for the last step
    let decode = started.elapsed().as_secs_f64();
    Ok(DecodeTiming {
        batch,
        prompt_len,
        new,
        prefill_ms: prefill * 1e3,
        tokens_per_s: (batch * new) as f64 / decode.max(1e-12),
        ms_per_token: decode * 1e3 / new.max(1) as f64,
    })
}

/// What [`ARBModel::generate`] returns.
#[derive(Debug, Clone)]
pub struct GenerationOutput {
    /// The new bytes of each row.
    pub bytes: Vec<Vec<u8>>,
    /// The new bytes of each row as text (invalid UTF-8 replaced).
    pub text: Vec<String>,
    /// Wall time of the whole generation, prompt included.
    pub seconds: f64,
    /// New bytes per second over all rows.
    pub tokens_per_s: f64,
}

/// How the next byte (or token id, [`Sampler::pick_ids`]) is drawn from the
/// logits: greedy (`temperature = 0`)
/// or from the softmax at `temperature`, restricted to the `top_k` most
/// likely bytes and to the smallest set whose probability reaches `top_p`,
/// with an RNG seeded by `seed`.
///
/// ```
/// use arbitor_models::generation::Sampler;
/// let sampler = Sampler::new(0.8).with_top_k(40).with_top_p(0.95).with_seed(7);
/// assert_eq!(Sampler::greedy().temperature, 0.0);
/// assert_eq!(sampler.top_k, Some(40));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    /// Softmax temperature; 0 picks the most likely byte.
    pub temperature: f64,
    /// Keep only the `k` most likely bytes.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely bytes whose probability reaches `p`.
    pub top_p: Option<f64>,
    /// Seed of the draws.
    pub seed: u64,
}

impl Sampler {
    /// Sampling at `temperature`, no top-k or top-p, seed 0.
    pub fn new(temperature: f64) -> Self {
        Self {
            temperature,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }

    /// The most likely byte every step.
    pub fn greedy() -> Self {
        Self::new(0.0)
    }

    /// Keeps only the `k` most likely bytes.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k);
        self
    }

    /// Keeps the smallest set of most likely bytes whose probability reaches `p`.
    pub fn with_top_p(mut self, p: f64) -> Self {
        self.top_p = Some(p);
        self
    }

    /// Seeds the draws.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The next byte of each row of `logits: [batch, 256]` (one read back
    /// from the device).
    pub fn pick<B: Backend>(&self, logits: Tensor<B, 2>, rng: &mut SmallRng) -> Vec<u8> {
        self.pick_ids(logits, rng)
            .into_iter()
            .map(|id| id as u8)
            .collect()
    }

    /// The next token id of each row of `logits: [batch, vocab]`, any
    /// vocabulary (one read back from the device).
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use burn::tensor::Tensor;
    /// use arbitor_models::generation::Sampler;
    /// use rand::{rngs::SmallRng, SeedableRng};
    ///
    /// let logits = Tensor::<Flex, 2>::from_floats([[0.0, 9.0, 1.0], [5.0, 0.0, 0.0]], &Default::default());
    /// let ids = Sampler::greedy().pick_ids(logits, &mut SmallRng::seed_from_u64(0));
    /// assert_eq!(ids, vec![1, 0]);
    /// ```
    pub fn pick_ids<B: Backend>(&self, logits: Tensor<B, 2>, rng: &mut SmallRng) -> Vec<u32> {
        let [batch, vocab] = logits.dims();
        let scale = if self.temperature > 0.0 {
            self.temperature
        } else {
            1.0
        };
        let probs: Vec<f32> = softmax(logits.div_scalar(scale), 1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32 probabilities");
        probs
            .chunks(vocab)
            .take(batch)
            .map(|row| self.pick_index(row, rng) as u32)
            .collect()
    }

    /// The next byte drawn from the probabilities `probs` of one row of 256.
    pub fn pick_row(&self, probs: &[f32], rng: &mut SmallRng) -> u8 {
        self.pick_index(probs, rng) as u8
    }

    /// The index drawn from the probabilities `probs` of one row.
    pub fn pick_index(&self, probs: &[f32], rng: &mut SmallRng) -> usize {
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]));
        if self.temperature <= 0.0 {
            return order[0];
        }
        let mut keep = self.top_k.unwrap_or(order.len()).clamp(1, order.len());
        if let Some(p) = self.top_p {
            let mut mass = 0.0;
            for (i, id) in order.iter().take(keep).enumerate() {
                mass += probs[*id] as f64;
                if mass >= p {
                    keep = i + 1;
                    break;
                }
            }
        }
        let kept = &order[..keep];
        let total: f32 = kept.iter().map(|id| probs[*id]).sum();
        let mut u = rng.random::<f32>() * total;
        for id in kept {
            if u < probs[*id] {
                return *id;
            }
            u -= probs[*id];
        }
        kept[kept.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        arb::ARBModelConfig,
        layers::LayerKind,
        testing::{random_ids, AD},
    };

    fn small(layers: LayerKind) -> ARBModel<AD> {
        ARBModelConfig::new()
            .with_d_model(32)
            .with_n_layers(4)
            .with_n_heads(4)
            .with_mlp_hidden(48)
            .with_trigram_buckets(97)
            .with_vq_codes(16)
            .with_memory_slots(8)
            .with_memory_d_key(8)
            .with_expert_hidden(16)
            .with_graph_window(3)
            .with_graph_rounds(2)
            .with_layers(layers)
            .init::<AD>(&Default::default())
    }

    fn max_relative(a: &Tensor<AD, 3>, b: &Tensor<AD, 3>) -> f32 {
        let a: Vec<f32> = a.clone().into_data().to_vec().unwrap();
        let b: Vec<f32> = b.clone().into_data().to_vec().unwrap();
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    #[test]
    fn incremental_decoding_equals_full_recomputation() {
        for layers in [LayerKind::Ternary, LayerKind::Dense] {
            let model = small(layers);
            let ids = random_ids([2, 11], 256, 5);
            let full = model.forward(ids.clone(), false).logits;
            let mut cache = ArbCache::new(&model, 2, 16, &Default::default());
            // A prompt of 4, then one id per step.
            let mut pieces = vec![model
                .try_forward_cached(ids.clone().narrow(1, 0, 4), &mut cache)
                .unwrap()];
            for t in 4..11 {
                pieces.push(
                    model
                        .try_forward_cached(ids.clone().narrow(1, t, 1), &mut cache)
                        .unwrap(),
                );
            }
            assert_eq!(cache.len(), 11);
            let incremental = Tensor::cat(pieces, 1);
            let err = max_relative(&full, &incremental);
            assert!(err < 1e-5, "{layers:?}: relative difference {err}");
            // After a reset the cache starts a new sequence.
            cache.reset();
            let again = model
                .try_forward_cached(ids.clone().narrow(1, 0, 4), &mut cache)
                .unwrap();
            assert!(max_relative(&full.clone().narrow(1, 0, 4), &again) < 1e-5);
        }
    }

    #[test]
    fn generation_is_seeded_batched_and_checked() {
        let model = small(LayerKind::Ternary);
        let prompts = vec![b"ROMEO:".to_vec(), b"JULIET".to_vec()];
        let sampler = Sampler::new(0.9)
            .with_top_k(20)
            .with_top_p(0.9)
            .with_seed(3);
        let mut streamed = vec![Vec::new(); 2];
        let out = model
            .generate(&prompts, 12, 32, &sampler, |row, b| streamed[row].push(b))
            .unwrap();
        assert_eq!(out.bytes.len(), 2);
        assert!(out.bytes.iter().all(|b| b.len() == 12));
        assert_eq!(streamed, out.bytes);
        let again = model
            .generate(&prompts, 12, 32, &sampler, |_, _| {})
            .unwrap();
        assert_eq!(again.bytes, out.bytes, "the same seed draws the same bytes");
        // Greedy decoding of one row equals that row decoded in a batch.
        let greedy = Sampler::greedy();
        let both = model.generate(&prompts, 6, 32, &greedy, |_, _| {}).unwrap();
        let one = model
            .generate(&prompts[1..], 6, 32, &greedy, |_, _| {})
            .unwrap();
        assert_eq!(both.bytes[1], one.bytes[0]);
        let err = model
            .generate(
                &[b"ab".to_vec(), b"abc".to_vec()],
                1,
                32,
                &greedy,
                |_, _| {},
            )
            .unwrap_err();
        assert!(err.to_string().contains("prompts"), "{err}");
        let err = model
            .generate(&[vec![b'x'; 40]], 1, 32, &greedy, |_, _| {})
            .unwrap_err();
        assert!(err.to_string().contains("prompts"), "{err}");
    }

    #[test]
    fn timed_decoding_runs_every_step() {
        let model = small(LayerKind::Ternary);
        let timing = model.time_decode(random_ids([2, 5], 256, 9), 7).unwrap();
        assert_eq!((timing.batch, timing.prompt_len, timing.new), (2, 5, 7));
        assert!(timing.tokens_per_s > 0.0 && timing.ms_per_token > 0.0 && timing.prefill_ms > 0.0);
        let err = model.try_forward_cached(
            Tensor::from_ints([[1, 300]], &Default::default()),
            &mut ArbCache::new(&model, 1, 4, &Default::default()),
        );
        assert!(err.unwrap_err().to_string().contains("ids"));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut rng = SmallRng::seed_from_u64(0);
        let probs = [0.1f32, 0.6, 0.3];
        assert_eq!(
            Sampler::new(1.0).with_top_k(1).pick_row(&probs, &mut rng),
            1
        );
        assert_eq!(Sampler::greedy().pick_row(&probs, &mut rng), 1);
        for _ in 0..50 {
            let b = Sampler::new(1.0)
                .with_top_p(0.85)
                .pick_row(&probs, &mut rng);
            assert!(b == 1 || b == 2, "top-p 0.85 keeps bytes 1 and 2, drew {b}");
        }
    }
}
