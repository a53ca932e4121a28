#!/usr/bin/env bash
# Round 22 on the GPU machine. From the repository root, with OUT set;
# CUDA_XZ names the packed CUDA test executable built here (COMMIT beside).
#   STEP=arrive  when a streamed kernel's stages land, with and without
#                stand-in arithmetic (scripts/stage_arrival.py), then the
#                streamed GEMV's m = 1 times with later stages issued as
#                earlier ones are consumed (tune_streamed_gemv's `ahead`)
#   STEP=rows    the streamed GEMV's m = 1 times with one stage per row tile
#                (tune_streamed_gemv variant bit 6, with own limbs and early
#                loads: 112), all up front or two ahead, without arithmetic
#                (113) and without the prologue too (115), beside the
#                register-fed kernel and round 21's best form (4 0 48); then
#                the streamed check with row stages
#   STEP=check   the m <= 8 check of the one-launch form (GEMV_FORMS=fused)
#                and the streamed form's check with own limbs, four stages
#                and early loads (GEMV_STREAM_TUNE="4 0 48")
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
BIN_XZ=${CUDA_XZ:?}
export BIN_XZ
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
case ${STEP:-arrive} in
  arrive)
    (cd scripts && timeout "$(left 240)" python3 stage_arrival.py) > "$OUT/arrive.txt" 2>&1
    cat "$OUT/arrive.txt"
    for run in "GEMV_STREAM=0" "GEMV_STREAM_TUNE=4 0 48" "GEMV_STREAM_TUNE=4 2 48" \
      "GEMV_STREAM_TUNE=8 0 32" "GEMV_STREAM_TUNE=8 4 32"; do
      m1_times ahead.txt GEMV_STREAM=1 "$run"
    done
    cat "$OUT/ahead.txt"
    ;;
  rows)
    for run in "GEMV_STREAM=0" "GEMV_STREAM_TUNE=4 0 48" "GEMV_STREAM_TUNE=0 0 112" \
      "GEMV_STREAM_TUNE=0 2 112" "GEMV_STREAM_TUNE=0 0 113" "GEMV_STREAM_TUNE=0 0 115"; do
      m1_times rows.txt GEMV_STREAM=1 "$run"
    done
    cat "$OUT/rows.txt"
    GEMV_STREAM_TUNE="0 0 112" timeout "$(left 300)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_streamed_gemv > "$OUT/cuda_streamed_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_streamed_checks.txt" | head -20
    ;;
  check)
    GEMV_FORMS=fused timeout "$(left 200)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_forward_small_m > "$OUT/cuda_fused_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_fused_checks.txt" | head -20
    GEMV_STREAM_TUNE="4 0 48" timeout "$(left 300)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_streamed_gemv > "$OUT/cuda_streamed_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_streamed_checks.txt" | head -20
    ;;
  *) echo "STEP must be arrive, rows or check" >&2; exit 2 ;;
esac
