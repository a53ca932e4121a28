#!/usr/bin/env bash
# Every CUDA kernel check of burn-ternary (tests/cube_kernels.rs) on a GPU
# machine without Rust, from a test executable built here.
#
# Here (with Rust, no GPU needed), from the repository root:
#   scripts/gpu/cuda_checks.sh build
# which runs
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
# and packs the executable it names into the git-ignored .gpu/ folder
# (.gpu/cuda_checks.xz, with .gpu/cuda_checks.COMMIT). Carry .gpu/ along.
#
# On the GPU machine, from the repository root, with OUT set to the output
# folder:
#   scripts/gpu/cuda_checks.sh
# unpacks it (xz -d, or Python's lzma where xz is missing), runs every check
# one at a time (--test-threads=1; JOBS=N: N processes at once) into $OUT/checks.txt, records the machine
# and commit in $OUT/gpu.txt and prints the summary lines. Exit status: the
# checks'. A check that cannot start the CUDA backend fails (unless
# ARBITOR_ALLOW_NO_GPU=1).
set -uo pipefail
cd "$(dirname "$0")/../.."
XZ=.gpu/cuda_checks.xz

if [ "${1:-run}" = build ]; then
  set -e
  exe=$(cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run \
    --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cube_kernels":
        print(m["executable"])')
  mkdir -p .gpu
  xz -T0 -c "$exe" > "$XZ"
  git rev-parse HEAD > .gpu/cuda_checks.COMMIT
  ls -l "$XZ"
  exit 0
fi

: "${OUT:?set OUT to the output folder}"
bin=.gpu/cuda_checks
if command -v xz > /dev/null; then
  xz -d -c "$XZ" > "$bin"
else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$XZ" "$bin"
fi
chmod +x "$bin"
{
  date -u
  echo "built from commit $(cat .gpu/cuda_checks.COMMIT 2> /dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
} > "$OUT/gpu.txt"
# Minimal autotuning: the checks that go through Burn's autotuned matmul
# would otherwise tune each new shape class for seconds.
# JOBS > 1 runs that many checks at once, each in a process of its own (one
# CubeCL client each: the kernels' JIT compiles use the machine's cores).
export CUBECL_AUTOTUNE_LEVEL=minimal
if [ "${JOBS:-1}" -gt 1 ]; then
  tmp=$(mktemp -d)
  "$bin" --list --format terse | sed -n 's/: test$//p' > "$tmp/names"
  : > "$OUT/checks.txt"
  # Each check's output joins $OUT/checks.txt as soon as it ends, so a run
  # cut short still returns what finished.
  xargs -P "$JOBS" -I{} sh -c 's=$(date +%s); "$1" --exact "$2" --test-threads=1 --nocapture > "$3/$2.txt" 2>&1; r=$?; echo "$2 rc=$r ($(( $(date +%s) - s )) s)" >> "$3/rcs"; cat "$3/$2.txt" >> "$4/checks.txt"' _ "$bin" {} "$tmp" "$OUT" < "$tmp/names"
  sort "$tmp/rcs" | tee -a "$OUT/checks.txt"
  rc=0
  grep -qv ' rc=0 ' "$tmp/rcs" && rc=1
else
  "$bin" --test-threads=1 --nocapture > "$OUT/checks.txt" 2>&1
  rc=$?
fi
grep -E "cases passed|cases failed|differ|test result|panicked|route\): [0-9.]+ s" "$OUT/checks.txt"
echo "checks rc=$rc"
exit $rc
