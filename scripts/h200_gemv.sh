#!/usr/bin/env bash
# The GEMV checks and table (issue 3, fifth and sixth rounds: the int8 tensor-core GEMV)
# and the PyTorch cuBLAS peer, in one GPU-machine call. Build here:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   mkdir -p .gpu/s5 && xz -c <cube_kernels executable> > .gpu/s5/cube_kernels.xz
# then on the GPU machine, from the repository root, with OUT set:
#   scripts/h200_gemv.sh
set -uo pipefail
cd "$(dirname "$0")/.."
BIN_XZ=${BIN_XZ:-.gpu/s5/cube_kernels.xz}
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
.gpu/cube_kernels --test-threads=1 --nocapture ${CHECKS:-matmul} > "$OUT/checks.txt" 2>&1
.gpu/cube_kernels --ignored gemv_benchmarks --nocapture --test-threads=1 > "$OUT/gemv.txt" 2>&1
if [ "${PEER:-1}" = 1 ]; then python3 scripts/torch_peer.py > "$OUT/torch.txt" 2>&1; fi
# Device time of the GEMV kernels (Nsight Compute), see scripts/ncu_gemv.py.
if [ "${NCU:-1}" = 1 ]; then python3 scripts/ncu_gemv.py .gpu/cube_kernels > "$OUT/ncu_gemv.txt" 2>&1; cat "$OUT/ncu_gemv.txt"; fi
tail -5 "$OUT/checks.txt"; cat "$OUT/gemv.txt"
