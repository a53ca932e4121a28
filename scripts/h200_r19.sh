#!/usr/bin/env bash
# Round 19 on the GPU machine: where the m = 1 GEMV's time goes, against the
# fastest read of the same bytes. From the repository root, with OUT set;
# CUDA_XZ names the packed CUDA test executable built here (COMMIT beside).
#   STEP=place  the m = 1 device times (ncu_gemv.py) of the tensor-core GEMV
#               as it is, without its decode and mma (GEMV_ABLATE=1), without
#               those and its prologue (GEMV_ABLATE=2), and touching the
#               sectors of 1 and 2 later items at the start (GEMV_TOUCH);
#               ptxas registers and spills of the one-launch kernel at each
#               shape with TOUCH (default 1)
#   STEP=check  the m <= 8 and f16 GEMV checks with GEMV_TOUCH=$TOUCH, then
#               m = 1 device times with and without it, twice
# scripts/read_floor.py (h200_r18.sh STEP=floor) gives the read floor.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
summary="cases passed|cases failed|differ|test result|panicked"
shapes="1 8192 8192,1 4096 14336,1 14336 4096"
END=${END:-560}
TOUCH=${TOUCH:-1}
left() { local t=$((END - SECONDS)); [ "$t" -lt "$1" ] && echo "$t" || echo "$1"; }
BIN_XZ=${CUDA_XZ:?}; export BIN_XZ; source scripts/gpu_bin.sh
# One ncu_gemv.py run at m = 1 under the environment given as arguments.
times() {
  echo "== $*" >> "$OUT/place.txt"
  env "$@" NCU_PATHS=mma NCU_SHAPES="$shapes" timeout "$(left 60)" python3 scripts/ncu_gemv.py \
    .gpu/cube_kernels 2>&1 | grep -E "^\| 1 |rror|ailed" >> "$OUT/place.txt"
}
case ${STEP:-place} in
  place)
    for run in "GEMV_ABLATE=0" "GEMV_ABLATE=1" "GEMV_ABLATE=2" "GEMV_TOUCH=1" "GEMV_TOUCH=2" \
      "GEMV_ABLATE=0"; do
      times $run
    done
    cat "$OUT/place.txt"
    IFS=, read -ra each <<< "$shapes"
    for shape in "${each[@]}"; do
      rm -rf /tmp/cubecl.log /tmp/sass
      GEMV_TOUCH=$TOUCH GEMV_ONLY="$shape" CUBECL_DEBUG_LOG=/tmp/cubecl.log timeout "$(left 60)" \
        .gpu/cube_kernels --ignored gemv_device_profile --exact --nocapture --test-threads=1 > /dev/null 2>&1
      timeout "$(left 60)" python3 scripts/cubecl_sass.py /tmp/cubecl.log gemv_mma /tmp/sass > /dev/null 2>&1
      { echo "== $shape, GEMV_TOUCH=$TOUCH"; grep -E "Used|spill" /tmp/sass/ptxas.txt; } >> "$OUT/ptxas.txt"
    done
    cat "$OUT/ptxas.txt"
    ;;
  check)
    GEMV_TOUCH=$TOUCH timeout "$(left 300)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_forward_small_m matmul_f16_gemv > "$OUT/cuda_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_checks.txt"
    for run in "GEMV_TOUCH=0" "GEMV_TOUCH=$TOUCH" "GEMV_TOUCH=0" "GEMV_TOUCH=$TOUCH"; do
      times $run
    done
    cat "$OUT/place.txt"
    ;;
  *) echo "STEP must be place or check" >&2; exit 2 ;;
esac
