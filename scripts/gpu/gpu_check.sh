#!/usr/bin/env bash
# Runs the CubeCL kernel checks, the kernel_timings table and the PyTorch peer on a CUDA machine without Rust: OUT=<dir> scripts/gpu/gpu_check.sh (default OUT .gpu/out)
# Build the executable on a development machine first:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   mkdir -p .gpu && cp target/gpu/deps/cube_kernels-<hash> .gpu/cube_kernels
set -uo pipefail
OUT=${OUT:-.gpu/out}
mkdir -p "$OUT"
{
  date -u
  git log -1 --format='commit %H' 2>/dev/null || true
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} | tee "$OUT/gpu.txt"
echo "== correctness: every kernel vs the reference on random shapes (CUDA)"
.gpu/cube_kernels --test-threads=1 2>&1 | tee "$OUT/checks.txt"
echo "== timings: ternary kernels vs Burn dense f32 on the same device"
.gpu/cube_kernels --ignored kernel_timings --nocapture --test-threads=1 2>&1 | tee "$OUT/timings.txt"
echo "== PyTorch peer: bf16/f16 cuBLAS GEMV and device copy bandwidth"
PYTHONUNBUFFERED=1 python3 scripts/peers/torch_peer.py 2>&1 | tee "$OUT/torch_peer.txt"
