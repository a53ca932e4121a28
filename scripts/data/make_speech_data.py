#!/usr/bin/env python3
"""Synthesizes data/speech/ (the audio configs' speech set) with espeak-ng: python3 scripts/data/make_speech_data.py

    apt-get install -y espeak-ng   # once
    python3 scripts/data/make_speech_data.py

Reads lines of data/tinyshakespeare.txt that are spoken text of 12 to 36
characters (no speaker names): the first ones in file order for training
(90% of the size budget), then the first ones at or after byte 1,003,854,
the start of the validation text (the other 10%), so a validation window of
the multimodal run can be a spoken one. Speaks each with
espeak-ng (voice `en`, 200 words per minute), resamples the 22,050 Hz output
to 16 kHz mono 16-bit with a windowed-sinc filter, trims the leading and
trailing silence, and packs everything into data/speech/:

    speech.pcm   every utterance's samples, raw little-endian i16, back to back
    index.tsv    one line per utterance: start sample, sample count, byte
                 offset of the line in data/tinyshakespeare.txt, the text

It stops before the PCM file would exceed MAX_PCM_BYTES, so the committed set
stays small (under 2 MB). Only the Python standard library is used; the
output is the same on every run with the same espeak-ng version (1.51 made
the committed copy).
"""

import math
import os
import struct
import subprocess
import sys
import tempfile
import wave

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = os.path.join(ROOT, "data", "tinyshakespeare.txt")
OUT = os.path.join(ROOT, "data", "speech")
RATE = 16000
MAX_PCM_BYTES = 1_800_000
VALID_FROM = 1_003_854  # the validation split of the text (its last 10%)
VALID_SHARE = 0.1  # of MAX_PCM_BYTES, for validation lines
MIN_CHARS, MAX_CHARS = 12, 36
SILENCE = 300  # |sample| below this counts as silence when trimming
KEEP = RATE // 20  # silence kept at each end after trimming (50 ms)
TAPS = 16  # one-sided length of the resampling filter, in input samples


def spoken_lines(text: bytes):
    """(byte offset, line) of the candidate lines, in file order."""
    offset = 0
    for raw in text.split(b"\n"):
        line = raw.decode("utf-8", "replace").strip()
        if MIN_CHARS <= len(line) <= MAX_CHARS and not line.endswith(":"):
            yield offset, line
        offset += len(raw) + 1


def speak(line: str) -> tuple[int, list[int]]:
    """espeak-ng's samples of `line` and their rate."""
    with tempfile.TemporaryDirectory() as tmp:
        src, wav = os.path.join(tmp, "line.txt"), os.path.join(tmp, "line.wav")
        with open(src, "w", encoding="utf-8") as f:
            f.write(line)
        subprocess.run(
            ["espeak-ng", "-v", "en", "-s", "200", "-f", src, "-w", wav],
            check=True,
        )
        with wave.open(wav) as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                sys.exit(f"espeak-ng wrote an unexpected format for {line!r}")
            rate, frames = w.getframerate(), w.readframes(w.getnframes())
    return rate, list(struct.unpack(f"<{len(frames) // 2}h", frames))


def resample(samples: list[int], rate: int) -> list[int]:
    """Windowed-sinc (Hann) resampling from `rate` to RATE."""
    if rate == RATE:
        return samples
    ratio = RATE / rate
    cutoff = min(1.0, ratio)  # low-pass at the lower Nyquist frequency
    out = []
    n_out = int(len(samples) * ratio)
    for i in range(n_out):
        centre = i / ratio
        first = max(0, math.ceil(centre - TAPS))
        last = min(len(samples) - 1, math.floor(centre + TAPS))
        acc = 0.0
        for j in range(first, last + 1):
            x = j - centre
            window = 0.5 + 0.5 * math.cos(math.pi * x / TAPS)
            arg = math.pi * x * cutoff
            sinc = 1.0 if x == 0 else math.sin(arg) / arg
            acc += samples[j] * cutoff * sinc * window
        out.append(max(-32768, min(32767, round(acc))))
    return out


def trim(samples: list[int]) -> list[int]:
    """Drops the silence at both ends, keeping KEEP samples of it."""
    loud = [i for i, s in enumerate(samples) if abs(s) >= SILENCE]
    if not loud:
        return []
    return samples[max(0, loud[0] - KEEP) : loud[-1] + 1 + KEEP]


def main() -> None:
    with open(TEXT, "rb") as f:
        text = f.read()
    os.makedirs(OUT, exist_ok=True)
    pcm, index = bytearray(), []
    train_budget = int(MAX_PCM_BYTES * (1 - VALID_SHARE))
    for first, budget in [(0, train_budget), (VALID_FROM, MAX_PCM_BYTES)]:
        for offset, line in spoken_lines(text):
            if offset < first:
                continue
            if first == 0 and offset + len(line.encode()) > VALID_FROM:
                break
            rate, samples = speak(line)
            samples = trim(resample(samples, rate))
            if not samples:
                continue
            if len(pcm) + 2 * len(samples) > budget:
                break
            index.append((len(pcm) // 2, len(samples), offset, line))
            pcm += struct.pack(f"<{len(samples)}h", *samples)
    valid = sum(offset >= VALID_FROM for _, _, offset, _ in index)
    print(f"{len(index) - valid} training and {valid} validation utterances")
    with open(os.path.join(OUT, "speech.pcm"), "wb") as f:
        f.write(pcm)
    with open(os.path.join(OUT, "index.tsv"), "w", encoding="utf-8") as f:
        f.write(f"# speech.pcm: {RATE} Hz mono i16 little-endian; made by scripts/data/make_speech_data.py\n")
        f.write("# start\tsamples\ttext_offset\ttext\n")
        for start, count, offset, line in index:
            f.write(f"{start}\t{count}\t{offset}\t{line}\n")
    seconds = len(pcm) / 2 / RATE
    print(f"{len(index)} utterances, {seconds:.1f} s, {len(pcm)} bytes -> {OUT}")


if __name__ == "__main__":
    main()
