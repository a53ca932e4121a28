#!/usr/bin/env python3
"""PyTorch peer for timing autoregressive decoding: python3 scripts/peers/decode_peer.py [--preset bitnet-2b] --out <file.json>

A decoder-only transformer with random weights (timing only): token embedding
vocab x d plus a learned position embedding max_seq x d (or RoPE,
--rope-theta); pre-norm blocks of RMSNorm (learned gain) -> causal
self-attention (grouped-query with --n-kv-heads) -> [attention sub-norm] ->
o -> residual, RMSNorm -> up (or relu(gate)^2 * up with --gated) -> GELU or
squared ReLU -> [MLP sub-norm] -> down -> residual; final RMSNorm -> LM head
(the embedding itself with --tie-embeddings); no biases. q, k and v come from
one fused matmul, gate and up from another. Each
layer holds a KV cache preallocated as [batch, kv_heads, max_seq, head_dim] and
written in place with index_copy_, so the prefix is never recomputed; every
call attends over the whole cache under a mask `slot <= position`, which keeps
the single-token step's shapes fixed for torch.compile and CUDA graphs.

For each mode (--modes eager,compile) and batch size (--batches 1,8): a prompt
of --prompt-len random tokens is prefilled in one forward (filling the cache
and giving the first token), then --new greedy (argmax) steps of one token
each. One short warm-up run (--warmup-new steps) precedes each configuration,
then --repeats measured runs; the medians are reported: prefill ms, decode
tokens/s (batch * new / decode seconds), ms per token (decode seconds / new),
and torch.cuda.max_memory_allocated() over the measured runs (the peak is reset
after the warm-up, so compile-time autotuning scratch is left out; weights, KV
cache and any CUDA-graph pool are in). `compile` wraps only the single-token step in torch.compile
(--compile-mode, default reduce-overhead, i.e. CUDA graphs); the prefill stays
eager in both modes. A compile failure is recorded as "compile_error".

Defaults are the seed-scale arb-text shape (vocab 256, d 512, 6 layers, 8
heads, MLP 2048, GELU, learned positions). --preset bitnet-2b gives BitNet
b1.58 2B4T's architecture (transformers' BitNetForCausalLM, the shape of
configs/bitnet-2b4t.toml) with dense bf16 weights: d 2560, 30 layers, 20 query
and 5 key/value heads, gated squared-ReLU MLP 6912, RoPE theta 500000, the
attention and MLP sub-norms, vocab 128256 with tied embeddings; explicit shape
flags override the preset. bf16 weights on CUDA by default, fp32 on CPU.

One JSON line goes to stdout (and to --out if given); progress goes to stderr.

    python3 scripts/peers/decode_peer.py --out $OUT/decode_peer.json
    python3 scripts/peers/decode_peer.py --preset bitnet-2b --out $OUT/decode_peer_2b.json
    python3 scripts/peers/decode_peer.py --device cpu --modes eager --batches 1,2 --new 8 --repeats 1
"""
import argparse
import gc
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

SEED_SCALE = dict(vocab=256, d_model=512, n_layers=6, n_heads=8, mlp_hidden=2048, mlp_act="gelu",
                  n_kv_heads=None, gated=False, rope_theta=None, tie_embeddings=False, sub_norms=False)
PRESETS = {"bitnet-2b": dict(vocab=128256, d_model=2560, n_layers=30, n_heads=20, mlp_hidden=6912, mlp_act="relu2",
                             n_kv_heads=5, gated=True, rope_theta=500000.0, tie_embeddings=True, sub_norms=True)}


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """transformers' Llama convention: the two halves of a head form the pairs."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Block(torch.nn.Module):
    def __init__(self, s, out_std: float, param):
        super().__init__()
        d, hidden = s.d_model, s.mlp_hidden
        self.heads, self.kv_heads, self.head_dim = s.n_heads, s.n_kv_heads, d // s.n_heads
        self.act, self.gated = s.mlp_act, s.gated
        self.attn_norm, self.mlp_norm = param((d,), None), param((d,), None)
        self.qkv = param(((self.heads + 2 * self.kv_heads) * self.head_dim, d), 0.02)
        self.o = param((d, d), out_std)
        self.up = param(((2 if s.gated else 1) * hidden, d), 0.02)  # [gate; up] when gated
        self.down = param((d, hidden), out_std)
        self.attn_sub_norm = param((d,), None) if s.sub_norms else None
        self.ffn_sub_norm = param((hidden,), None) if s.sub_norms else None
        self.register_buffer("k_cache", None, persistent=False)
        self.register_buffer("v_cache", None, persistent=False)

    def forward(self, x, pos, mask, rope) -> torch.Tensor:
        b, t, d = x.shape
        hd = self.head_dim
        h = F.rms_norm(x, (d,), self.attn_norm, 1e-6)
        q, k, v = F.linear(h, self.qkv).split([self.heads * hd, self.kv_heads * hd, self.kv_heads * hd], -1)
        q = q.view(b, t, self.heads, hd).transpose(1, 2)
        k = k.view(b, t, self.kv_heads, hd).transpose(1, 2)
        v = v.view(b, t, self.kv_heads, hd).transpose(1, 2)
        if rope is not None:
            cos, sin = rope
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        self.k_cache.index_copy_(2, pos, k)
        self.v_cache.index_copy_(2, pos, v)
        att = F.scaled_dot_product_attention(q, self.k_cache, self.v_cache, attn_mask=mask,
                                             enable_gqa=self.kv_heads != self.heads)
        att = att.transpose(1, 2).reshape(b, t, d)
        if self.attn_sub_norm is not None:
            att = F.rms_norm(att, (d,), self.attn_sub_norm, 1e-6)
        x = x + F.linear(att, self.o)
        h = F.linear(F.rms_norm(x, (d,), self.mlp_norm, 1e-6), self.up)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            h = F.relu(gate).square() * up if self.act == "relu2" else F.gelu(gate) * up
        else:
            h = F.gelu(h) if self.act == "gelu" else F.relu(h).square()
        if self.ffn_sub_norm is not None:
            h = F.rms_norm(h, (h.shape[-1],), self.ffn_sub_norm, 1e-6)
        return x + F.linear(h, self.down)


class Decoder(torch.nn.Module):
    def __init__(self, s, max_seq: int, dev: torch.device, dtype: torch.dtype):
        super().__init__()
        gen = torch.Generator(device=dev)
        gen.manual_seed(0)

        def param(shape, std):
            # Created directly on the device in the target dtype: a 2B model never exists in fp32.
            if std is None:
                t = torch.ones(shape, device=dev, dtype=dtype)
            else:
                t = torch.randn(shape, generator=gen, device=dev, dtype=dtype) * std
            return torch.nn.Parameter(t, requires_grad=False)

        self.max_seq, self.heads, self.head_dim = max_seq, s.n_heads, s.d_model // s.n_heads
        self.kv_heads = s.n_kv_heads
        self.tok = param((s.vocab, s.d_model), 0.02)
        self.pos = param((max_seq, s.d_model), 0.02) if s.rope_theta is None else None
        out_std = 0.02 / math.sqrt(2 * s.n_layers)
        self.blocks = torch.nn.ModuleList(Block(s, out_std, param) for _ in range(s.n_layers))
        self.norm = param((s.d_model,), None)
        self.head = self.tok if s.tie_embeddings else param((s.vocab, s.d_model), 0.02)
        self.register_buffer("slots", torch.arange(max_seq, device=dev), persistent=False)
        if s.rope_theta is not None:
            # As transformers computes them: f32 inverse frequencies and angles, both halves alike.
            hd = self.head_dim
            inv_freq = 1.0 / (s.rope_theta ** (torch.arange(0, hd, 2, device=dev, dtype=torch.float32) / hd))
            angles = torch.arange(max_seq, device=dev, dtype=torch.float32)[:, None] * inv_freq[None, :]
            angles = torch.cat((angles, angles), dim=-1)
            self.register_buffer("cos", angles.cos().to(dtype), persistent=False)
            self.register_buffer("sin", angles.sin().to(dtype), persistent=False)
        else:
            self.cos = self.sin = None

    def setup_cache(self, batch: int) -> list:
        for blk in self.blocks:  # drop the previous batch size's cache before allocating the next
            blk.k_cache = blk.v_cache = None
        shape = (batch, self.kv_heads, self.max_seq, self.head_dim)
        for blk in self.blocks:
            blk.k_cache = torch.zeros(shape, device=self.tok.device, dtype=self.tok.dtype)
            blk.v_cache = torch.zeros(shape, device=self.tok.device, dtype=self.tok.dtype)
        return [t for blk in self.blocks for t in (blk.k_cache, blk.v_cache)]

    def forward(self, idx: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """idx [B, T] at cache slots pos [T] -> greedy next token [B, 1]."""
        x = F.embedding(idx, self.tok)
        rope = None
        if self.pos is not None:
            x = x + F.embedding(pos, self.pos)
        else:
            rope = (self.cos[pos], self.sin[pos])  # [T, head_dim], broadcast over batch and heads
        # Slots past each position hold stale or zero entries; the mask hides them.
        mask = self.slots[None, :] <= pos[:, None]
        for blk in self.blocks:
            x = blk(x, pos, mask, rope)
        logits = F.linear(F.rms_norm(x[:, -1], (x.shape[-1],), self.norm, 1e-6), self.head)
        return logits.argmax(-1, keepdim=True)


def generate(model, step, prompt, prompt_pos, positions, sync, graphs: bool):
    """Prefill, then one step per entry of positions; returns (prefill s, decode s)."""
    sync()
    t0 = time.perf_counter()
    tok = model(prompt, prompt_pos)
    sync()
    t1 = time.perf_counter()
    for pos in positions:
        if graphs:
            # A CUDA-graph replay overwrites its previous outputs; start a new step and keep a copy.
            torch.compiler.cudagraph_mark_step_begin()
            tok = step(tok, pos).clone()
        else:
            tok = step(tok, pos)
    sync()
    return t1 - t0, time.perf_counter() - t1


def measure(a, model, mode: str, batch: int, dev, sync) -> dict:
    cuda = dev.type == "cuda"
    caches = model.setup_cache(batch)
    gen = torch.Generator(device=dev)
    gen.manual_seed(batch)
    prompt = torch.randint(0, model.tok.shape[0], (batch, a.prompt_len), generator=gen, device=dev)
    prompt_pos = torch.arange(a.prompt_len, device=dev)
    # One tensor per position, made before timing: no per-step allocation, and each is a
    # fresh [1] tensor (no storage offsets for dynamo to guard on).
    positions = [torch.tensor([p], device=dev) for p in range(a.prompt_len, a.prompt_len + a.new)]
    step, graphs = model, False
    if mode == "compile":
        torch._dynamo.reset()
        for t in caches:  # the caches are mutated in place: keep their addresses fixed for CUDA graphs
            torch._dynamo.mark_static_address(t)
        step = torch.compile(lambda tok, pos: model(tok, pos), mode=a.compile_mode, fullgraph=True, dynamic=False)
        graphs = cuda and a.compile_mode in ("reduce-overhead", "max-autotune")
    t0 = time.perf_counter()
    # Short warm-up; long enough for CUDA graph trees to warm up, record and replay.
    generate(model, step, prompt, prompt_pos, positions[: a.warmup_new], sync, graphs)
    warmup_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    runs = [generate(model, step, prompt, prompt_pos, positions, sync, graphs) for _ in range(a.repeats)]
    prefill = statistics.median(r[0] for r in runs)
    decode = statistics.median(r[1] for r in runs)
    return {
        "prefill_ms": round(prefill * 1e3, 3),
        "decode_tokens_per_s": round(batch * a.new / decode, 1),
        "ms_per_token": round(decode / a.new * 1e3, 4),
        "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "warmup_s": round(warmup_s, 2),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", choices=sorted(PRESETS), help="shape preset; explicit shape flags override it")
    p.add_argument("--vocab", type=int)
    p.add_argument("--d-model", type=int)
    p.add_argument("--n-layers", type=int)
    p.add_argument("--n-heads", type=int)
    p.add_argument("--mlp-hidden", type=int)
    p.add_argument("--mlp-act", choices=("gelu", "relu2"), help="relu2: squared ReLU (BitNet)")
    p.add_argument("--n-kv-heads", type=int, help="key/value heads (grouped-query attention); default: --n-heads")
    p.add_argument("--gated", action=argparse.BooleanOptionalAction, help="gated MLP: act(gate) * up")
    p.add_argument("--rope-theta", type=float, help="rotary positions of this base instead of learned ones")
    p.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, help="LM head = token embedding")
    p.add_argument("--sub-norms", action=argparse.BooleanOptionalAction,
                   help="BitNet's RMSNorms before o and down")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--compile-mode", default="reduce-overhead", help="e.g. max-autotune-no-cudagraphs")
    p.add_argument("--warmup-new", type=int, default=8, help="decode steps of the warm-up run")
    p.add_argument("--repeats", type=int, default=3, help="measured runs per configuration; medians reported")
    p.add_argument("--dtype", choices=("bf16", "fp32"), help="default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run")
    p.add_argument("--out")
    a = p.parse_args()

    shape = dict(SEED_SCALE, **PRESETS.get(a.preset, {}))
    for k in shape:
        if getattr(a, k) is not None:
            shape[k] = getattr(a, k)
    if shape["n_kv_heads"] is None:
        shape["n_kv_heads"] = shape["n_heads"]
    s = argparse.Namespace(**shape)
    if s.d_model % s.n_heads:
        sys.exit(f"--d-model {s.d_model} is not a multiple of --n-heads {s.n_heads}")
    if s.n_heads % s.n_kv_heads:
        sys.exit(f"--n-kv-heads {s.n_kv_heads} does not divide --n-heads {s.n_heads}")
    if s.rope_theta is not None and (s.d_model // s.n_heads) % 2:
        sys.exit(f"--rope-theta needs an even head width, not {s.d_model // s.n_heads}")
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    dtype_name = a.dtype or ("bf16" if cuda else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    max_seq = a.prompt_len + a.new
    a.warmup_new = max(1, min(a.warmup_new, a.new))

    torch.manual_seed(0)
    with torch.no_grad():
        model = Decoder(s, max_seq, dev, dtype).eval()
        params = sum(p.numel() for p in model.parameters())
        print(f"{params / 1e6:.1f}M params, {dtype_name}, {dev}", file=sys.stderr, flush=True)
        results = []
        for mode in a.modes.split(","):
            for batch in (int(b) for b in a.batches.split(",")):
                r = {"mode": mode, "batch": batch, "prompt_len": a.prompt_len, "new": a.new,
                     "dtype": dtype_name, "params": params}
                if mode == "compile" and not cuda:
                    r["compile_error"] = "skipped: compile is only measured on CUDA"
                elif mode == "compile":
                    try:
                        r.update(measure(a, model, mode, batch, dev, sync))
                    except Exception as e:  # record and go on: the eager numbers still stand
                        r["compile_error"] = f"{type(e).__name__}: {e}"[:2000]
                elif mode == "eager":
                    r.update(measure(a, model, mode, batch, dev, sync))
                else:
                    sys.exit(f"unknown mode {mode!r}: eager or compile")
                results.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()

    result = {
        "peer": "pytorch-decode",
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "torch": torch.__version__,
        "preset": a.preset,
        "shape": dict(shape, max_seq=max_seq, position="learned" if s.rope_theta is None else "rope",
                      kv_cache="preallocated, index_copy_"),
        "dtype": dtype_name,
        "params": params,
        "compile_mode": a.compile_mode,
        "repeats": a.repeats,
        "results": results,
    }
    line = json.dumps(result)
    print(line)
    if a.out:
        with open(a.out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
