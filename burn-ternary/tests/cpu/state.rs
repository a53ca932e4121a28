//! The ternary state: packing, persistence (Burn recorder and safetensors),
//! the audit, and errors on bad input.

use burn::{
    backend::{Autodiff, Flex, NdArray},
    module::Module,
    record::{BinBytesRecorder, FullPrecisionSettings, NamedMpkFileRecorder, Recorder},
    tensor::{backend::Backend, Int, Tensor},
};
use burn_ternary::{
    audit::{audit, ternary_state_bytes},
    io::{from_safetensors_bytes, load_safetensors, save_safetensors, to_safetensors_bytes},
    nn::*,
    packing::*,
    TernaryError,
};
use rand::{rngs::SmallRng, Rng, SeedableRng};

type TB = NdArray<f32>;
type AD = Autodiff<TB>;

fn random_trits(n: usize, rng: &mut SmallRng) -> Vec<i8> {
    (0..n).map(|_| rng.random_range(-1i8..=1)).collect()
}

fn random_memory(n: usize, rng: &mut SmallRng) -> Vec<i8> {
    (0..n).map(|_| rng.random::<i8>()).collect()
}

fn host_ints<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().into_vec().unwrap()
}

fn tensor_packing_matches_host<B: Backend>(device: &B::Device) {
    let mut rng = SmallRng::seed_from_u64(1);
    for (rows, cols) in [(1, 1), (3, 16), (2, 17), (5, 33), (4, 64), (7, 101)] {
        let mut trits = random_trits(rows * cols, &mut rng);
        trits[cols - 1] = -1; // a -1 in the top lane sets the sign bit
        let memory = random_memory(rows * cols, &mut rng);
        let host_words = pack_trits(&trits, rows, cols);
        assert_eq!(unpack_trits(&host_words, rows, cols), trits);
        let mem_words = pack_memory(&memory, rows, cols);
        assert_eq!(unpack_memory(&mem_words, rows, cols), memory);

        let as_tensor = |v: &[i8]| {
            int_tensor::<B, 2>(v.iter().map(|x| *x as i32).collect(), [rows, cols], device)
        };
        let packed = pack_trits_tensor(as_tensor(&trits));
        assert_eq!(
            host_ints(packed.clone()),
            host_words.iter().map(|w| *w as i64).collect::<Vec<_>>()
        );
        assert_eq!(
            host_ints(unpack_trits_tensor(packed, cols)),
            trits.iter().map(|t| *t as i64).collect::<Vec<_>>()
        );
        let packed = pack_memory_tensor(as_tensor(&memory));
        assert_eq!(
            host_ints(packed.clone()),
            mem_words.iter().map(|w| *w as i64).collect::<Vec<_>>()
        );
        assert_eq!(
            host_ints(unpack_memory_tensor(packed, cols)),
            memory.iter().map(|m| *m as i64).collect::<Vec<_>>()
        );
    }
}

#[test]
fn tensor_packing_matches_host_packing_on_ndarray() {
    tensor_packing_matches_host::<TB>(&Default::default());
}

#[test]
fn tensor_packing_matches_host_packing_on_flex() {
    tensor_packing_matches_host::<Flex>(&Default::default());
}

#[test]
fn scale_codes_round_trip() {
    for code in [-512, -37, -1, 0, 1, 16, 100, 512] {
        assert_eq!(encode_scale(decode_scale(code)), code);
    }
    assert_eq!(decode_scale(16), 2.0);
    assert_eq!(encode_scale(0.0), SCALE_CODE_RANGE.0);
}

#[derive(Module, Debug)]
struct Stack<B: Backend> {
    embed: TernaryEmbedding<B>,
    conv: TernaryConv1d<B>,
    up: TernaryConvTranspose1d<B>,
    layers: Vec<TernaryLinear<B>>,
}

fn stack<B: Backend>(device: &B::Device) -> Stack<B> {
    Stack {
        embed: TernaryEmbeddingConfig::new(97, 24).init(device),
        conv: TernaryConv1dConfig::new(24, 12, 3).init(device),
        up: TernaryConvTranspose1dConfig::new(12, 5, 4)
            .with_stride(2)
            .init(device),
        layers: vec![
            TernaryLinearConfig::new(24, 40).init(device),
            TernaryLinearConfig::new(40, 7).init(device),
        ],
    }
}

/// Every ternary weight of `a` and `b`, as host values.
fn snapshot<B: Backend>(s: &Stack<B>) -> Vec<(Vec<i8>, Vec<i8>, Vec<i32>)> {
    let weights = [
        &s.embed.weight,
        &s.conv.weight,
        &s.up.weight,
        &s.layers[0].weight,
        &s.layers[1].weight,
    ];
    weights
        .iter()
        .map(|w| (w.trits_host(), w.memory_host(), w.scale_codes_host()))
        .collect()
}

#[test]
fn audit_matches_hand_count() {
    let model = stack::<AD>(&Default::default());
    let report = audit(&model);
    // embed 97x24, conv 12x(24*3), up 12x(5*4), layers 40x24 and 7x40.
    let shapes = [(97, 24), (12, 72), (12, 20), (40, 24), (7, 40)];
    let weights: usize = shapes.iter().map(|(r, c)| r * c).sum();
    assert_eq!(weights, 2328 + 864 + 240 + 960 + 280);
    assert_eq!(report.ternary_tensors, 5);
    assert_eq!(report.logical_ternary_weights, weights);
    // Bytes by hand: 4 B per trit word (16 trits), per memory word (4 bytes), per scale code.
    let by_hand = 4
        * (97 * (2 + 6 + 1)
            + 12 * (5 + 18 + 1)
            + 12 * (2 + 5 + 1)
            + 40 * (2 + 6 + 1)
            + 7 * (3 + 10 + 1));
    assert_eq!(report.ternary_state_bytes, by_hand);
    assert_eq!(report.trainable_float_params, 0);
    assert_eq!(report.frozen_float_params, 0);
    assert_eq!(report.float_buffers, 0);
    assert!(report.is_pure_ternary());
    let table = report.to_string();
    assert!(table.contains("logical ternary weights : 4,672"), "{table}");
    assert!(table.contains("trainable float params  : 0"), "{table}");
}

#[test]
fn audit_separates_float_params_and_buffers() {
    #[derive(Module, Debug)]
    struct Mixed<B: Backend> {
        ternary: TernaryLinear<B>,
        dense: burn::nn::Linear<B>,
        norm: burn::nn::BatchNorm<B>,
    }
    let device = Default::default();
    let model = Mixed::<AD> {
        ternary: TernaryLinearConfig::new(8, 4).init(&device),
        dense: burn::nn::LinearConfig::new(8, 3).init(&device),
        norm: burn::nn::BatchNormConfig::new(6).init(&device),
    };
    let report = audit(&model);
    assert_eq!(report.logical_ternary_weights, 32);
    // Linear 8x3 + bias 3, BatchNorm gamma + beta 6 each; running mean and var 6 each.
    assert_eq!(report.trainable_float_params, 8 * 3 + 3 + 12);
    assert_eq!(report.float_buffers, 12);
    let frozen = model.no_grad();
    let report = audit(&frozen);
    assert_eq!(report.trainable_float_params, 0);
    assert_eq!(report.frozen_float_params, 8 * 3 + 3 + 12);
}

#[test]
fn state_bytes_per_weight_of_a_4096_square_layer() {
    let bytes = ternary_state_bytes(4096, 4096);
    assert_eq!(bytes, 4096 * 4 * (256 + 1024 + 1));
    let per_weight = bytes as f64 / (4096.0 * 4096.0);
    assert!((per_weight - 1.2510).abs() < 1e-3, "{per_weight}");
    // The same layer built for real reports the same figure.
    let layer = TernaryLinearConfig::new(4096, 4096).init::<TB>(&Default::default());
    assert_eq!(audit(&layer).ternary_state_bytes, bytes);
}

#[test]
fn safetensors_round_trip_is_bit_exact() {
    let device = Default::default();
    let saved = stack::<TB>(&device);
    let bytes = to_safetensors_bytes(&saved).unwrap();
    let loaded = from_safetensors_bytes(stack::<TB>(&device), &bytes).unwrap();
    assert_eq!(snapshot(&saved), snapshot(&loaded));
    assert_ne!(
        snapshot(&stack::<TB>(&device)),
        snapshot(&saved),
        "fresh inits differ"
    );

    let dir = std::env::temp_dir().join(format!("burn-ternary-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    save_safetensors(&saved, &path).unwrap();
    let from_file = load_safetensors(stack::<TB>(&device), &path).unwrap();
    assert_eq!(snapshot(&saved), snapshot(&from_file));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn burn_recorders_round_trip_bit_exactly() {
    let device = Default::default();
    let saved = stack::<TB>(&device);
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(saved.clone().into_record(), ()).unwrap();
    let record = recorder.load(bytes, &device).unwrap();
    let loaded = stack::<TB>(&device).load_record(record);
    assert_eq!(snapshot(&saved), snapshot(&loaded));
    // Packed words keep their i32 storage through the recorder.
    assert_eq!(
        audit(&loaded).ternary_state_bytes,
        audit(&saved).ternary_state_bytes
    );

    let dir = std::env::temp_dir().join(format!("burn-ternary-rec-{}", std::process::id()));
    let file = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    saved.clone().save_file(dir.join("model"), &file).unwrap();
    let loaded = stack::<TB>(&device)
        .load_file(dir.join("model"), &file, &device)
        .unwrap();
    assert_eq!(snapshot(&saved), snapshot(&loaded));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_checkpoints_name_the_tensor() {
    let device = Default::default();
    let small = TernaryLinearConfig::new(16, 4).init::<TB>(&device);
    let big = TernaryLinearConfig::new(16, 5).init::<TB>(&device);
    let bytes = to_safetensors_bytes(&small).unwrap();
    let err = from_safetensors_bytes(big, &bytes).unwrap_err();
    assert_eq!(
        err,
        TernaryError::BadCheckpoint {
            tensor: "weight.trits".into(),
            reason: "shape [4, 1], expected [5, 1]".into()
        }
    );
    let other = TernaryEmbeddingConfig::new(4, 16).init::<TB>(&device);
    let wrapped = Stack::<TB> {
        embed: other,
        ..stack(&device)
    };
    let err = from_safetensors_bytes(wrapped, &bytes).unwrap_err();
    assert!(err.to_string().contains("missing from the file"), "{err}");
    let err = from_safetensors_bytes(small.clone(), &bytes[..bytes.len() / 2]).unwrap_err();
    assert!(
        err.to_string().contains("not a valid safetensors file"),
        "{err}"
    );
    let err = load_safetensors(small, "/nonexistent/model.safetensors").unwrap_err();
    assert!(matches!(err, TernaryError::Io { .. }), "{err}");
}

#[test]
fn bad_input_and_config_are_named() {
    let device = Default::default();
    let layer = TernaryLinearConfig::new(10, 3).init::<TB>(&device);
    let err = layer
        .try_forward(Tensor::<TB, 2>::zeros([2, 9], &device))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `x` has shape [2, 9], expected [..., 10] (d_input)"
    );
    let err = TernaryLinearConfig::new(0, 3)
        .try_init::<TB>(&device)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config `d_input` = 0: must be at least 1"
    );
    let err = TernaryEmbeddingConfig::new(5, 0)
        .try_init::<TB>(&device)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config `d_model` = 0: must be at least 1"
    );
    let err = TernaryWeight::<TB>::from_host(&[2, 0], &[0, 0], &[0], 1, 2, &device).unwrap_err();
    assert!(err.to_string().contains("value 2 is not a trit"), "{err}");
}

#[test]
#[should_panic(expected = "tensor `x` has shape [4, 7], expected [..., 8] (d_input)")]
fn forward_panics_with_the_shapes() {
    let device = Default::default();
    let layer = TernaryLinearConfig::new(8, 3).init::<TB>(&device);
    layer.forward(Tensor::<TB, 2>::zeros([4, 7], &device));
}

#[test]
fn init_gives_ternary_values_and_bounded_memory() {
    let w = TernaryWeight::<TB>::init(33, 70, &Default::default());
    let trits = w.trits_host();
    let zeros = trits.iter().filter(|t| **t == 0).count() as f64 / trits.len() as f64;
    assert!(
        (0.15..0.55).contains(&zeros),
        "fraction of zero trits {zeros}"
    );
    assert!(trits.contains(&1) && trits.contains(&-1));
    let theta = burn_ternary::optim::UPDATE_THRESHOLD as i8;
    assert!(w.memory_host().iter().all(|m| (-theta..=theta).contains(m)));
    assert!(w.memory_host().iter().any(|m| *m != 0));
    // The decoded scale is near mean |w| of N(0, 1/70): sqrt(2/π)/sqrt(70) ≈ 0.095.
    let mean_scale: f32 = w
        .scale_codes_host()
        .iter()
        .map(|c| decode_scale(*c))
        .sum::<f32>()
        / 33.0;
    assert!(
        (0.07..0.125).contains(&mean_scale),
        "mean scale {mean_scale}"
    );
}
