#!/usr/bin/env bash
# The kernel checks and the benchmark tables on WGPU (Vulkan) on the H200: OUT=<dir> BIN_XZ=.gpu/wgpu/cube_kernels.xz scripts/gpu/h200_wgpu.sh
# Carry the Debian packages of the Vulkan loader and GL dispatch libraries in .gl/
# (`apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2`,
# amd64), a WGPU test executable and the WGPU bench executable built here, stripped
# and xz-packed with `pack_executable` of scripts/gpu/packed_executable.sh:
#   cargo test --profile gpu -p burn-ternary --features wgpu,autotune --test cube_kernels --no-run
#   cargo bench --profile gpu -p burn-ternary --features wgpu,autotune --bench cube_kernels --no-run
# Each step is bounded so that the call's earlier outputs come back. CHECKS=0 skips
# the checks; BENCHES names the bench tables to run (default: the GEMV, conv and
# GEMM tables; `--list` of the bench executable names the others), from BENCH_XZ
# (default .gpu/wgpu/cube_kernels_bench.xz).
# BURN_TERNARY_SM_COUNT=132 gives the launch rules the H200's SM count, which
# CubeCL's WGPU runtime does not report.
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the output folder}"
BIN_XZ=${BIN_XZ:-.gpu/wgpu/cube_kernels.xz}
# shellcheck source=scripts/gpu/gpu_vulkan.sh
source scripts/gpu/gpu_vulkan.sh
{ ldconfig -p | grep -i vulkan; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"; } > "$OUT/vulkan.txt"
# shellcheck source=scripts/gpu/packed_executable.sh
source scripts/gpu/packed_executable.sh
unpack_executable "$BIN_XZ" .gpu/cube_kernels
END=${END:-560}
left() { local t=$((END - SECONDS)); [ "$t" -lt "$1" ] && echo "$t" || echo "$1"; }
summary="cases passed|cases failed|differ|test result|panicked|error"
if [ "${CHECKS:-1}" = 1 ]; then
  CUBECL_AUTOTUNE_LEVEL=minimal timeout "$(left 220)" .gpu/cube_kernels --test-threads=1 --nocapture \
    --skip matmul_f32_tensor_core > "$OUT/wgpu_checks.txt" 2>&1
  echo "checks rc=$? at ${SECONDS}s"
  grep -E "$summary" "$OUT/wgpu_checks.txt" | head -40
fi
BENCH_XZ=${BENCH_XZ:-.gpu/wgpu/cube_kernels_bench.xz}
cp "$OUT/gpu.txt" "$OUT/gpu_checks.txt"
unpack_executable "$BENCH_XZ" .gpu/cube_kernels_bench
for bench in ${BENCHES:-gemv_benchmarks conv_benchmarks gemm_benchmarks}; do
  t=$(left 150)
  [ "$t" -lt 20 ] && break
  timeout "$t" .gpu/cube_kernels_bench "$bench" > "$OUT/wgpu_$bench.txt" 2>&1
  echo "$bench rc=$? at ${SECONDS}s"
  grep "|" "$OUT/wgpu_$bench.txt" | head -30
done
