#!/usr/bin/env python3
"""How fast can any kernel read the packed trits of the issue's GEMV shapes?

The m = 1 GEMV target is 60% of a same-size copy's bandwidth, that is a
GEMV in 0.83x the copy's device time. A GEMV must at least read its weight
bytes once, so its floor is the fastest kernel that does only that. This
times, under Nsight Compute (L2 flushed before each kernel, clocks left
alone, best of REPS launches), several read-only CUDA kernels of different
shapes next to PyTorch's copy of the same bytes (the copy `ncu_gemv.py`
compares the GEMV with):

  ld_T<T>_L<L>      one pass: each thread issues L 16-byte loads (`ld.global.nc`)
                    before using any, T threads a block, one block per T*L vectors
  loop_T<T>_L<L>    a resident grid (132 * 2048/T blocks) striding over the
                    buffer, L 16-byte loads in flight per thread per step
  bulk_B<B>         one block per B bytes: one thread starts the Hopper bulk
                    copy engine (`cp.async.bulk`, no per-thread loads) into B bytes
                    of shared memory, 128 threads wait on an mbarrier and read it
  copy              `ncu_copy.py`'s copy, `torch.mul(src, 1, out=dst)` on f32
                    (N bytes read, N written)

Every read kernel XOR-folds what it read into one word per block; the
script checks those words against the buffer's XOR computed on the host, so
each kernel is shown to read every byte.

Usage, on the GPU machine: python3 scripts/read_floor.py
(READ_SIZES="16777216,14680064" for other byte counts; each a multiple of 1 MiB).
"""
import os
import sys

from ncu_copy import kernels as copy_kernels
from ncu_csv import TIME, run_ncu

SIZES = [int(s) for s in os.environ.get(
    "READ_SIZES", f"{8192 * 512 * 4},{14336 * 256 * 4},{1 << 30}").split(",")]
REPS = 5
READ = "dram__bytes_read.sum"
SMS = 132

LD = [(t, l) for t in (256, 512, 1024) for l in (1, 2, 4, 8)]
LOOP = [(512, 4), (512, 8), (1024, 4)]
BULK = [16384, 32768, 65536]

PRELUDE = r"""
typedef unsigned int u32;
typedef unsigned long long u64;

// XOR of the block's `x`, written to out[blockIdx.x].
__device__ __forceinline__ void block_xor(u32 x, u32* out, u32* warp_words) {
  for (int o = 16; o; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
  if ((threadIdx.x & 31) == 0) warp_words[threadIdx.x >> 5] = x;
  __syncthreads();
  if (threadIdx.x < 32) {
    x = threadIdx.x < (blockDim.x >> 5) ? warp_words[threadIdx.x] : 0u;
    for (int o = 16; o; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
    if (threadIdx.x == 0) out[blockIdx.x] = x;
  }
}

__device__ __forceinline__ u32 fold(uint4 v) { return v.x ^ v.y ^ v.z ^ v.w; }
"""


def ld_kernel(t, l):
    return f"""
extern "C" __global__ void __launch_bounds__({t}) ld_T{t}_L{l}(const uint4* __restrict__ src, u32* __restrict__ out) {{
  __shared__ u32 warp_words[32];
  const uint4* p = src + (u64)blockIdx.x * {t * l} + threadIdx.x;
  uint4 v[{l}];
#pragma unroll
  for (int j = 0; j < {l}; j++) v[j] = __ldg(p + j * {t});
  u32 x = 0;
#pragma unroll
  for (int j = 0; j < {l}; j++) x ^= fold(v[j]);
  block_xor(x, out, warp_words);
}}
"""


def loop_kernel(t, l):
    return f"""
extern "C" __global__ void __launch_bounds__({t}) loop_T{t}_L{l}(const uint4* __restrict__ src, u32* __restrict__ out, u64 steps) {{
  __shared__ u32 warp_words[32];
  u32 x = 0;
  for (u64 s = blockIdx.x; s < steps; s += gridDim.x) {{
    const uint4* p = src + s * {t * l} + threadIdx.x;
    uint4 v[{l}];
#pragma unroll
    for (int j = 0; j < {l}; j++) v[j] = __ldg(p + j * {t});
#pragma unroll
    for (int j = 0; j < {l}; j++) x ^= fold(v[j]);
  }}
  block_xor(x, out, warp_words);
}}
"""


def bulk_kernel(b):
    chunk = min(b, 16384)
    return f"""
extern "C" __global__ void __launch_bounds__(128) bulk_B{b}(const uint4* __restrict__ src, u32* __restrict__ out) {{
  extern __shared__ __align__(128) uint4 buf[];
  __shared__ __align__(8) u64 bar;
  __shared__ u32 warp_words[32];
  const u32 bar_a = (u32)__cvta_generic_to_shared(&bar);
  if (threadIdx.x == 0) {{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(bar_a) : "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }}
  __syncthreads();
  if (threadIdx.x == 0) {{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar_a), "r"({b}) : "memory");
    const char* g = (const char*)src + (u64)blockIdx.x * {b};
    const u32 s = (u32)__cvta_generic_to_shared(buf);
    for (int c = 0; c < {b}; c += {chunk})
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], {chunk}, [%2];"
                   :: "r"(s + c), "l"(g + c), "r"(bar_a) : "memory");
  }}
  u32 ready = 0;
  while (!ready)
    asm volatile("{{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }}"
                 : "=r"(ready) : "r"(bar_a) : "memory");
  u32 x = 0;
#pragma unroll 4
  for (int i = threadIdx.x; i < {b // 16}; i += 128) x ^= fold(buf[i]);
  block_xor(x, out, warp_words);
}}
"""


def source():
    return PRELUDE + "".join(ld_kernel(t, l) for t, l in LD) + "".join(
        loop_kernel(t, l) for t, l in LOOP) + "".join(bulk_kernel(b) for b in BULK)


def variants(nbytes):
    """(name, grid, block, dynamic shared bytes, extra u64 argument or None)."""
    nvec = nbytes // 16
    out = [(f"ld_T{t}_L{l}", nvec // (t * l), t, 0, None) for t, l in LD]
    out += [(f"loop_T{t}_L{l}", min(SMS * (2048 // t), nvec // (t * l)), t, 0, nvec // (t * l))
            for t, l in LOOP]
    out += [(f"bulk_B{b}", nbytes // b, 128, b, None) for b in BULK]
    return out


def child():
    """Under ncu: each read kernel REPS times per size (its block XORs
    checked against the host's once), then the copy REPS times."""
    import cupy as cp
    import numpy as np
    import torch

    module = cp.RawModule(code=source(), options=("--std=c++17",))
    for nbytes in SIZES:
        if nbytes % (1 << 20):
            sys.exit(f"READ_SIZES: {nbytes} is not a multiple of 1 MiB")
        src = torch.randint(-(1 << 31), (1 << 31) - 1, (nbytes // 4,), dtype=torch.int32, device="cuda")
        want = int(np.bitwise_xor.reduce(src.cpu().numpy().view(np.uint32)))
        src_cp = cp.asarray(src)
        out = cp.empty(nbytes // 4096, dtype=cp.uint32)
        for name, grid, block, shared, steps in variants(nbytes):
            kernel = module.get_function(name)
            if shared:
                # Static shared memory comes on top; past 48 KiB in all needs the opt-in.
                kernel.max_dynamic_shared_size_bytes = shared
            args = (src_cp, out) if steps is None else (src_cp, out, np.uint64(steps))
            for rep in range(REPS):
                out[:grid].fill(0)
                kernel((grid,), (block,), args, shared_mem=shared)
                if rep == 0:
                    got = int(np.bitwise_xor.reduce(cp.asnumpy(out[:grid])))
                    if got != want:
                        sys.exit(f"{name} at {nbytes} bytes: XOR {got:#x}, want {want:#x}")
        # ncu_copy.py's copy (its set-up kernel is not one the parent profiles).
        copy = copy_kernels(torch, nbytes)["copy"]
        for _ in range(REPS):
            copy()
        torch.cuda.synchronize()


def main():
    _, rows = run_ncu([sys.executable, os.path.abspath(__file__), "child"], [TIME, READ],
                      "ld_T|loop_T|bulk_B|vectorized_elementwise", "/tmp/read_floor.csv")
    # The child's launch order: per size, each variant REPS times, then the copy.
    order = []
    for nbytes in SIZES:
        order += [(nbytes, v[0]) for v in variants(nbytes)] + [(nbytes, "copy")]
    if len(rows) != len(order) * REPS:
        sys.exit(f"{len(rows)} kernels profiled, {len(order) * REPS} expected:\n"
                 + "\n".join(r["name"][:120] for r in rows))
    print("Device time: ncu gpu__time_duration, L2 flushed before each kernel, clocks left alone, "
          f"best of {REPS}. GB/s counts N bytes for a read, 2N for the copy; "
          "'x copy' is the kernel's time over the copy's.\n")
    print("| bytes N | kernel | grid | device µs | DRAM read MB | GB/s | x copy |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    grids = {(n, v[0]): v[1] for n in SIZES for v in variants(n)}
    table = {}
    for i, key in enumerate(order):
        reps = rows[i * REPS:(i + 1) * REPS]
        expected = "elementwise" if key[1] == "copy" else key[1]
        if any(expected not in r["name"] for r in reps):
            sys.exit(f"launch order: expected {expected} at {key[0]} bytes, got {reps[0]['name'][:120]}")
        best = min(reps, key=lambda r: r[TIME])
        table[key] = best
    for nbytes in SIZES:
        copy = table[(nbytes, "copy")][TIME]
        names = [v[0] for v in variants(nbytes)] + ["copy"]
        for name in sorted(names, key=lambda n: table[(nbytes, n)][TIME]):
            r = table[(nbytes, name)]
            moved = nbytes * (2 if name == "copy" else 1)
            print(f"| {nbytes} | {name} | {grids.get((nbytes, name), '')} | {r[TIME]:.2f} | "
                  f"{r[READ] / 1e6:.1f} | {moved / (r[TIME] * 1e3):.0f} | {r[TIME] / copy:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child()
    elif len(sys.argv) > 1 and sys.argv[1] == "source":
        print(source())
    else:
        main()
