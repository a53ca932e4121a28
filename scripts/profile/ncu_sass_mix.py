#!/usr/bin/env python3
"""Instruction mix and warp-stall samples of one kernel from an ncu SASS source export: python3 scripts/profile/ncu_sass_mix.py sass.csv[.xz]

Instruction mix and warp-stall samples of one kernel, from the SASS
source page that Nsight Compute exports:

    ncu -i REPORT.ncu-rep --page source --csv --print-source sass > sass.csv

(xz-packed or not). Prints the
warp instructions executed per opcode (share of all), the stall reasons
summed over the kernel, and the twelve instructions with the most stall
samples. Usage: python3 scripts/profile/ncu_sass_mix.py sass.csv[.xz]
"""
import collections
import csv
import lzma
import re
import sys


def main():
    path = sys.argv[1]
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt") as f:
        rows = list(csv.reader(f))
    # Row 0 names the kernel; row 1 is the header.
    header, data = rows[1], [r for r in rows[2:] if len(r) >= len(rows[1])]
    col = {name: i for i, name in enumerate(header)}
    samples = col["Warp Stall Sampling (All Samples)"]
    ops, stalls = collections.Counter(), collections.Counter()
    for r in data:
        # Drop a predicate guard ("@!P3 ") and the opcode's modifiers.
        source = re.sub(r"^@!?U?P\w+\s+", "", r[col["Source"]].strip())
        ops[source.split(" ")[0].split(".")[0]] += int(r[col["Instructions Executed"]] or 0)
        for name, i in col.items():
            if name.startswith("stall_") and "Not Issued" not in name and r[i] not in ("", "-"):
                stalls[name] += int(r[i])
    total = sum(ops.values())
    print(f"warp instructions executed: {total}; stall samples: "
          f"{sum(int(r[samples] or 0) for r in data)}")
    for op, n in ops.most_common(20):
        print(f"{op:10s} {n:12d} {100 * n / total:5.1f}%")
    print("stalls:", ", ".join(f"{k[6:]} {v}" for k, v in stalls.most_common(12)))
    for r in sorted(data, key=lambda r: -int(r[samples] or 0))[:12]:
        print(r[samples], r[col["Source"]].strip()[:70])


if __name__ == "__main__":
    main()
