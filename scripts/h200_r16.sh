#!/usr/bin/env bash
# Round 16 on the GPU machine: the tensor-core GEMV with every trit load of
# a plane issued before its prologue (1024-thread cubes, or row groups with
# all items in flight), and the B operands read from shared memory at each
# `mma` (GEMV_BSHARED=1) to free the registers that takes. One packed
# executable built here (BIN_XZ, its COMMIT beside it). From the repository
# root, with OUT set. The knobs were removed after the run (neither helped:
# KERNEL_NOTES, sixteenth round); this needs the executable of the commit
# that had them, 12207bc.
#   STEP=sweep scripts/h200_r16.sh    m = 1 device times (ncu, L2 flushed)
#   STEP=sweep2 scripts/h200_r16.sh   the same for balanced grids
#   STEP=checks scripts/h200_r16.sh   the small-m check on the launch shapes
#                                     the sweep tries
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
BIN_XZ=${BIN_XZ:-.gpu/s20/cube_kernels.xz}
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
summary="cases passed|cases failed|differ|test result|panicked"
# sweep LABEL "M K N" BSHARED GROUPS "TUNE[,TUNE...]"
sweep() {
  echo "## $1 (GEMV_BSHARED=$3 GEMV_GROUPS=$4)" | tee -a "$OUT/sweep.txt"
  GEMV_BSHARED=$3 GEMV_GROUPS=$4 NCU_PATHS=mma NCU_SHAPES="$2" NCU_TUNES="$5" \
    python3 scripts/ncu_gemv.py .gpu/cube_kernels 2>&1 | grep -E "^\| 1 |failed|Error|error" \
    | tee -a "$OUT/sweep.txt"
}
case ${STEP:-sweep} in
  sweep)
    sweep "8192x8192 defaults" "1 8192 8192" 0 0 "0 0 0 0"
    sweep "8192x8192 B from shared" "1 8192 8192" 1 0 "0 0 0 0,2 0 1 32"
    sweep "8192x8192 B in registers" "1 8192 8192" 0 2 "2 0 1 32"
    sweep "8192x8192 B from shared, 2 groups" "1 8192 8192" 1 2 "2 0 1 32,1 0 1 32"
    sweep "4096x14336 defaults" "1 4096 14336" 0 0 "0 0 0 0"
    sweep "4096x14336 B from shared" "1 4096 14336" 1 0 "0 0 0 0"
    sweep "4096x14336 4 groups" "1 4096 14336" 1 4 "2 0 3 16"
    sweep "4096x14336 4 groups, B in registers" "1 4096 14336" 0 4 "2 0 3 16"
    sweep "14336x4096 defaults" "1 14336 4096" 0 0 "0 0 0 0"
    sweep "14336x4096 B from shared" "1 14336 4096" 1 0 "0 0 0 0,2 0 1 32"
    sweep "14336x4096 32 planes, B in registers" "1 14336 4096" 0 1 "2 0 1 32"
    ;;
  sweep2)
    # Balance: rows per SM and chunks per plane, with the knobs that exist
    # at every commit since round 11 (row tiles, depth, planes, row groups).
    sweep "4096x14336 defaults" "1 4096 14336" 0 0 "0 0 0 0"
    sweep "4096x14336 7 blocks of 16 rows (128 cubes)" "1 4096 14336" 0 7 "1 0 3 16,1 0 2 16,1 0 3 8"
    sweep "14336x4096 defaults" "1 14336 4096" 0 0 "0 0 0 0"
    sweep "14336x4096 8 planes (7 chunks each)" "1 14336 4096" 0 1 "2 0 3 8,2 0 2 8"
    sweep "8192x8192 defaults" "1 8192 8192" 0 0 "0 0 0 0"
    sweep "8192x8192 4 blocks of 16 rows" "1 8192 8192" 0 4 "1 0 3 16"
    sweep "8192x8192 2 blocks of 32 rows" "1 8192 8192" 0 2 "2 0 3 16"
    ;;
  checks)
    for cfg in "1 0 0 0 0 0" "1 2 2 0 1 32" "1 1 2 0 1 32" "1 4 2 0 3 16" "0 2 2 0 1 32"; do
      set -- $cfg
      echo "## GEMV_BSHARED=$1 GEMV_GROUPS=$2 GEMV_TUNE=\"$3 $4 $5 $6\"" | tee -a "$OUT/checks.txt"
      GEMV_BSHARED=$1 GEMV_GROUPS=$2 GEMV_TUNE="$3 $4 $5 $6" CUBECL_AUTOTUNE_LEVEL=minimal \
        .gpu/cube_kernels --test-threads=1 --nocapture matmul_forward_small_m >> "$OUT/checks.txt" 2>&1
      grep -E "$summary" "$OUT/checks.txt" | tail -3
    done
    ;;
  *) echo "STEP must be sweep, sweep2 or checks" >&2; exit 2 ;;
esac
