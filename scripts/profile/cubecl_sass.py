#!/usr/bin/env python3
"""Registers, spills and SASS of CubeCL kernels from a CUBECL_DEBUG_LOG file: python3 scripts/profile/cubecl_sass.py <file> <name regex> <out dir>

CubeCL compiles its CUDA kernels at run time (NVRTC), so there is no object
file to disassemble. Run the program with CUBECL_DEBUG_LOG=<file> (the log
holds every kernel's generated CUDA source), then, on a machine with nvcc:

    python3 scripts/profile/cubecl_sass.py <file> <name regex> <out dir>

Each matching kernel source is compiled for sm_90 with `-Xptxas -v` (the
register, spill and stack report goes to <out dir>/ptxas.txt) and its SASS
written to <out dir>/<n>.sass, with a count of instructions per opcode.
"""
import collections
import os
import re
import subprocess
import sys

log, pattern, out = sys.argv[1], re.compile(sys.argv[2]), sys.argv[3]
os.makedirs(out, exist_ok=True)
text = open(log).read()
blocks = re.findall(r"```cpp\n(.*?)```", text, re.S)
seen = set()
report = open(os.path.join(out, "ptxas.txt"), "w")
n = 0
for src in blocks:
    name = re.search(r"__global__ void (?:__launch_bounds__\(\d+\))?\s*(\w+)", src)
    if not name or not pattern.search(name.group(1)) or src in seen:
        continue
    seen.add(src)
    base = os.path.join(out, f"{n}_{name.group(1)}")
    open(base + ".cu", "w").write(src)
    ptxas = subprocess.run(["nvcc", "-arch=sm_90", "-cubin", "-Xptxas", "-v", "-o", base + ".cubin",
                            base + ".cu"], capture_output=True, text=True)
    report.write(f"== {base}\n{ptxas.stdout}{ptxas.stderr}\n")
    sass = subprocess.run(["cuobjdump", "-sass", base + ".cubin"], capture_output=True, text=True).stdout
    open(base + ".sass", "w").write(sass)
    ops = collections.Counter(m.group(1).split(".")[0] for m in
                              re.finditer(r"/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9.]*)", sass))
    report.write("opcodes: " + ", ".join(f"{k} {v}" for k, v in ops.most_common()) + "\n\n")
    n += 1
print(open(os.path.join(out, "ptxas.txt")).read())
