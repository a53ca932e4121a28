//! The talker head: audio tokens for a span of conditioning tokens.

use burn::{
    config::Config,
    module::Module,
    tensor::{activation::gelu, backend::Backend, Int, Tensor},
};
use burn_ternary::{
    nn::{TernaryLinear, TernaryLinearConfig},
    TernaryBackend, TernaryResult,
};

use crate::{
    util::{check_width, config_error, or_panic, positive},
    vocab::{AUDIO_VOCAB, PAD},
};

/// Configuration of a [`TalkerHead`]. With the defaults, 4 conditioning
/// tokens give 12 audio tokens, truncated to a target length of 10.
#[derive(Config, Debug)]
pub struct TalkerHeadConfig {
    /// Width of the conditioning tokens.
    #[config(default = 128)]
    pub d_model: usize,
    /// Hidden width of the head.
    #[config(default = 64)]
    pub hidden: usize,
    /// Output vocabulary ([`AUDIO_VOCAB`] = 289).
    #[config(default = "AUDIO_VOCAB")]
    pub vocab: usize,
    /// Audio tokens per conditioning token.
    #[config(default = 3)]
    pub stride: usize,
    /// Filler token when the output is shorter than the target ([`PAD`]).
    #[config(default = "PAD")]
    pub pad_token: usize,
}

impl TalkerHeadConfig {
    /// Builds the head, or names the invalid config value.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> TernaryResult<TalkerHead<B>> {
        positive("d_model", self.d_model)?;
        positive("hidden", self.hidden)?;
        positive("vocab", self.vocab)?;
        positive("stride", self.stride)?;
        if self.pad_token >= self.vocab {
            return Err(config_error(
                "pad_token",
                self.pad_token,
                &format!("must be below vocab = {}", self.vocab),
            ));
        }
        Ok(TalkerHead {
            proj: TernaryLinearConfig::new(self.d_model, self.hidden).try_init(device)?,
            head: TernaryLinearConfig::new(self.hidden, self.vocab).try_init(device)?,
            stride: self.stride,
            pad_token: self.pad_token,
        })
    }

    /// Builds the head.
    ///
    /// # Panics
    /// On an invalid config value (the message names it).
    pub fn init<B: Backend>(&self, device: &B::Device) -> TalkerHead<B> {
        or_panic(self.try_init(device))
    }
}

/// What a [`TalkerHead`] returns.
#[derive(Debug, Clone)]
pub struct TalkerOutput<B: Backend> {
    /// Logits per conditioning token, `[batch, seq, vocab]` (for the loss).
    pub logits: Tensor<B, 3>,
    /// Audio tokens `[batch, target_len]`.
    pub tokens: Tensor<B, 2, Int>,
}

/// Turns conditioning tokens `[batch, seq, d_model]` into audio tokens in
/// one pass: one head call `head(gelu(proj(x)))` over all tokens at once,
/// argmax, each token repeated `stride` times (repeat-interleave), then
/// padded with `pad_token` or truncated to the target length. There is no
/// per-token loop.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use arbitor_models::talker::TalkerHeadConfig;
///
/// let device = Default::default();
/// let talker = TalkerHeadConfig::new().init::<Flex>(&device);
/// let out = talker.forward(Tensor::<Flex, 3>::ones([1, 4, 128], &device), 10);
/// assert_eq!(out.tokens.dims(), [1, 10]);
/// ```
#[derive(Module, Debug)]
pub struct TalkerHead<B: Backend> {
    /// Hidden projection.
    pub proj: TernaryLinear<B>,
    /// Vocabulary head.
    pub head: TernaryLinear<B>,
    /// Audio tokens per conditioning token.
    pub stride: usize,
    /// Filler token.
    pub pad_token: usize,
}

impl<B: TernaryBackend> TalkerHead<B> {
    /// Speaks `cond: [batch, seq, d_model]` into `target_len` tokens, or
    /// reports a width mismatch.
    pub fn try_forward(
        &self,
        cond: Tensor<B, 3>,
        target_len: usize,
    ) -> TernaryResult<TalkerOutput<B>> {
        check_width("cond", &cond, self.proj.weight.dims()[1])?;
        let [batch, seq, _] = cond.dims();
        let logits = self.head.try_forward(gelu(self.proj.try_forward(cond)?))?;
        let best = logits.clone().argmax(2).reshape([batch, seq]);
        let spoken = seq * self.stride;
        let repeated = best
            .unsqueeze_dim::<3>(2)
            .repeat_dim(2, self.stride)
            .reshape([batch, spoken]);
        let tokens = if target_len == 0 {
            Tensor::<B, 2, Int>::zeros([batch, 0], &logits.device())
        } else if spoken >= target_len {
            repeated.narrow(1, 0, target_len)
        } else {
            let pad = Tensor::<B, 2, Int>::full(
                [batch, target_len - spoken],
                self.pad_token as i64,
                &logits.device(),
            );
            Tensor::cat(vec![repeated, pad], 1)
        };
        Ok(TalkerOutput { logits, tokens })
    }

    /// Speaks `cond: [batch, seq, d_model]` into `target_len` tokens.
    ///
    /// # Panics
    /// If the last dimension of `cond` is not `d_model`.
    pub fn forward(&self, cond: Tensor<B, 3>, target_len: usize) -> TalkerOutput<B> {
        or_panic(self.try_forward(cond, target_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::nn::loss::CrossEntropyLossConfig;

    /// The per-token loop the head replaces: argmax of each token's logits,
    /// written `stride` times, then padding.
    fn naive(
        logits: &[f32],
        batch: usize,
        seq: usize,
        vocab: usize,
        stride: usize,
        len: usize,
    ) -> Vec<i64> {
        let mut out = Vec::new();
        for b in 0..batch {
            let mut row = Vec::new();
            for s in 0..seq {
                let v = &logits[(b * seq + s) * vocab..(b * seq + s + 1) * vocab];
                let mut best = 0;
                for (i, x) in v.iter().enumerate() {
                    if *x > v[best] {
                        best = i;
                    }
                }
                for _ in 0..stride {
                    row.push(best as i64);
                }
            }
            while row.len() < len {
                row.push(PAD as i64);
            }
            row.truncate(len);
            out.extend(row);
        }
        out
    }

    #[test]
    fn default_shapes_audit_and_train_step() {
        let c = TalkerHeadConfig::new();
        let talker = c.init::<AD>(&Default::default());
        assert_audit(&talker, c.d_model * c.hidden + c.hidden * 289);
        let cond = randn([1, 4, 128], 1);
        assert_eq!(talker.forward(cond.clone(), 10).tokens.dims(), [1, 10]);
        let targets = random_ids([4], 289, 2);
        train_step(
            talker,
            |m| {
                let logits = m.forward(cond.clone(), 10).logits.reshape([4, 289]);
                CrossEntropyLossConfig::new()
                    .init(&logits.device())
                    .forward(logits, targets.clone())
            },
            &[],
        );
    }

    #[test]
    fn equals_the_nested_loop_reference_on_random_inputs() {
        for (case, (batch, seq, stride, len)) in [
            (1, 4, 3, 10),
            (2, 3, 2, 10),
            (3, 5, 1, 5),
            (2, 1, 4, 2),
            (1, 6, 2, 0),
        ]
        .into_iter()
        .enumerate()
        {
            let talker = TalkerHeadConfig::new()
                .with_d_model(16)
                .with_hidden(8)
                .with_stride(stride)
                .init::<AD>(&Default::default());
            let cond = randn([batch, seq, 16], 10 + case as u64);
            let out = talker.forward(cond, len);
            let logits: Vec<f32> = out.logits.into_data().to_vec().unwrap();
            let got: Vec<i64> = out
                .tokens
                .clone()
                .into_data()
                .convert::<i64>()
                .to_vec()
                .unwrap();
            assert_eq!(out.tokens.dims(), [batch, len]);
            assert_eq!(
                got,
                naive(&logits, batch, seq, 289, stride, len),
                "case {batch} {seq} {stride} {len}"
            );
        }
    }

    #[test]
    fn bad_width_and_pad_token_are_named() {
        let talker = TalkerHeadConfig::new().init::<AD>(&Default::default());
        let err = talker.try_forward(randn([1, 2, 7], 0), 4).unwrap_err();
        assert!(err.to_string().contains("cond"), "{err}");
        let err = TalkerHeadConfig::new()
            .with_pad_token(289)
            .try_init::<AD>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("pad_token"), "{err}");
    }
}
