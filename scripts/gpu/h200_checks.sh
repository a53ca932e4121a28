#!/usr/bin/env bash
# Every CubeCL kernel check on CUDA (STEP=checks) or the f32 route vs FMA sweep (STEP=sweep), from a packed test executable: OUT=<dir> BIN_XZ=.gpu/cuda/cube_kernels.xz STEP=checks scripts/gpu/h200_checks.sh
# Build and pack on a development machine first:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   mkdir -p .gpu/cuda && xz -c <cube_kernels executable> > .gpu/cuda/cube_kernels.xz
#   git rev-parse HEAD > .gpu/cuda/COMMIT
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN_XZ=${BIN_XZ:-.gpu/cuda/cube_kernels.xz}
# shellcheck source=scripts/gpu/gpu_bin.sh
source scripts/gpu/gpu_bin.sh
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
