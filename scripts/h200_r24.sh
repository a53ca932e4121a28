#!/usr/bin/env bash
# Round 24 on the GPU machine. From the repository root, with OUT and
# CUDA_XZ (the packed test executable, .gpu/r24/cube_kernels.xz) set.
#   STEP=checks  every CubeCL kernel check on CUDA (the workspace moved to
#                edition 2024: the kernels' Rust is compiled anew), then the
#                tensor-core GEMV's m = 1 device times at the issue's shapes
#                (scripts/ncu_gemv.py) to compare with round 23's
#   STEP=rest    the checks that call 1's 420 s did not finish (TESTS, the
#                test names), THREADS at a time (default 1: call 2 ran ten at
#                once and only one finished in 540 s)
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/h200_step.sh
source scripts/h200_step.sh
unpack_cuda_xz
case ${STEP:-checks} in
  checks)
    # Four test threads: the checks are independent and the GPU is shared
    # well enough; round 22's single-threaded full run took 344-566 s.
    CHECK_THREADS=4 run_check cuda_checks.txt 420 ""
    m1_times m1_times.txt
    cat "$OUT/m1_times.txt"
    ;;
  rest)
    # Test names matched exactly: a name is not a filter for others here.
    CHECK_THREADS=${THREADS:-1} run_check cuda_checks_rest.txt 540 "--exact ${TESTS:?set TESTS}"
    ;;
  *) echo "STEP must be checks or rest" >&2; exit 2 ;;
esac
