#!/usr/bin/env bash
# Round 19 on the GPU machine: where the m = 1 GEMV's time goes, against the
# fastest read of the same bytes. From the repository root, with OUT set;
# CUDA_XZ names the packed CUDA test executable built here (COMMIT beside).
#   STEP=place  the m = 1 device times (ncu_gemv.py) of the tensor-core GEMV
#               as it is, without its decode and mma (GEMV_ABLATE=1), and
#               without those and its prologue (GEMV_ABLATE=2); at commit
#               0293c98 this step also ran GEMV_TOUCH=1 and 2 (a knob since
#               removed: touching later items' sectors at the start) and
#               ptxas's register report with it
#   STEP=check  the m <= 8 and f16 GEMV checks (about 300 s together: NVRTC
#               compiles every launch shape the first time)
#   STEP=table  the m = 1 device times twice and the CUDA GEMV table (stream
#               times); calls 4 and 5 of round 19 ran both steps as one
#               `check` with 300 s for the checks, too little, so call 5
#               reran matmul_forward_small_m alone
#   STEP=planes on WGPU (WGPU_XZ, the Vulkan loader's packages in .gl/), the
#               plane GEMV's plane counts with BURN_TERNARY_SM_COUNT=132: the
#               built-in choice against 2, 4 and 8 (h200_r18.sh STEP=rest's
#               last part, which never ran)
# scripts/read_floor.py (h200_r18.sh STEP=floor) gives the read floor.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
if [ "${STEP:-place}" = planes ]; then
  # shellcheck source=scripts/gpu_vulkan.sh
  source scripts/gpu_vulkan.sh
  BIN_XZ=${WGPU_XZ:?}
else
  BIN_XZ=${CUDA_XZ:?}
fi
export BIN_XZ
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
case ${STEP:-place} in
  place)
    for run in "GEMV_ABLATE=0" "GEMV_ABLATE=1" "GEMV_ABLATE=2" "GEMV_ABLATE=0"; do
      m1_times place.txt $run
    done
    cat "$OUT/place.txt"
    ;;
  check)
    timeout "$(left 500)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_forward_small_m \
      matmul_f16_gemv > "$OUT/cuda_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_checks.txt"
    ;;
  table)
    m1_times m1_times.txt
    m1_times m1_times.txt
    cat "$OUT/m1_times.txt"
    timeout "$(left 150)" .gpu/cube_kernels --ignored gemv_benchmarks --nocapture --test-threads=1 \
      > "$OUT/cuda_gemv_benchmarks.txt" 2>&1
    grep "|" "$OUT/cuda_gemv_benchmarks.txt"
    ;;
  planes)
    BURN_TERNARY_SM_COUNT=132 PLANE_TUNES="0 0 0 0,0 0 0 2,0 0 0 4,0 0 0 8" timeout "$(left 240)" \
      .gpu/cube_kernels --ignored plane_gemv_tuning --nocapture --test-threads=1 \
      > "$OUT/wgpu_plane_tuning_sm132.txt" 2>&1
    grep -E "\||test result" "$OUT/wgpu_plane_tuning_sm132.txt"
    ;;
  *) echo "STEP must be place, check, table or planes" >&2; exit 2 ;;
esac
