#!/usr/bin/env python3
"""PyTorch BitNet-style peers of arbitor's byte-level text runs: python3 scripts/peers/bitnet_peer.py [--model mlp|transformer] --steps N --out <file.json>

Both peers train with float latent weights whose forward pass uses
absmean-ternarized weights `round(clip(W / mean|W|, -1, 1)) * mean|W|` with a
straight-through estimator (BitNet b1.58), AdamW on the latents, bf16 autocast.

`--model mlp` (default), peer of configs/shakespeare-ternary.toml: the same
byte-level MLP as arbitor's `ternary-byte-mlp` (embedding 256 x d, concat of
`context` embeddings -> hidden -> RMSNorm -> ReLU -> hidden -> RMSNorm -> ReLU
-> 256 logits, parameter-free RMSNorm, no biases; the embedding is ternarized
too). Reports median step time, peak CUDA memory (torch's allocator),
persistent training state bytes per weight and the validation loss over 50
random validation batches.

`--model transformer`, peer of the ternary ARBModel text run at seed scale: a
byte-level decoder-only transformer (token embedding 256 x d plus learned
position embedding seq x d; pre-norm blocks of parameter-free RMSNorm -> causal
multi-head self-attention -> residual, RMSNorm -> up, GELU, down -> residual;
final RMSNorm -> LM head to 256; no biases). Every linear (q, k, v, o, up,
down, LM head) is ternarized; the two embeddings stay float, and activations
are not quantized. `--dense` trains the same network with plain float linears
as the dense reference. AdamW betas (0.9, 0.95), weight decay 0.1 on the
linears and none on the embeddings, linear warmup then cosine decay to 0.1 x
--lr. Training windows lie wholly inside the train split (the first
int(n * 0.9) bytes); the validation loss is a full deterministic pass over the
rest: non-overlapping windows of seq+1 bytes from the split, each predicting
its last seq bytes, the last partial window evaluated on its own (so the first
byte of each window is context only), mean nats/byte over every predicted
position. Also reports every step's training loss, a validation curve, step
time, tokens/s, peak memory, parameter counts, state bytes per weight and a
sample generated from "ROMEO:\\n".

One JSON line goes to stdout (and to --out if given); progress goes to stderr.

    python3 scripts/peers/bitnet_peer.py --steps 3200 --out $OUT/bitnet_peer.json
    python3 scripts/peers/bitnet_peer.py --model transformer --steps 2000 --out $OUT/peer.json
    python3 scripts/peers/bitnet_peer.py --model transformer --dense --steps 2000 --out $OUT/dense_peer.json
"""
import argparse
import json
import math
import sys
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


class Linear(torch.nn.Module):
    """Bias-free linear; ternarized in the forward pass unless dense."""

    def __init__(self, d_in: int, d_out: int, ternary: bool, std: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(d_out, d_in) * std)
        self.ternary = ternary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, ternarize_ste(self.weight) if self.ternary else self.weight)


class Block(torch.nn.Module):
    def __init__(self, d: int, heads: int, hidden: int, ternary: bool, out_std: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (Linear(d, d, ternary, 0.02) for _ in range(3))
        self.o = Linear(d, d, ternary, out_std)
        self.up = Linear(d, hidden, ternary, 0.02)
        self.down = Linear(hidden, d, ternary, out_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = rms_norm(x)
        q, k, v = (f(h).view(b, t, self.heads, d // self.heads).transpose(1, 2) for f in (self.q, self.k, self.v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(att.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(rms_norm(x))))


class ByteTransformer(torch.nn.Module):
    def __init__(self, seq: int, d: int, layers: int, heads: int, hidden: int, ternary: bool):
        super().__init__()
        self.tok = torch.nn.Parameter(torch.randn(256, d) * 0.02)
        self.pos = torch.nn.Parameter(torch.randn(seq, d) * 0.02)
        # GPT-2 init: residual-branch outputs scaled down with depth.
        out_std = 0.02 / math.sqrt(2 * layers)
        self.blocks = torch.nn.ModuleList(Block(d, heads, hidden, ternary, out_std) for _ in range(layers))
        self.head = Linear(d, 256, ternary, 0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = F.embedding(idx, self.tok) + self.pos[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(rms_norm(x))


def batch(data: torch.Tensor, context: int, size: int, gen: torch.Generator):
    starts = torch.randint(0, data.numel() - context - 1, (size,), generator=gen, device=data.device)
    idx = starts[:, None] + torch.arange(context + 1, device=data.device)[None, :]
    w = data[idx].long()
    return w[:, :context], w[:, context]


def state_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    state = sum(p.numel() * p.element_size() for p in model.parameters())
    state += sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    return state


def median_step(times: list) -> float:
    times = sorted(times[10:]) or sorted(times)
    return times[len(times) // 2]


def run_mlp(a, dev: torch.device, raw: torch.Tensor) -> dict:
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
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
    median = median_step(times)
    return {
        "peer": "pytorch-bitnet-ste-bf16",
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if cuda else "cpu",
        "weights": weights,
        "steps": a.steps,
        "batch": a.batch,
        "median_step_ms": round(median * 1e3, 3),
        "tokens_per_s": round(a.batch / median),
        "peak_cuda_mib": round(peak / 2**20, 1),
        "state_bytes_per_weight": round(state_bytes(model, opt) / weights, 3),
        "valid_loss": round(sum(losses) / len(losses), 4),
    }


@torch.no_grad()
def val_loss(model: ByteTransformer, val: torch.Tensor, seq: int, size: int, amp) -> float:
    """Mean nats/byte over non-overlapping (seq+1)-byte windows of `val`, the tail window included."""
    span = seq + 1
    full = val.numel() // span
    windows = val[: full * span].view(full, span).long()
    chunks = list(windows.split(size)) if full else []
    if val.numel() - full * span >= 2:
        chunks.append(val[full * span :].long()[None])
    total, count = 0.0, 0
    for w in chunks:
        with amp():
            logits = model(w[:, :-1])
        total += F.cross_entropy(logits.float().reshape(-1, 256), w[:, 1:].reshape(-1), reduction="sum").item()
        count += w[:, 1:].numel()
    return total / count


@torch.no_grad()
def generate(model: ByteTransformer, prompt: bytes, n: int, seq: int, temperature: float, dev, amp) -> str:
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    out = list(prompt)
    for _ in range(n):
        with amp():
            logits = model(torch.tensor(out[-seq:], device=dev)[None])[0, -1].float()
        if temperature > 0:
            nxt = torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=gen).item()
        else:
            nxt = logits.argmax().item()
        out.append(nxt)
    return bytes(out).decode("utf-8", errors="replace")


def run_transformer(a, dev: torch.device, raw: torch.Tensor) -> dict:
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    # bf16 autocast only on CUDA; a CPU smoke run stays fp32.
    amp = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda)
    if a.d_model % a.n_heads:
        sys.exit(f"--d-model {a.d_model} is not a multiple of --n-heads {a.n_heads}")
    split = int(raw.numel() * (1 - a.val_fraction))
    if split < a.seq + 2 or raw.numel() - split < 2:
        sys.exit(f"{raw.numel()} bytes is too short for --seq {a.seq}")
    print(f"split offset {split}: train [0, {split}), validation [{split}, {raw.numel()})", file=sys.stderr, flush=True)
    train, val = raw[:split].to(dev), raw[split:].to(dev)

    model = ByteTransformer(a.seq, a.d_model, a.n_layers, a.n_heads, a.mlp_hidden, not a.dense).to(dev)
    linears = [m.weight for m in model.modules() if isinstance(m, Linear)]
    opt = torch.optim.AdamW(
        [{"params": linears, "weight_decay": a.weight_decay}, {"params": [model.tok, model.pos], "weight_decay": 0.0}],
        lr=a.lr,
        betas=(0.9, 0.95),
        fused=cuda,
    )
    weights = sum(w.numel() for w in linears)
    params = sum(p.numel() for p in model.parameters())

    def lr_at(step: int) -> float:
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        if a.schedule == "constant":
            return a.lr
        t = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    gen = torch.Generator(device=dev)
    gen.manual_seed(0)
    offsets = torch.arange(a.seq + 1, device=dev)
    times, train_loss, val_curve = [], [], []
    done = 0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for step in range(a.steps):
        # Starts in [0, split - seq - 1]: the last target byte is at most split - 1.
        starts = torch.randint(0, split - a.seq, (a.batch,), generator=gen, device=dev)
        w = train[starts[:, None] + offsets].long()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        sync()
        t0 = time.perf_counter()
        with amp():
            logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, 256), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
        train_loss.append(round(loss.item(), 5))
        done = step + 1
        if a.eval_every and done % a.eval_every == 0 and done < a.steps:
            val_curve.append([done, round(val_loss(model, val, a.seq, a.batch, amp), 5)])
            print(f"step {done} train {train_loss[-1]:.4f} val {val_curve[-1][1]:.4f}", file=sys.stderr, flush=True)
        if a.time_limit and time.perf_counter() - start > a.time_limit:
            break
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else 0

    model.eval()
    if not val_curve or val_curve[-1][0] != done:
        val_curve.append([done, round(val_loss(model, val, a.seq, a.batch, amp), 5)])
    print(f"step {done} val {val_curve[-1][1]:.4f}", file=sys.stderr, flush=True)
    sample = generate(model, b"ROMEO:\n", a.sample_bytes, a.seq, a.temperature, dev, amp) if a.sample_bytes else ""
    median = median_step(times)
    return {
        "peer": "pytorch-" + ("dense" if a.dense else "bitnet-ste") + "-transformer",
        "model": "transformer",
        "dense": a.dense,
        "d_model": a.d_model,
        "n_layers": a.n_layers,
        "n_heads": a.n_heads,
        "mlp_hidden": a.mlp_hidden,
        "seq": a.seq,
        "batch": a.batch,
        "steps": done,
        "steps_requested": a.steps,
        "tokens_seen": done * a.batch * a.seq,
        "lr": a.lr,
        "lr_schedule": f"linear warmup {a.warmup}, " + ("constant" if a.schedule == "constant" else "cosine to 0.1*lr"),
        "optimizer": f"AdamW betas (0.9, 0.95), weight_decay {a.weight_decay} on linears, 0 on embeddings",
        "median_step_ms": round(median * 1e3, 3),
        "tokens_per_s": round(a.batch * a.seq / median),
        "train_wall_s": round(wall, 1),
        "peak_mem_mib": round(peak / 2**20, 1),
        "weights": weights,
        "params_total": params,
        "state_bytes_per_weight": round(state_bytes(model, opt) / params, 3),
        "val_loss": val_curve[-1][1],
        "val_curve": val_curve,
        "train_loss": train_loss,
        "sample": sample,
        "temperature": a.temperature,
        "dtype": "bf16 autocast, fp32 master weights" if cuda else "fp32",
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "split": split,
        "val_bytes": val.numel(),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=("mlp", "transformer"), default="mlp")
    p.add_argument("--data", default="data/tinyshakespeare.txt")
    p.add_argument("--batch", type=int, help="default 512 (mlp), 32 (transformer)")
    p.add_argument("--steps", type=int, default=3200)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run")
    p.add_argument("--out")
    mlp = p.add_argument_group("mlp")
    mlp.add_argument("--context", type=int, default=32)
    mlp.add_argument("--d-embed", type=int, default=64)
    mlp.add_argument("--hidden", type=int, default=2048)
    mlp.add_argument("--eval-batches", type=int, default=50)
    tf = p.add_argument_group("transformer")
    tf.add_argument("--dense", action="store_true", help="plain float linears (dense reference)")
    tf.add_argument("--d-model", type=int, default=512)
    tf.add_argument("--n-layers", type=int, default=6)
    tf.add_argument("--n-heads", type=int, default=8)
    tf.add_argument("--mlp-hidden", type=int, default=2048)
    tf.add_argument("--seq", type=int, default=256)
    tf.add_argument("--weight-decay", type=float, default=0.1)
    tf.add_argument("--warmup", type=int, default=100)
    tf.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    tf.add_argument("--eval-every", type=int, default=0, help="0: only at the end")
    tf.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    tf.add_argument("--sample-bytes", type=int, default=200)
    tf.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    a = p.parse_args()
    if a.batch is None:
        a.batch = 512 if a.model == "mlp" else 32

    dev = torch.device(a.device)
    torch.manual_seed(0)
    raw = torch.tensor(list(open(a.data, "rb").read()), dtype=torch.uint8)
    result = (run_mlp if a.model == "mlp" else run_transformer)(a, dev, raw)
    line = json.dumps(result)
    print(line)
    if a.out:
        with open(a.out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
