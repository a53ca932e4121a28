#!/usr/bin/env python3
"""Golden fixtures for the PigVae and TinyNeuralCodec sidecars: /work/pyenv/bin/python scripts/data/make_sidecar_fixtures.py

Run from the repository root with the project venv (CPU only, seeded, no network):

    /work/pyenv/bin/python scripts/data/make_sidecar_fixtures.py

For each fixture it writes under arbitor-models/tests/fixtures/sidecars/<name>/:

* the model as its library saves it: `config.json` and
  `diffusion_pytorch_model.safetensors` (diffusers `save_pretrained`) for the VAEs,
  `config.json` and `model.safetensors` for the codec;
* `io.safetensors`: fixed inputs and the reference outputs recorded in float32
  (VAE: `image`, `encoded`, `latents`, `decoded`; codec: `tokens` (I64), `waveform`).

The tiny models are randomly initialized (diffusers' own init, rescaled per
layer so activations stay O(1) through the depth) and then saved, so the
Rust port is checked against the upstream implementation itself. The codec
reference is the PyTorch module `TinyNeuralCodec` below, the architecture
documented in arbitor-models/src/sidecars/codec.rs.
"""

import json
import os
import shutil

import torch
import torch.nn.functional as F
from torch import nn
from safetensors.torch import save_file
from diffusers import AutoencoderTiny

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "arbitor-models", "tests", "fixtures", "sidecars")

VAE_CONFIGS = {
    # Three stages of width 8, one block each, ×2 upsampling, relu; odd image 13×11.
    "taesd_w8_s3": dict(
        config=dict(
            in_channels=3,
            out_channels=3,
            latent_channels=16,
            encoder_block_out_channels=(8, 8, 8),
            decoder_block_out_channels=(8, 8, 8),
            num_encoder_blocks=(1, 1, 1),
            num_decoder_blocks=(1, 1, 1),
            upsampling_scaling_factor=2,
            act_fn="relu",
        ),
        image=(2, 3, 13, 11),
        latents=(2, 16, 5, 3),
    ),
    # Two stages of width 12 with 1/2 (encoder) and 2/1 (decoder) blocks,
    # ×3 upsampling, silu; odd image 9×7, 4-channel output.
    "taesd_w12_s2": dict(
        config=dict(
            in_channels=4,
            out_channels=4,
            latent_channels=16,
            encoder_block_out_channels=(12, 12),
            decoder_block_out_channels=(12, 12),
            num_encoder_blocks=(1, 2),
            num_decoder_blocks=(2, 1),
            upsampling_scaling_factor=3,
            act_fn="silu",
        ),
        image=(1, 4, 9, 7),
        latents=(2, 16, 3, 4),
    ),
}


class TinyNeuralCodec(nn.Module):
    """Token embedding -> [ConvTranspose1d -> SiLU]* -> Conv1d -> tanh (see codec.rs)."""

    def __init__(self, vocab, dim, channels, kernel_sizes, strides, paddings, post_kernel):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        ups, c = [], dim
        for co, k, s, p in zip(channels, kernel_sizes, strides, paddings):
            ups.append(nn.ConvTranspose1d(c, co, k, stride=s, padding=p))
            c = co
        self.ups = nn.ModuleList(ups)
        self.post = nn.Conv1d(c, 1, post_kernel, padding=post_kernel // 2)

    def forward(self, tokens):
        x = self.embed(tokens).transpose(1, 2)
        for up in self.ups:
            x = F.silu(up(x))
        return torch.tanh(self.post(x)).squeeze(1)


CODEC_CONFIGS = {
    "codec_289": dict(
        config=dict(
            vocab=289,
            dim=24,
            channels=[24, 16, 8],
            kernel_sizes=[8, 4, 4],
            strides=[4, 2, 2],
            paddings=[2, 1, 1],
            post_kernel=7,
            sample_rate=16000,
        ),
        tokens=(2, 10),
    ),
    "codec_512": dict(
        config=dict(
            vocab=512,
            dim=20,
            channels=[20, 12, 10, 6],
            kernel_sizes=[6, 5, 4, 3],
            strides=[3, 2, 2, 1],
            paddings=[1, 2, 1, 1],
            post_kernel=5,
            sample_rate=24000,
        ),
        tokens=(1, 7),
    ),
}


def rescale(model, x):
    """Rescales each conv so its output has unit std on this input (keeps deep random nets O(1))."""
    hooks = []

    def hook(module, inputs, output):
        std = output.detach().std().item()
        if std > 0:
            module.weight.data /= std
            if module.bias is not None:
                module.bias.data /= std
            # Later layers see the rescaled activations.
            return output / std

    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d)):
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def make_vae(name, spec, seed):
    torch.manual_seed(seed)
    vae = AutoencoderTiny(**spec["config"]).eval()
    image = torch.rand(spec["image"]) * 2 - 1
    latents = torch.randn(spec["latents"]) * 2
    rescale(vae.encoder, image)
    rescale(vae.decoder, latents)
    with torch.no_grad():
        encoded = vae.encode(image).latents
        decoded = vae.decode(latents).sample
    path = os.path.join(OUT, name)
    fresh(path)
    vae.save_pretrained(path, safe_serialization=True)
    save_file(
        {
            "image": image.contiguous(),
            "encoded": encoded.contiguous(),
            "latents": latents.contiguous(),
            "decoded": decoded.contiguous(),
        },
        os.path.join(path, "io.safetensors"),
    )
    print(
        f"{name}: image {tuple(image.shape)} -> encoded {tuple(encoded.shape)} "
        f"(std {encoded.std():.3f}); latents {tuple(latents.shape)} -> decoded "
        f"{tuple(decoded.shape)} (std {decoded.std():.3f})"
    )


def make_codec(name, spec, seed):
    torch.manual_seed(seed)
    cfg = spec["config"]
    codec = TinyNeuralCodec(
        cfg["vocab"], cfg["dim"], cfg["channels"], cfg["kernel_sizes"], cfg["strides"],
        cfg["paddings"], cfg["post_kernel"],
    ).eval()
    tokens = torch.randint(0, cfg["vocab"], spec["tokens"], dtype=torch.int64)
    rescale(codec, tokens)
    # Bring the pre-tanh output to std ~0.7 so tanh is not saturated.
    codec.post.weight.data *= 0.7
    codec.post.bias.data *= 0.7
    with torch.no_grad():
        waveform = codec(tokens)
    path = os.path.join(OUT, name)
    fresh(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    save_file(
        {k: v.contiguous() for k, v in codec.state_dict().items()},
        os.path.join(path, "model.safetensors"),
    )
    save_file(
        {"tokens": tokens, "waveform": waveform.contiguous()},
        os.path.join(path, "io.safetensors"),
    )
    print(f"{name}: tokens {tuple(tokens.shape)} -> waveform {tuple(waveform.shape)} (std {waveform.std():.3f})")


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for i, (name, spec) in enumerate(VAE_CONFIGS.items()):
        make_vae(name, spec, seed=100 + i)
    for i, (name, spec) in enumerate(CODEC_CONFIGS.items()):
        make_codec(name, spec, seed=200 + i)
    total = 0
    for name in list(VAE_CONFIGS) + list(CODEC_CONFIGS):
        for root, _, files in os.walk(os.path.join(OUT, name)):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"total fixture bytes: {total}")


if __name__ == "__main__":
    main()
