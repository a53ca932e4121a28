#!/usr/bin/env python3
"""Same-size copy device times under Nsight Compute, the GEMV's yardstick: python3 scripts/profile/ncu_copy.py

The same-size copy, timed the way the GEMV is: device time read with
Nsight Compute (L2 flushed before each kernel), next to the CUDA-event times
that `ncu_gemv.py`'s "same-size copy" column uses.

Why: `ncu_gemv.py` compares the GEMV's device time (ncu) with a copy timed
by CUDA events after a 256 MiB flush write. Event times include the gap
between the events and the kernel, and the flush leaves dirty lines in L2
that the copy must write back; both make the copy look slower than the GEMV
is measured. This prints both, for copies (read + write) and reads alone of
the packed trits' byte counts of the benchmark GEMV shapes and of 1 GiB.

Kernels (PyTorch; ncu sees kernels only, not `cudaMemcpy`):
  copy  `torch.mul(src, 1, out=dst)` on f32: reads and writes N bytes
  read  `torch.sum(src)` on f32: reads N bytes

Usage, on the GPU machine: python3 scripts/profile/ncu_copy.py
(COPY_SIZES="16777216,14680064" for other byte counts).
"""
import os
import sys

from ncu_csv import TIME, best_call, run_ncu

# Packed trits of 8192 x 8192 and of 4096 x 14336 / 14336 x 4096 (the same
# count both ways), and 1 GiB.
SIZES = [int(s) for s in os.environ.get(
    "COPY_SIZES", f"{8192 * 512 * 4},{14336 * 256 * 4},{1 << 30}").split(",")]
REPS = 5
READ, WRITE = "dram__bytes_read.sum", "dram__bytes_write.sum"


def kernels(torch, nbytes):
    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    return {
        "copy": lambda: torch.mul(src, 1.0, out=dst),
        "read": lambda: torch.sum(src),
    }


def child(nbytes, name):
    """Under ncu: one kernel REPS times."""
    import torch

    run = kernels(torch, nbytes)[name]
    for _ in range(REPS):
        run()
    torch.cuda.synchronize()


def device_time(nbytes, name):
    """(µs, DRAM MB read, DRAM MB written) of the best of REPS calls under
    ncu, each call's kernels summed (one ncu run per kernel and size, so a
    call's kernel count need not be known)."""
    _, rows = run_ncu([sys.executable, os.path.abspath(__file__), "child", str(nbytes), name],
                      [TIME, READ, WRITE], "vectorized_elementwise|reduce_kernel",
                      f"/tmp/ncu_copy_{name}_{nbytes}.csv")
    t, call = best_call(rows, REPS, f"{name} {nbytes}")
    return t, sum(c[READ] for c in call) / 1e6, sum(c[WRITE] for c in call) / 1e6


def event_us(torch, run, flush):
    """Median CUDA-event time of `run`, µs, after a flush write (the method
    of `ncu_gemv.py`'s same-size copy)."""
    times = []
    for i in range(33):
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    import torch

    flush = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    print("Device time: ncu gpu__time_duration, L2 flushed by ncu (best of 5). Events: CUDA events "
          "around one launch after a 256 MiB flush write (median of 30), as ncu_gemv.py's same-size copy.")
    print("GB/s counts N bytes for a read and 2N (read + write) for a copy.\n")
    print("| bytes N | kernel | device µs | DRAM read MB | DRAM write MB | GB/s (device) "
          "| events µs | GB/s (events) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for nbytes in SIZES:
        ops = kernels(torch, nbytes)
        for name in ("copy", "read"):
            dev, rd, wr = device_time(nbytes, name)
            moved = nbytes * (2 if name == "copy" else 1)
            ev = event_us(torch, ops[name], flush)
            print(f"| {nbytes} | {name} | {dev:.2f} | {rd:.1f} | {wr:.1f} | "
                  f"{moved / (dev * 1e3):.0f} | {ev:.2f} | {moved / (ev * 1e3):.0f} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(int(sys.argv[2]), sys.argv[3])
    else:
        main()
