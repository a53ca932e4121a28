//! BitNet checks on the CPU backend: cached decoding against the full
//! forward, attention (GQA, RoPE, sub-norm, activation quantization) against
//! an independent f64 computation, parameter names, and bad input named.

use burn::{
    backend::Flex,
    tensor::{Int, Tensor, TensorData},
};
use burn_ternary::visit::collect;

use super::*;
use crate::generation::Sampler;

type TB = Flex;

fn ids(shape: [usize; 2], bound: u64, seed: u64) -> Tensor<TB, 2, Int> {
    let mut state = seed;
    let v: Vec<i64> = (0..shape[0] * shape[1])
        .map(|_| {
            // A small LCG: reproducible ids without another dependency.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % bound) as i64
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn host<const D: usize>(t: Tensor<TB, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn max_relative(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Odd sizes: widths and the MLP not multiples of 16 trits per word, a
/// prime vocabulary.
fn tiny(kv_heads: usize, quantize: bool) -> BitNetConfig {
    BitNetConfig::new(36, 50, 3, 6, kv_heads, 97)
        .with_max_position_embeddings(24)
        .with_rope_theta(10000.0)
        .with_quantize_activations(quantize)
}

/// Decodes `seq: [2, 11]` with a cache (a prompt of 4, then one id per
/// step) and returns the largest relative difference from the full forward
/// over the steps (each step's logits against their own scale); checks that
/// a reset cache starts new sequences.
fn cached_against_full(config: &BitNetConfig, seq: Tensor<TB, 2, Int>) -> f32 {
    let device = Default::default();
    let model = config.init::<TB>(&device);
    let full = host(model.forward(seq.clone()));
    let mut cache = BitNetCache::new(config, 2, 16, &device).unwrap();
    let mut pieces = vec![model
        .try_forward_cached(seq.clone().narrow(1, 0, 4), &mut cache)
        .unwrap()];
    for t in 4..11 {
        pieces.push(
            model
                .try_forward_cached(seq.clone().narrow(1, t, 1), &mut cache)
                .unwrap(),
        );
    }
    assert_eq!(cache.len(), 11);
    let incremental = host(Tensor::cat(pieces, 1));
    let vocab = config.vocab_size;
    let err = full
        .chunks(vocab)
        .zip(incremental.chunks(vocab))
        .map(|(a, b)| max_relative(a, b))
        .fold(0f32, f32::max);
    cache.reset();
    let again = host(
        model
            .try_forward_cached(seq.clone().narrow(1, 0, 4), &mut cache)
            .unwrap(),
    );
    let first = host(model.forward(seq.narrow(1, 0, 4)));
    err.max(max_relative(&first, &again))
}

#[test]
fn cached_decoding_equals_the_full_forward() {
    for (kv_heads, tie) in [(3, true), (1, true), (6, false)] {
        let config = tiny(kv_heads, false).with_tie_word_embeddings(tie);
        let err = cached_against_full(&config, ids([2, 11], 97, 5));
        assert!(
            err < 1e-5,
            "kv_heads {kv_heads}, tie {tie}: relative difference {err}"
        );
    }
}

/// With int8 activations the model is discontinuous: the cached and the
/// full path accumulate attention over different lengths, and where an
/// activation sits within float noise of a rounding boundary the two round
/// it one int8 step apart (seen: 0.9% of the logits' scale). So this checks
/// agreement to a few steps, far below what a cache fault gives (a rotary
/// offset of 0 in the cached path: tens of percent).
#[test]
fn cached_decoding_with_quantized_activations_stays_within_rounding() {
    for kv_heads in [3, 1] {
        let err = cached_against_full(&tiny(kv_heads, true), ids([2, 11], 97, 7));
        assert!(err < 5e-2, "kv_heads {kv_heads}: relative difference {err}");
    }
}

/// `[rows, cols]` of a dense f64 matrix from a ternary projection.
fn dense(linear: &burn_ternary::TernaryLinear<TB>) -> (Vec<f64>, usize, usize) {
    let [rows, cols] = linear.weight.dims();
    let w = host(linear.weight.to_dense());
    (w.iter().map(|&v| v as f64).collect(), rows, cols)
}

/// `x · Wᵀ` for row-major `x: [n, cols]`.
fn apply(x: &[f64], (w, rows, cols): &(Vec<f64>, usize, usize)) -> Vec<f64> {
    x.chunks(*cols)
        .flat_map(|xr| {
            (0..*rows).map(move |r| (0..*cols).map(|c| xr[c] * w[r * cols + c]).sum::<f64>())
        })
        .collect()
}

fn quantize_rows(x: &[f64], width: usize) -> Vec<f64> {
    x.chunks(width)
        .flat_map(|row| {
            let max = row.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-5);
            let s = 127.0 / max;
            row.iter()
                .map(move |v| (v * s).round_ties_even().clamp(-128.0, 127.0) / s)
        })
        .collect()
}

fn rms_rows(x: &[f64], width: usize, eps: f64) -> Vec<f64> {
    x.chunks(width)
        .flat_map(|row| {
            let rms = (row.iter().map(|v| v * v).sum::<f64>() / width as f64 + eps).sqrt();
            row.iter().map(move |v| v / rms)
        })
        .collect()
}

/// Rotates one head vector at `pos` the transformers way, in f64.
fn rope(v: &[f64], pos: usize, theta: f64) -> Vec<f64> {
    let d = v.len();
    let half = d / 2;
    (0..d)
        .map(|j| {
            let i = j % half;
            let angle = pos as f64 / theta.powf(2.0 * i as f64 / d as f64);
            let rotated = if j < half { -v[j + half] } else { v[j - half] };
            v[j] * angle.cos() + rotated * angle.sin()
        })
        .collect()
}

#[test]
fn attention_matches_an_independent_computation() {
    let device = Default::default();
    for quantize in [false, true] {
        // 4 query heads of 6 sharing 2 key/value heads.
        let config = BitNetConfig::new(24, 30, 1, 4, 2, 11)
            .with_rope_theta(50.0)
            .with_quantize_activations(quantize);
        let attention = BitNetAttention::<TB>::new(&config, &device).unwrap();
        let (b, n, d, h, kvh, hd) = (2, 5, 24, 4, 2, 6);
        let x = crate::util::seeded_normal::<TB, 3>([b, n, d], 3, &device);
        let rope_tables = RotaryTables::new(hd, config.rope_theta, n, &device);
        let got = host(attention.try_forward(x.clone(), &rope_tables).unwrap());
        let xs: Vec<f64> = host(x).iter().map(|&v| v as f64).collect();
        let xin = if quantize { quantize_rows(&xs, d) } else { xs };
        let (q, k, v) = (
            apply(&xin, &dense(&attention.q_proj)),
            apply(&xin, &dense(&attention.k_proj)),
            apply(&xin, &dense(&attention.v_proj)),
        );
        let mut expected = Vec::new();
        for bi in 0..b {
            let mut ys = Vec::new();
            for t in 0..n {
                let mut y = Vec::new();
                for head in 0..h {
                    // transformers' repeat_kv: query head i reads kv head i / (h / kvh).
                    let g = head / (h / kvh);
                    let at = |m: &Vec<f64>, width: usize, p: usize, hh: usize| {
                        m[(bi * n + p) * width + hh * hd..][..hd].to_vec()
                    };
                    let qv = rope(&at(&q, h * hd, t, head), t, config.rope_theta);
                    let scores: Vec<f64> = (0..=t)
                        .map(|p| {
                            let kv = rope(&at(&k, kvh * hd, p, g), p, config.rope_theta);
                            qv.iter().zip(&kv).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for j in 0..hd {
                        y.push(
                            (0..=t)
                                .map(|p| e[p] / z * at(&v, kvh * hd, p, g)[j])
                                .sum::<f64>(),
                        );
                    }
                }
                ys.extend(y);
            }
            let normed = rms_rows(&ys, h * hd, config.rms_norm_eps);
            let normed = if quantize {
                quantize_rows(&normed, h * hd)
            } else {
                normed
            };
            expected.extend(apply(&normed, &dense(&attention.o_proj)));
        }
        let expected: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
        let err = max_relative(&expected, &got);
        // Quantization rounds in f32 on one side and f64 on the other; a
        // value on a rounding boundary could differ by one int8 step (under
        // 1% of the output's scale; a wrong head grouping gives over 100%).
        let bound = if quantize { 2e-2 } else { 1e-5 };
        assert!(
            err < bound,
            "quantize {quantize}: relative difference {err}"
        );
    }
}

#[test]
fn rotary_tables_rotate_half_at_an_offset() {
    let device = Default::default();
    let (hd, theta) = (8, 500000.0);
    let tables = RotaryTables::<TB>::new(hd, theta, 40, &device);
    // Token-major: 3 positions of 2 heads.
    let x = crate::util::seeded_normal::<TB, 4>([1, 3, 2, hd], 9, &device);
    let xs: Vec<f64> = host(x.clone()).iter().map(|&v| v as f64).collect();
    // Positions 35, 36, 37: the offset a cache gives.
    let got = host(tables.apply(x, 35));
    let expected: Vec<f32> = xs
        .chunks(hd)
        .enumerate()
        .flat_map(|(i, v)| rope(v, 35 + i / 2, theta))
        .map(|v| v as f32)
        .collect();
    let err = max_relative(&expected, &got);
    assert!(err < 1e-5, "relative difference {err}");
}

#[test]
fn quantization_matches_upstream_act_quant() {
    let x = crate::util::seeded_normal::<TB, 2>([3, 37], 4, &Default::default());
    let xs: Vec<f64> = host(x.clone()).iter().map(|&v| v as f64).collect();
    let got = host(quantize_activations(x));
    let expected: Vec<f32> = quantize_rows(&xs, 37).iter().map(|&v| v as f32).collect();
    assert!(max_relative(&expected, &got) < 1e-6);
    // At most 255 levels per row.
    for row in got.chunks(37) {
        let mut levels: Vec<i64> = row.iter().map(|v| (v * 1e6) as i64).collect();
        levels.sort();
        levels.dedup();
        assert!(levels.len() <= 255);
    }
}

#[test]
fn parameters_carry_the_upstream_names_and_counts() {
    let config = tiny(3, true);
    let model = config.init::<TB>(&Default::default());
    let state = collect::<TB, _>(&model);
    let ternary: Vec<&str> = state.ternary.iter().map(|w| w.path.as_str()).collect();
    for name in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.2.mlp.gate_proj.weight",
        "model.layers.2.mlp.up_proj.weight",
        "model.layers.2.mlp.down_proj.weight",
    ] {
        assert!(ternary.contains(&name), "{name} not in {ternary:?}");
    }
    let floats: Vec<&str> = state.floats.iter().map(|f| f.path.as_str()).collect();
    for prefix in [
        "model.embed_tokens.weight",
        "model.norm.",
        "model.layers.1.input_layernorm.",
        "model.layers.1.post_attention_layernorm.",
        "model.layers.1.self_attn.attn_sub_norm.",
        "model.layers.1.mlp.ffn_sub_norm.",
    ] {
        assert!(
            floats.iter().any(|f| f.starts_with(prefix)),
            "{prefix} not in {floats:?}"
        );
    }
    assert!(
        !floats.iter().any(|f| f.starts_with("lm_head")),
        "tied: no lm_head"
    );
    // Per layer: q and o 36², k and v 36·18, gate and up 36·50, down 50·36.
    let per_layer = 2 * 36 * 36 + 2 * 36 * 18 + 3 * 36 * 50;
    assert_eq!(model.ternary_weights(), 3 * per_layer);
    assert_eq!(state.ternary.len(), 21);
    // Rows padded to words of 16 trits: 36 → 3 words, 50 → 4 words.
    let bytes = 3 * 4 * ((36 + 18 + 18 + 36) * 3 + 2 * 50 * 3 + 36 * 4);
    assert_eq!(model.packed_trit_bytes(), bytes);
    let float_numel: usize = state.floats.iter().map(|f| f.numel).sum();
    assert_eq!(model.float_params(), float_numel);
}

#[test]
fn the_2b_4t_preset_has_the_upstream_shape() {
    let c = BitNetConfig::b1_58_2b_4t();
    c.validate().unwrap();
    assert_eq!(
        (
            c.hidden_size,
            c.intermediate_size,
            c.num_hidden_layers,
            c.vocab_size
        ),
        (2560, 6912, 30, 128256)
    );
    assert_eq!((c.num_attention_heads, c.num_key_value_heads), (20, 5));
    assert!(c.tie_word_embeddings && c.rope_theta == 500000.0);
}

#[test]
fn config_json_reads_like_transformers() {
    // transformers' BitNetConfig defaults fill the optional keys.
    let json = r#"{"architectures": ["BitNetForCausalLM"], "model_type": "bitnet",
        "hidden_size": 36, "intermediate_size": 50, "num_hidden_layers": 3,
        "num_attention_heads": 6, "num_key_value_heads": 3, "vocab_size": 97,
        "torch_dtype": "bfloat16", "rope_scaling": null}"#;
    let config = BitNetConfig::from_config_json(json).unwrap();
    assert_eq!(
        config,
        BitNetConfig::new(36, 50, 3, 6, 3, 97)
            .with_max_position_embeddings(2048)
            .with_tie_word_embeddings(false)
    );
    for (from, to, key) in [
        ("\"bitnet\"", "\"llama\"", "model_type"),
        (
            "\"vocab_size\": 97",
            "\"vocab_size\": \"many\"",
            "vocab_size",
        ),
        ("\"num_key_value_heads\": 3, ", "", "num_key_value_heads"),
        (
            "\"num_key_value_heads\": 3",
            "\"num_key_value_heads\": 4",
            "num_key_value_heads",
        ),
    ] {
        let err = BitNetConfig::from_config_json(&json.replace(from, to)).unwrap_err();
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
    let err = BitNetConfig::from_config_json("{").unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn bad_input_is_named() {
    let device = Default::default();
    let config = tiny(3, true);
    let model = config.init::<TB>(&device);
    // An id outside the vocabulary.
    let bad = Tensor::<TB, 2, Int>::from_ints([[1, 97]], &device);
    let err = model.try_forward(bad.clone()).unwrap_err().to_string();
    assert!(err.contains("ids") && err.contains("97"), "{err}");
    let mut cache = BitNetCache::new(&config, 1, 8, &device).unwrap();
    let err = model.try_forward_cached(bad, &mut cache).unwrap_err();
    assert!(err.to_string().contains("ids"), "{err}");
    assert!(cache.is_empty(), "a rejected step writes nothing");
    // A prompt longer than the cache, then a full cache.
    let err = model
        .try_forward_cached(ids([1, 9], 97, 1), &mut cache)
        .unwrap_err();
    assert!(err.to_string().contains("ids"), "{err}");
    model
        .try_forward_cached(ids([1, 8], 97, 1), &mut cache)
        .unwrap();
    let err = model
        .try_forward_cached(ids([1, 1], 97, 2), &mut cache)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ids") && err.contains("full"), "{err}");
    // The wrong batch.
    cache.reset();
    let err = model
        .try_forward_cached(ids([2, 1], 97, 2), &mut cache)
        .unwrap_err();
    assert!(err.to_string().contains("ids"), "{err}");
    // A cache made for another model.
    let mut other = BitNetCache::new(&tiny(1, true), 1, 8, &device).unwrap();
    let err = model
        .try_forward_cached(ids([1, 2], 97, 2), &mut other)
        .unwrap_err();
    assert!(err.to_string().contains("cache"), "{err}");
    // A sequence longer than max_position_embeddings, a cache too.
    let err = model.try_forward(ids([1, 25], 97, 3)).unwrap_err();
    assert!(err.to_string().contains("ids"), "{err}");
    let err = BitNetCache::<TB>::new(&config, 1, 25, &device).unwrap_err();
    assert!(err.to_string().contains("max_seq"), "{err}");
    // Prompts too long for generation, or of different lengths.
    let greedy = Sampler::greedy();
    let err = model
        .generate(&[vec![1; 20]], 5, &greedy, |_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("prompts"), "{err}");
    let err = model
        .generate(&[vec![1, 2], vec![3]], 1, &greedy, |_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("prompts"), "{err}");
    // Head counts that do not divide.
    let err = BitNetConfig::new(36, 50, 1, 6, 4, 97)
        .try_init::<TB>(&device)
        .unwrap_err();
    assert!(err.to_string().contains("num_key_value_heads"), "{err}");
    let err = BitNetConfig::new(36, 50, 1, 5, 5, 97)
        .try_init::<TB>(&device)
        .unwrap_err();
    assert!(err.to_string().contains("num_attention_heads"), "{err}");
    let err = BitNetConfig::new(36, 50, 1, 0, 1, 97)
        .try_init::<TB>(&device)
        .unwrap_err();
    assert!(err.to_string().contains("num_attention_heads"), "{err}");
}

#[test]
fn generation_is_seeded_and_batched() {
    let device = Default::default();
    let model = tiny(3, true).init::<TB>(&device);
    let prompts = vec![vec![5, 6, 7], vec![90, 1, 2]];
    let sampler = Sampler::new(0.9).with_top_k(20).with_seed(3);
    let mut streamed = vec![Vec::new(); 2];
    let out = model
        .generate(&prompts, 6, &sampler, |row, t| streamed[row].push(t))
        .unwrap();
    assert_eq!(streamed, out.tokens);
    assert!(out
        .tokens
        .iter()
        .all(|t| t.len() == 6 && t.iter().all(|&id| id < 97)));
    let again = model.generate(&prompts, 6, &sampler, |_, _| {}).unwrap();
    assert_eq!(again.tokens, out.tokens, "the same seed draws the same ids");
    // Greedy generation of one row equals that row in a batch, and equals
    // the argmax of the full forward, step by step.
    let greedy = Sampler::greedy();
    let both = model.generate(&prompts, 5, &greedy, |_, _| {}).unwrap();
    let one = model
        .generate(&prompts[1..], 5, &greedy, |_, _| {})
        .unwrap();
    assert_eq!(both.tokens[1], one.tokens[0]);
    let mut seq: Vec<i64> = prompts[1].iter().map(|&t| t as i64).collect();
    for &t in &one.tokens[0] {
        let n = seq.len();
        let logits = model.forward(Tensor::from_data(
            TensorData::new(seq.clone(), [1, n]),
            &device,
        ));
        let last = host(logits.narrow(1, n - 1, 1));
        let argmax = (0..last.len())
            .max_by(|a, b| last[*a].total_cmp(&last[*b]))
            .unwrap();
        assert_eq!(argmax as u32, t);
        seq.push(t as i64);
    }
}

#[test]
fn timed_decoding_runs_every_step() {
    let model = tiny(3, true).init::<TB>(&Default::default());
    let timing = model.time_decode(ids([2, 5], 97, 9), 7).unwrap();
    assert_eq!((timing.batch, timing.prompt_len, timing.new), (2, 5, 7));
    assert!(timing.tokens_per_s > 0.0 && timing.ms_per_token > 0.0 && timing.prefill_ms > 0.0);
    // 5 + 20 positions exceed max_position_embeddings = 24.
    let err = model.time_decode(ids([1, 5], 97, 9), 20).unwrap_err();
    assert!(err.to_string().contains("max_seq"), "{err}");
}
