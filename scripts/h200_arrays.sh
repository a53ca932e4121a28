#!/usr/bin/env bash
# CUDA checks and host-cost figures for the kernels moved to Array
# arguments (branches wip/scale-decode and wip/update-arrays), in one
# GPU-machine call. Build and pack here:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   mkdir -p .gpu/s15 && strip -o /tmp/ck <executable> && xz -c /tmp/ck > .gpu/s15/cube_kernels.xz
#   git rev-parse HEAD > .gpu/s15/COMMIT
# then on the GPU machine, from the repository root, with OUT set:
#   BIN_XZ=.gpu/s15/cube_kernels.xz scripts/h200_arrays.sh
set -uo pipefail
cd "$(dirname "$0")/.."
BIN_XZ=${BIN_XZ:-.gpu/s15/cube_kernels.xz}
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
for check in scale_decode ternary_update denoise embedding; do
  .gpu/cube_kernels --test-threads=1 --nocapture "$check" > "$OUT/checks_$check.txt" 2>&1
  grep -E "cases passed|cases failed|test result|panicked" "$OUT/checks_$check.txt"
done
.gpu/cube_kernels --ignored launch_cost_benchmarks --nocapture --test-threads=1 2>&1 | grep "^|" > "$OUT/launch_cost.txt"
.gpu/cube_kernels --ignored module_forward_benchmarks --nocapture --test-threads=1 2>&1 | grep "^|" > "$OUT/module_forward.txt"
.gpu/cube_kernels --ignored update_benchmarks --nocapture --test-threads=1 > "$OUT/update.txt" 2>&1
cat "$OUT/launch_cost.txt" "$OUT/module_forward.txt"; grep -E "^\|" "$OUT/update.txt"
