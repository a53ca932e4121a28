#!/usr/bin/env bash
# Round 15 on the GPU machine: every CUDA check and the full issue-3 table
# at one commit. One packed executable, built here (.gpu/s19, its COMMIT
# beside it). From the repository root, with OUT set:
#   STEP=table scripts/h200_r15.sh    the issue-3 table and the PyTorch peer
#                                     (same call: the ratios between them hold)
#   STEP=checks scripts/h200_r15.sh   every check but the f32 tensor-core one
#   STEP=f32 scripts/h200_r15.sh      the f32 tensor-core check (≈ 200–270 s)
# LIMIT (seconds, default none) bounds each test run, so that a call's
# earlier outputs come back even if a later step runs out of time.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
BIN_XZ=${BIN_XZ:-.gpu/s19/cube_kernels.xz}
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
summary="cases passed|cases failed|differ|test result|panicked|route\): [0-9.]+ s"
limit() { if [ -n "${LIMIT:-}" ]; then timeout "$LIMIT" "$@"; else "$@"; fi; }
case ${STEP:-table} in
  table)
    limit .gpu/cube_kernels --ignored issue3_benchmarks --nocapture --test-threads=1 \
      > "$OUT/issue3_benchmarks.txt" 2>&1
    tail -n 90 "$OUT/issue3_benchmarks.txt"
    python3 scripts/torch_peer.py > "$OUT/torch_peer.txt" 2>&1
    cat "$OUT/torch_peer.txt"
    ;;
  checks)
    CUBECL_AUTOTUNE_LEVEL=minimal limit .gpu/cube_kernels --test-threads=1 --nocapture \
      --skip matmul_f32_tensor_core > "$OUT/checks.txt" 2>&1
    grep -E "$summary" "$OUT/checks.txt"
    ;;
  f32)
    CUBECL_AUTOTUNE_LEVEL=minimal limit .gpu/cube_kernels --test-threads=1 --nocapture \
      matmul_f32_tensor_core > "$OUT/checks_f32.txt" 2>&1
    grep -E "$summary" "$OUT/checks_f32.txt"
    ;;
  *) echo "STEP must be table, checks or f32" >&2; exit 2 ;;
esac
