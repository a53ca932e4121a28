//! `arbitor train-memory`: the training state and peak memory of a `bitnet`
//! config's model, trained with the ternary optimizer or, for comparison, as
//! a dense float twin of the same shape ([`DenseBitNet`]) with Burn's AdamW.
//!
//! Both take `--steps` training steps of `train.batch` random windows of
//! `bitnet.seq` token ids on Burn's `Flex` CPU backend with autodiff, with the
//! same frozen float parts (embedding, tied output, norm gains) and the same
//! activation quantization. Reported:
//! - **training state per weight**, measured from the tensors after the
//!   steps: for the ternary model its packed trits, packed int8 update memory
//!   and scale codes (each tensor's element count × its dtype's size) plus the
//!   optimizer's record serialized at full precision; for the twin its f32
//!   projection weights plus AdamW's record; divided by the projections'
//!   weights (the frozen float parts are the same in both and left out);
//! - **peak resident memory** of the process (`VmHWM` of
//!   `/proc/self/status`, Linux), and its rise over the resident memory at
//!   the start: one optimizer per process, so run the command once per
//!   optimizer (`scripts/cpu/bitnet_train_memory.sh` runs both).

use arbitor_models::bitnet::{BitNetConfig, RotaryTables};
use burn::{
    backend::{Autodiff, Flex},
    module::Module,
    nn::{
        attention::generate_autoregressive_mask, Embedding, EmbeddingConfig, Initializer, Linear,
        LinearConfig, RmsNorm, RmsNormConfig,
    },
    optim::{AdamWConfig, GradientsParams, Optimizer},
    record::{BinBytesRecorder, FullPrecisionSettings, Recorder},
    tensor::{activation, backend::Backend, Distribution, ElementConversion, Int, Tensor},
};
use burn_ternary::{functional::quantize_activations, TernaryBackend};

use crate::{bitnet_task::masked_cross_entropy, config::RunConfig};

type B = Autodiff<Flex>;

/// Which optimizer `train-memory` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryOptimizer {
    /// The BitNet model with the ternary optimizer.
    Ternary,
    /// The dense float twin with AdamW.
    AdamW,
}

impl std::str::FromStr for MemoryOptimizer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ternary" => Ok(Self::Ternary),
            "adamw" => Ok(Self::AdamW),
            other => Err(format!(
                "unknown optimizer `{other}` (expected ternary or adamw)"
            )),
        }
    }
}

/// What one `train-memory` run measured.
#[derive(Clone, Debug)]
pub struct MemoryReport {
    /// The optimizer.
    pub optimizer: MemoryOptimizer,
    /// Weights of the projections (ternary or f32).
    pub weights: usize,
    /// Bytes of the projections' own state (trits + memory + scale codes, or f32 weights).
    pub weight_bytes: usize,
    /// Bytes of the optimizer's record (full precision).
    pub optimizer_bytes: usize,
    /// Frozen float parameters (embedding, norm gains), the same in both.
    pub frozen_float_params: usize,
    /// Resident memory at the start of the command (kB).
    pub rss_start_kb: u64,
    /// Peak resident memory after building the model (kB).
    pub peak_after_init_kb: u64,
    /// Peak resident memory after the steps (kB).
    pub peak_kb: u64,
    /// Loss of the first and the last step.
    pub losses: (f64, f64),
    /// Seconds per step after the first.
    pub seconds_per_step: f64,
}

impl MemoryReport {
    /// Training state bytes per weight.
    pub fn bytes_per_weight(&self) -> f64 {
        (self.weight_bytes + self.optimizer_bytes) as f64 / self.weights as f64
    }
}

impl core::fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.optimizer {
            MemoryOptimizer::Ternary => "ternary optimizer (BitNetForCausalLM)",
            MemoryOptimizer::AdamW => "AdamW (dense f32 twin)",
        };
        let mb = |kb: u64| kb as f64 / 1024.0;
        writeln!(f, "optimizer                 : {name}")?;
        writeln!(f, "projection weights        : {}", self.weights)?;
        writeln!(
            f,
            "weight state              : {} B ({:.3} B/weight)",
            self.weight_bytes,
            self.weight_bytes as f64 / self.weights as f64
        )?;
        writeln!(
            f,
            "optimizer record          : {} B ({:.3} B/weight)",
            self.optimizer_bytes,
            self.optimizer_bytes as f64 / self.weights as f64
        )?;
        writeln!(
            f,
            "training state            : {:.3} B/weight",
            self.bytes_per_weight()
        )?;
        writeln!(
            f,
            "frozen float params       : {} (not counted above)",
            self.frozen_float_params
        )?;
        writeln!(
            f,
            "resident at start         : {:.1} MB",
            mb(self.rss_start_kb)
        )?;
        writeln!(
            f,
            "peak after init           : {:.1} MB",
            mb(self.peak_after_init_kb)
        )?;
        writeln!(
            f,
            "peak after the steps      : {:.1} MB (+{:.1} MB over the start)",
            mb(self.peak_kb),
            mb(self.peak_kb.saturating_sub(self.rss_start_kb))
        )?;
        writeln!(
            f,
            "loss first/last step      : {:.4} / {:.4}",
            self.losses.0, self.losses.1
        )?;
        write!(
            f,
            "seconds per step          : {:.3}",
            self.seconds_per_step
        )
    }
}

/// `VmRSS` and `VmHWM` of this process in kB (zeros where `/proc` has none).
pub fn resident_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The dense float twin of a [`BitNetForCausalLM`](arbitor_models::bitnet::BitNetForCausalLM):
/// the same shape and computation with f32 `Linear` projections (trainable)
/// in place of the ternary ones; embedding and norms frozen as there.
#[derive(Module, Debug)]
pub struct DenseBitNet<B: Backend> {
    embed_tokens: Embedding<B>,
    layers: Vec<DenseLayer<B>>,
    norm: RmsNorm<B>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    quantize: bool,
}

#[derive(Module, Debug)]
struct DenseLayer<B: Backend> {
    input_layernorm: RmsNorm<B>,
    q_proj: Linear<B>,
    k_proj: Linear<B>,
    v_proj: Linear<B>,
    o_proj: Linear<B>,
    attn_sub_norm: RmsNorm<B>,
    post_attention_layernorm: RmsNorm<B>,
    gate_proj: Linear<B>,
    up_proj: Linear<B>,
    down_proj: Linear<B>,
    ffn_sub_norm: RmsNorm<B>,
}

impl<B: Backend> DenseBitNet<B> {
    /// The twin of `config` with random weights.
    pub fn new(config: &BitNetConfig, device: &B::Device) -> Self {
        let (d, i, hd) = (
            config.hidden_size,
            config.intermediate_size,
            config.head_dim(),
        );
        let (q, kv) = (
            config.num_attention_heads * hd,
            config.num_key_value_heads * hd,
        );
        let linear = |a: usize, b: usize| LinearConfig::new(a, b).with_bias(false).init(device);
        let norm = |n: usize| {
            RmsNormConfig::new(n)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
                .no_grad()
        };
        Self {
            embed_tokens: EmbeddingConfig::new(config.vocab_size, d)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device)
                .no_grad(),
            layers: (0..config.num_hidden_layers)
                .map(|_| DenseLayer {
                    input_layernorm: norm(d),
                    q_proj: linear(d, q),
                    k_proj: linear(d, kv),
                    v_proj: linear(d, kv),
                    o_proj: linear(q, d),
                    attn_sub_norm: norm(q),
                    post_attention_layernorm: norm(d),
                    gate_proj: linear(d, i),
                    up_proj: linear(d, i),
                    down_proj: linear(i, d),
                    ffn_sub_norm: norm(i),
                })
                .collect(),
            norm: norm(d),
            heads: config.num_attention_heads,
            kv_heads: config.num_key_value_heads,
            head_dim: hd,
            quantize: config.quantize_activations,
        }
    }

    /// Weights of the projections.
    pub fn projection_weights(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| {
                [
                    &l.q_proj,
                    &l.k_proj,
                    &l.v_proj,
                    &l.o_proj,
                    &l.gate_proj,
                    &l.up_proj,
                    &l.down_proj,
                ]
            })
            .map(|p| p.weight.shape().num_elements())
            .sum()
    }
}

impl<B: TernaryBackend> DenseBitNet<B> {
    fn quant(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if self.quantize {
            quantize_activations(x)
        } else {
            x
        }
    }

    /// Logits `[batch, seq, vocab]` of `ids`, computed as the BitNet model
    /// computes them (causal grouped-query attention with rotary positions,
    /// sub-norms, relu² gated MLP, tied output).
    pub fn forward(&self, ids: Tensor<B, 2, Int>, rope: &RotaryTables<B>) -> Tensor<B, 3> {
        let [batch, n] = ids.dims();
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let rep = h / kvh;
        let device = ids.device();
        let blocked = generate_autoregressive_mask::<B>(1, n, &device)
            .reshape([1, 1, 1, n, n])
            .expand([batch, kvh, rep, n, n])
            .reshape([batch, kvh, rep * n, n]);
        let mut x = self.embed_tokens.forward(ids);
        for l in &self.layers {
            let heads = |t: Tensor<B, 3>, c: usize| t.reshape([batch, n, c, hd]).swap_dims(1, 2);
            let xq = self.quant(l.input_layernorm.forward(x.clone()));
            let q = rope.apply(heads(l.q_proj.forward(xq.clone()), h), 0);
            let k = rope.apply(heads(l.k_proj.forward(xq.clone()), kvh), 0);
            let v = heads(l.v_proj.forward(xq), kvh);
            let scores = q
                .reshape([batch, kvh, rep * n, hd])
                .matmul(k.swap_dims(2, 3))
                .mul_scalar(1.0 / (hd as f64).sqrt())
                .mask_fill(blocked.clone(), -1e9);
            let y = activation::softmax(scores, 3)
                .matmul(v)
                .reshape([batch, h, n, hd])
                .swap_dims(1, 2)
                .reshape([batch, n, h * hd]);
            let y = self.quant(l.attn_sub_norm.forward(y));
            x = x + l.o_proj.forward(y);
            let xq = self.quant(l.post_attention_layernorm.forward(x.clone()));
            let gate = activation::relu(l.gate_proj.forward(xq.clone())).powi_scalar(2);
            let m = self.quant(l.ffn_sub_norm.forward(gate * l.up_proj.forward(xq)));
            x = x + l.down_proj.forward(m);
        }
        let x = self.norm.forward(x);
        let [_, _, d] = x.dims();
        let table = self.embed_tokens.weight.val();
        let vocab = table.dims()[0];
        x.reshape([batch * n, d])
            .matmul(table.transpose())
            .reshape([batch, n, vocab])
    }
}

/// Bytes of a record serialized at full precision.
fn record_bytes<R: burn::record::Record<B>>(record: R) -> usize {
    BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(record, ())
        .map(|b| b.len())
        .unwrap_or_else(|e| panic!("serializing an optimizer record: {e}"))
}

/// Trains a `bitnet` config's model (`config.bitnet()`, `train.batch`,
/// `train.lr`, `bitnet.seq`, `run.seed`) for `steps` steps with `optimizer`
/// and measures its state and memory (see the [module docs](self)).
pub fn train_memory(
    config: &RunConfig,
    optimizer: MemoryOptimizer,
    steps: usize,
) -> Result<MemoryReport, String> {
    let (rss_start_kb, _) = resident_kb();
    let shape = config.bitnet().map_err(|e| e.to_string())?.clone();
    if steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    let (batch, seq, lr) = (config.train.batch, config.bitnet_keys.seq, config.train.lr);
    if batch == 0 || !config.trains {
        return Err(
            "train-memory needs `[train]` (train.batch, train.lr) in a bitnet config".into(),
        );
    }
    let device = Default::default();
    <B as Backend>::seed(&device, config.run.seed);
    let rope = RotaryTables::<B>::new(shape.head_dim(), shape.rope_theta, seq, &device);
    let ones = Tensor::<B, 2>::ones([batch, seq], &device);
    let draw = || {
        let ids = Tensor::<B, 2, Int>::random(
            [batch, seq + 1],
            Distribution::Uniform(0.0, shape.vocab_size as f64),
            &device,
        );
        (ids.clone().narrow(1, 0, seq), ids.narrow(1, 1, seq))
    };
    let mut losses = Vec::with_capacity(steps);
    let mut started = None;
    let report = match optimizer {
        MemoryOptimizer::Ternary => {
            let mut model = shape
                .try_init::<B>(&device)
                .map_err(|e| format!("`[bitnet]`: {e}"))?;
            let peak_after_init_kb = resident_kb().1;
            let mut optim = config
                .train
                .ternary_optimizer(config.run.seed)
                .init::<B, arbitor_models::bitnet::BitNetForCausalLM<B>>();
            for step in 0..steps {
                if step == 1 {
                    started = Some(std::time::Instant::now());
                }
                let (ids, targets) = draw();
                let logits = model.try_forward(ids).map_err(|e| e.to_string())?;
                let loss = masked_cross_entropy(logits, targets, ones.clone());
                losses.push(loss.clone().into_scalar().elem::<f64>());
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
            }
            let state = burn_ternary::visit::collect::<B, _>(&model);
            let bytes = |dims: usize, dtype: burn::tensor::DType| dims * dtype.size();
            let weight_bytes = state
                .ternary
                .iter()
                .map(|w| {
                    bytes(w.trits.1.shape().num_elements(), w.trits.1.dtype())
                        + bytes(w.memory.1.shape().num_elements(), w.memory.1.dtype())
                        + bytes(
                            w.scale_code.1.shape().num_elements(),
                            w.scale_code.1.dtype(),
                        )
                })
                .sum();
            MemoryReport {
                optimizer,
                weights: model.ternary_weights(),
                weight_bytes,
                optimizer_bytes: record_bytes(optim.to_record()),
                frozen_float_params: model.float_params(),
                rss_start_kb,
                peak_after_init_kb,
                peak_kb: 0,
                losses: (0.0, 0.0),
                seconds_per_step: 0.0,
            }
        }
        MemoryOptimizer::AdamW => {
            let mut model = DenseBitNet::<B>::new(&shape, &device);
            let peak_after_init_kb = resident_kb().1;
            let mut optim = AdamWConfig::new().init::<B, DenseBitNet<B>>();
            for step in 0..steps {
                if step == 1 {
                    started = Some(std::time::Instant::now());
                }
                let (ids, targets) = draw();
                let loss = masked_cross_entropy(model.forward(ids, &rope), targets, ones.clone());
                losses.push(loss.clone().into_scalar().elem::<f64>());
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
            }
            let weights = model.projection_weights();
            MemoryReport {
                optimizer,
                weights,
                weight_bytes: weights * core::mem::size_of::<f32>(),
                optimizer_bytes: record_bytes(optim.to_record()),
                frozen_float_params: model.num_params() - weights,
                rss_start_kb,
                peak_after_init_kb,
                peak_kb: 0,
                losses: (0.0, 0.0),
                seconds_per_step: 0.0,
            }
        }
    };
    let seconds_per_step = started
        .map(|t| t.elapsed().as_secs_f64() / (steps - 1) as f64)
        .unwrap_or(f64::NAN);
    Ok(MemoryReport {
        peak_kb: resident_kb().1,
        losses: (losses[0], losses[steps - 1]),
        seconds_per_step,
        ..report
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[run]
dir = "runs/x"

[model]
kind = "bitnet"

[data]
path = "data/tinyshakespeare.txt"

[bitnet]
hidden_size = 32
intermediate_size = 48
num_hidden_layers = 1
num_attention_heads = 4
num_key_value_heads = 2
vocab_size = 64
max_position_embeddings = 16
seq = 8

[train]
epochs = 1
steps_per_epoch = 1
batch = 2
lr = 0.05
"#;

    #[test]
    fn both_optimizers_report_their_state_per_weight() {
        let config = RunConfig::parse(CONFIG).unwrap();
        let weights = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 48;
        let ternary = train_memory(&config, MemoryOptimizer::Ternary, 2).unwrap();
        assert_eq!(ternary.weights, weights);
        // Packed trits (2 bits) and memory (8 bits) in i32 words, rows padded;
        // i32 scale codes; a record of a step count, a seed and an empty AdamW
        // state (136 B), nothing per weight.
        let bpw = ternary.bytes_per_weight();
        assert!((1.25..1.6).contains(&bpw), "{bpw}");
        assert!(ternary.optimizer_bytes < 256, "{}", ternary.optimizer_bytes);
        assert!(ternary.losses.0.is_finite() && ternary.losses.1.is_finite());
        let adamw = train_memory(&config, MemoryOptimizer::AdamW, 2).unwrap();
        assert_eq!(adamw.weights, weights);
        // f32 weights + two f32 moments per weight.
        let bpw = adamw.bytes_per_weight();
        assert!((12.0..12.5).contains(&bpw), "{bpw}");
        assert_eq!(adamw.frozen_float_params, ternary.frozen_float_params);
        assert!(adamw.peak_kb >= adamw.peak_after_init_kb);
        assert!(adamw.to_string().contains("B/weight"));
    }
}
