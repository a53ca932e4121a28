#!/usr/bin/env bash
# Round 14 on the GPU machine: the kernels of kernel.rs, conv1d and
# gemm_split on Array arguments. Two packed executables, built here:
# .gpu/s16 (this change) and .gpu/s16old (the commit before it, with the
# same small_shape_benchmarks test). From the repository root, with OUT set:
#   STEP=checks scripts/h200_r14.sh   every check but the f32 tensor-core one,
#                                     then the small-shape A/B, two passes
#   STEP=f32 scripts/h200_r14.sh      the f32 tensor-core check (≈ 270 s),
#                                     then a third A/B pass
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
BIN_XZ=.gpu/s16/cube_kernels.xz
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
summary="cases passed|cases failed|differ|test result|panicked|route\): [0-9.]+ s"
case ${STEP:-checks} in
  checks)
    CUBECL_AUTOTUNE_LEVEL=minimal .gpu/cube_kernels --test-threads=1 --nocapture \
      --skip matmul_f32_tensor_core > "$OUT/checks.txt" 2>&1
    grep -E "$summary" "$OUT/checks.txt"
    BISECT=".gpu/s16old .gpu/s16" BENCH=small_shape_benchmarks PASSES=2 scripts/h200_gemv_bisect.sh
    ;;
  f32)
    CUBECL_AUTOTUNE_LEVEL=minimal .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_f32_tensor_core > "$OUT/checks_f32.txt" 2>&1
    grep -E "$summary" "$OUT/checks_f32.txt"
    BISECT=".gpu/s16 .gpu/s16old" BENCH=small_shape_benchmarks scripts/h200_gemv_bisect.sh
    ;;
  *) echo "STEP must be checks or f32" >&2; exit 2 ;;
esac
