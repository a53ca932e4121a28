#!/usr/bin/env python3
"""When do a streamed GEMV's stages land, and how much arithmetic can they hide?

The streamed GEMV (burn-ternary `gemv_stream.rs`) gives each SM one cube
that owns whole rows of the packed trits, splits their columns into S
stages, puts every stage's copy into shared memory in flight up front (or
the first A stages, then one more per stage consumed), and multiplies each
stage once its barrier completes. Round 21 found its arithmetic adds
2.1-2.8 µs on top of the stream at m = 1, although per stage it is a
fraction of a stage's arrival time. Two explanations predict different
things: (a) the stages land one after another, in issue order, and the
compute side is too slow; (b) DRAM serves every stage's bytes at once, so
all stages land near the end of the stream and the arithmetic follows it.

This times a kernel with the streamed GEMV's shape and none of its
arithmetic, on the issue's three shapes (one block of 512 threads per 16 *
ROW_TILES rows, 128 blocks): each stage is copied with Hopper's bulk copy
engine (`cp.async.bulk`, one mbarrier per stage counting the bytes), one
copy per row of the stage, or one for the whole stage where its rows are
contiguous; all threads wait for each stage in turn, read it back
(XOR-folded, each block's XOR checked against the host's), and then do WORK / S
dependent FMAs per thread (four independent chains), WORK standing in for
the decode and `mma` (about 1,000 warp instructions per warp at 8192²,
KERNEL_NOTES round 19). It records, per block, the SM clock (`clock64`)
when each stage's wait returns and at the end, relative to the block's
start.

Variants (`variants`): round 22's first call (ARRIVE_ROUND=1) split the
columns into S stages of every row (R = all of the block's rows); the
default set also takes stages of row groups (R = 16, 8 or 4 contiguous
rows, whole rows or half rows), all up front or A stages ahead.

Printed per shape and variant: the kernel's device time (ncu, L2 flushed,
best of REPS), and the median over blocks of each stage's landing time and
of the block's end, in µs at 1.98 GHz.

Usage, on the GPU machine: python3 scripts/stage_arrival.py
"""
import json
import os
import sys

from ncu_csv import TIME, profiled, run_ncu

REPS = 3
GHZ = 1.98
THREADS = 512
# (rows, cols, row tiles per block) of the shapes at m = 1.
SHAPES = [(8192, 8192, 4), (4096, 14336, 2), (14336, 4096, 7)]
# Per shape: (rows per stage R, bytes per row and stage P, stages in flight
# ahead (0: all up front), FMAs per thread in all). A stage is R rows times
# one P-byte piece of each (R bulk copies of P bytes, or one copy of R * P
# where P is the whole row and the R rows are contiguous); stages go row
# group by row group, and within one, piece by piece. R = all of the
# block's rows is round 21's column stages.
def variants(shape):
    rows, cols, tiles = shape
    block, row = 16 * tiles, cols // 4
    if os.environ.get("ARRIVE_ROUND") == "1":
        return [(block, row // s, 0, w) for s in (1, 4, 8, 16) for w in (0, 1000, 2000)] + [
            (block, row // 8, 2, 0), (block, row // 8, 4, 0), (block, row // 8, 4, 1000),
            (block, row // 16, 4, 0), (block, row // 16, 8, 0), (block, row // 16, 8, 1000)]
    out = [(block, row // 4, 0, 0), (block, row // 4, 0, 1000)]
    for r, p in ((16, row), (16, row // 2), (8, row), (4, row)):
        for a in (0, 2, 3, 4):
            stages = block // r * (row // p)
            if a < stages:
                out += [(r, p, a, 0), (r, p, a, 1000)]
    return out

PRELUDE = r"""
typedef unsigned int u32;
typedef unsigned long long u64;

__device__ __forceinline__ u32 fold(uint4 v) { return v.x ^ v.y ^ v.z ^ v.w; }

__device__ __forceinline__ void wait_stage(u32 bar) {
  u32 ready = 0;
  while (!ready)
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }"
                 : "=r"(ready) : "r"(bar) : "memory");
}
"""


def kernel_name(shape, variant):
    rows, cols, tiles = shape
    r, p, ahead, work = variant
    return f"arrive_c{cols}_t{tiles}_r{r}_p{p}_a{ahead}_w{work}"


def stage_count(shape, variant):
    rows, cols, tiles = shape
    return 16 * tiles // variant[0] * (cols // 4 // variant[1])


def kernel(shape, variant):
    rows, cols, tiles = shape
    group, piece, ahead, work = variant
    stages = stage_count(shape, variant)
    block_rows = 16 * tiles
    row_bytes = cols // 4
    pieces = row_bytes // piece
    stage_bytes = piece * group
    up_front = stages if ahead == 0 else ahead
    per_stage = work // stages // 4
    name = kernel_name(shape, variant)
    if piece == row_bytes:
        copy = f"""if (tid == 0)
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], {stage_bytes}, [%2];"
                 :: "r"(buf_a + s * {stage_bytes}), "l"(rows + (u64)s * {stage_bytes}), "r"(bar) : "memory");"""
    else:
        copy = f"""if (tid < {group})
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], {piece}, [%2];"
                 :: "r"(buf_a + s * {stage_bytes} + tid * {piece}),
                    "l"(rows + (u64)((s / {pieces}) * {group} + tid) * {row_bytes} + (s % {pieces}) * {piece}), "r"(bar) : "memory");"""
    return f"""
// Stage s: rows (s / pieces) * R .. + R, piece s % pieces, into buf + s * stage_bytes.
__device__ __forceinline__ void issue_{name}(int s, u32 bar, u32 buf_a, const char* rows, u32 tid) {{
  {copy}
}}
extern "C" __global__ void __launch_bounds__({THREADS}) {name}(const char* __restrict__ src, u32* __restrict__ out, u64* __restrict__ times) {{
  extern __shared__ __align__(128) unsigned char buf[];
  __shared__ __align__(8) u64 bars[{stages}];
  __shared__ u32 warp_words[32];
  const u64 t0 = clock64();
  const u32 tid = threadIdx.x;
  const char* rows = src + (u64)blockIdx.x * {block_rows * row_bytes};
  const u32 buf_a = (u32)__cvta_generic_to_shared(buf);
  if (tid == 0) {{
    for (int s = 0; s < {stages}; s++) {{
      const u32 bar = (u32)__cvta_generic_to_shared(&bars[s]);
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(bar) : "memory");
    }}
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }}
  __syncthreads();
  // Stage s of row r lands at buf + s * stage_bytes + r * piece.
#pragma unroll 1
  for (int s = 0; s < {up_front}; s++) {{
    const u32 bar = (u32)__cvta_generic_to_shared(&bars[s]);
    if (tid == 0)
      asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"({stage_bytes}) : "memory");
    issue_{name}(s, bar, buf_a, rows, tid);
  }}
  u32 x = 0;
  float a0 = tid, a1 = tid + 1, a2 = tid + 2, a3 = tid + 3;
  const float m = 0.999f, c = 1e-3f;
#pragma unroll 1
  for (int s = 0; s < {stages}; s++) {{
    if ({ahead} > 0 && s + {ahead} < {stages}) {{
      const int n = s + {ahead};
      const u32 bar = (u32)__cvta_generic_to_shared(&bars[n]);
      if (tid == 0)
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"({stage_bytes}) : "memory");
      issue_{name}(n, bar, buf_a, rows, tid);
    }}
    wait_stage((u32)__cvta_generic_to_shared(&bars[s]));
    if (tid == 0) times[(u64)blockIdx.x * {stages + 1} + s] = clock64() - t0;
    const uint4* v = (const uint4*)(buf + s * {stage_bytes});
    for (int i = tid; i < {stage_bytes // 16}; i += {THREADS}) x ^= fold(v[i]);
#pragma unroll 4
    for (int k = 0; k < {per_stage}; k++) {{
      a0 = fmaf(a0, m, c); a1 = fmaf(a1, m, c); a2 = fmaf(a2, m, c); a3 = fmaf(a3, m, c);
    }}
  }}
  // The FMA results feed the XOR as zero (they stay below 2^24), so the
  // compiler keeps them.
  x ^= ((u32)(a0 + a1 + a2 + a3)) >> 30;
  for (int o = 16; o; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
  if ((tid & 31) == 0) warp_words[tid >> 5] = x;
  __syncthreads();
  if (tid < 32) {{
    x = tid < {THREADS // 32} ? warp_words[tid] : 0u;
    for (int o = 16; o; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
    if (tid == 0) {{
      out[blockIdx.x] = x;
      times[(u64)blockIdx.x * {stages + 1} + {stages}] = clock64() - t0;
    }}
  }}
}}
"""


def runs():
    return [(shape, variant) for shape in SHAPES for variant in variants(shape)]


def child(times_path):
    import cupy as cp
    import numpy as np

    module = cp.RawModule(code=PRELUDE + "".join(kernel(s, v) for s, v in runs()),
                          options=("--std=c++17",))
    arrivals = {}
    # Per shape: the packed bytes, and each block's XOR of its rows' words.
    data = {}
    for shape in SHAPES:
        rows, cols, tiles = shape
        src = cp.random.randint(0, 1 << 31, size=rows * cols // 16, dtype=cp.int64).astype(cp.uint32)
        blocks = rows // (16 * tiles)
        data[shape] = (src, np.bitwise_xor.reduce(cp.asnumpy(src).reshape(blocks, -1), axis=1))
    for shape, variant in runs():
        rows, cols, tiles = shape
        stages = stage_count(shape, variant)
        nbytes = rows * cols // 4
        blocks = rows // (16 * tiles)
        src, want = data[shape]
        out = cp.zeros(blocks, dtype=cp.uint32)
        times = cp.zeros(blocks * (stages + 1), dtype=cp.uint64)
        fn = module.get_function(kernel_name(shape, variant))
        shared = nbytes // blocks
        fn.max_dynamic_shared_size_bytes = shared
        for _ in range(REPS):
            out.fill(0)
            fn((blocks,), (THREADS,), (src, out, times), shared_mem=shared)
        got = cp.asnumpy(out)
        if not np.array_equal(got, want):
            bad = int(np.flatnonzero(got != want)[0])
            sys.exit(f"{kernel_name(shape, variant)}: block {bad} read XOR {got[bad]:#x}, "
                     f"want {want[bad]:#x}")
        t = cp.asnumpy(times).reshape(blocks, stages + 1) / (GHZ * 1e3)
        arrivals[kernel_name(shape, variant)] = np.median(t, axis=0).tolist()
    with open(times_path, "w") as f:
        json.dump(arrivals, f)


def main():
    times_path = "/tmp/stage_arrival_times.txt"
    _, rows = run_ncu([sys.executable, os.path.abspath(__file__), "child", times_path], [TIME],
                      "arrive_", "/tmp/stage_arrival.csv")
    if len(rows) != len(runs()) * REPS:
        sys.exit(f"{len(rows)} kernels profiled, {len(runs()) * REPS} expected")
    with open(times_path) as f:
        arrivals = json.load(f)
    print(f"Device time: ncu gpu__time_duration, L2 flushed, best of {REPS}. Landing: median "
          f"over blocks of clock64 at each stage's wait, from the block's start, µs at {GHZ} GHz.\n")
    print("| rows × cols | rows × bytes per stage | stages | ahead | FMAs/thread | device µs | stages land at (µs) | block end |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for i, (shape, variant) in enumerate(runs()):
        name = kernel_name(shape, variant)
        reps = profiled(rows, i, REPS, name)
        best = min(r[TIME] for r in reps)
        land = arrivals[name]
        print(f"| {shape[0]} × {shape[1]} | {variant[0]} × {variant[1]} | {stage_count(shape, variant)} | "
              f"{variant[2] or 'all'} | {variant[3]} | "
              f"{best:.2f} | {' '.join(f'{t:.1f}' for t in land[:-1])} | {land[-1]:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()
