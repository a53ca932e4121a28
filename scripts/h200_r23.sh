#!/usr/bin/env bash
# Round 23 on the GPU machine. From the repository root, with OUT set.
#   STEP=overlap  resident grids reading the m = 1 GEMV's trit bytes (16 and
#                 14 MiB) with and without the GEMV's instruction count of
#                 stand-in arithmetic, beside the same-size copy
#                 (scripts/overlap_floor.py); no CUDA executable needed
#   STEP=mma      the same grids with the GEMV's own decode and int8 mma in
#                 place of the stand-in FMAs (OVERLAP_ARITH=mma)
#   STEP=int4     the best of those shapes with int8 against int4 mmas
#                 (OVERLAP_ARITH=mma4), with warp instruction counts
#   STEP=tune     the register-fed GEMV's m = 1 times at the issue's shapes
#                 under launch knobs near the models' best item (NCU_TUNES:
#                 row tiles, depth); needs CUDA_XZ, the packed
#                 test executable (the register-fed kernel is the same at
#                 6b65863 as now)
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
case ${STEP:-overlap} in
  overlap)
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt" 2>&1
    (cd scripts && timeout "$(left 400)" python3 overlap_floor.py) > "$OUT/overlap.txt" 2>&1
    cat "$OUT/overlap.txt"
    ;;
  mma)
    (cd scripts && OVERLAP_ARITH=mma timeout "$(left 400)" python3 overlap_floor.py) > "$OUT/overlap_mma.txt" 2>&1
    cat "$OUT/overlap_mma.txt"
    ;;
  int4)
    (cd scripts && OVERLAP_ARITH=mma4 timeout "$(left 300)" python3 overlap_floor.py) > "$OUT/overlap_int4.txt" 2>&1
    cat "$OUT/overlap_int4.txt"
    ;;
  tune)
    BIN_XZ=${CUDA_XZ:?set CUDA_XZ to the packed test executable}
    export BIN_XZ
    # shellcheck source=scripts/gpu_bin.sh
    source scripts/gpu_bin.sh
    # ncu_gemv.py sets GEMV_TUNE from NCU_TUNES (call 4 passed GEMV_TUNE,
    # which it overrode: docs/runs/h200-r23/tune_call4_not_applied.txt).
    for tune in "0 0 0 0" "2 0 2 0" "2 0 1 0" "2 0 3 0" "1 0 2 0" "1 0 3 0" "4 0 2 0"; do
      m1_times tune.txt "NCU_TUNES=$tune"
    done
    cat "$OUT/tune.txt"
    ;;
  *) echo "STEP must be overlap, mma, int4 or tune" >&2; exit 2 ;;
esac
