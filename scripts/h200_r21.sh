#!/usr/bin/env bash
# Round 21 on the GPU machine: the streamed tensor-core GEMV with every
# plane on all of the cube's row tiles and its own chunks' limbs
# (tune_streamed_gemv variant bit 4). From the repository root, with OUT
# set; CUDA_XZ names the packed CUDA test executable built here (COMMIT
# beside).
#   STEP=own    the m = 1 device times (ncu_gemv.py) of the register-fed
#               kernel, round 20's streamed form and the own-limbs form at
#               8, 4 and 16 stages and without its arithmetic (bit 0), then
#               the streamed check with own limbs (matmul_streamed_gemv)
#   STEP=check  the m <= 8 checks in all three forms and the f16 GEMV check
#   STEP=early  the m = 1 times with the prologue's first activation loads
#               issued before the copies (variant bit 5) in round 20's form
#               and the own-limbs form, with and without arithmetic, then
#               the m <= 8 checks in all three forms with the streamed form
#               as own limbs, four stages, early loads, and the f16 check
#   STEP=regfed the register-fed kernel's m = 1 times with its prologue's
#               first loads before its first trit loads (GEMV_EARLY=1, on by
#               default in call 4 only) and after them (GEMV_EARLY=0), then the m <= 8
#               check of its one-launch form (GEMV_FORMS=fused)
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
BIN_XZ=${CUDA_XZ:?}
export BIN_XZ
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
case ${STEP:-own} in
  own)
    for run in "GEMV_STREAM=0" "GEMV_STREAM_TUNE=0 0 0" "GEMV_STREAM_TUNE=0 0 16" \
      "GEMV_STREAM_TUNE=4 0 16" "GEMV_STREAM_TUNE=16 0 16" "GEMV_STREAM_TUNE=0 0 17"; do
      m1_times own.txt GEMV_STREAM=1 "$run"
    done
    cat "$OUT/own.txt"
    GEMV_STREAM_TUNE="0 0 16" timeout "$(left 300)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_streamed_gemv > "$OUT/cuda_streamed_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_streamed_checks.txt" | head -20
    ;;
  check)
    timeout "$(left 560)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_forward_small_m \
      matmul_f16_gemv > "$OUT/cuda_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_checks.txt" | head -20
    ;;
  early)
    for run in "GEMV_STREAM=0" "GEMV_STREAM_TUNE=0 0 33" "GEMV_STREAM_TUNE=0 0 49" \
      "GEMV_STREAM_TUNE=4 0 48" "GEMV_STREAM_TUNE=0 0 40"; do
      m1_times early.txt GEMV_STREAM=1 "$run"
    done
    cat "$OUT/early.txt"
    GEMV_STREAM_TUNE="4 0 48" timeout "$(left 400)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_forward_small_m matmul_f16_gemv > "$OUT/cuda_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_checks.txt" | head -20
    ;;
  regfed)
    for run in GEMV_EARLY=1 GEMV_EARLY=0; do
      m1_times regfed.txt "$run"
    done
    cat "$OUT/regfed.txt"
    GEMV_FORMS=fused timeout "$(left 200)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_forward_small_m > "$OUT/cuda_fused_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_fused_checks.txt" | head -20
    ;;
  *) echo "STEP must be own, check, early or regfed" >&2; exit 2 ;;
esac
