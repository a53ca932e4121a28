//! The full Arbitor model: byte and hashed-trigram embeddings, a sequencer
//! stack with VQ, Graph, Memory and MoE, and the output router with its heads.

use burn::{
    config::Config,
    module::Module,
    nn::loss::CrossEntropyLossConfig,
    tensor::{activation::log_softmax, backend::Backend, Int, Tensor},
};
use burn_ternary::{TernaryBackend, TernaryResult};

use crate::{
    graph::{Graph, GraphConfig},
    layers::{ArbEmbedding, ArbLinear, LayerKind},
    memory::{Memory, MemoryConfig},
    moe::{MoE, MoEConfig},
    router::{OutputRouter, OutputRouterConfig, RouterOutput},
    sequencer::{MixerKind, Sequencer, SequencerConfig},
    talker::{TalkerHead, TalkerHeadConfig, TalkerOutput},
    util::{or_panic, positive, rms_norm, seeded_normal, shape_error},
    video::{VideoHead, VideoHeadConfig, VideoOutput},
    vocab::{BOS, TEXT_VOCAB, TRIGRAM_DIM},
    vq::{VectorQuantizer, VectorQuantizerConfig},
};

/// Multiplier of the oldest id in the trigram hash.
pub const TRIGRAM_MUL_A: i64 = 92_821;
/// Multiplier of the middle id in the trigram hash.
pub const TRIGRAM_MUL_B: i64 = 689;

/// The trigram bucket of the ids `(a, b, c)` (oldest first):
/// `(a·92821 + b·689 + c) mod buckets`. Positions before the start of the
/// sequence read as [`BOS`].
///
/// ```
/// assert_eq!(arbitor_models::arb::trigram_bucket(1, 2, 3, 1000), (92_821 + 2 * 689 + 3) % 1000);
/// ```
pub fn trigram_bucket(a: usize, b: usize, c: usize, buckets: usize) -> usize {
    (a * TRIGRAM_MUL_A as usize + b * TRIGRAM_MUL_B as usize + c) % buckets
}

/// Configuration of an [`ARBModel`]. The defaults run a `(2, 8)` batch on a
/// CPU in well under a second.
#[derive(Config, Debug)]
pub struct ARBModelConfig {
    /// Model width.
    #[config(default = 128)]
    pub d_model: usize,
    /// Sequencer blocks; they alternate attention and recurrent mixers, starting with attention.
    #[config(default = 2)]
    pub n_layers: usize,
    /// Attention heads.
    #[config(default = 4)]
    pub n_heads: usize,
    /// MLP width of the sequencer blocks.
    #[config(default = 256)]
    pub mlp_hidden: usize,
    /// Rows of the hashed-trigram table.
    #[config(default = 2048)]
    pub trigram_buckets: usize,
    /// Codes of the VQ bottleneck.
    #[config(default = 256)]
    pub vq_codes: usize,
    /// Graph link window.
    #[config(default = 4)]
    pub graph_window: usize,
    /// Graph rounds.
    #[config(default = 1)]
    pub graph_rounds: usize,
    /// Memory slots.
    #[config(default = 64)]
    pub memory_slots: usize,
    /// Memory key width.
    #[config(default = 32)]
    pub memory_d_key: usize,
    /// Experts.
    #[config(default = 4)]
    pub n_experts: usize,
    /// Experts per token.
    #[config(default = 2)]
    pub top_k: usize,
    /// Hidden width of each expert.
    #[config(default = 128)]
    pub expert_hidden: usize,
    /// Most denoise steps of the video head.
    #[config(default = 4)]
    pub video_max_steps: usize,
    /// Audio tokens per talker conditioning token.
    #[config(default = 3)]
    pub talker_stride: usize,
    /// Which layers the core is built from: the embeddings, sequencers, VQ,
    /// graph, memory, MoE and router. The [`VideoHead`] and [`TalkerHead`]
    /// stay ternary (they hold ternary convolutions) whatever the kind, and
    /// a text-only run ([`ARBModel::text_loss`]) does not train them.
    #[config(default = "LayerKind::Ternary")]
    pub layers: LayerKind,
}

impl ARBModelConfig {
    /// Builds the model, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<ARBModel<B>> {
        positive("n_layers", self.n_layers)?;
        positive("trigram_buckets", self.trigram_buckets)?;
        let d = self.d_model;
        let sequencers = (0..self.n_layers)
            .map(|i| {
                let kind = if i % 2 == 0 {
                    MixerKind::Attention
                } else {
                    MixerKind::Recurrent
                };
                SequencerConfig::new(d, self.mlp_hidden)
                    .with_kind(kind)
                    .with_n_heads(self.n_heads)
                    .with_layers(self.layers)
                    .try_init(device)
            })
            .collect::<TernaryResult<Vec<_>>>()?;
        Ok(ARBModel {
            byte_embed: self.layers.embedding(TEXT_VOCAB, d, device)?,
            trigram_embed: self
                .layers
                .embedding(self.trigram_buckets, TRIGRAM_DIM, device)?,
            trigram_proj: self.layers.linear(TRIGRAM_DIM, d, device)?,
            sequencers,
            vq: VectorQuantizerConfig::new(self.vq_codes, d)
                .with_layers(self.layers)
                .try_init(device)?,
            graph: GraphConfig::new(d)
                .with_window(self.graph_window)
                .with_rounds(self.graph_rounds)
                .with_layers(self.layers)
                .try_init(device)?,
            memory: MemoryConfig::new(d)
                .with_n_slots(self.memory_slots)
                .with_d_key(self.memory_d_key)
                .with_layers(self.layers)
                .try_init(device)?,
            moe: MoEConfig::new(d, self.expert_hidden)
                .with_n_experts(self.n_experts)
                .with_top_k(self.top_k)
                .with_layers(self.layers)
                .try_init(device)?,
            router: OutputRouterConfig::new(d)
                .with_layers(self.layers)
                .try_init(device)?,
            video_head: VideoHeadConfig::new()
                .with_d_cond(d)
                .with_max_steps(self.video_max_steps)
                .with_fixed_steps(self.video_max_steps.min(2))
                .try_init(device)?,
            talker_head: TalkerHeadConfig::new()
                .with_d_model(d)
                .with_stride(self.talker_stride)
                .try_init(device)?,
        })
    }

    /// Builds the model.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> ARBModel<B> {
        or_panic(self.try_init(device))
    }
}

/// What [`ARBModel::forward`] returns.
#[derive(Debug, Clone)]
pub struct ArbOutput<B: Backend> {
    /// Text logits `[batch, seq, 297]` (see [`crate::vocab`]).
    pub logits: Tensor<B, 3>,
    /// VQ code per position, `[batch, seq]`.
    pub indices: Tensor<B, 2, Int>,
    /// The router's output (gates, routes, head conditioning).
    pub router: RouterOutput<B>,
    /// VQ codebook + commitment loss, `[1]`.
    pub vq_loss: Tensor<B, 1>,
    /// MoE load-balancing loss, `[1]`.
    pub balance_loss: Tensor<B, 1>,
}

/// The parts of [`ARBModel::train_loss`] and [`ARBModel::text_loss`], each `[1]`.
#[derive(Debug, Clone)]
pub struct ArbLoss<B: Backend> {
    /// `text + vq + 0.01·balance + 0.01·ponder` (no ponder term in
    /// [`ARBModel::text_loss`]).
    pub total: Tensor<B, 1>,
    /// Next-token cross-entropy (nats).
    pub text: Tensor<B, 1>,
    /// VQ loss.
    pub vq: Tensor<B, 1>,
    /// MoE balance loss.
    pub balance: Tensor<B, 1>,
    /// Video-head ponder cost (ACT); zero in [`ARBModel::text_loss`].
    pub ponder: Tensor<B, 1>,
}

/// The Arbitor core, ternary throughout by default (a dense twin with
/// [`LayerKind::Dense`], see [`ARBModelConfig::layers`]).
///
/// `ids: [batch, seq]` in the 297-entry text vocabulary ([`crate::vocab`]) →
/// `byte_embed(ids) + trigram_proj(trigram_embed(hash(ids[t−2], ids[t−1], ids[t])))`
/// → [`Sequencer`] blocks (attention, recurrent, …) → a residual
/// [`VectorQuantizer`] bottleneck (`h + q`) → residual [`Graph`], [`Memory`]
/// and [`MoE`] (each behind a parameter-free RMS norm) → RMS norm →
/// [`OutputRouter`] (text logits and the conditioning of the
/// [`VideoHead`] and [`TalkerHead`], run by [`heads`](Self::heads)).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use arbitor_models::arb::ARBModelConfig;
///
/// let device = Default::default();
/// let model = ARBModelConfig::new().init::<Flex>(&device);
/// let ids = Tensor::<Flex, 2, Int>::from_ints([[72, 101, 108, 108, 111, 32, 119, 111]; 2], &device);
/// let out = model.forward(ids, false);
/// assert_eq!(out.logits.dims(), [2, 8, 297]);
/// assert_eq!(out.indices.dims(), [2, 8]);
/// ```
#[derive(Module, Debug)]
pub struct ARBModel<B: Backend> {
    /// Token embedding `[297, d_model]`.
    pub byte_embed: ArbEmbedding<B>,
    /// Hashed-trigram embedding `[trigram_buckets, TRIGRAM_DIM]`.
    pub trigram_embed: ArbEmbedding<B>,
    /// Projection of the trigram embedding to `d_model`.
    pub trigram_proj: ArbLinear<B>,
    /// The sequencer stack.
    pub sequencers: Vec<Sequencer<B>>,
    /// The VQ bottleneck.
    pub vq: VectorQuantizer<B>,
    /// Token-graph message passing.
    pub graph: Graph<B>,
    /// Key/value memory.
    pub memory: Memory<B>,
    /// Mixture of experts.
    pub moe: MoE<B>,
    /// Output router and text head.
    pub router: OutputRouter<B>,
    /// Video head.
    pub video_head: VideoHead<B>,
    /// Talker head.
    pub talker_head: TalkerHead<B>,
}

impl<B: TernaryBackend> ARBModel<B> {
    /// Trigram bucket ids `[batch, seq]` of `ids` (see [`trigram_bucket`]).
    pub fn trigram_ids(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 2, Int> {
        let start = Tensor::<B, 2, Int>::full([ids.dims()[0], 2], BOS as i64, &ids.device());
        self.trigram_ids_after(start, ids)
    }

    /// Trigram bucket ids `[batch, n]` of `ids: [batch, n]` whose two
    /// preceding ids are `before: [batch, 2]` ([`BOS`] at a sequence's start).
    pub fn trigram_ids_after(
        &self,
        before: Tensor<B, 2, Int>,
        ids: Tensor<B, 2, Int>,
    ) -> Tensor<B, 2, Int> {
        let n = ids.dims()[1];
        let buckets = self.trigram_embed.dims()[0];
        let padded = Tensor::cat(vec![before, ids.clone()], 1);
        let a = padded.clone().narrow(1, 0, n);
        let b = padded.narrow(1, 1, n);
        (a.mul_scalar(TRIGRAM_MUL_A) + b.mul_scalar(TRIGRAM_MUL_B) + ids)
            .remainder_scalar(buckets as i64)
    }

    /// Byte plus projected trigram embeddings `[batch, n, d_model]` of `ids`
    /// after the ids `before: [batch, 2]`. The ids are not range-checked here
    /// (the callers check what they did not produce themselves); the trigram
    /// ids are in range by construction.
    pub(crate) fn embed_unchecked(
        &self,
        before: Tensor<B, 2, Int>,
        ids: Tensor<B, 2, Int>,
    ) -> TernaryResult<Tensor<B, 3>> {
        let [batch, n] = ids.dims();
        let d_model = self.byte_embed.dims()[1];
        let bytes = self
            .byte_embed
            .lookup_unchecked(ids.clone().reshape([batch * n]))
            .reshape([batch, n, d_model]);
        let trigrams = self
            .trigram_embed
            .lookup_unchecked(self.trigram_ids_after(before, ids).reshape([batch * n]))
            .reshape([batch, n, TRIGRAM_DIM]);
        Ok(bytes + self.trigram_proj.try_forward(trigrams)?)
    }

    /// The layers after the sequencer stack on its output `h`: the VQ
    /// bottleneck, the graph (run by `graph` on the normed stream: over the
    /// whole sequence, or incrementally), memory, MoE and the router.
    pub(crate) fn finish(
        &self,
        mut h: Tensor<B, 3>,
        training: bool,
        graph: impl FnOnce(Tensor<B, 3>) -> TernaryResult<Tensor<B, 3>>,
    ) -> TernaryResult<ArbOutput<B>> {
        let vq = self.vq.try_forward(rms_norm(h.clone()))?;
        h = h + vq.quantized;
        // The graph returns its (normed) input plus its updates; keep the updates.
        let normed = rms_norm(h.clone());
        h = h + (graph(normed.clone())? - normed);
        h = h.clone() + self.memory.try_forward(rms_norm(h))?;
        let moe = self.moe.try_forward(rms_norm(h.clone()))?;
        h = h + moe.output;
        let router = self.router.try_forward(rms_norm(h), training)?;
        Ok(ArbOutput {
            logits: router.text_logits.clone(),
            indices: vq.indices,
            router,
            vq_loss: vq.loss,
            balance_loss: moe.balance_loss,
        })
    }

    /// Runs the core on `ids: [batch, seq]` (`training` selects soft router
    /// gates), or reports an id out of range or an empty sequence.
    pub fn try_forward(
        &self,
        ids: Tensor<B, 2, Int>,
        training: bool,
    ) -> TernaryResult<ArbOutput<B>> {
        let dims = ids.dims();
        if dims[0] == 0 || dims[1] == 0 {
            return Err(shape_error("ids", "[batch ≥ 1, seq ≥ 1]", &dims));
        }
        crate::util::check_ids(&ids, self.byte_embed.dims()[0], "ids")?; // one device read
        let start = Tensor::<B, 2, Int>::full([dims[0], 2], BOS as i64, &ids.device());
        let mut h = self.embed_unchecked(start, ids)?;
        for block in &self.sequencers {
            h = block.try_forward(h)?;
        }
        self.finish(h, training, |normed| self.graph.try_forward(normed))
    }

    /// Runs the core on `ids: [batch, seq]`.
    ///
    /// # Panics
    /// On an id outside `0..297` or an empty batch (the message names `ids`).
    pub fn forward(&self, ids: Tensor<B, 2, Int>, training: bool) -> ArbOutput<B> {
        or_panic(self.try_forward(ids, training))
    }

    /// Runs the heads on the router's conditioning: the video head from
    /// Gaussian noise seeded by `seed`, and the talker head for
    /// `talker_len` audio tokens.
    pub fn heads(
        &self,
        output: &ArbOutput<B>,
        seed: u64,
        talker_len: usize,
        training: bool,
    ) -> TernaryResult<(VideoOutput<B>, TalkerOutput<B>)> {
        let cond = output.router.video_cond.clone();
        let [c, f, h, w] = self.video_head.latent_shape;
        let noise = seeded_normal::<B, 5>([cond.dims()[0], c, f, h, w], seed, &cond.device());
        let video = self.video_head.try_forward(cond, noise, training)?;
        let talker = self
            .talker_head
            .try_forward(output.router.talker_cond.clone(), talker_len)?;
        Ok((video, talker))
    }

    /// The training loss on `ids: [batch, seq]` with next-token `targets:
    /// [batch, seq]`: text cross-entropy, VQ loss, MoE balance and the video
    /// head's ponder cost (which trains the router's video gate).
    pub fn train_loss(
        &self,
        ids: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
    ) -> TernaryResult<ArbLoss<B>> {
        check_targets(&ids, &targets, None)?;
        let out = self.try_forward(ids, true)?;
        let text = text_cross_entropy(&out.logits, targets, None)?;
        let (video, _) = self.heads(&out, 0, 1, true)?;
        let total = text.clone()
            + out.vq_loss.clone()
            + out.balance_loss.clone().mul_scalar(0.01)
            + video.ponder_cost.clone().mul_scalar(0.01);
        Ok(ArbLoss {
            total,
            text,
            vq: out.vq_loss,
            balance: out.balance_loss,
            ponder: video.ponder_cost,
        })
    }

    /// The text-only training loss on `ids: [batch, seq]` with next-token
    /// `targets: [batch, seq]`: the core in training mode, the text
    /// cross-entropy, VQ loss and MoE balance,
    /// `total = text + vq + 0.01·balance`. No head runs (`ponder` is zero).
    ///
    /// With `weights: Some(w)` (`[batch, seq]`, 0/1 floats) the text term is
    /// `Σ w·ce / max(Σ w, 1)` over the positions, so only the positions with
    /// weight 1 count (a validation window whose context is already scored).
    /// Reports a shape mismatch of `targets` or `weights`, or an id out of range.
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use burn::tensor::{Int, Tensor};
    /// use arbitor_models::arb::ARBModelConfig;
    ///
    /// let device = Default::default();
    /// let model = ARBModelConfig::new().with_d_model(32).init::<Flex>(&device);
    /// let ids = Tensor::<Flex, 2, Int>::from_ints([[72, 105, 33, 10]], &device);
    /// let targets = Tensor::<Flex, 2, Int>::from_ints([[105, 33, 10, 72]], &device);
    /// // Score the last two positions only.
    /// let weights = Tensor::<Flex, 2>::from_floats([[0.0, 0.0, 1.0, 1.0]], &device);
    /// let loss = model.text_loss(ids, targets, Some(weights)).unwrap();
    /// assert!(loss.text.into_scalar().is_finite());
    /// ```
    pub fn text_loss(
        &self,
        ids: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        weights: Option<Tensor<B, 2>>,
    ) -> TernaryResult<ArbLoss<B>> {
        check_targets(&ids, &targets, weights.as_ref())?;
        let out = self.try_forward(ids, true)?;
        let text = text_cross_entropy(&out.logits, targets, weights)?;
        let total = text.clone() + out.vq_loss.clone() + out.balance_loss.clone().mul_scalar(0.01);
        Ok(ArbLoss {
            total,
            text,
            ponder: Tensor::zeros([1], &out.vq_loss.device()),
            vq: out.vq_loss,
            balance: out.balance_loss,
        })
    }
}

/// Checks that `targets` (and `weights`, when given) have the shape of `ids`.
fn check_targets<B: Backend>(
    ids: &Tensor<B, 2, Int>,
    targets: &Tensor<B, 2, Int>,
    weights: Option<&Tensor<B, 2>>,
) -> TernaryResult<()> {
    let dims = ids.dims();
    if targets.dims() != dims {
        return Err(shape_error(
            "targets",
            format!("{dims:?} (the shape of ids)"),
            &targets.dims(),
        ));
    }
    if let Some(weights) = weights
        && weights.dims() != dims
    {
        return Err(shape_error(
            "weights",
            format!("{dims:?} (the shape of ids)"),
            &weights.dims(),
        ));
    }
    Ok(())
}

/// Next-token cross-entropy of `logits: [batch, seq, vocab]`, `[1]`: the
/// mean over positions, or `Σ w·ce / max(Σ w, 1)` with `weights`.
fn text_cross_entropy<B: Backend>(
    logits: &Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    weights: Option<Tensor<B, 2>>,
) -> TernaryResult<Tensor<B, 1>> {
    let [batch, seq, vocab] = logits.dims();
    crate::util::check_ids(&targets, vocab, "targets")?;
    let n = batch * seq;
    let logits = logits.clone().reshape([n, vocab]);
    let targets = targets.reshape([n]);
    Ok(match weights {
        None => CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, targets),
        Some(weights) => {
            let ce = log_softmax(logits, 1)
                .gather(1, targets.reshape([n, 1]))
                .neg()
                .reshape([n]);
            let weights = weights.reshape([n]);
            (weights.clone() * ce).sum() / weights.sum().clamp_min(1.0)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::vocab::AUDIO_VOCAB;
    use burn::{
        optim::{AdamWConfig, GradientsParams, Optimizer},
        tensor::TensorData,
    };
    use burn_ternary::{audit::audit, visit::collect};

    fn text_ids(text: &[u8], batch: usize, seq: usize, offset: usize) -> Tensor<AD, 2, Int> {
        let v: Vec<i64> = (0..batch * seq)
            .map(|i| text[(offset + (i / seq) * 17 + i % seq) % text.len()] as i64)
            .collect();
        Tensor::from_data(TensorData::new(v, [batch, seq]), &Default::default())
    }

    fn hand_count(c: &ARBModelConfig) -> usize {
        let d = c.d_model;
        let layers: usize = (0..c.n_layers)
            .map(|i| if i % 2 == 0 { 4 * d * d } else { 3 * d * d } + 2 * d * c.mlp_hidden)
            .sum();
        let video = VideoHeadConfig::new();
        let (vh, vc, vk) = (video.hidden, video.channels, video.kernel_size);
        297 * d // byte_embed
            + c.trigram_buckets * 64 + 64 * d // trigrams
            + layers
            + c.vq_codes * d // vq
            + 2 * d * 32 + 2 * d * d // graph
            + d * c.memory_d_key + c.memory_slots * (c.memory_d_key + d) + d * d // memory
            + d * c.n_experts + c.n_experts * 2 * d * c.expert_hidden // moe
            + 3 * d + 297 * d // router
            + vh * vc * vk + vh * d + c.video_max_steps * 64 + vh * 64 + vc * vh * vk + vh // video
            + d * 64 + 64 * AUDIO_VOCAB // talker
    }

    #[test]
    fn default_forward_shapes_and_size() {
        let c = ARBModelConfig::new();
        let model = c.init::<AD>(&Default::default());
        let report = assert_audit(&model, hand_count(&c));
        println!("default ARBModel:\n{report}");
        let ids = text_ids(b"To be, or not to be, that is the question", 2, 8, 0);
        let out = model.forward(ids, false);
        assert_eq!(out.logits.dims(), [2, 8, 297]);
        assert_eq!(out.indices.dims(), [2, 8]);
        let (video, talker) = model.heads(&out, 1, 10, false).unwrap();
        assert_eq!(video.latents.dims(), [2, 16, 1, 32, 32]);
        assert_eq!(talker.tokens.dims(), [2, 10]);
    }

    #[test]
    fn train_smoke_forward_backward_update_finite_loss() {
        let c = ARBModelConfig::new();
        let model = c.init::<AD>(&Default::default());
        let text = b"First Citizen: Before we proceed any further, hear me speak.";
        let ids = text_ids(text, 2, 8, 0);
        let targets = text_ids(text, 2, 8, 1);
        let loss = |m: &ARBModel<AD>| m.train_loss(ids.clone(), targets.clone()).unwrap().total;
        let (model, first) = train_step(model, loss, &["talker_head"]);
        let second: f32 = loss(&model).into_scalar();
        assert!(first.is_finite() && second.is_finite(), "{first} {second}");
        assert!(audit::<AD, _>(&model).is_pure_ternary());
    }

    #[test]
    fn trigram_ids_match_the_host_hash() {
        let model = ARBModelConfig::new()
            .with_trigram_buckets(97)
            .init::<AD>(&Default::default());
        let ids = random_ids([3, 6], 297, 4);
        let host: Vec<i64> = ids.clone().into_data().convert::<i64>().to_vec().unwrap();
        let got: Vec<i64> = model
            .trigram_ids(ids)
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        for b in 0..3 {
            for t in 0..6 {
                let at = |k: isize| {
                    if k < 0 {
                        BOS
                    } else {
                        host[b * 6 + k as usize] as usize
                    }
                };
                let t = t as isize;
                let want = trigram_bucket(at(t - 2), at(t - 1), at(t), 97);
                assert_eq!(
                    got[b * 6 + t as usize] as usize,
                    want,
                    "row {b} position {t}"
                );
            }
        }
    }

    #[test]
    fn bad_ids_and_targets_are_named() {
        let model = ARBModelConfig::new()
            .with_d_model(32)
            .init::<AD>(&Default::default());
        let ids = Tensor::<AD, 2, Int>::from_ints([[1, 297]], &Default::default());
        let err = model.try_forward(ids, false).unwrap_err();
        assert!(err.to_string().contains("297"), "{err}");
        let ids = Tensor::<AD, 2, Int>::from_ints([[1, 2]], &Default::default());
        let targets = Tensor::<AD, 2, Int>::from_ints([[1, 2, 3]], &Default::default());
        let err = model.train_loss(ids.clone(), targets).unwrap_err();
        assert!(err.to_string().contains("targets"), "{err}");
        let targets = Tensor::<AD, 2, Int>::from_ints([[1, -1]], &Default::default());
        let err = model.train_loss(ids, targets).unwrap_err();
        assert!(err.to_string().contains("targets"), "{err}");
        let err = ARBModelConfig::new()
            .with_n_heads(3)
            .try_init::<AD>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("n_heads"), "{err}");
    }

    fn text_batch() -> (Tensor<AD, 2, Int>, Tensor<AD, 2, Int>) {
        let text = b"Now is the winter of our discontent made glorious summer.";
        (text_ids(text, 2, 8, 0), text_ids(text, 2, 8, 1))
    }

    fn scalar(t: Tensor<AD, 1>) -> f32 {
        t.into_scalar()
    }

    #[test]
    fn text_loss_parts_and_weights() {
        let model = ARBModelConfig::new()
            .with_d_model(32)
            .init::<AD>(&Default::default());
        let (ids, targets) = text_batch();
        let plain = model.text_loss(ids.clone(), targets.clone(), None).unwrap();
        let (text, vq, balance) = (
            scalar(plain.text.clone()),
            scalar(plain.vq),
            scalar(plain.balance),
        );
        let total = scalar(plain.total);
        assert!((total - (text + vq + 0.01 * balance)).abs() < 1e-5);
        assert_eq!(scalar(plain.ponder), 0.0);
        // The same text term as the full training loss.
        let full = scalar(model.train_loss(ids.clone(), targets.clone()).unwrap().text);
        assert!((full - text).abs() < 1e-5, "{full} vs {text}");
        let ones = Tensor::<AD, 2>::ones([2, 8], &Default::default());
        let all = scalar(
            model
                .text_loss(ids.clone(), targets.clone(), Some(ones))
                .unwrap()
                .text,
        );
        assert!((all - text).abs() < 1e-5, "{all} vs {text}");
        // Only the last half of each row counts: the mean of those positions' CE.
        let half: Vec<f32> = (0..16).map(|i| (i % 8 >= 4) as u8 as f32).collect();
        let half = Tensor::<AD, 2>::from_data(TensorData::new(half, [2, 8]), &Default::default());
        let masked = scalar(
            model
                .text_loss(ids.clone(), targets.clone(), Some(half))
                .unwrap()
                .text,
        );
        let logits = model.forward(ids, true).logits.reshape([16, 297]);
        let ce: Vec<f32> = log_softmax(logits, 1)
            .gather(1, targets.reshape([16, 1]))
            .neg()
            .into_data()
            .to_vec()
            .unwrap();
        let want = (0..16).filter(|i| i % 8 >= 4).map(|i| ce[i]).sum::<f32>() / 8.0;
        assert!((masked - want).abs() < 1e-4, "{masked} vs {want}");
        assert!((masked - text).abs() > 1e-4, "the mask changes the value");
    }

    #[test]
    fn text_loss_shape_errors_are_named() {
        let model = ARBModelConfig::new()
            .with_d_model(32)
            .init::<AD>(&Default::default());
        let (ids, targets) = text_batch();
        let err = model
            .text_loss(ids.clone(), targets.clone().narrow(1, 0, 7), None)
            .unwrap_err();
        assert!(err.to_string().contains("`targets`"), "{err}");
        let weights = Tensor::<AD, 2>::ones([2, 7], &Default::default());
        let err = model
            .text_loss(ids.clone(), targets.clone(), Some(weights))
            .unwrap_err();
        assert!(err.to_string().contains("`weights`"), "{err}");
        let bad = Tensor::<AD, 2, Int>::full([2, 8], 297, &Default::default());
        let err = model.text_loss(ids, bad, None).unwrap_err();
        assert!(err.to_string().contains("`targets`"), "{err}");
    }

    #[test]
    fn text_loss_trains_the_ternary_core() {
        let model = ARBModelConfig::new()
            .with_d_model(32)
            .init::<AD>(&Default::default());
        let (ids, targets) = text_batch();
        // No head runs, and the route gate only feeds the heads.
        train_step(
            model,
            |m| {
                m.text_loss(ids.clone(), targets.clone(), None)
                    .unwrap()
                    .total
            },
            &["video_head", "talker_head", "router.gate"],
        );
    }

    fn in_core(path: &str) -> bool {
        !(path.starts_with("video_head") || path.starts_with("talker_head"))
    }

    #[test]
    fn dense_twin_matches_the_ternary_core_and_trains_with_adamw() {
        let device = Default::default();
        let ternary = ARBModelConfig::new().init::<AD>(&device);
        let c = ARBModelConfig::new().with_layers(LayerKind::Dense);
        let dense = c.init::<AD>(&device);
        let (t, d) = (collect::<AD, _>(&ternary), collect::<AD, _>(&dense));
        let weights = |state: &burn_ternary::visit::ModuleState<AD>, core: bool| -> usize {
            state
                .ternary
                .iter()
                .filter(|w| in_core(&w.path) == core)
                .map(|w| w.dims[0] * w.dims[1])
                .sum()
        };
        let dense_floats: usize = d.floats.iter().map(|f| f.numel).sum();
        assert!(t.floats.is_empty());
        assert!(d.floats.iter().all(|f| in_core(&f.path) && f.trainable));
        assert_eq!(weights(&d, true), 0, "no ternary weight in the dense core");
        assert_eq!(dense_floats, weights(&t, true));
        // The heads stay ternary and the same.
        assert_eq!(weights(&d, false), weights(&t, false));
        let report = audit::<AD, _>(&dense);
        assert_eq!(report.logical_ternary_weights, weights(&t, false));
        assert_eq!(report.trainable_float_params, dense_floats);
        assert_eq!(
            weights(&t, true) + weights(&t, false),
            hand_count(&ARBModelConfig::new())
        );

        let (ids, targets) = text_batch();
        let out = dense.forward(ids.clone(), false);
        assert_eq!(out.logits.dims(), [2, 8, 297]);
        let loss = |m: &ARBModel<AD>| m.text_loss(ids.clone(), targets.clone(), None).unwrap();
        let mut optim = AdamWConfig::new().init::<AD, ARBModel<AD>>();
        let mut model = dense;
        let first = scalar(loss(&model).text);
        for _ in 0..3 {
            let grads = GradientsParams::from_grads(loss(&model).total.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        let last = scalar(loss(&model).text);
        assert!(last.is_finite() && last < first, "{first} → {last}");
    }
}
