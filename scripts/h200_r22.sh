#!/usr/bin/env bash
# Round 22 on the GPU machine. From the repository root, with OUT set;
# CUDA_XZ names the packed CUDA test executable built here (COMMIT beside).
#   STEP=arrive  (call 1) when a streamed kernel's column stages land, with
#                and without stand-in arithmetic (scripts/stage_arrival.py,
#                ARRIVE_ROUND=1), then the streamed GEMV's m = 1 times with
#                later stages issued as earlier ones are consumed
#                (tune_streamed_gemv's `ahead`)
#   STEP=model   (call 2, then STEP=check) the same model with stages of
#                contiguous rows (stage_arrival.py's default set)
#   STEP=rows    the streamed GEMV's m = 1 times with one stage per row tile
#                (tune_streamed_gemv variant bit 6, with own limbs and early
#                loads: 112), with B operands kept in registers (bit 7: 240),
#                without arithmetic (113) and without the prologue too (115),
#                beside the register-fed kernel and round 21's best form
#                (4 0 48); then the streamed check with row stages, with and
#                without the kept B operands
#   STEP=contig  the m = 1 times of row stages copied as contiguous ranges
#                with kept B operands (bit 8: 496), then the streamed check
#                in that form
#                STEP=rows and STEP=contig need the executables built at
#                1cc24e8 and 6b65863: the knob bits 6-8 they time were
#                removed afterwards (tune_streamed_gemv masks them off)
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
    (cd scripts && ARRIVE_ROUND=1 timeout "$(left 240)" python3 stage_arrival.py) > "$OUT/arrive.txt" 2>&1
    cat "$OUT/arrive.txt"
    for run in "GEMV_STREAM=0" "GEMV_STREAM_TUNE=4 0 48" "GEMV_STREAM_TUNE=4 2 48" \
      "GEMV_STREAM_TUNE=8 0 32" "GEMV_STREAM_TUNE=8 4 32"; do
      m1_times ahead.txt GEMV_STREAM=1 "$run"
    done
    cat "$OUT/ahead.txt"
    ;;
  model)
    (cd scripts && timeout "$(left 260)" python3 stage_arrival.py) > "$OUT/arrive2.txt" 2>&1
    cat "$OUT/arrive2.txt"
    ;;
  rows)
    for run in "GEMV_STREAM=0" "GEMV_STREAM_TUNE=4 0 48" "GEMV_STREAM_TUNE=0 0 112" \
      "GEMV_STREAM_TUNE=0 0 240" "GEMV_STREAM_TUNE=0 0 113" "GEMV_STREAM_TUNE=0 0 115"; do
      m1_times rows.txt GEMV_STREAM=1 "$run"
    done
    cat "$OUT/rows.txt"
    for tune in 112 240; do
      run_check "cuda_streamed_checks_$tune.txt" 200 matmul_streamed_gemv "GEMV_STREAM_TUNE=0 0 $tune"
    done
    ;;
  contig)
    m1_times contig.txt GEMV_STREAM=1 "GEMV_STREAM_TUNE=0 0 496"
    cat "$OUT/contig.txt"
    run_check cuda_streamed_checks_496.txt 300 matmul_streamed_gemv "GEMV_STREAM_TUNE=0 0 496"
    ;;
  check)
    run_check cuda_fused_checks.txt 200 matmul_forward_small_m GEMV_FORMS=fused
    run_check cuda_streamed_checks.txt 300 matmul_streamed_gemv "GEMV_STREAM_TUNE=4 0 48"
    ;;
  *) echo "STEP must be arrive, model, rows, contig or check" >&2; exit 2 ;;
esac
