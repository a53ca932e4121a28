"""cuBLAS peer rows for the GEMV/GEMM benchmark tables: python3 scripts/peers/torch_peer.py (on the GPU machine)

PyTorch peer for the GEMV/GEMM benchmark rows: cuBLAS matmul in bf16/f16/f32
at the logical shapes of the ternary kernels, and a device copy bandwidth, all
timed with CUDA events (median of 50 after warm-up)."""
import torch

def median_ms(fn, iters=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); fn(); end.record(); torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]

dev = "cuda"
src = torch.empty(1 << 30, dtype=torch.uint8, device=dev).random_(0, 255)
dst = torch.empty_like(src)
t = median_ms(lambda: dst.copy_(src))
print(f"copy bandwidth: {2 * src.numel() / t / 1e6:.1f} GB/s (1 GiB read + 1 GiB written, {t:.3f} ms)")
print(f"{'m':>5} {'K':>6} {'N':>6} {'dtype':>6} {'ms':>9} {'weight GB/s':>12}")
for m in (1, 8):
    for k, n in ((8192, 8192), (4096, 14336), (14336, 4096)):
        for dtype in (torch.bfloat16, torch.float16, torch.float32):
            x = torch.randn(m, k, device=dev, dtype=dtype)
            w = torch.randn(k, n, device=dev, dtype=dtype)
            ms = median_ms(lambda: torch.matmul(x, w))
            gbs = w.numel() * w.element_size() / ms / 1e6
            print(f"{m:>5} {k:>6} {n:>6} {str(dtype)[6:]:>6} {ms:>9.4f} {gbs:>12.1f}")
for dtype, tf32 in ((torch.bfloat16, False), (torch.float16, False), (torch.float32, True), (torch.float32, False)):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    x = torch.randn(8192, 4096, device=dev, dtype=dtype)
    w = torch.randn(4096, 4096, device=dev, dtype=dtype)
    ms = median_ms(lambda: torch.matmul(x, w))
    name = str(dtype)[6:] + (" (TF32)" if tf32 else "")
    print(f"GEMM 8192x4096x4096 {name}: {ms:.4f} ms, {2 * 8192 * 4096 * 4096 / ms / 1e9:.1f} TFLOP/s")
torch.backends.cuda.matmul.allow_tf32 = False
