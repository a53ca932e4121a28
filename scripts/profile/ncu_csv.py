"""Helpers to run a program under Nsight Compute and read its raw CSV page (imported by ncu_gemv.py and ncu_copy.py, not run alone).

A program run under Nsight Compute, and its raw CSV page read back:
shared by `ncu_gemv.py` (the GEMV kernels) and `ncu_copy.py` (the copy they
are compared with), so that both sides are timed and parsed the same way."""
import csv
import io
import subprocess
import sys

TIME = "gpu__time_duration.sum"
# ncu's unit names to µs, bytes and instructions.
UNIT_SCALE = {
    "ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3,
    "byte": 1.0, "Kbyte": 1e3, "KB": 1e3, "Mbyte": 1e6, "MB": 1e6, "Gbyte": 1e9, "GB": 1e9,
    "": 1.0, "inst": 1.0, "Kinst": 1e3, "Minst": 1e6, "Ginst": 1e9,
}


def run_ncu(argv, metrics, kernels, log, env=None):
    """Runs `argv` under ncu (default cache control: L2 flushed before each
    kernel; clocks left alone), profiling the kernels whose names match the
    regex `kernels`. Returns the program's stdout and `read_raw_csv`'s rows.
    Exits with ncu's output if it fails."""
    run = subprocess.run(
        ["ncu", "--clock-control", "none", "--csv", "--page", "raw", "--metrics",
         ",".join(metrics), "-k", f"regex:{kernels}", "--log-file", log, *argv],
        env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit(f"ncu failed on {argv} ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run.stdout, read_raw_csv(log, metrics)


def read_raw_csv(log, metrics):
    """One dict per profiled kernel, in launch order: "name" and each of
    `metrics` in µs, bytes or instructions."""
    text = open(log).read()
    rows = list(csv.reader(io.StringIO("\n".join(
        l for l in text.splitlines() if l.startswith('"')))))
    header, units, data = rows[0], rows[1], rows[2:]
    col = {name: i for i, name in enumerate(header)}
    scale = {}
    for metric in metrics:
        unit = units[col[metric]]
        if unit not in UNIT_SCALE:
            sys.exit(f"{log}: unknown ncu unit {unit!r} for {metric}")
        scale[metric] = UNIT_SCALE[unit]
    return [dict({"name": r[col["Kernel Name"]]},
                 **{m: float(r[col[m]].replace(",", "")) * scale[m] for m in metrics})
            for r in data]


def profiled(rows, i, reps, name):
    """The rows of the `i`-th kernel of a program that launched each of its
    kernels `reps` times in a row, after checking that all of them are the
    kernel `name` exactly (a demangled parameter list aside): a prefix match
    would take `k_C1` for `k_C1_I4`. Exits naming both if not."""
    block = rows[i * reps:(i + 1) * reps]
    if len(block) != reps or any(r["name"].split("(")[0] != name for r in block):
        sys.exit(f"launch order: expected {name} {reps} times at {i * reps}, got "
                 f"{[r['name'] for r in block]}")
    return block


def best_call(kernels, calls, what):
    """The fastest of `calls` equal runs of `kernels` (one call's kernels
    each, in launch order), as (its total µs, its kernels). Exits naming
    `what` if the kernels do not split into `calls` equal runs."""
    if not kernels or len(kernels) % calls:
        sys.exit(f"{what}: {len(kernels)} kernels for {calls} calls")
    per_call = len(kernels) // calls
    runs = [kernels[i * per_call:(i + 1) * per_call] for i in range(calls)]
    return min(((sum(k[TIME] for k in run), run) for run in runs), key=lambda pair: pair[0])
