//! The output bridge: the ARBModel's heads turned into something to look at
//! and listen to. VideoHead latents go through the VAE sidecar to RGB frames
//! (PNG files and an animated GIF); TalkerHead tokens go through the codec
//! sidecar to a 16-bit mono WAV file. Without the sidecar a head needs, the
//! raw latents or tokens are written as safetensors instead.

use std::path::{Path, PathBuf};

use arbitor_models::{
    arb::ARBModel,
    router::{ROUTE_TALK, ROUTE_VIDEO},
    sidecars::{codec::TinyNeuralCodec, vae::PigVae},
};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use burn_ternary::TernaryBackend;
use image::{codecs::gif::GifEncoder, Delay, Frame, RgbImage, RgbaImage};

use crate::config::RunConfig;

/// What the bridge produces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    /// Produce a video clip.
    pub video: bool,
    /// Produce speech.
    pub speech: bool,
}

/// The files the bridge wrote, and the sidecars it lacked.
#[derive(Clone, Debug, Default)]
pub struct BridgeReport {
    /// PNG frames, in order.
    pub frames: Vec<PathBuf>,
    /// The animated GIF of the frames.
    pub gif: Option<PathBuf>,
    /// The WAV file.
    pub wav: Option<PathBuf>,
    /// Raw latents or tokens written where a sidecar was missing.
    pub raw: Vec<PathBuf>,
    /// The sidecars a requested output needed and the config does not name.
    pub missing: Vec<String>,
}

/// Which outputs the router asks for at the last position of `ids: [1, n]`
/// (hard gates, inference mode).
pub fn routed_outputs<B: TernaryBackend>(
    model: &ARBModel<B>,
    ids: Tensor<B, 2, Int>,
) -> Result<Outputs, String> {
    let n = ids.dims()[1];
    let out = model.try_forward(ids, false).map_err(|e| e.to_string())?;
    let route: i64 = out.router.routes.narrow(1, n - 1, 1).into_scalar().elem();
    Ok(Outputs {
        video: route as usize == ROUTE_VIDEO,
        speech: route as usize == ROUTE_TALK,
    })
}

/// Runs the heads the `outputs` ask for on the router's conditioning of
/// `ids: [1, n]` and writes their files into `dir`: `frames` video frames
/// (the video head run from `frames` noise seeds from `seed` on) and `n ·
/// talker_stride` audio tokens, through the `[sidecars]` of `config`.
pub fn write_outputs<B: TernaryBackend>(
    model: &ARBModel<B>,
    config: &RunConfig,
    ids: Tensor<B, 2, Int>,
    outputs: &Outputs,
    frames: usize,
    seed: u64,
    dir: &Path,
) -> Result<BridgeReport, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let device = ids.device();
    let n = ids.dims()[1];
    let out = model.try_forward(ids, false).map_err(|e| e.to_string())?;
    let sidecars = config.sidecars.clone().unwrap_or_default();
    let storage = sidecars.storage.into();
    let mut report = BridgeReport::default();
    if outputs.video {
        let clips = (0..frames.max(1) as u64)
            .map(|k| {
                model
                    .heads(&out, seed + k, 1, false)
                    .map(|(video, _)| video.latents)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Frames along the time axis: [1, channels, frames, h, w].
        let latents = Tensor::cat(clips, 2);
        match &sidecars.vae {
            Some(path) => {
                let vae = PigVae::<B>::load(path, storage, &device)
                    .map_err(|e| format!("sidecars.vae: {e}"))?;
                let video = vae.try_decode_video(latents).map_err(|e| e.to_string())?;
                let images = rgb_frames(video);
                let (pngs, gif) = write_frames(&images, dir, "video")?;
                report.frames = pngs;
                report.gif = Some(gif);
            }
            None => {
                report
                    .missing
                    .push("sidecars.vae (VAE: latents to frames)".into());
                report.raw.push(write_raw(dir, "video_latents", latents)?);
            }
        }
    }
    if outputs.speech {
        let stride = model.talker_head.stride;
        let (_, talker) = model
            .heads(&out, seed, n * stride, false)
            .map_err(|e| e.to_string())?;
        match &sidecars.codec {
            Some(path) => {
                let codec = TinyNeuralCodec::<B>::load(path, storage, &device)
                    .map_err(|e| format!("sidecars.codec: {e}"))?;
                let rate = codec.config().sample_rate as u32;
                let wave: Vec<f32> = codec
                    .try_decode(talker.tokens)
                    .map_err(|e| e.to_string())?
                    .into_data()
                    .convert::<f32>()
                    .to_vec()
                    .map_err(|e| format!("{e:?}"))?;
                let path = dir.join("speech.wav");
                write_wav(&path, &wave, rate)?;
                report.wav = Some(path);
            }
            None => {
                report
                    .missing
                    .push("sidecars.codec (codec: audio tokens to sound)".into());
                let tokens = talker.tokens.float();
                report.raw.push(write_raw(dir, "talker_tokens", tokens)?);
            }
        }
    }
    Ok(report)
}

/// Video `[1, 3, frames, h, w]` in about `[−1, 1]` as RGB images.
fn rgb_frames<B: TernaryBackend>(video: Tensor<B, 5>) -> Vec<RgbImage> {
    let [_, channels, frames, h, w] = video.dims();
    let values: Vec<f32> = video
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 frames");
    let at = |c: usize, f: usize, y: usize, x: usize| {
        let c = c.min(channels - 1);
        values[((c * frames + f) * h + y) * w + x]
    };
    (0..frames)
        .map(|f| {
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let px =
                    |c| ((at(c, f, y as usize, x as usize) + 1.0) * 127.5).clamp(0.0, 255.0) as u8;
                image::Rgb([px(0), px(1), px(2)])
            })
        })
        .collect()
}

/// Writes `frames` as `<stem>_<k>.png` and an animated `<stem>.gif` (10
/// frames per second, looping) into `dir`.
pub fn write_frames(
    frames: &[RgbImage],
    dir: &Path,
    stem: &str,
) -> Result<(Vec<PathBuf>, PathBuf), String> {
    let mut pngs = Vec::with_capacity(frames.len());
    for (k, frame) in frames.iter().enumerate() {
        let path = dir.join(format!("{stem}_{k:03}.png"));
        frame
            .save(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        pngs.push(path);
    }
    let gif = dir.join(format!("{stem}.gif"));
    let file = std::fs::File::create(&gif).map_err(|e| format!("{}: {e}", gif.display()))?;
    let mut encoder = GifEncoder::new(file);
    encoder
        .set_repeat(image::codecs::gif::Repeat::Infinite)
        .map_err(|e| e.to_string())?;
    for frame in frames {
        let rgba: RgbaImage = image::DynamicImage::ImageRgb8(frame.clone()).to_rgba8();
        encoder
            .encode_frame(Frame::from_parts(
                rgba,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .map_err(|e| format!("{}: {e}", gif.display()))?;
    }
    Ok((pngs, gif))
}

/// Writes `samples` (in `[−1, 1]`) as a 16-bit mono PCM WAV file at
/// `sample_rate` Hz. (No WAV crate is in this workspace's offline registry;
/// the format's 44-byte header is written here.)
///
/// ```
/// let path = std::env::temp_dir().join("arbitor-doc.wav");
/// arbitor_train::bridge::write_wav(&path, &[0.0, 0.5, -0.5], 16_000).unwrap();
/// let (rate, samples) = arbitor_train::bridge::read_wav(&path).unwrap();
/// assert_eq!((rate, samples.len()), (16_000, 3));
/// ```
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), String> {
    let data_len = (samples.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + samples.len() * 2);
    bytes.extend(b"RIFF");
    bytes.extend((36 + data_len).to_le_bytes());
    bytes.extend(b"WAVEfmt ");
    bytes.extend(16u32.to_le_bytes()); // fmt chunk size
    bytes.extend(1u16.to_le_bytes()); // PCM
    bytes.extend(1u16.to_le_bytes()); // mono
    bytes.extend(sample_rate.to_le_bytes());
    bytes.extend((sample_rate * 2).to_le_bytes()); // byte rate
    bytes.extend(2u16.to_le_bytes()); // block align
    bytes.extend(16u16.to_le_bytes()); // bits per sample
    bytes.extend(b"data");
    bytes.extend(data_len.to_le_bytes());
    for s in samples {
        bytes.extend(((s.clamp(-1.0, 1.0) * i16::MAX as f32) as i16).to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a 16-bit mono PCM WAV file written by [`write_wav`]: the sample
/// rate and the samples; or says what is not such a file.
pub fn read_wav(path: &Path) -> Result<(u32, Vec<i16>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |why: &str| format!("{}: not a 16-bit mono PCM WAV file ({why})", path.display());
    if bytes.len() < 44 || &bytes[0..4] != b"RIFF" || &bytes[8..16] != b"WAVEfmt " {
        return Err(bad("no RIFF/WAVE header"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if u16_at(20) != 1 || u16_at(22) != 1 || u16_at(34) != 16 || &bytes[36..40] != b"data" {
        return Err(bad("not PCM, mono, 16 bits"));
    }
    let len = u32_at(40) as usize;
    if bytes.len() < 44 + len {
        return Err(bad("data chunk truncated"));
    }
    let samples = bytes[44..44 + len]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    Ok((u32_at(24), samples))
}

/// Writes `tensor` as `<name>.safetensors` (one f32 tensor named `name`).
fn write_raw<B: TernaryBackend, const D: usize>(
    dir: &Path,
    name: &str,
    tensor: Tensor<B, D>,
) -> Result<PathBuf, String> {
    let shape = tensor.dims().to_vec();
    let values: Vec<f32> = tensor
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| format!("{e:?}"))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)
        .map_err(|e| e.to_string())?;
    let path = dir.join(format!("{name}.safetensors"));
    safetensors::serialize_to_file([(name, view)], None, &path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// `ids` of `text` as a `[1, n]` tensor.
pub fn text_ids<B: TernaryBackend>(text: &[u8], device: &B::Device) -> Tensor<B, 2, Int> {
    let ids: Vec<i64> = text.iter().map(|b| *b as i64).collect();
    Tensor::from_data(TensorData::new(ids, [1, text.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multimodal_task;
    use burn::backend::Flex;
    use image::{codecs::gif::GifDecoder, AnimationDecoder};

    fn config(sidecars: bool) -> RunConfig {
        let fixtures = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../arbitor-models/tests/fixtures/sidecars"
        );
        let section = if sidecars {
            format!(
                "[sidecars]\nvae = \"{fixtures}/taesd_w8_s3\"\ncodec = \"{fixtures}/codec_289\"\nstorage = \"f32\"\n"
            )
        } else {
            String::new()
        };
        RunConfig::parse(&format!(
            r#"
[run]
dir = "runs/bridge"
[model]
kind = "arb-multimodal"
[data]
path = "data/tinyshakespeare.txt"
speech = "data/speech"
[arb]
d_model = 32
n_heads = 2
mlp_hidden = 32
seq = 16
talker_stride = 3
[video]
height = 8
width = 8
hidden = 8
[train]
epochs = 1
steps_per_epoch = 1
batch = 1
lr = 0.05
{section}"#
        ))
        .expect("the bridge config parses")
    }

    fn model(config: &RunConfig) -> ARBModel<Flex> {
        multimodal_task::arb_core(
            config.arb().unwrap(),
            config.video().unwrap(),
            &Default::default(),
        )
        .unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("arbitor-bridge-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn frames_gif_and_wav_through_the_sidecars() {
        let config = config(true);
        let model = model(&config);
        let dir = scratch("sidecars");
        let ids = text_ids::<Flex>(b"ROMEO: peace, ho", &Default::default());
        let both = Outputs {
            video: true,
            speech: true,
        };
        let report = write_outputs(&model, &config, ids, &both, 3, 0, &dir).unwrap();
        assert!(report.missing.is_empty() && report.raw.is_empty());
        // 8 × 8 latents, upsampled 4× by the fixture VAE.
        assert_eq!(report.frames.len(), 3);
        for png in &report.frames {
            let frame = image::open(png).unwrap();
            assert_eq!(
                (frame.width(), frame.height()),
                (32, 32),
                "{}",
                png.display()
            );
        }
        let gif = std::fs::File::open(report.gif.as_ref().unwrap()).unwrap();
        let frames = GifDecoder::new(std::io::BufReader::new(gif))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].buffer().dimensions(), (32, 32));
        // 16 positions × stride 3 tokens, 16 samples per token at 16 kHz.
        let (rate, samples) = read_wav(report.wav.as_ref().unwrap()).unwrap();
        assert_eq!((rate, samples.len()), (16_000, 16 * 3 * 16));
        assert!(samples.iter().any(|s| *s != 0), "silence");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_sidecars_the_raw_outputs_are_written_and_the_missing_named() {
        let config = config(false);
        let model = model(&config);
        let dir = scratch("raw");
        let ids = text_ids::<Flex>(b"JULIET", &Default::default());
        let both = Outputs {
            video: true,
            speech: true,
        };
        let report = write_outputs(&model, &config, ids, &both, 2, 0, &dir).unwrap();
        assert_eq!(report.missing.len(), 2);
        assert!(report.missing[0].contains("sidecars.vae"));
        assert!(report.missing[1].contains("sidecars.codec"));
        let read = |path: &Path| {
            let bytes = std::fs::read(path).unwrap();
            let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let (_, view) = tensors.tensors().into_iter().next().unwrap();
            view.shape().to_vec()
        };
        assert_eq!(read(&report.raw[0]), vec![1, 16, 2, 8, 8]);
        assert_eq!(read(&report.raw[1]), vec![1, 6 * 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wav_that_is_not_pcm_is_named() {
        let path = std::env::temp_dir().join(format!("arbitor-bad-{}.wav", std::process::id()));
        std::fs::write(&path, b"RIFF....WAVEfmt nonsense").unwrap();
        assert!(read_wav(&path).unwrap_err().contains("WAV"));
        std::fs::remove_file(&path).unwrap();
    }
}
