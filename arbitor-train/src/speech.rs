//! The speech set (`data/speech/`, made by `scripts/data/make_speech_data.py`) and
//! its log-mel features.
//!
//! The set is one raw file of 16 kHz mono little-endian i16 samples,
//! `speech.pcm`, and `index.tsv`, one line per utterance: start sample,
//! sample count, byte offset of the spoken line in Tiny Shakespeare, the text.
//! Features are log-mel spectrograms (25 ms Hann windows every 10 ms, 512-point
//! FFT, HTK mel filters from 0 to 8 kHz), normalized per mel bin with the mean
//! and standard deviation of the training utterances.

use std::path::Path;

use crate::data::DataError;

/// Sample rate of the speech set.
pub const SAMPLE_RATE: usize = 16_000;
/// Samples per analysis window (25 ms).
pub const WINDOW: usize = 400;
/// Samples between frames (10 ms).
pub const HOP: usize = 160;
const FFT: usize = 512;

/// One utterance of the speech set.
#[derive(Clone, Debug)]
pub struct Utterance {
    /// Its samples.
    pub samples: Vec<i16>,
    /// Byte offset of the spoken line in `data/tinyshakespeare.txt`.
    pub text_offset: usize,
    /// The spoken line.
    pub text: String,
}

/// The utterances of a speech set, in file order.
#[derive(Clone, Debug)]
pub struct SpeechSet {
    /// Every utterance.
    pub utterances: Vec<Utterance>,
}

impl SpeechSet {
    /// Reads `dir/index.tsv` and `dir/speech.pcm`, naming the file and line
    /// of anything malformed.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let index_path = dir.join("index.tsv");
        let pcm_path = dir.join("speech.pcm");
        let err = |path: &Path, reason: String| DataError {
            path: path.display().to_string(),
            reason,
        };
        let index =
            std::fs::read_to_string(&index_path).map_err(|e| err(&index_path, e.to_string()))?;
        let pcm = std::fs::read(&pcm_path).map_err(|e| err(&pcm_path, e.to_string()))?;
        if pcm.len() % 2 != 0 {
            return Err(err(
                &pcm_path,
                format!("{} bytes is not a whole number of i16 samples", pcm.len()),
            ));
        }
        let samples = pcm.len() / 2;
        let mut utterances = Vec::new();
        for (n, line) in index.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let bad = |what: &str| err(&index_path, format!("line {}: {what}: {line:?}", n + 1));
            let mut fields = line.splitn(4, '\t');
            let mut number = |name: &str| -> Result<usize, DataError> {
                fields
                    .next()
                    .and_then(|f| f.trim().parse().ok())
                    .ok_or_else(|| bad(&format!("`{name}` is not a number")))
            };
            let start = number("start")?;
            let count = number("samples")?;
            let text_offset = number("text_offset")?;
            let text = fields.next().unwrap_or_default().to_string();
            if count == 0 || start.checked_add(count).is_none_or(|end| end > samples) {
                return Err(bad(&format!(
                    "samples {start}..{} are outside speech.pcm ({samples} samples)",
                    start.saturating_add(count)
                )));
            }
            let bytes = &pcm[2 * start..2 * (start + count)];
            utterances.push(Utterance {
                samples: bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect(),
                text_offset,
                text,
            });
        }
        if utterances.len() < 2 {
            return Err(err(
                &index_path,
                format!(
                    "{} utterances: a training and a validation split need at least 2",
                    utterances.len()
                ),
            ));
        }
        Ok(Self { utterances })
    }

    /// Splits into (training, validation): the last `val_fraction` of the
    /// utterances (at least one) are held out.
    pub fn split(&self, val_fraction: f64) -> (Vec<Utterance>, Vec<Utterance>) {
        let n = self.utterances.len();
        let val = ((n as f64 * val_fraction).round() as usize).clamp(1, n - 1);
        let (train, valid) = self.utterances.split_at(n - val);
        (train.to_vec(), valid.to_vec())
    }
}

/// Log-mel features `[n_mels, frames]` (mel-bin-major) of an utterance.
#[derive(Clone, Debug)]
pub struct MelFeatures {
    /// Mel bins.
    pub n_mels: usize,
    /// Frames.
    pub frames: usize,
    /// Values, `data[m * frames + t]`.
    pub data: Vec<f32>,
}

/// A log-mel analyser for 16 kHz audio.
#[derive(Clone, Debug)]
pub struct MelSpectrogram {
    n_mels: usize,
    window: Vec<f32>,
    /// Per mel bin: (first FFT bin, weights).
    filters: Vec<(usize, Vec<f32>)>,
}

fn hz_to_mel(hz: f64) -> f64 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

impl MelSpectrogram {
    /// An analyser with `n_mels` triangular filters from 0 to 8 kHz.
    pub fn new(n_mels: usize) -> Self {
        let window = (0..WINDOW)
            .map(|i| (0.5 - 0.5 * (core::f64::consts::TAU * i as f64 / WINDOW as f64).cos()) as f32)
            .collect();
        let bins = FFT / 2 + 1;
        let top = hz_to_mel(SAMPLE_RATE as f64 / 2.0);
        let edges: Vec<f64> = (0..n_mels + 2)
            .map(|i| {
                mel_to_hz(top * i as f64 / (n_mels + 1) as f64) * FFT as f64 / SAMPLE_RATE as f64
            })
            .collect();
        let filters = (0..n_mels)
            .map(|m| {
                let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
                let first = lo.floor().max(0.0) as usize;
                let last = (hi.ceil() as usize).min(bins - 1);
                let weights = (first..=last)
                    .map(|k| {
                        let k = k as f64;
                        let w = if k <= mid {
                            (k - lo) / (mid - lo).max(1e-9)
                        } else {
                            (hi - k) / (hi - mid).max(1e-9)
                        };
                        w.max(0.0) as f32
                    })
                    .collect();
                (first, weights)
            })
            .collect();
        Self {
            n_mels,
            window,
            filters,
        }
    }

    /// Natural-log mel energies of `samples` (one frame per [`HOP`] samples;
    /// an utterance shorter than a window is zero-padded to one frame).
    pub fn compute(&self, samples: &[i16]) -> MelFeatures {
        let frames = if samples.len() <= WINDOW {
            1
        } else {
            1 + (samples.len() - WINDOW) / HOP
        };
        let mut data = vec![0f32; self.n_mels * frames];
        let mut re = vec![0f32; FFT];
        let mut im = vec![0f32; FFT];
        for t in 0..frames {
            re.iter_mut().for_each(|v| *v = 0.0);
            im.iter_mut().for_each(|v| *v = 0.0);
            for (i, w) in self.window.iter().enumerate() {
                let s = samples.get(t * HOP + i).copied().unwrap_or(0);
                re[i] = s as f32 / 32768.0 * w;
            }
            fft(&mut re, &mut im);
            for (m, (first, weights)) in self.filters.iter().enumerate() {
                let energy: f32 = weights
                    .iter()
                    .enumerate()
                    .map(|(j, w)| {
                        let k = first + j;
                        w * (re[k] * re[k] + im[k] * im[k])
                    })
                    .sum();
                data[m * frames + t] = (energy + 1e-8).ln();
            }
        }
        MelFeatures {
            n_mels: self.n_mels,
            frames,
            data,
        }
    }
}

/// In-place iterative radix-2 FFT (`re.len()` a power of two).
fn fft(re: &mut [f32], im: &mut [f32]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -core::f64::consts::TAU / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (angle * k as f64).sin_cos();
                let (c, s) = (c as f32, s as f32);
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// Per-bin normalization statistics of log-mel features.
#[derive(Clone, Debug)]
pub struct MelNorm {
    /// Mean per mel bin.
    pub mean: Vec<f32>,
    /// Standard deviation per mel bin.
    pub std: Vec<f32>,
}

impl MelNorm {
    /// The mean and standard deviation of every bin over all frames of `features`.
    pub fn fit(features: &[MelFeatures]) -> Self {
        let n_mels = features.first().map(|f| f.n_mels).unwrap_or(0);
        let mut mean = vec![0f64; n_mels];
        let mut square = vec![0f64; n_mels];
        let mut count = 0usize;
        for f in features {
            for m in 0..n_mels {
                for v in &f.data[m * f.frames..(m + 1) * f.frames] {
                    mean[m] += *v as f64;
                    square[m] += (*v as f64) * (*v as f64);
                }
            }
            count += f.frames;
        }
        let count = count.max(1) as f64;
        let mean: Vec<f64> = mean.iter().map(|s| s / count).collect();
        let std = square
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / count - m * m).max(1e-8)).sqrt() as f32)
            .collect();
        Self {
            mean: mean.iter().map(|m| *m as f32).collect(),
            std,
        }
    }

    /// Normalizes `features` in place.
    pub fn apply(&self, features: &mut MelFeatures) {
        for m in 0..features.n_mels {
            let frames = features.frames;
            for v in &mut features.data[m * frames..(m + 1) * frames] {
                *v = (*v - self.mean[m]) / self.std[m];
            }
        }
    }
}

/// Normalized log-mel features of the training and validation utterances.
#[derive(Clone, Debug)]
pub struct MelSplit {
    /// Training utterances' features.
    pub train: Vec<MelFeatures>,
    /// Validation utterances' features.
    pub valid: Vec<MelFeatures>,
    /// The training utterances.
    pub train_utterances: Vec<Utterance>,
    /// The validation utterances.
    pub valid_utterances: Vec<Utterance>,
}

impl MelSplit {
    /// Features of `set` split by `val_fraction`, normalized with the
    /// statistics of the training part.
    pub fn new(set: &SpeechSet, val_fraction: f64, n_mels: usize) -> Self {
        let (train_utterances, valid_utterances) = set.split(val_fraction);
        let mel = MelSpectrogram::new(n_mels);
        let features = |u: &[Utterance]| -> Vec<MelFeatures> {
            u.iter().map(|u| mel.compute(&u.samples)).collect()
        };
        let (mut train, mut valid) = (features(&train_utterances), features(&valid_utterances));
        let norm = MelNorm::fit(&train);
        train
            .iter_mut()
            .chain(valid.iter_mut())
            .for_each(|f| norm.apply(f));
        Self {
            train,
            valid,
            train_utterances,
            valid_utterances,
        }
    }
}

/// `frames` frames of `features` from frame `start` on, `[n_mels, frames]`
/// mel-bin-major; frames past the end repeat the quietest value of each bin.
pub fn crop(features: &MelFeatures, start: usize, frames: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(features.n_mels * frames);
    for m in 0..features.n_mels {
        let row = &features.data[m * features.frames..(m + 1) * features.frames];
        let floor = row.iter().copied().fold(f32::INFINITY, f32::min);
        out.extend((start..start + frames).map(|t| row.get(t).copied().unwrap_or(floor)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_a_direct_dft() {
        let n = 16;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect();
        let (mut re, mut im) = (x.clone(), vec![0f32; n]);
        fft(&mut re, &mut im);
        for k in 0..n {
            let (mut r, mut i) = (0f64, 0f64);
            for (t, v) in x.iter().enumerate() {
                let a = -core::f64::consts::TAU * (k * t) as f64 / n as f64;
                r += *v as f64 * a.cos();
                i += *v as f64 * a.sin();
            }
            assert!((re[k] as f64 - r).abs() < 1e-4 && (im[k] as f64 - i).abs() < 1e-4);
        }
    }

    #[test]
    fn a_tone_lights_the_mel_bin_of_its_frequency() {
        let mel = MelSpectrogram::new(16);
        for hz in [300.0, 1000.0, 4000.0] {
            let samples: Vec<i16> = (0..4000)
                .map(|i| {
                    (8000.0 * (core::f64::consts::TAU * hz * i as f64 / SAMPLE_RATE as f64).sin())
                        as i16
                })
                .collect();
            let f = mel.compute(&samples);
            assert_eq!(f.frames, 1 + (4000 - WINDOW) / HOP);
            let t = f.frames / 2;
            let loudest = (0..16)
                .max_by(|a, b| f.data[a * f.frames + t].total_cmp(&f.data[b * f.frames + t]))
                .unwrap();
            let mel_of = |hz: f64| hz_to_mel(hz) / hz_to_mel(8000.0) * 17.0 - 1.0;
            assert!(
                (loudest as f64 - mel_of(hz)).abs() <= 1.0,
                "{hz} Hz: loudest bin {loudest}, expected near {:.1}",
                mel_of(hz)
            );
        }
    }

    #[test]
    fn the_committed_speech_set_loads_and_splits() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/speech");
        let set = SpeechSet::load(&dir).unwrap();
        assert!(set.utterances.len() >= 20, "{}", set.utterances.len());
        let text = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tinyshakespeare.txt"),
        )
        .unwrap();
        for u in &set.utterances {
            let line = &text[u.text_offset..u.text_offset + u.text.len()];
            assert_eq!(line, u.text.as_bytes(), "text offset of {:?}", u.text);
        }
        // The validation utterances speak lines of the validation text (its
        // last 10%, from byte 1,003,854), the training ones lines before it,
        // so the multimodal run's validation has spoken windows.
        let (train, valid) = set.split(0.1);
        let text_split = 1_003_854;
        assert!(train.iter().all(|u| u.text_offset < text_split));
        assert!(!valid.is_empty() && valid.iter().all(|u| u.text_offset >= text_split));
        let split = MelSplit::new(&set, 0.1, 16);
        assert!(!split.valid.is_empty() && split.train.len() > split.valid.len());
        let all: Vec<f32> = split.train.iter().flat_map(|f| f.data.clone()).collect();
        let mean = all.iter().sum::<f32>() / all.len() as f32;
        assert!(mean.abs() < 1e-3, "normalized mean {mean}");
    }

    #[test]
    fn malformed_index_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("arbitor-speech-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("speech.pcm"), vec![0u8; 200]).unwrap();
        std::fs::write(
            dir.join("index.tsv"),
            "# header\n0\t50\t0\tok\n50\tlots\t0\tbad\n",
        )
        .unwrap();
        let err = SpeechSet::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("index.tsv") && err.contains("line 3") && err.contains("samples"),
            "{err}"
        );
        std::fs::write(dir.join("index.tsv"), "0\t50\t0\tok\n50\t80\t0\tlong\n").unwrap();
        let err = SpeechSet::load(&dir).unwrap_err().to_string();
        assert!(err.contains("outside speech.pcm"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = SpeechSet::load(&dir).unwrap_err().to_string();
        assert!(err.contains("index.tsv"), "{err}");
    }
}
