#!/usr/bin/env bash
# Round 20 on the GPU machine: the streamed tensor-core GEMV
# (burn-ternary/src/ops/matmul/gemv_stream.rs). From the repository root,
# with OUT set; CUDA_XZ names the packed CUDA test executable built here
# (COMMIT beside).
#   STEP=stream  the m = 1 device times (ncu_gemv.py) with the streamed form
#                (GEMV_STREAM=1, the default) and without it (GEMV_STREAM=0,
#                the register-fed kernel) twice each, then the streamed
#                form's check (matmul_streamed_gemv, 206 shapes)
#   STEP=check   the m <= 8 checks in all three forms and the f16 GEMV check
#   STEP=table   the CUDA GEMV table (stream times)
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
BIN_XZ=${CUDA_XZ:?}
export BIN_XZ
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
case ${STEP:-stream} in
  stream)
    for run in GEMV_STREAM=1 GEMV_STREAM=0 GEMV_STREAM=1 GEMV_STREAM=0; do
      m1_times stream.txt $run
    done
    cat "$OUT/stream.txt"
    timeout "$(left 400)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_streamed_gemv \
      > "$OUT/cuda_streamed_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_streamed_checks.txt" | head -20
    ;;
  check)
    timeout "$(left 560)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_forward_small_m \
      matmul_f16_gemv matmul_streamed_gemv > "$OUT/cuda_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_checks.txt" | head -20
    ;;
  table)
    timeout "$(left 200)" .gpu/cube_kernels --ignored gemv_benchmarks --nocapture --test-threads=1 \
      > "$OUT/cuda_gemv_benchmarks.txt" 2>&1
    grep "|" "$OUT/cuda_gemv_benchmarks.txt"
    ;;
  *) echo "STEP must be stream, check or table" >&2; exit 2 ;;
esac
