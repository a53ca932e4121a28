//! Host conversion checks: transformers' packed layout against ours, the
//! absmean ternarization and its residual.

use burn_ternary::packing::unpack_trits;

use super::convert::{packed_rows, ternarize_absmean, upstream_from_trits, words_from_upstream};

fn trits(n: usize, seed: u64) -> Vec<i8> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 3) as i8 - 1
        })
        .collect()
}

/// transformers' docstring example of `unpack_weights`: bytes
/// `[[0b10100001, 0b00011000], [0b10010000, 0b00001010]]` are the
/// 8x2 trits below.
#[test]
fn upstream_docstring_example_unpacks_as_upstream() {
    let bytes = [0b1010_0001u8, 0b0001_1000, 0b1001_0000, 0b0000_1010];
    let words = words_from_upstream("w", &bytes, 8, 2).unwrap();
    let expected: Vec<i8> = vec![0, -1, -1, 1, -1, 1, -1, 1, 1, 0, 0, -1, 1, -1, 1, -1];
    assert_eq!(unpack_trits(&words, 8, 2), expected);
    assert_eq!(upstream_from_trits(&expected, 8, 2), bytes);
}

#[test]
fn packing_round_trips_for_odd_shapes() {
    for (rows, cols) in [(4, 1), (8, 17), (12, 40), (20, 33), (7, 5), (1, 16)] {
        let t = trits(rows * cols, (rows * 131 + cols) as u64);
        let bytes = upstream_from_trits(&t, rows, cols);
        assert_eq!(bytes.len(), packed_rows(rows) * cols);
        let words = words_from_upstream("w", &bytes, rows, cols).unwrap();
        assert_eq!(unpack_trits(&words, rows, cols), t, "{rows}x{cols}");
    }
}

#[test]
fn code_three_is_named() {
    let err = words_from_upstream("layer.w", &[0b1100_0000], 4, 1).unwrap_err();
    assert!(
        err.to_string().contains("layer.w") && err.to_string().contains("bits 6..8"),
        "{err}"
    );
}

/// `T + M/θ` is the latent `W·s` to within half a memory step where
/// `|W·s| ≤ 2`, and saturates beyond; the scale is `1 / mean|W|`.
#[test]
fn absmean_ternarization_keeps_the_residual() {
    // A heavy tail so that some |W·s| exceed 2.
    let w: Vec<f32> = (0..300)
        .map(|i| (i as f32 * 0.37).sin().powi(5) * 0.05)
        .collect();
    let t = ternarize_absmean(&w);
    let mean = w.iter().map(|v| v.abs() as f64).sum::<f64>() / w.len() as f64;
    assert!((t.scale as f64 - 1.0 / mean).abs() < 1e-5 / mean);
    for ((&v, &tr), &m) in w.iter().zip(&t.trits).zip(&t.memory) {
        let r = v * t.scale;
        assert_eq!(tr as f32, r.round_ties_even().clamp(-1.0, 1.0));
        let latent = tr as f32 + m as f32 / 64.0;
        if r.abs() <= 2.0 {
            assert!((latent - r).abs() <= 0.5 / 64.0 + 1e-6, "{r} vs {latent}");
        } else {
            assert_eq!(m.abs(), 64, "saturates at a whole trit step: {r}");
        }
    }
    // All-zero weights: the scale clamps (mean 1e-5), trits and memory 0.
    let z = ternarize_absmean(&[0.0; 8]);
    assert_eq!((z.scale, z.trits, z.memory), (1e5, vec![0; 8], vec![0; 8]));
}

/// transformers 5 writes `rope_parameters` instead of a top-level
/// `rope_theta`; a scaled rope is refused by name.
#[test]
fn config_json_reads_rope_parameters() {
    use crate::bitnet::BitNetConfig;
    let json = |rope: &str| {
        format!(
            r#"{{"model_type": "bitnet", "hidden_size": 40, "intermediate_size": 76,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 67, "rope_theta": 123.0, {rope}}}"#
        )
    };
    let config = BitNetConfig::from_config_json(&json(
        r#""rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}"#,
    ))
    .unwrap();
    assert_eq!(config.rope_theta, 10000.0);
    let config = BitNetConfig::from_config_json(&json(r#""x": 1"#)).unwrap();
    assert_eq!(config.rope_theta, 123.0);
    let err = BitNetConfig::from_config_json(&json(
        r#""rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0}"#,
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("rope_parameters.rope_type"),
        "{err}"
    );
}

/// A model with upstream scales of 1 computes what the same model without
/// them computes (random initialization keeps working either way), and a
/// scale changes the logits; the config's scales reach the layers.
#[test]
fn unit_weight_scales_change_nothing() {
    use burn::{
        backend::Flex,
        tensor::{Int, Tensor},
    };

    use crate::bitnet::BitNetConfig;

    let device = Default::default();
    let config = BitNetConfig::new(24, 40, 2, 4, 2, 30).with_weight_scales(Some(vec![1.0; 14]));
    let with = config.init::<Flex>(&device);
    assert_eq!(with.model.layers[1].mlp.weight_scale, Some([1.0; 3]));
    let mut without = with.clone();
    for layer in &mut without.model.layers {
        layer.self_attn.weight_scale = None;
        layer.mlp.weight_scale = None;
    }
    let ids = Tensor::<Flex, 2, Int>::from_ints([[1, 5, 29, 3]], &device);
    let host = |t: Tensor<Flex, 3>| t.into_data().to_vec::<f32>().unwrap();
    let a = host(with.forward(ids.clone()));
    assert_eq!(a, host(without.forward(ids.clone())));
    for (i, s) in [(0, 2.0), (2, 3.0), (5, 0.5)] {
        let mut scaled = with.clone();
        let attn = &mut scaled.model.layers[1].self_attn;
        if i < 4 {
            attn.weight_scale.as_mut().unwrap()[i] = s;
        } else {
            scaled.model.layers[1].mlp.weight_scale.as_mut().unwrap()[i - 4] = s;
        }
        assert_ne!(a, host(scaled.forward(ids.clone())), "scale {i}");
    }
    let bad = config.clone().with_weight_scales(Some(vec![1.0; 13]));
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("weight_scales"));
    let bad = config.with_weight_scales(Some(vec![-1.0; 14]));
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("weight_scales"));
}
