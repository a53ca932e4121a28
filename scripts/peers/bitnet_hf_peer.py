#!/usr/bin/env python3
"""transformers' own BitNet b1.58 (BitNetForCausalLM with its packed
`BitLinear` layers, W1.58A8) as a timing peer: python3 scripts/peers/bitnet_hf_peer.py --out <file.json>

The model is built at the shape of microsoft/bitnet-b1.58-2B-4T (or
--tiny for a smoke run) with random weights: the projections are replaced by
transformers' `replace_with_bitnet_linear` (linear_class "bitlinear",
quantization_mode "offline", as the packed checkpoint loads), their uint8
weights filled with random trits (four per byte, codes 0..2) and
weight_scale 1; embeddings and norms random bf16. Each BitLinear unpacks its
weight to bf16 and quantizes its input per token at every call, as
transformers runs the published checkpoint.

Measured, each after one warm-up and as the median of --repeats runs: the
prefill of --prefill-len tokens at batch 1 (tokens/s), then for each batch
size a --prompt-len prompt and --new greedy single-token steps with the
transformers KV cache (decode tokens/s = batch * new / decode seconds, ms
per token), and torch.cuda.max_memory_allocated().

One JSON line goes to stdout (and to --out); progress to stderr.
"""
import argparse
import json
import statistics
import sys
import time

import torch
from transformers import BitNetConfig, BitNetForCausalLM, BitNetQuantConfig
from transformers.integrations.bitnet import BitLinear, replace_with_bitnet_linear

TWO_B = dict(hidden_size=2560, intermediate_size=6912, num_hidden_layers=30, num_attention_heads=20,
             num_key_value_heads=5, vocab_size=128256, max_position_embeddings=4096, rms_norm_eps=1e-5,
             rope_theta=500000.0, tie_word_embeddings=True)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=101, max_position_embeddings=1024, rms_norm_eps=1e-5,
            rope_theta=10000.0, tie_word_embeddings=True)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def build(shape: dict, device: str, dtype) -> BitNetForCausalLM:
    config = BitNetConfig(**shape)
    with torch.device(device):
        model = BitNetForCausalLM(config).to(dtype)
    quant = BitNetQuantConfig(linear_class="bitlinear", quantization_mode="offline")
    replace_with_bitnet_linear(model, modules_to_not_convert=["lm_head"], quantization_config=quant)
    g = torch.Generator(device=device).manual_seed(0)
    for module in model.modules():
        if isinstance(module, BitLinear):
            rows = module.out_features // 4
            codes = torch.randint(0, 3, (4, rows, module.in_features), generator=g, device=device, dtype=torch.uint8)
            packed = codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)
            module.weight = torch.nn.Buffer(packed)
            module.weight_scale = torch.nn.Buffer(torch.ones(1, dtype=dtype, device=device))
    return model.eval()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def run(model, batch, prompt_len, new, device, vocab):
    ids = torch.randint(0, vocab, (batch, prompt_len), device=device)
    sync(device)
    t0 = time.perf_counter()
    out = model(ids, use_cache=True)
    cache = out.past_key_values
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    sync(device)
    t1 = time.perf_counter()
    for _ in range(new):
        out = model(token, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    sync(device)
    return t1 - t0, time.perf_counter() - t1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tiny", action="store_true", help="a tiny shape (smoke run)")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--prefill-len", type=int, default=512)
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out")
    a = p.parse_args()
    shape = TINY if a.tiny else TWO_B
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    model = build(shape, a.device, dtype)
    vocab = shape["vocab_size"]
    results = []
    run(model, 1, a.prefill_len, 1, a.device, vocab)
    times = [run(model, 1, a.prefill_len, 0, a.device, vocab)[0] for _ in range(a.repeats)]
    prefill = statistics.median(times)
    results.append(dict(mode="prefill", batch=1, prompt_len=a.prefill_len, prefill_ms=prefill * 1e3,
                        prefill_tokens_per_s=a.prefill_len / prefill))
    log(results[-1])
    for batch in [int(b) for b in a.batches.split(",")]:
        if a.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        run(model, batch, a.prompt_len, 8, a.device, vocab)
        decode = statistics.median(run(model, batch, a.prompt_len, a.new, a.device, vocab)[1] for _ in range(a.repeats))
        peak = torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else None
        results.append(dict(mode="decode", batch=batch, prompt_len=a.prompt_len, new=a.new,
                            decode_tokens_per_s=batch * a.new / decode, ms_per_token=decode / a.new * 1e3,
                            peak_mem_mib=peak))
        log(results[-1])
    line = json.dumps(dict(peer="transformers BitNetForCausalLM (BitLinear, offline packed)",
                           torch=torch.__version__, shape=shape, results=results))
    print(line)
    if a.out:
        open(a.out, "w").write(line + "\n")


if __name__ == "__main__":
    main()
