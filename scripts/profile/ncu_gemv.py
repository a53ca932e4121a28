#!/usr/bin/env python3
"""Device time of the ternary GEMV kernels under Nsight Compute: python3 scripts/profile/ncu_gemv.py .gpu/cube_kernels_bench

Host-side timing (`stream_ms`) cannot see below the host cost of a Burn op
(about 0.01 ms), and CubeCL's CUDA runtime times with the system clock. This
runs the `gemv_device_profile` table of the CUDA bench executable (`scripts/gpu/gemv_times.sh build`) under `ncu`
(default cache control: L2 flushed before each kernel, so the weights come
from DRAM), once per path and shape, and prints a markdown table of each kernel's
`gpu__time_duration`, DRAM bytes read and warp instructions, with the
packed-weight bandwidth against a 1 GiB device-to-device copy (CUDA events)
and against a copy of the packed trits' byte count whose device time ncu
reads the same way (`ncu_copy.py`), in the same run.

Usage, on the GPU machine: python3 scripts/profile/ncu_gemv.py .gpu/cube_kernels_bench
(NCU_PATHS="mma prepass" to profile only some of the paths; NCU_SHAPES="1 8192 8192,8 4096 14336"
to profile only some shapes; NCU_TUNES="0 0 0 0,2 8192 2 16" to sweep the launch knobs, each
"row_tiles target_planes depth max_planes" of the bench's GEMV_TUNE, 0 = built-in choice)
"""
import os
import re
import sys

from ncu_copy import device_time
from ncu_csv import TIME, best_call, run_ncu

READ, INST = "dram__bytes_read.sum", "smsp__inst_executed.sum"
# "M K N" of the test's shapes (GEMV_SHAPES in burn-ternary/tests/cube_kernels.rs).
SHAPES = [f"{m} {k} {n}" for k, n in [(8192, 8192), (4096, 14336), (14336, 4096), (32768, 32768)]
          for m in (1, 8)]


def copy_gbs():
    """Device-to-device copy of 1 GiB (read + write), CUDA events, median of 20."""
    import torch

    src = torch.empty(1 << 28, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return 2 * (1 << 30) / (times[len(times) // 2] * 1e6)


def same_size_copy_gbs(nbytes):
    """Copy of `nbytes` (read + write counted, as above), its device time read
    with ncu like the kernels' (L2 flushed; `ncu_copy.py`): the peer of a GEMV
    that streams `nbytes` of packed trits, with the same launch ramp-up and
    drain. (CUDA events after a flush write would add 3 µs at 16 MiB: 12.5 against 9.4 µs on the H200.)"""
    return 2 * nbytes / (device_time(nbytes, "copy")[0] * 1e3)


def profile(binary, path, only, tune):
    """(shapes, kernels) of one shape: the test's PROFILE line and ncu's
    kernel rows in launch order (one ncu run per shape, so that a path's
    kernels per call need not be known)."""
    env = dict(os.environ, GEMV_PATH=path, GEMV_ONLY=only, GEMV_TUNE=tune)
    stdout, kernels = run_ncu(
        [binary, "--ignored", "gemv_device_profile", "--exact", "--nocapture", "--test-threads=1"],
        [TIME, READ, INST], "gemv_mma|gemv_plane|limb", f"/tmp/ncu_{path}.csv", env)
    # The harness's "test ... " prefix can share a line with the first one.
    shapes = [tuple(map(int, found.groups()))
              for found in re.finditer(r"PROFILE (\d+) (\d+) (\d+) (\d+)", stdout)]
    return shapes, kernels


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else ".gpu/cube_kernels"
    copy = copy_gbs()
    print(f"device-to-device copy (torch, CUDA events, 1 GiB read + 1 GiB written): {copy:.0f} GB/s\n")
    print("Paths: mma = the default tensor-core GEMV (one launch where the limbs fit in shared "
          "memory), prepass = its two-launch form, plane = the plane GEMV. \"same-size copy\": "
          "a copy of the packed trits' byte count (torch.mul by 1, read + write counted), its "
          "device time read with ncu the same way (L2 flushed).\n")
    print("| M | K | N | path | kernels (µs each) | device µs | DRAM read MiB | packed weight GB/s "
          "| % of copy | same-size copy GB/s | % of same-size copy | warp instructions (k) |")
    print("|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    same_size = {}
    shapes_wanted = os.environ.get("NCU_SHAPES")
    shapes_wanted = SHAPES if not shapes_wanted else [s.strip() for s in shapes_wanted.split(",")]
    tunes = [t.strip() for t in os.environ.get("NCU_TUNES", "0 0 0 0").split(",")]
    for tune, path, only in ((t, p, o) for t in tunes
                             for p in os.environ.get("NCU_PATHS", "mma prepass plane").split()
                             for o in shapes_wanted):
        label = path if tune == "0 0 0 0" else f"{path} [{tune}]"
        shapes, kernels = profile(binary, path, only, tune)
        if len(shapes) != 1:
            sys.exit(f"path {path}, shape {only}: PROFILE lines {shapes}")
        m, k, n, calls = shapes[0]
        total, call = best_call(kernels, calls, f"path {path}, shape {only}")
        parts = " + ".join(f"{c['name'].split('_kernel')[0]} {c[TIME]:.1f}" for c in call)
        read = sum(c[READ] for c in call)
        inst = sum(c[INST] for c in call)
        packed = n * ((k + 15) // 16) * 4
        gbs = packed / (total * 1e3)
        if packed not in same_size:
            same_size[packed] = same_size_copy_gbs(packed)
        peer = same_size[packed]
        print(f"| {m} | {k} | {n} | {label} | {parts} | {total:.1f} | {read / 2**20:.1f} | "
              f"{gbs:.0f} | {100 * gbs / copy:.0f}% | {peer:.0f} | {100 * gbs / peer:.0f}% | "
              f"{inst / 1e3:.0f} |")


if __name__ == "__main__":
    main()
