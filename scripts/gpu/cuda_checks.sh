#!/usr/bin/env bash
# Every CUDA kernel check of burn-ternary (tests/cube_kernels.rs) on a GPU
# machine without Rust, from a test executable built here.
#
# Here (with Rust, no GPU needed), from the repository root:
#   scripts/gpu/cuda_checks.sh build
# which runs
#   cargo test --profile gpu -p burn-ternary --features cuda,autotune --test cube_kernels --no-run
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

# shellcheck source=scripts/gpu/packed_executable.sh
source scripts/gpu/packed_executable.sh
if [ "${1:-run}" = build ]; then
  pack_executable "$XZ" cube_kernels test --profile gpu -p burn-ternary --features cuda,autotune --test cube_kernels --no-run
  exit
fi

: "${OUT:?set OUT to the output folder}"
bin=.gpu/cuda_checks
unpack_executable "$XZ" "$bin"
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
