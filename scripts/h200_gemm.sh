#!/usr/bin/env bash
# The matmul checks and the GEMM table (issue 3, seventh round: f32 activations
# on the split-f16 tensor-core route) and the PyTorch cuBLAS peer, in one
# GPU-machine call. Build here:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   mkdir -p .gpu/s6 && xz -c <cube_kernels executable> > .gpu/s6/cube_kernels.xz
# then on the GPU machine, from the repository root, with OUT set:
#   scripts/h200_gemm.sh            (CHECKS=<filter> picks the checks, default "matmul")
set -uo pipefail
cd "$(dirname "$0")/.."
BIN_XZ=${BIN_XZ:-.gpu/s6/cube_kernels.xz}
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
# Minimal autotuning in the checks: each new shape autotunes Burn's matmul for
# the tensor-core routes, which otherwise costs seconds a shape.
CUBECL_AUTOTUNE_LEVEL=minimal .gpu/cube_kernels --test-threads=1 --nocapture ${CHECKS:-matmul} > "$OUT/checks.txt" 2>&1
.gpu/cube_kernels --ignored gemm_benchmarks --nocapture --test-threads=1 > "$OUT/gemm.txt" 2>&1
if [ "${PEER:-1}" = 1 ]; then python3 scripts/torch_peer.py > "$OUT/torch.txt" 2>&1; fi
grep -E "^test |passed|failed|cases" "$OUT/checks.txt" | tail -20; cat "$OUT/gemm.txt"; grep GEMM "$OUT/torch.txt" 2>/dev/null
