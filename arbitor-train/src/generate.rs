//! `arbitor generate`: continue a prompt with a trained text model of any
//! kind (the byte-level MLPs, `arb-text`, `dense-arb-text`, `arb-multimodal`,
//! `bitnet`),
//! streaming the bytes as they come. The ARBModel kinds decode
//! incrementally ([`arbitor_models::generation`]).

use std::path::{Path, PathBuf};

use arbitor_models::{
    arb::ARBModel,
    generation::{DecodeTiming, GenerationOutput, Sampler},
};
use burn::tensor::{Int, Tensor, TensorData};
use burn_ternary::{launch_count::CountLaunches, TernaryBackend};
use rand::{rngs::SmallRng, SeedableRng};

use crate::{
    bitnet_task::bitnet_inference_model,
    bridge::{routed_outputs, text_ids, write_outputs, BridgeReport, Outputs},
    config::{ModelKind, RunConfig},
    lm::{dense_model, ternary_model},
    multimodal_task,
    tokenizer::TextTokenizer,
};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Text to continue.
    pub prompt: String,
    /// Bytes to generate.
    pub max_new: usize,
    /// How each byte is drawn.
    pub sampler: Sampler,
    /// `arb-multimodal`: the outputs to produce after the text; `None`
    /// follows the router at the text's last position.
    pub outputs: Option<Outputs>,
    /// Video frames to produce (one denoising run each).
    pub frames: usize,
    /// Where the bridge writes its files.
    pub out_dir: PathBuf,
}

/// The generated text and, for `arb-multimodal`, what the output bridge wrote.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The text.
    pub text: GenerationOutput,
    /// The files of the heads the router (or the request) asked for.
    pub bridge: Option<BridgeReport>,
}

/// Continues `options.prompt` with the model exported at `checkpoint` (a
/// run's `model.safetensors`) of the architecture of `config` (for
/// `bitnet`, without `checkpoint`: the model `model.from` or `[bitnet]`
/// builds, see [`crate::bitnet_task::bitnet_inference_model`]), calling
/// `on_byte` with each new byte; or names what is wrong (a kind that does
/// not produce text, a checkpoint of another model, a prompt longer than the
/// context, a bad sampling value).
pub fn generate<B: TernaryBackend>(
    config: &RunConfig,
    checkpoint: Option<&Path>,
    options: &GenerateOptions,
    device: &B::Device,
    on_byte: impl FnMut(usize, u8),
) -> Result<Generated, String> {
    let s = &options.sampler;
    if !(s.temperature >= 0.0 && s.temperature.is_finite()) {
        return Err(format!(
            "--temperature {}: must be a number ≥ 0 (0: greedy)",
            s.temperature
        ));
    }
    if let Some(p) = s.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(format!("--top-p {p}: must be in (0, 1]"));
    }
    if s.top_k == Some(0) {
        return Err("--top-k 0: must be at least 1".into());
    }
    if options.outputs.is_some() && config.model.kind != ModelKind::ArbMultimodal {
        return Err(format!(
            "--video/--speech: model.kind = \"{}\" has no video or talker head in training (use an arb-multimodal checkpoint)",
            config.model.kind.name()
        ));
    }
    let text_only = |text| Generated { text, bridge: None };
    if options.prompt.is_empty() {
        return Err("--prompt is empty: give at least one byte to continue".into());
    }
    let prompt = options.prompt.as_bytes().to_vec();
    let trained = || {
        checkpoint.ok_or_else(|| {
            format!(
                "--checkpoint: required for model.kind = \"{}\" (a run's model.safetensors)",
                config.model.kind.name()
            )
        })
    };
    let load_error = |path: &Path, e: String| format!("checkpoint {}: {e}", path.display());
    match config.model.kind {
        kind @ (ModelKind::TernaryByteMlp | ModelKind::DenseByteMlp) => {
            let checkpoint = trained()?;
            let context = config.model.byte_mlp().map_err(|e| e.reason)?.context;
            let run = |next_logits: &dyn Fn(Tensor<B, 2, Int>) -> Tensor<B, 2>| {
                text_only(byte_model(next_logits, context, &prompt, options, device, on_byte))
            };
            Ok(if kind == ModelKind::TernaryByteMlp {
                let model = burn_ternary::io::load_safetensors(
                    ternary_model::<B>(&config.model, device),
                    checkpoint,
                )
                .map_err(|e| load_error(checkpoint, e.to_string()))?;
                run(&|x| model.forward(x))
            } else {
                let model = burn_ternary::io::load_safetensors(
                    dense_model::<B>(&config.model, device),
                    checkpoint,
                )
                .map_err(|e| load_error(checkpoint, e.to_string()))?;
                run(&|x| model.forward(x))
            })
        }
        ModelKind::ArbText | ModelKind::DenseArbText | ModelKind::ArbMultimodal => {
            let checkpoint = trained()?;
            let arb = config.arb().map_err(|e| e.to_string())?;
            let video = config.video().map_err(|e| e.to_string())?;
            let seq = arb.keys.seq;
            if prompt.len() > seq {
                return Err(format!(
                    "--prompt is {} bytes, longer than the model's context (arb.seq = {seq})",
                    prompt.len()
                ));
            }
            let model: ARBModel<B> = if config.model.kind == ModelKind::ArbMultimodal {
                let audio = config.audio().map_err(|e| e.to_string())?;
                let built = multimodal_task::model::<B>(arb, audio, video, device)
                    .map_err(|e| e.to_string())?;
                burn_ternary::io::load_safetensors(built, checkpoint)
                    .map_err(|e| load_error(checkpoint, e.to_string()))?
                    .arb
            } else {
                let built =
                    multimodal_task::arb_core::<B>(arb, video, device).map_err(|e| e.to_string())?;
                burn_ternary::io::load_safetensors(built, checkpoint)
                    .map_err(|e| load_error(checkpoint, e.to_string()))?
            };
            let model = burn_ternary::without_update_memory(model);
            let text = model
                .generate(std::slice::from_ref(&prompt), options.max_new, seq, &options.sampler, on_byte)
                .map_err(|e| e.to_string())?;
            if config.model.kind != ModelKind::ArbMultimodal {
                return Ok(text_only(text));
            }
            let mut all = prompt;
            all.extend(&text.bytes[0]);
            let window = text_ids::<B>(&all[all.len().saturating_sub(seq)..], device);
            let outputs = match &options.outputs {
                Some(outputs) => outputs.clone(),
                None => routed_outputs(&model, window.clone())?,
            };
            let bridge = if outputs.video || outputs.speech {
                Some(write_outputs(
                    &model,
                    config,
                    window,
                    &outputs,
                    options.frames,
                    options.sampler.seed,
                    &options.out_dir,
                )?)
            } else {
                None
            };
            Ok(Generated { text, bridge })
        }
        ModelKind::Bitnet => {
            bitnet::<B>(config, checkpoint, options, device, on_byte).map(text_only)
        }
        other => Err(format!(
            "model.kind = \"{}\" does not produce text; `generate` continues prompts with ternary-byte-mlp, dense-byte-mlp, arb-text, dense-arb-text, arb-multimodal and bitnet models",
            other.name()
        )),
    }
}

/// Generation with a `bitnet` model: trained by `arbitor train` (its
/// `model.safetensors`), or without `checkpoint` the model of `model.from`
/// (a Hugging Face checkpoint, `arbitor generate --hf`). The prompt is
/// tokenized by `model.tokenizer` (bytes without one), `max_new` tokens decoded with the key/value cache, their
/// text streamed byte by byte as soon as it is whole (a byte-level token
/// can end inside a UTF-8 character).
fn bitnet<B: TernaryBackend>(
    config: &RunConfig,
    checkpoint: Option<&Path>,
    options: &GenerateOptions,
    device: &B::Device,
    mut on_byte: impl FnMut(usize, u8),
) -> Result<GenerationOutput, String> {
    let shape = config.bitnet().map_err(|e| e.to_string())?;
    let tokenizer =
        TextTokenizer::from_option(config.model.tokenizer.as_deref()).map_err(|e| e.to_string())?;
    tokenizer
        .check_fits(shape.vocab_size)
        .map_err(|e| e.to_string())?;
    let model = bitnet_inference_model::<B>(config, checkpoint, device)?;
    let prompt = tokenizer
        .encode(options.prompt.as_bytes())
        .map_err(|e| e.to_string())?;
    let (mut ids, mut shown) = (Vec::new(), 0);
    let mut undecodable = None;
    let generated = model
        .generate(
            std::slice::from_ref(&prompt),
            options.max_new,
            &options.sampler,
            |_, id| {
                ids.push(id);
                match tokenizer.decode(&ids) {
                    // Held back while it ends in a partial character.
                    Ok(text) if !text.ends_with("\u{FFFD}".as_bytes()) => {
                        for byte in &text[shown..] {
                            on_byte(0, *byte);
                        }
                        shown = text.len();
                    }
                    Ok(_) => {}
                    Err(e) => undecodable = Some(e.to_string()),
                }
            },
        )
        .map_err(|e| e.to_string())?;
    if let Some(e) = undecodable {
        return Err(format!(
            "{e} (the model's vocab_size {} exceeds the tokenizer's ids)",
            shape.vocab_size
        ));
    }
    let bytes = tokenizer
        .decode(&generated.tokens[0])
        .map_err(|e| e.to_string())?;
    for byte in &bytes[shown.min(bytes.len())..] {
        on_byte(0, *byte);
    }
    Ok(GenerationOutput {
        text: vec![String::from_utf8_lossy(&bytes).into_owned()],
        tokens_per_s: bytes.len() as f64 / generated.seconds.max(1e-9),
        seconds: generated.seconds,
        bytes: vec![bytes],
    })
}

/// Generation with a byte-level model of a fixed `context` (the window is
/// left-padded with spaces while the text is shorter).
fn byte_model<B: TernaryBackend>(
    next_logits: impl Fn(Tensor<B, 2, Int>) -> Tensor<B, 2>,
    context: usize,
    prompt: &[u8],
    options: &GenerateOptions,
    device: &B::Device,
    mut on_byte: impl FnMut(usize, u8),
) -> GenerationOutput {
    let started = std::time::Instant::now();
    let mut bytes: Vec<u8> =
        std::iter::repeat_n(b' ', context.saturating_sub(prompt.len())).collect();
    bytes.extend(prompt);
    let mut rng = SmallRng::seed_from_u64(options.sampler.seed);
    let mut new = Vec::with_capacity(options.max_new);
    for _ in 0..options.max_new {
        let window: Vec<i64> = bytes[bytes.len() - context..]
            .iter()
            .map(|b| *b as i64)
            .collect();
        let x = Tensor::<B, 2, Int>::from_data(TensorData::new(window, [1, context]), device);
        let byte = options.sampler.pick(next_logits(x), &mut rng)[0];
        on_byte(0, byte);
        bytes.push(byte);
        new.push(byte);
    }
    let seconds = started.elapsed().as_secs_f64();
    GenerationOutput {
        text: vec![String::from_utf8_lossy(&new).into_owned()],
        tokens_per_s: new.len() as f64 / seconds.max(1e-9),
        bytes: vec![new],
        seconds,
    }
}

/// What [`decode_bench`] measured: the model, in words, and a timing per batch size.
#[derive(Debug, Clone)]
pub struct DecodeBench {
    /// Logical ternary weights, bytes of their packed trits, float parameters.
    pub model: String,
    /// One per batch size, in the order given.
    pub timings: Vec<DecodeTiming>,
    /// Kernel launches per decoding step, one per batch size (`None` on the
    /// CPU backend, or where the launch log is off): the launches of 8
    /// steps less those of 4, over 4, so the prompt's call cancels out.
    pub launches_per_token: Vec<Option<f64>>,
}

/// The weights of `model` in words: logical ternary weights, the bytes of
/// their packed trits (what a decoding step reads of them) and the float
/// parameters beside them.
pub fn weight_summary<B: burn::tensor::backend::Backend, M: burn::module::Module<B>>(
    model: &M,
) -> String {
    let state = burn_ternary::visit::collect::<B, M>(model);
    let logical: usize = state.ternary.iter().map(|w| w.dims[0] * w.dims[1]).sum();
    let packed: usize = state
        .ternary
        .iter()
        .map(|w| w.dims[0] * burn_ternary::packing::trit_words(w.dims[1]) * 4)
        .sum();
    let floats: usize = state.floats.iter().map(|f| f.numel).sum();
    format!(
        "{logical} ternary weights, {packed} bytes of packed trits ({:.1} MB), {floats} float parameters",
        packed as f64 / 1e6
    )
}

/// Decoding speed of the model a config builds: the ARBModel kinds (random
/// weights, or those of `checkpoint`) and `bitnet` (likewise):
/// for each batch size, a random `prompt_len`-token prompt filled in one
/// call, then `new` greedy steps ([`ARBModel::time_decode`],
/// [`BitNetForCausalLM::time_decode`](arbitor_models::bitnet::BitNetForCausalLM::time_decode)).
pub fn decode_bench<B: TernaryBackend + CountLaunches>(
    config: &RunConfig,
    checkpoint: Option<&Path>,
    batches: &[usize],
    prompt_len: usize,
    new: usize,
    device: &B::Device,
) -> Result<DecodeBench, String> {
    let kind = config.model.kind;
    if !matches!(
        kind,
        ModelKind::ArbText | ModelKind::DenseArbText | ModelKind::ArbMultimodal | ModelKind::Bitnet
    ) {
        return Err(format!(
            "model.kind = \"{}\": decode-bench times the ARBModel kinds (arb-text, dense-arb-text, arb-multimodal) and bitnet",
            kind.name()
        ));
    }
    if prompt_len == 0 || new == 0 || batches.contains(&0) {
        return Err("--prompt-len, --new and every --batches value must be at least 1".into());
    }
    let mut rng = SmallRng::seed_from_u64(0);
    // Each batch size: a random prompt of ids in `ids`, one untimed run that
    // compiles the kernels of this shape on a GPU, the launch count of a
    // step, then the timed run.
    let mut time_each = |ids: std::ops::Range<i64>,
                         time: &dyn Fn(
        Tensor<B, 2, Int>,
        usize,
    ) -> burn_ternary::TernaryResult<DecodeTiming>| {
        batches
            .iter()
            .map(|&batch| {
                let v: Vec<i64> = (0..batch * prompt_len)
                    .map(|_| rand::Rng::random_range(&mut rng, ids.clone()))
                    .collect();
                let prompt =
                    Tensor::<B, 2, Int>::from_data(TensorData::new(v, [batch, prompt_len]), device);
                let run = |steps| time(prompt.clone(), steps).map_err(|e| e.to_string());
                run(8)?;
                let (four, short) = B::count_launches(device, || run(4));
                four?;
                // Without a launch log (CPU, `--no-launch-count`) there is
                // nothing to difference: the 8-step run is skipped.
                let per_token = match short {
                    Some(a) => {
                        let (eight, long) = B::count_launches(device, || run(8));
                        eight?;
                        long.map(|b| (b as f64 - a as f64) / 4.0)
                    }
                    None => None,
                };
                Ok((run(new)?, per_token))
            })
            .collect::<Result<Vec<_>, String>>()
            .map(|rows| rows.into_iter().unzip::<_, _, Vec<_>, Vec<_>>())
    };
    if kind == ModelKind::Bitnet {
        let shape = config.bitnet().map_err(|e| e.to_string())?;
        let model = bitnet_inference_model::<B>(config, checkpoint, device)?;
        let (timings, launches_per_token) =
            time_each(0..shape.vocab_size as i64, &|p, n| model.time_decode(p, n))?;
        return Ok(DecodeBench {
            model: weight_summary::<B, _>(&model),
            timings,
            launches_per_token,
        });
    }
    let arb = config.arb().map_err(|e| e.to_string())?;
    let video = config.video().map_err(|e| e.to_string())?;
    let mut model =
        multimodal_task::arb_core::<B>(arb, video, device).map_err(|e| e.to_string())?;
    if let Some(path) = checkpoint {
        model = burn_ternary::io::load_safetensors(model, path)
            .map_err(|e| format!("checkpoint {}: {e}", path.display()))?;
    }
    let model = burn_ternary::without_update_memory(model);
    // Printable bytes, as text prompts are.
    let (timings, launches_per_token) = time_each(32..127, &|p, n| model.time_decode(p, n))?;
    Ok(DecodeBench {
        model: weight_summary::<B, _>(&model),
        timings,
        launches_per_token,
    })
}
