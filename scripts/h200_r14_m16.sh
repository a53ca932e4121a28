#!/usr/bin/env bash
# Round 14, last call: the tensor-core GEMV in row blocks for 8 < m <= 16.
# Build and pack here (see scripts/h200_r14_train.sh) into .gpu/s18, then on
# the GPU machine, from the repository root, with OUT set:
#   scripts/h200_r14_m16.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
BIN_XZ=.gpu/s18/cube_kernels.xz
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
.gpu/cube_kernels --test-threads=1 --nocapture matmul_forward_gemv matmul_forward_small_m > "$OUT/checks.txt" 2>&1
grep -E "cases passed|cases failed|test result|panicked" "$OUT/checks.txt"
.gpu/cube_kernels --ignored small_shape_benchmarks --nocapture --test-threads=1 2>&1 | grep "^|" > "$OUT/small_shapes.txt"
cat "$OUT/small_shapes.txt"
