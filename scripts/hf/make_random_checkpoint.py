#!/usr/bin/env python3
"""Writes a transformers BitNet checkpoint directory with random packed
weights at the shape of microsoft/bitnet-b1.58-2B-4T (or --layers/--vocab
smaller), for memory and speed runs of `arbitor generate --hf` where the
published checkpoint cannot be downloaded:

    python3 scripts/hf/make_random_checkpoint.py --out /tmp/bitnet-2b4t-random
    /usr/bin/time -v arbitor generate --hf /tmp/bitnet-2b4t-random --prompt "ROMEO:" --max-new 8

The layout is the published one (transformers' "bitlinear" offline format):
each projection's trits in {-1, 0, 1} packed four per uint8 along the rows
(`[out / 4, in]`, code t + 1 at bits 2k for the k-th quarter of the rows)
with a float32 `weight_scale` of one element; float32 embedding and norm
gains; `config.json` with the 2B-4T keys. Needs numpy and safetensors only.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SHAPE = dict(hidden_size=2560, intermediate_size=6912, num_hidden_layers=30, num_attention_heads=20,
             num_key_value_heads=5, vocab_size=128256, max_position_embeddings=4096)


def packed(rng, rows, cols):
    codes = rng.integers(0, 3, size=(4, rows // 4, cols), dtype=np.uint8)
    return codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--layers", type=int, default=SHAPE["num_hidden_layers"])
    parser.add_argument("--vocab", type=int, default=SHAPE["vocab_size"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shape = dict(SHAPE, num_hidden_layers=args.layers, vocab_size=args.vocab)
    d, i = shape["hidden_size"], shape["intermediate_size"]
    kv = d // shape["num_attention_heads"] * shape["num_key_value_heads"]
    rng = np.random.default_rng(args.seed)
    tensors = {
        "model.embed_tokens.weight": rng.standard_normal((args.vocab, d), dtype=np.float32) * 0.02,
        "model.norm.weight": np.ones(d, dtype=np.float32),
    }
    for layer in range(args.layers):
        p = f"model.layers.{layer}"
        for name, width in [("input_layernorm", d), ("post_attention_layernorm", d),
                            ("self_attn.attn_sub_norm", d), ("mlp.ffn_sub_norm", i)]:
            tensors[f"{p}.{name}.weight"] = np.ones(width, dtype=np.float32)
        for name, (rows, cols) in [("self_attn.q_proj", (d, d)), ("self_attn.k_proj", (kv, d)),
                                   ("self_attn.v_proj", (kv, d)), ("self_attn.o_proj", (d, d)),
                                   ("mlp.gate_proj", (i, d)), ("mlp.up_proj", (i, d)),
                                   ("mlp.down_proj", (d, i))]:
            tensors[f"{p}.{name}.weight"] = packed(rng, rows, cols)
            tensors[f"{p}.{name}.weight_scale"] = np.array([rng.uniform(0.5, 2.0)], dtype=np.float32)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = dict(shape, architectures=["BitNetForCausalLM"], model_type="bitnet", hidden_act="relu2",
                  rms_norm_eps=1e-5, tie_word_embeddings=True, attention_bias=False,
                  rope_parameters={"rope_theta": 500000.0, "rope_type": "default"},
                  quantization_config={"quant_method": "bitnet", "linear_class": "bitlinear",
                                       "quantization_mode": "offline"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    weights = sum(v.size * 4 for k, v in tensors.items() if v.dtype == np.uint8)
    print(f"{out}: {args.layers} layers, vocabulary {args.vocab}, {weights:,} ternary weights")


if __name__ == "__main__":
    main()
