#!/usr/bin/env bash
# Issue 3 on CUDA, in GPU-machine calls of at most 10 minutes. Build here:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   mkdir -p .gpu/s7 && xz -c <cube_kernels executable> > .gpu/s7/cube_kernels.xz
#   git rev-parse HEAD > .gpu/s7/COMMIT
# then on the GPU machine, from the repository root, with OUT set:
#   STEP=checks scripts/h200_checks.sh   every kernel check (>= 200 random shapes each)
#   STEP=sweep scripts/h200_checks.sh    f32 route vs FMA kernels over m and k = n
set -uo pipefail
cd "$(dirname "$0")/.."
BIN_XZ=${BIN_XZ:-.gpu/s7/cube_kernels.xz}
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
case ${STEP:-checks} in
  checks)
    # Minimal autotuning: the few checks that go through Burn's autotuned
    # matmul would otherwise tune each new shape class for seconds.
    CUBECL_AUTOTUNE_LEVEL=minimal .gpu/cube_kernels --test-threads=1 --nocapture > "$OUT/checks.txt" 2>&1
    grep -E "cases passed|cases failed|differ|test result|panicked|route\): [0-9.]+ s" "$OUT/checks.txt"
    ;;
  sweep)
    .gpu/cube_kernels --ignored f32_route_sweep --nocapture --test-threads=1 > "$OUT/sweep.txt" 2>&1
    cat "$OUT/sweep.txt"
    ;;
  *) echo "STEP must be checks or sweep" >&2; exit 2 ;;
esac
