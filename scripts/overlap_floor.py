#!/usr/bin/env python3
"""Can plain warp interleaving hide the GEMV's arithmetic under its stream?

Rounds 20-22 kept one 512-thread cube per SM with all of its trits in
flight at once (in registers or in shared memory), and the arithmetic
(about 2 million warp instructions at 8192², m = 1) ran after the stream
instead of under it. The classic GPU alternative is a resident grid of
many small work items: each warp loads an item, computes on it, loads the
next, and the other warps' loads keep DRAM busy meanwhile. `read_floor.py`
timed such grids reading only (6.27 µs at 16 MiB, the fastest read); this
adds the stand-in arithmetic of `stage_arrival.py` to them.

  ovl_T<T>_L<L>_P<p>_W<w>  a grid of (resident blocks per SM) * 132 blocks of T
                           threads striding over the buffer; per step each
                           thread loads L 16-byte vectors (`ld.global.nc`),
                           XOR-folds them and then runs w FMAs in four
                           independent chains seeded by the fold (so the
                           arithmetic waits for its data); P1 loads the next
                           step's vectors before this step's arithmetic

  ovm_T<T>_L<L>_P<p>_C<c>  the same grid with the GEMV's own arithmetic in place
                           of the FMAs (OVERLAP_ARITH=mma): every loaded word
                           is decoded like the tensor-core GEMV's trits (one
                           shift and one three-input logic operation to
                           `u = 2 + t`, then a shift and a mask per four
                           trits: four int8 A registers) and multiplied by two
                           B registers read from shared memory in one int8
                           `mma.sync.m16n8k32`, into c independent
                           accumulator chains (the GEMV has one per row tile
                           of a work item: 1 to 4); a run-time flag turns the
                           arithmetic off
  ovm_..._I4               the same with int4 operands (OVERLAP_ARITH=mma4): after
                           `u = 2 + t`, `u & 0x33333333` and `(u >> 2) &
                           0x33333333` are already 4-bit lanes, so two words make
                           one `m16n8k64` (u4 trits times s4 limbs)

For the FMA family, w is chosen per variant so that the whole launch runs WORK FMAs per byte
pair like the GEMV's instruction count (1,000 per thread of a 512-thread,
128-block grid at 16 MiB: 65.5 million, scaled by bytes), or none. The
requested blocks per SM are capped by the occupancy the compiled kernel
allows (printed), so every block is resident from the start.

Each block's XOR of what it read is checked against the host's.

Usage, on the GPU machine: python3 scripts/overlap_floor.py
"""
import os
import sys

from ncu_copy import kernels as copy_kernels
from ncu_csv import TIME, profiled, run_ncu
from read_floor import PRELUDE

SIZES = [8192 * 512 * 4, 14336 * 256 * 4]
REPS = 3
SMS = 132
INST = "smsp__inst_executed.sum"
# FMAs of the whole launch at 16 MiB: stage_arrival.py's 1,000 per thread
# of 512 threads x 128 blocks, about the GEMV's own warp instruction count.
WORK_16MIB = 1000 * 512 * 128
# (threads per block, requested resident blocks per SM).
OCCUPANCY = [(256, 2), (256, 4), (256, 8), (512, 1), (512, 2), (512, 4)]
LOADS = (2, 4, 8)
MMA = os.environ.get("OVERLAP_ARITH") in ("mma", "mma4")
# OVERLAP_ARITH=mma4: int8 against int4 mmas, the best launch shapes of the
# int8 sweep only: (threads, blocks per SM, loads per step), prefetching,
# one chain.
INT4 = os.environ.get("OVERLAP_ARITH") == "mma4"
INT4_SHAPES = [(512, 1, 4), (512, 2, 2), (512, 1, 2), (256, 4, 2), (256, 2, 4)]
MMA_OCCUPANCY = [(256, 2), (256, 4), (512, 1), (512, 2)]
CHAINS = (1, 4)


def stream_loop(t, l, p, step):
    """The grid-stride loop over steps of `l` 16-byte vectors a lane: with
    `p`, the next step's loads are issued before `step` (the code that uses
    this step's vectors `v[0..l]`) runs."""
    load = "\n".join(f"    v[{j}] = __ldg(q + {j * t});" for j in range(l))
    load_next = "\n".join(f"      n[{j}] = __ldg(q + (u64)gridDim.x * {t * l} + {j * t});"
                          for j in range(l))
    if not p:
        return f"""
  for (u64 s = blockIdx.x; s < steps; s += gridDim.x) {{
    const uint4* q = src + s * {t * l} + threadIdx.x;
    uint4 v[{l}];
{load}
{step}
  }}"""
    return f"""
  u64 s = blockIdx.x;
  uint4 v[{l}];
  if (s < steps) {{
    const uint4* q = src + s * {t * l} + threadIdx.x;
{load}
  }}
  for (; s < steps; s += gridDim.x) {{
    const uint4* q = src + s * {t * l} + threadIdx.x;
    uint4 n[{l}];
    if (s + gridDim.x < steps) {{
{load_next}
    }}
{step}
#pragma unroll
    for (int j = 0; j < {l}; j++) v[j] = n[j];
  }}"""


def kernel(t, l, p):
    """Source of one variant; the FMA count per step is a run-time argument."""
    name = f"ovl_T{t}_L{l}_P{p}"
    fold = " ^ ".join(f"fold(v[{j}])" for j in range(l))
    step = f"""    u32 f = {fold};
    x ^= f ^ arith(f, work, c);"""
    return name, f"""
extern "C" __global__ void __launch_bounds__({t}) {name}(const uint4* __restrict__ src, u32* __restrict__ out,
                                                       u64 steps, int work, float c) {{
  __shared__ u32 warp_words[32];
  u32 x = 0;{stream_loop(t, l, p, step)}
  block_xor(x, out, warp_words);
}}
"""


ARITH = r"""
// `work` FMAs in four independent chains seeded by `f`; returns 0 unless
// `c` is NaN (never), so the block's XOR stays the data's, yet the compiler
// cannot drop the chains.
__device__ __forceinline__ u32 arith(u32 f, int work, float c) {
  float a0 = __uint_as_float(f & 0x3fffffffu) * 1e-30f, a1 = a0 + 1.f, a2 = a0 + 2.f, a3 = a0 + 3.f;
#pragma unroll 4
  for (int i = 0; i < work; i += 4) {
    a0 = fmaf(a0, c, 0.5f); a1 = fmaf(a1, c, 0.5f); a2 = fmaf(a2, c, 0.5f); a3 = fmaf(a3, c, 0.5f);
  }
  float r = a0 + a1 + a2 + a3;
  return r != r ? 1u : 0u;
}
"""


MMA_ARITH = r"""
// One trit word as the tensor-core GEMV multiplies it: u = 2 + t per 2-bit
// field (bits (!c1, c0 | c1)), four int8 A registers of its four byte lanes,
// times two B registers, accumulated by one int8 mma into `acc`.
__device__ __forceinline__ void word_mma(u32 w, u32 b0, u32 b1, int* acc) {
  const u32 u = ((w | (w >> 1)) & 0x55555555u) | (~w & 0xaaaaaaaau);
  const u32 a0 = u & 0x03030303u, a1 = (u >> 2) & 0x03030303u;
  const u32 a2 = (u >> 4) & 0x03030303u, a3 = (u >> 6) & 0x03030303u;
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+r"(acc[0]), "+r"(acc[1]), "+r"(acc[2]), "+r"(acc[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// A pair of trit words as an int4 mma would take them: after the same
// `u = 2 + t`, the fields at even and at odd positions are already 4-bit
// lanes (`u & 0x33333333`, `(u >> 2) & 0x33333333`), so two words make the
// four A registers of one `m16n8k64` (u4 trits times s4 limbs).
__device__ __forceinline__ void pair_mma4(u32 w0, u32 w1, u32 b0, u32 b1, int* acc) {
  const u32 u0 = ((w0 | (w0 >> 1)) & 0x55555555u) | (~w0 & 0xaaaaaaaau);
  const u32 u1 = ((w1 | (w1 >> 1)) & 0x55555555u) | (~w1 & 0xaaaaaaaau);
  const u32 a0 = u0 & 0x33333333u, a1 = (u0 >> 2) & 0x33333333u;
  const u32 a2 = u1 & 0x33333333u, a3 = (u1 >> 2) & 0x33333333u;
  asm("mma.sync.aligned.m16n8k64.row.col.s32.u4.s4.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+r"(acc[0]), "+r"(acc[1]), "+r"(acc[2]), "+r"(acc[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
"""


def mma_kernel(t, l, p, chains, bits=8):
    """Source of one `ovm_` variant: `work` (0 or 1) turns its arithmetic on;
    `mask` (always 0) folds the accumulators into the XOR so they stay live."""
    name = f"ovm_T{t}_L{l}_P{p}_C{chains}" + ("_I4" if bits == 4 else "")
    fold = " ^ ".join(f"fold(v[{j}])" for j in range(l))
    words = []
    for j in range(l):
        if bits == 4:
            for k, (a, b) in enumerate((("x", "y"), ("z", "w"))):
                i = 2 * j + k
                words.append(f"      pair_mma4(v[{j}].{a}, v[{j}].{b}, btab[({2 * i} + lane) & 63], "
                             f"btab[({2 * i + 1} + lane) & 63], acc[{i % chains}]);")
            continue
        for k, part in enumerate("xyzw"):
            i = 4 * j + k
            words.append(f"      word_mma(v[{j}].{part}, btab[({2 * i} + lane) & 63], "
                         f"btab[({2 * i + 1} + lane) & 63], acc[{i % chains}]);")
    arith = "\n".join(words)
    step = f"""    x ^= {fold};
    if (work) {{
{arith}
    }}"""
    return name, f"""
extern "C" __global__ void __launch_bounds__({t}) {name}(const uint4* __restrict__ src, u32* __restrict__ out,
                                                       u64 steps, int work, u32 mask) {{
  __shared__ u32 warp_words[32];
  __shared__ u32 btab[64];
  const int lane = threadIdx.x & 31;
  if (threadIdx.x < 64) btab[threadIdx.x] = 0x01010101u * (threadIdx.x & 7);
  __syncthreads();
  int acc[{chains}][4] = {{}};
  u32 x = 0;{stream_loop(t, l, p, step)}
  u32 a = 0;
#pragma unroll
  for (int c = 0; c < {chains}; c++) a ^= acc[c][0] ^ acc[c][1] ^ acc[c][2] ^ acc[c][3];
  x ^= a & mask;
  block_xor(x, out, warp_words);
}}
"""


def variants():
    """(kernel name, threads, loads per step, prefetch, requested blocks per SM, with work)."""
    if INT4:
        return [(mma_kernel(t, l, 1, 1, bits)[0], t, l, 1, bps, w)
                for t, bps, l in INT4_SHAPES for bits in (8, 4) for w in (0, 1)]
    if MMA:
        return [(mma_kernel(t, l, p, c)[0], t, l, p, bps, w)
                for t, bps in MMA_OCCUPANCY for l in LOADS for p in (0, 1) for c in CHAINS
                for w in (0, 1)]
    return [(kernel(t, l, p)[0], t, l, p, bps, w)
            for t, bps in OCCUPANCY for l in LOADS for p in (0, 1) for w in (0, 1)]


def source():
    names = {}
    if INT4:
        for t, _, l in INT4_SHAPES:
            for bits in (8, 4):
                name, src = mma_kernel(t, l, 1, 1, bits)
                names[name] = src
        return PRELUDE + MMA_ARITH + "".join(names.values())
    if MMA:
        for t, _ in MMA_OCCUPANCY:
            for l in LOADS:
                for p in (0, 1):
                    for c in CHAINS:
                        name, src = mma_kernel(t, l, p, c)
                        names[name] = src
        return PRELUDE + MMA_ARITH + "".join(names.values())
    for t, _ in OCCUPANCY:
        for l in LOADS:
            for p in (0, 1):
                name, src = kernel(t, l, p)
                names[name] = src
    return PRELUDE + ARITH + "".join(names.values())


def resident_blocks(regs, threads):
    """Blocks of `threads` an H200 SM holds at `regs` registers a thread
    (registers are allocated per warp in units of 256; 64 Ki a SM, 2048
    threads a SM)."""
    per_warp = -(-regs * 32 // 256) * 256
    return min(65536 // (per_warp * (threads // 32)), 2048 // threads)


def launch(code, cp, name, t, l, bps, nbytes, with_work):
    """(kernel, grid, steps, work, resident blocks per SM): work is the FMAs per
    thread and step, or for the mma kernels 1 (arithmetic on) or 0;
    `code` is the source (CuPy compiles it once and caches it)."""
    fn = cp.RawKernel(code, name, options=("--std=c++17",))
    occ = resident_blocks(fn.num_regs, t)
    steps = nbytes // 16 // (t * l)
    grid = min(SMS * min(bps, occ), steps)
    work = 0
    if with_work and MMA:
        work = 1
    elif with_work:
        per_step = WORK_16MIB * nbytes / (16 << 20) / (steps * t)
        work = max(4, int(round(per_step / 4)) * 4)
    return fn, grid, steps, work, occ


def child(info_path):
    import cupy as cp
    import numpy as np
    import torch

    code = source()
    info = {}
    for nbytes in SIZES:
        src = torch.randint(-(1 << 31), (1 << 31) - 1, (nbytes // 4,), dtype=torch.int32, device="cuda")
        src_cp = cp.asarray(src)
        host = cp.asnumpy(src_cp).view(np.uint32).reshape(-1, 4)
        out = cp.empty(SMS * 16, dtype=cp.uint32)
        # Each block's XOR, per (steps, grid): the variants with and without
        # arithmetic, and the kernels of one T * L, read the same words.
        wants = {}
        last = np.uint32(0) if MMA else np.float32(0.999)
        for name, t, l, p, bps, w in variants():
            fn, grid, steps, work, occ = launch(code, cp, name, t, l, bps, nbytes, w)
            if (steps, grid) not in wants:
                # Block b reads steps b, b + grid, ...: its XOR from the host's copy.
                per_step = np.bitwise_xor.reduce(host.reshape(steps, -1), axis=1)
                wants[steps, grid] = np.array(
                    [np.bitwise_xor.reduce(per_step[b::grid]) for b in range(grid)],
                    dtype=np.uint32)
            want = wants[steps, grid]
            for _ in range(REPS):
                out[:grid].fill(0)
                fn((grid,), (t,), (src_cp, out, np.uint64(steps), np.int32(work), last))
            got = cp.asnumpy(out[:grid])
            if not np.array_equal(got, want):
                bad = int(np.flatnonzero(got != want)[0])
                sys.exit(f"{name} at {nbytes} bytes: block {bad} XOR {got[bad]:#x}, want {want[bad]:#x}")
            info[f"{nbytes} {name} {bps} {w}"] = (grid, work, occ, fn.num_regs)
        copy = copy_kernels(torch, nbytes)["copy"]
        for _ in range(REPS):
            copy()
        torch.cuda.synchronize()
    with open(info_path, "w") as f:
        f.write(repr(info))


def main():
    import ast

    info_path = "/tmp/overlap_floor_info.txt"
    _, rows = run_ncu([sys.executable, os.path.abspath(__file__), "child", info_path], [TIME, INST],
                      "ovm_T|ovl_T|vectorized_elementwise", "/tmp/overlap_floor.csv")
    order = []
    for nbytes in SIZES:
        order += [(nbytes, v) for v in variants()] + [(nbytes, None)]
    if len(rows) != len(order) * REPS:
        sys.exit(f"{len(rows)} kernels profiled, {len(order) * REPS} expected")
    with open(info_path) as f:
        info = ast.literal_eval(f.read())
    print(f"Device time: ncu gpu__time_duration, L2 flushed, best of {REPS}. "
          "'x copy': the kernel's time over the same-size copy's; 60% of the copy's "
          "bandwidth is 0.83x its time.\n")
    copies = {}
    for i, (nbytes, v) in enumerate(order):
        if v is None:
            copies[nbytes] = min(r[TIME] for r in rows[i * REPS:(i + 1) * REPS])
    print("| bytes | T | blocks/SM (asked, allowed) | L | prefetch | regs | arithmetic per thread and step | device µs | x copy | k warp instructions |")
    print("|---:|---:|---|---:|---:|---:|---|---:|---:|---:|")
    for i, (nbytes, v) in enumerate(order):
        if v is None:
            print(f"| {nbytes >> 20} MiB | copy | | | | | | {copies[nbytes]:.2f} | 1.00 | |")
            continue
        name, t, l, p, bps, w = v
        reps = profiled(rows, i, REPS, name)
        grid, work, occ, regs = info[f"{nbytes} {name} {bps} {w}"]
        best = min(r[TIME] for r in reps)
        inst = reps[0][INST] / 1e3
        if not work:
            arith = "none"
        elif MMA:
            arith = (f"{2 * l} int4 mmas (two words each)" if name.endswith("_I4")
                     else f"{4 * l} word mmas, {name.split('_C')[1]} chains")
        else:
            arith = f"{work} FMAs"
        print(f"| {nbytes >> 20} MiB | {t} | {bps}, {occ} | {l} | {p} | {regs} | {arith} | "
              f"{best:.2f} | {best / copies[nbytes]:.2f} | {inst:.0f} |")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()
