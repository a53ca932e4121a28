#!/usr/bin/env python3
"""Writes the BitNet b1.58 checkpoint fixtures of `arbitor-models`
(`arbitor-models/tests/fixtures/bitnet/`): tiny randomly initialized
transformers `BitNetForCausalLM` models in the two formats transformers
loads, with reference logits computed by transformers in float32.

    packed_{a,b,c}/ quantization_config {quant_method: bitnet, linear_class:
                   bitlinear, quantization_mode: offline}: every projection's
                   `weight` is uint8 [out/4, in] (four trits per byte, packed
                   along the output dimension by transformers' `pack_weights`)
                   with a float `weight_scale` [1] (W = trits / weight_scale).
                   packed_b is written sharded (model.safetensors.index.json);
                   packed_c (vocabulary 512) carries the repository's
                   tokenizer.json (data/tokenizer/).
    latent_{a,b,c}/ quantization_config {quant_method: bitnet, linear_class:
                   autobitlinear, quantization_mode: online}: bf16 master
                   weights, ternarized per tensor by absmean at each forward
                   (like microsoft/bitnet-b1.58-2B-4T-bf16).

Each directory also holds `reference.safetensors`: `ids` (i64 [2, 7]) and
`logits` (f32 [2, 7, vocab]) of `model(ids)` after `from_pretrained(dir,
dtype=float32)`. A packed and a latent fixture of the same letter share their
weights: the packed one is the ternarization of the latent one's bf16 master
weights, so both have the same trits; packed_a keeps the f32 scales (same
logits as latent_a), packed_b's scales are rounded to bf16 as
microsoft/bitnet-b1.58-2B-4T stores them (logits about 1% apart).

Usage: python scripts/hf/make_bitnet_fixtures.py  (torch, transformers,
safetensors; runs on CPU in seconds).
"""

import json
import os
import shutil
import sys
from pathlib import Path

# transformers' BitLinear methods are wrapped in torch.compile; eager mode
# computes the same values and needs no C++ compiler.
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import BitNetConfig, BitNetForCausalLM  # noqa: E402
from transformers.integrations.bitnet import pack_weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "arbitor-models" / "tests" / "fixtures" / "bitnet"

PROJECTIONS = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
]

# Odd sizes: widths that are not multiples of 16 trits (our packing word) and
# grouped-query attention with kv heads < heads. Output widths stay multiples
# of 4 because transformers' BitLinear holds `out_features // 4` packed rows.
CONFIGS = {
    "a": dict(
        hidden_size=40,
        intermediate_size=76,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=67,
        max_position_embeddings=32,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        scale_dtype=torch.float32,
        shard=None,
    ),
    "b": dict(
        hidden_size=72,
        intermediate_size=100,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=3,
        vocab_size=89,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        # As microsoft/bitnet-b1.58-2B-4T stores it.
        scale_dtype=torch.bfloat16,
        shard="40KB",
    ),
    # The vocabulary of the repository's Tiny Shakespeare tokenizer
    # (data/tokenizer/tokenizer.json, 512 ids), copied into packed_c so that
    # `arbitor generate --hf` and `[model] from` runs find a tokenizer.
    "c": dict(
        hidden_size=40,
        intermediate_size=76,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        scale_dtype=torch.float32,
        shard=None,
    ),
}

# Fixtures that carry the repository's tokenizer.
TOKENIZER = ROOT / "data" / "tokenizer" / "tokenizer.json"
WITH_TOKENIZER = ["packed_c"]

LATENT_QUANT = {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"}
PACKED_QUANT = {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}


def reference(directory: Path, vocab: int, seed: int):
    """Logits of transformers' own load of `directory`, in float32."""
    model = BitNetForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (2, 7), generator=g)
    ids[0, 0] = vocab - 1  # the largest id
    with torch.no_grad():
        logits = model(ids).logits.float()
    save_file(
        {"ids": ids.to(torch.int64).contiguous(), "logits": logits.contiguous()},
        str(directory / "reference.safetensors"),
    )
    return model, logits


def ternarize(w: torch.Tensor):
    """transformers' WeightQuant: s = 1 / mean|W|, T = round(W s) clamped."""
    w = w.float()
    s = 1.0 / w.abs().mean().clamp(min=1e-5)
    return (w * s).round().clamp(-1, 1), s


def make(name: str, spec: dict, seed: int):
    spec = dict(spec)
    scale_dtype = spec.pop("scale_dtype")
    shard = spec.pop("shard")
    torch.manual_seed(seed)
    config = BitNetConfig(**spec)
    model = BitNetForCausalLM(config).eval()
    with torch.no_grad():
        # Norm gains away from 1 so that a missed gain shows in the logits.
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    # bf16 master weights, as the -bf16 checkpoints hold them.
    model = model.to(torch.bfloat16)

    latent = OUT / f"latent_{name}"
    shutil.rmtree(latent, ignore_errors=True)
    model.config.quantization_config = LATENT_QUANT
    model.save_pretrained(latent)
    _, latent_logits = reference(latent, config.vocab_size, seed + 1)

    # The packed checkpoint: the ternarization of the same bf16 master
    # weights, in transformers' packed layout; loaded and saved again by
    # transformers so that the files are what save_pretrained writes.
    state = {k: v.float() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    for layer in range(config.num_hidden_layers):
        for proj in PROJECTIONS:
            key = f"model.layers.{layer}.{proj}"
            trits, s = ternarize(state.pop(f"{key}.weight"))
            state[f"{key}.weight"] = pack_weights(trits.clone())
            state[f"{key}.weight_scale"] = s.reshape(1).to(scale_dtype)
    raw = OUT / f"raw_{name}"
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(raw / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg["quantization_config"] = PACKED_QUANT
    cfg["dtype"] = "float32"
    (raw / "config.json").write_text(json.dumps(cfg, indent=2))
    packed_model = BitNetForCausalLM.from_pretrained(raw, dtype=torch.float32)
    packed = OUT / f"packed_{name}"
    shutil.rmtree(packed, ignore_errors=True)
    if shard:
        packed_model.save_pretrained(packed, max_shard_size=shard)
    else:
        packed_model.save_pretrained(packed)
    shutil.rmtree(raw)
    _, packed_logits = reference(packed, config.vocab_size, seed + 1)
    diff = (packed_logits - latent_logits).abs().max() / latent_logits.abs().max()
    print(f"{name}: packed vs latent logits max rel diff {diff:.2e}; files:")
    for d in (latent, packed):
        for f in sorted(d.iterdir()):
            print(f"  {f.relative_to(OUT)} {f.stat().st_size} B")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for i, (name, spec) in enumerate(CONFIGS.items()):
        make(name, spec, 1000 + 10 * i)
    for name in WITH_TOKENIZER:
        shutil.copy(TOKENIZER, OUT / name / "tokenizer.json")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"total {total} B under {OUT}")


if __name__ == "__main__":
    sys.exit(main())
