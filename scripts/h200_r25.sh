#!/usr/bin/env bash
# Round 25 on the GPU machine. From the repository root, with OUT and
# CUDA_XZ (a packed test executable, .gpu/<dir>/cube_kernels.xz) set.
#   (STEP=time and STEP=sass need an executable of ca360de or b7c8fb8, the
#   commits with the GEMV_SHIFTED knob; the form was taken out in 890045a.)
#   STEP=time    the tensor-core GEMV's m = 1 device times at the issue's
#                shapes (scripts/ncu_gemv.py), shifted A operands on and
#                off, alternated twice
#   STEP=sass    registers, spills and opcode counts of the m = 1 GEMV
#                kernels at the issue's shapes (scripts/cubecl_sass.py), shifted
#                operands on and off, into ptxas_shifted{1,0}.txt
#   STEP=checks  the small-m GEMV checks (both operand forms where the
#                executable has them), the f16 GEMV
#                check, and the two checks round 24 did not finish (TESTS
#                overrides the list), one at a time, into
#                cuda_checks$PART.txt
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
unpack_cuda_xz
case ${STEP:-time} in
  time)
    for round in 1 2; do
      m1_times m1_times.txt GEMV_SHIFTED=1
      m1_times m1_times.txt GEMV_SHIFTED=0
    done
    cat "$OUT/m1_times.txt"
    ;;
  sass)
    for shifted in 1 0; do
      rm -f /tmp/cubecl.log
      for shape in "1 8192 8192" "1 4096 14336" "1 14336 4096"; do
        GEMV_SHIFTED=$shifted GEMV_ONLY="$shape" CUBECL_DEBUG_LOG=/tmp/cubecl.log \
          timeout "$(left 60)" .gpu/cube_kernels --ignored gemv_device_profile --exact \
          --nocapture --test-threads=1 > /dev/null 2>&1
      done
      python3 scripts/cubecl_sass.py /tmp/cubecl.log gemv_mma "/tmp/sass$shifted" > /dev/null
      cp "/tmp/sass$shifted/ptxas.txt" "$OUT/ptxas_shifted$shifted.txt"
      grep -E "registers|spill|^==" "$OUT/ptxas_shifted$shifted.txt"
    done
    ;;
  checks)
    default="matmul_forward_small_m_matches_reference matmul_f16_gemv_matches_reference"
    default="$default matmul_streamed_gemv_matches_reference ternary_update_matches_reference"
    run_check "cuda_checks${PART:-}.txt" 560 "--exact ${TESTS:-$default}"
    ;;
  *) echo "STEP must be time, sass or checks" >&2; exit 2 ;;
esac
