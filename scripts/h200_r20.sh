#!/usr/bin/env bash
# Round 20 on the GPU machine: the streamed tensor-core GEMV
# (burn-ternary/src/ops/matmul/gemv_stream.rs). From the repository root,
# with OUT set; CUDA_XZ names the packed CUDA test executable built here
# (COMMIT beside).
# The streamed form was on by default in calls 1-4 (commits 33c1ac9 to
# 7f72b7f) and is off since; the steps name it where they time it.
#   STEP=stream  the m = 1 device times (ncu_gemv.py) with the streamed form
#                (GEMV_STREAM=1) and without it (GEMV_STREAM=0, the
#                register-fed kernel) twice each, then the streamed form's
#                check (matmul_streamed_gemv, 206 shapes)
#   STEP=place   where the streamed form's time goes: its m = 1 times with
#                GEMV_STREAM_TUNE="stages ahead variant" (tune_streamed_gemv:
#                most stages, stages issued up front, bit 0 no arithmetic, bit 1
#                no prologue) over a set of variants, ncu's warp-state and
#                scheduler sections for the default at 8192², and its
#                generated CUDA source (CUBECL_DEBUG_LOG)
#   STEP=bulk    the same with the stages' copies as tensor-map loads (the
#                default since call 4; call 3's bulk copies did not compile:
#                CubeCL's memcpy_async_tx passes a plain byte count where
#                CUDA 13's cuda::device::memcpy_async_tx takes an
#                aligned_size_t) against per-unit cp.async (bit 2),
#                two row tiles per plane (bit 3) and the register-fed kernel,
#                then the streamed form's check with two row tiles per plane
#                (GEMV_STREAM_TUNE="0 0 8": its random shapes have one and two
#                row tiles per cube, so both plane shapes run)
#   STEP=f16     the f16 GEMV check alone (the register-fed kernel after the
#                round's refactor of its B-operand loads)
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
  place)
    for run in "GEMV_STREAM_TUNE=0 0 3" "GEMV_STREAM_TUNE=0 0 1" "GEMV_STREAM_TUNE=0 0 2" \
      "GEMV_STREAM_TUNE=0 2 0" "GEMV_STREAM_TUNE=0 2 3" "GEMV_STREAM_TUNE=16 0 0" \
      "GEMV_STREAM_TUNE=4 0 0" "GEMV_STREAM_TUNE=0 0 0"; do
      m1_times place.txt GEMV_STREAM=1 "$run"
    done
    cat "$OUT/place.txt"
    GEMV_STREAM=1 GEMV_ONLY="1 8192 8192" timeout "$(left 90)" ncu --kernel-name regex:gemv_mma_stream \
      --launch-count 1 --section WarpStateStats --section SchedulerStats \
      --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
      .gpu/cube_kernels --ignored gemv_device_profile --exact --nocapture --test-threads=1 \
      > "$OUT/ncu_sections.txt" 2>&1
    grep -E "Stall|Warp Cycles|Issued|Eligible|Active Warps|Registers|Shared Memory|Throughput" \
      "$OUT/ncu_sections.txt" | head -40
    GEMV_STREAM=1 GEMV_ONLY="1 8192 8192" CUBECL_DEBUG_LOG=/tmp/cubecl.log timeout "$(left 60)" .gpu/cube_kernels \
      --ignored gemv_device_profile --exact --nocapture --test-threads=1 > /dev/null 2>&1
    python3 - <<'PY' > "$OUT/stream_kernel.cu"
import re
text = open("/tmp/cubecl.log").read()
for src in re.findall(r"```cpp\n(.*?)```", text, re.S):
    if "gemv_mma_stream" in src:
        print(src)
        break
PY
    wc -l "$OUT/stream_kernel.cu"
    ;;
  bulk)
    for run in "GEMV_STREAM_TUNE=0 0 0" "GEMV_STREAM_TUNE=0 0 3" "GEMV_STREAM_TUNE=0 0 1" \
      "GEMV_STREAM_TUNE=0 0 8" "GEMV_STREAM_TUNE=0 0 4" "GEMV_STREAM=0"; do
      m1_times bulk.txt GEMV_STREAM=1 "$run"
    done
    cat "$OUT/bulk.txt"
    GEMV_STREAM_TUNE="0 0 8" timeout "$(left 300)" .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_streamed_gemv > "$OUT/cuda_streamed_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_streamed_checks.txt" | head -20
    ;;
  f16)
    timeout "$(left 170)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_f16_gemv \
      > "$OUT/cuda_f16_checks.txt" 2>&1
    grep -E "$summary" "$OUT/cuda_f16_checks.txt" | head -20
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
  *) echo "STEP must be stream, place, bulk, f16, check or table" >&2; exit 2 ;;
esac
