#!/usr/bin/env python3
"""Golden fixtures for the Moonshine, DINOv2 and ViT sidecar encoders: /work/pyenv/bin/python scripts/data/make_vision_audio_fixtures.py

Builds tiny, randomly initialized transformers models (seeded), saves each
one's config.json and model.safetensors with the upstream tensor names, and
records fixed inputs and the reference outputs in io.safetensors:

    input.<k>              raw audio (batch, samples) or pixels (batch, 3, H, W)
    last_hidden_state.<k>  the upstream model's last_hidden_state
    pooler_output.<k>      the upstream pooler output, where the model has one

The reference outputs are computed in float64 from the float32 weights, so
they are the exact function the float32 weights define; they are stored as
float32. Every parameter (biases, norm gains, layer scales included) is
drawn at random, so that none of them can be dropped by the port unnoticed.

Run from the repository root (CPU only, a few seconds):

    /work/pyenv/bin/python scripts/data/make_vision_audio_fixtures.py

Output: arbitor-models/tests/fixtures/sidecars/{moonshine_a,moonshine_b,
dinov2_a,dinov2_b,vit_a,vit_b}/.
"""

import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    Dinov2Config,
    Dinov2Model,
    MoonshineConfig,
    MoonshineModel,
    ViTConfig,
    ViTModel,
)

ROOT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "..",
    "arbitor-models",
    "tests",
    "fixtures",
    "sidecars",
)


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter drawn from N(0, s^2), s chosen per kind of tensor."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            last = name.split(".")[-1]
            if "norm" in name and last == "weight":
                p.copy_(1.0 + 0.2 * noise)  # norm gains around 1
            elif last == "lambda1":
                p.copy_(0.5 + 0.2 * noise)  # layer scale
            elif "position" in name:
                p.copy_(noise)  # as large as the patch embeddings
            elif last == "bias" or "token" in name:
                p.copy_(0.1 * noise)
            else:
                fan_in = max(1, p[0].numel()) if p.dim() > 1 else 1
                p.copy_(noise / fan_in**0.5)


def write(name: str, config: dict, tensors: dict, io: dict) -> None:
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(
        {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()},
        os.path.join(out, "model.safetensors"),
    )
    save_file(
        {k: v.detach().to(torch.float32).contiguous() for k, v in io.items()},
        os.path.join(out, "io.safetensors"),
    )


def saved_config(model) -> dict:
    """The config.json that save_pretrained writes for this model."""
    return json.loads(model.config.to_json_string(use_diff=False))


# ---------------------------------------------------------------- Moonshine


def moonshine(name, seed, prefix, legacy_rope, audio_lengths, batch, **cfg):
    torch.manual_seed(seed)
    config = MoonshineConfig(
        vocab_size=8,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=cfg["encoder_num_attention_heads"],
        attn_implementation="eager",
        **cfg,
    )
    model = MoonshineModel(config).eval()
    randomize(model, seed)
    encoder = model.encoder
    # Only the encoder's tensors, under the prefix the checkpoint uses
    # (MoonshineModel: "encoder.", MoonshineForConditionalGeneration:
    # "model.encoder.").
    tensors = {prefix + k: v for k, v in encoder.state_dict().items()}
    config_json = saved_config(model)
    if legacy_rope:
        # The layout of the published checkpoints' config.json (transformers
        # 4.x): rope_theta and partial_rotary_factor at the top level.
        rope = config_json.pop("rope_parameters")
        config_json["rope_theta"] = rope["rope_theta"]
        config_json["partial_rotary_factor"] = rope["partial_rotary_factor"]
        config_json["rope_scaling"] = None
    io = {}
    gen = torch.Generator().manual_seed(seed + 1)
    encoder64 = encoder.double()
    for k, n in enumerate(audio_lengths):
        audio = 0.5 * torch.randn(batch, n, generator=gen, dtype=torch.float32)
        with torch.no_grad():
            out = encoder64(audio.double()).last_hidden_state
        io[f"input.{k}"] = audio
        io[f"last_hidden_state.{k}"] = out
    write(name, config_json, tensors, io)


# ------------------------------------------------------------------- DINOv2


def dinov2(name, seed, prefix, sizes, batch, **cfg):
    torch.manual_seed(seed)
    config = Dinov2Config(attn_implementation="eager", **cfg)
    model = Dinov2Model(config).eval()
    randomize(model, seed)
    # save_pretrained writes the checkpoint names (attention.attention.query,
    # mlp.weights_in, ...); state_dict() has the in-memory names. Use the
    # saved file so that the fixture holds what the Hub files hold.
    tmp = os.path.join(ROOT, f".{name}_tmp")
    model.save_pretrained(tmp)
    tensors = {prefix + k: v for k, v in load_file(os.path.join(tmp, "model.safetensors")).items()}
    config_json = json.load(open(os.path.join(tmp, "config.json")))
    shutil.rmtree(tmp)
    io = {}
    gen = torch.Generator().manual_seed(seed + 1)
    model64 = model.double()
    for k, (h, w) in enumerate(sizes):
        pixels = torch.randn(batch, cfg.get("num_channels", 3), h, w, generator=gen)
        with torch.no_grad():
            out = model64(pixels.double())
        io[f"input.{k}"] = pixels
        io[f"last_hidden_state.{k}"] = out.last_hidden_state
        io[f"pooler_output.{k}"] = out.pooler_output
    write(name, config_json, tensors, io)


# ---------------------------------------------------------------------- ViT


def vit(name, seed, prefix, pooler, sizes, batch, **cfg):
    torch.manual_seed(seed)
    config = ViTConfig(attn_implementation="eager", **cfg)
    model = ViTModel(config, add_pooling_layer=pooler).eval()
    randomize(model, seed)
    tmp = os.path.join(ROOT, f".{name}_tmp")
    model.save_pretrained(tmp)
    tensors = {prefix + k: v for k, v in load_file(os.path.join(tmp, "model.safetensors")).items()}
    config_json = json.load(open(os.path.join(tmp, "config.json")))
    shutil.rmtree(tmp)
    io = {}
    gen = torch.Generator().manual_seed(seed + 1)
    model64 = model.double()
    for k, (h, w) in enumerate(sizes):
        pixels = torch.randn(batch, cfg.get("num_channels", 3), h, w, generator=gen)
        with torch.no_grad():
            out = model64(pixels.double(), interpolate_pos_encoding=True)
        io[f"input.{k}"] = pixels
        io[f"last_hidden_state.{k}"] = out.last_hidden_state
        if pooler:
            io[f"pooler_output.{k}"] = out.pooler_output
    write(name, config_json, tensors, io)


def main() -> None:
    os.makedirs(ROOT, exist_ok=True)
    # head_dim 8: rotary dim int(8 * 0.9) = 7 is odd, 4 frequencies, the
    # whole head rotated.
    moonshine(
        "moonshine_a",
        seed=11,
        prefix="encoder.",
        legacy_rope=False,
        audio_lengths=[3001, 1153],
        batch=2,
        hidden_size=32,
        intermediate_size=64,
        encoder_num_hidden_layers=2,
        encoder_num_attention_heads=4,
    )
    # head_dim 20: rotary dim 18, 2 dims pass through; biases on q/k/v;
    # another theta; checkpoint layout of MoonshineForConditionalGeneration
    # with the transformers 4.x config.json.
    moonshine(
        "moonshine_b",
        seed=12,
        prefix="model.encoder.",
        legacy_rope=True,
        audio_lengths=[2437],
        batch=1,
        hidden_size=40,
        intermediate_size=96,
        encoder_num_hidden_layers=2,
        encoder_num_attention_heads=2,
        attention_bias=True,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.9},
    )
    # 4x4 patch grid at the config size; the second input is 37x23 (odd,
    # not square): a 5x3 grid, bicubic interpolation of the positions.
    dinov2(
        "dinov2_a",
        seed=21,
        prefix="",
        sizes=[(28, 28), (37, 23)],
        batch=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=28,
        patch_size=7,
    )
    # SwiGLU feed-forward (hidden 128), 3 heads of 16, patch 5, checkpoint
    # under the "dinov2." prefix (Dinov2ForImageClassification layout).
    dinov2(
        "dinov2_b",
        seed=22,
        prefix="dinov2.",
        sizes=[(30, 30), (43, 33)],
        batch=1,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=3,
        image_size=30,
        patch_size=5,
        use_swiglu_ffn=True,
        layer_norm_eps=1e-5,
    )
    vit(
        "vit_a",
        seed=31,
        prefix="",
        pooler=True,
        sizes=[(16, 16), (21, 29)],
        batch=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=16,
        patch_size=4,
    )
    # No pooler, no q/k/v bias, 6 heads of 8, "vit." prefix
    # (ViTForImageClassification layout, as google/vit-base-patch16-224).
    vit(
        "vit_b",
        seed=32,
        prefix="vit.",
        pooler=False,
        sizes=[(24, 24), (31, 43)],
        batch=1,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=6,
        intermediate_size=96,
        image_size=24,
        patch_size=6,
        qkv_bias=False,
    )
    total = 0
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if any(dirpath.endswith(n) for n in ("moonshine_a", "moonshine_b", "dinov2_a", "dinov2_b", "vit_a", "vit_b")):
                total += os.path.getsize(os.path.join(dirpath, f))
    print(f"fixtures written under {os.path.normpath(ROOT)}: {total} bytes")


if __name__ == "__main__":
    main()
