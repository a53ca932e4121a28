#!/usr/bin/env bash
# Round 18 on the GPU machine. From the repository root, with OUT set;
# CUDA_XZ and WGPU_XZ name the packed CUDA and WGPU test executables built
# here (each with its COMMIT beside it); the WGPU steps need the Vulkan
# loader's Debian packages in .gl/ (see scripts/h200_wgpu.sh).
#   1. CUDA: the f16-activation GEMV check (f32 scales read as they are),
#      the m <= 8 check, the f16 check.
#   2. The same-size copy and read timed like the GEMV (ncu, L2 flushed)
#      and like ncu_gemv.py's copy column (CUDA events): scripts/ncu_copy.py.
#   3. The tensor-core GEMV's device time at the issue's shapes, one- and
#      two-launch forms (ncu_gemv.py), in the same run.
#   4. The CUDA GEMV table (stream times, f16 column).
#   5. WGPU: the f16 GEMV check, and the plane GEMV's plane counts with
#      BURN_TERNARY_SM_COUNT=132 (the built-in choice against 2, 4, 8).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
summary="cases passed|cases failed|differ|test result|panicked"
shapes="1 8192 8192,8 8192 8192,1 4096 14336,8 4096 14336,1 14336 4096,8 14336 4096"
END=${END:-560}
# Seconds for the next step: N, or what is left before END if less.
left() { local t=$((END - SECONDS)); [ "$t" -lt "$1" ] && echo "$t" || echo "$1"; }
unpack() { BIN_XZ=$1; export BIN_XZ; source scripts/gpu_bin.sh; }
unpack "${CUDA_XZ:?}"
cp "$OUT/gpu.txt" "$OUT/gpu_cuda.txt"
timeout "$(left 150)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_f16_gemv \
  matmul_forward_small_m matmul_f16_matches > "$OUT/cuda_checks.txt" 2>&1
grep -E "$summary" "$OUT/cuda_checks.txt"
PYTHONUNBUFFERED=1 timeout "$(left 120)" python3 scripts/ncu_copy.py > "$OUT/copy_times.txt" 2>&1
cat "$OUT/copy_times.txt"
NCU_PATHS="mma prepass" NCU_SHAPES="$shapes" timeout "$(left 120)" python3 scripts/ncu_gemv.py \
  .gpu/cube_kernels > "$OUT/gemv_times.txt" 2>&1
grep -E "^\| [18] |copy|failed|rror" "$OUT/gemv_times.txt"
timeout "$(left 120)" .gpu/cube_kernels --ignored gemv_benchmarks --nocapture --test-threads=1 \
  > "$OUT/cuda_gemv_benchmarks.txt" 2>&1
grep "|" "$OUT/cuda_gemv_benchmarks.txt"
# shellcheck source=scripts/gpu_vulkan.sh
source scripts/gpu_vulkan.sh
unpack "${WGPU_XZ:?}"
timeout "$(left 100)" .gpu/cube_kernels --test-threads=1 --nocapture matmul_f16_gemv \
  > "$OUT/wgpu_checks.txt" 2>&1
grep -E "$summary" "$OUT/wgpu_checks.txt"
BURN_TERNARY_SM_COUNT=132 PLANE_TUNES="0 0 0 0,0 0 0 2,0 0 0 4,0 0 0 8" timeout "$(left 150)" \
  .gpu/cube_kernels --ignored plane_gemv_tuning --nocapture --test-threads=1 \
  > "$OUT/wgpu_plane_tuning_sm132.txt" 2>&1
grep "|" "$OUT/wgpu_plane_tuning_sm132.txt"
