#!/usr/bin/env python3
"""PyTorch BitNet-style peer of configs/shakespeare-ternary.toml: python3 scripts/peers/bitnet_peer.py --steps 3200 --out <file.json>

The same byte-level MLP as arbitor's `ternary-byte-mlp` (embedding 256 x d,
concat of `context` embeddings -> hidden -> RMSNorm -> ReLU -> hidden ->
RMSNorm -> ReLU -> 256 logits, parameter-free RMSNorm, no biases), but trained
the way BitNet b1.58 trains: float latent weights, the forward pass uses
absmean-ternarized weights `round(clip(W / mean|W|, -1, 1)) * mean|W|` with a
straight-through estimator, AdamW on the latents, bf16 autocast.

Prints median step time, peak CUDA memory (torch's allocator), persistent
training state bytes per weight, and the validation loss at the end, as one
JSON line (and writes it to --out if given).

    python3 scripts/peers/bitnet_peer.py --steps 3200 --out $OUT/bitnet_peer.json
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def ternarize_ste(w: torch.Tensor) -> torch.Tensor:
    scale = w.abs().mean().clamp(min=1e-5)
    q = (w / scale).round().clamp(-1, 1) * scale
    return w + (q - w).detach()


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype)


class BitByteMlp(torch.nn.Module):
    def __init__(self, context: int, d_embed: int, hidden: int):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(256, d_embed) * 0.5)
        self.hidden = torch.nn.Parameter(torch.randn(hidden, context * d_embed) / math.sqrt(context * d_embed))
        self.hidden2 = torch.nn.Parameter(torch.randn(hidden, hidden) / math.sqrt(hidden))
        self.out = torch.nn.Parameter(torch.randn(256, hidden) / math.sqrt(hidden))

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        e = F.embedding(ctx, ternarize_ste(self.embed))
        h = e.reshape(ctx.shape[0], -1)
        h = F.relu(rms_norm(F.linear(h, ternarize_ste(self.hidden))))
        h = F.relu(rms_norm(F.linear(h, ternarize_ste(self.hidden2))))
        return F.linear(h, ternarize_ste(self.out))


def batch(data: torch.Tensor, context: int, size: int, gen: torch.Generator):
    starts = torch.randint(0, data.numel() - context - 1, (size,), generator=gen, device=data.device)
    idx = starts[:, None] + torch.arange(context + 1, device=data.device)[None, :]
    w = data[idx].long()
    return w[:, :context], w[:, context]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="data/tinyshakespeare.txt")
    p.add_argument("--context", type=int, default=32)
    p.add_argument("--d-embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=3200)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-batches", type=int, default=50)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run")
    p.add_argument("--out")
    a = p.parse_args()

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    raw = torch.tensor(list(open(a.data, "rb").read()), dtype=torch.uint8)
    split = int(raw.numel() * (1 - a.val_fraction))
    train, val = raw[:split].to(dev), raw[split:].to(dev)

    model = BitByteMlp(a.context, a.d_embed, a.hidden).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    weights = sum(p.numel() for p in model.parameters())

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(a.steps):
        ctx, tgt = batch(train, a.context, a.batch, gen)
        sync()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(ctx).float(), tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if cuda else 0

    model.eval()
    vgen = torch.Generator(device=dev)
    vgen.manual_seed(1)
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16):
        losses = []
        for _ in range(a.eval_batches):
            ctx, tgt = batch(val, a.context, a.batch, vgen)
            losses.append(F.cross_entropy(model(ctx).float(), tgt).item())
    times = sorted(times[10:]) or times
    median = times[len(times) // 2]
    state = sum(p.numel() * p.element_size() for p in model.parameters())
    state += sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    result = {
        "peer": "pytorch-bitnet-ste-bf16",
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if cuda else "cpu",
        "weights": weights,
        "steps": a.steps,
        "batch": a.batch,
        "median_step_ms": round(median * 1e3, 3),
        "tokens_per_s": round(a.batch / median),
        "peak_cuda_mib": round(peak / 2**20, 1),
        "state_bytes_per_weight": round(state / weights, 3),
        "valid_loss": round(sum(losses) / len(losses), 4),
    }
    line = json.dumps(result)
    print(line)
    if a.out:
        with open(a.out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
