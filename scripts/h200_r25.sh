#!/usr/bin/env bash
# Round 25 on the GPU machine. From the repository root, with OUT and
# CUDA_XZ (the packed test executable, .gpu/r25/cube_kernels.xz) set.
#   STEP=time    the tensor-core GEMV's m = 1 device times at the issue's
#                shapes (scripts/ncu_gemv.py), shifted A operands on (the
#                new default) and off, alternated twice
#   STEP=checks  the small-m GEMV checks (both operand forms), the f16 GEMV
#                check, and the two checks round 24 did not finish (TESTS
#                overrides the list), one at a time, into
#                cuda_checks$PART.txt
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
BIN_XZ=${CUDA_XZ:?set CUDA_XZ to the packed test executable}
export BIN_XZ
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
case ${STEP:-time} in
  time)
    for round in 1 2; do
      m1_times m1_times.txt GEMV_SHIFTED=1
      m1_times m1_times.txt GEMV_SHIFTED=0
    done
    cat "$OUT/m1_times.txt"
    ;;
  checks)
    default="matmul_forward_small_m_matches_reference matmul_f16_gemv_matches_reference"
    default="$default matmul_streamed_gemv_matches_reference ternary_update_matches_reference"
    run_check "cuda_checks${PART:-}.txt" 560 "--exact ${TESTS:-$default}"
    ;;
  *) echo "STEP must be time or checks" >&2; exit 2 ;;
esac
