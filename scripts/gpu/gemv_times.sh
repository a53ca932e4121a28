#!/usr/bin/env bash
# The GEMV times table (m = 1 and m = 8 at the decode shapes, f32 and f16
# activations, the tensor-core GEMV's one- and two-launch forms, the plane
# GEMV, Burn's dense matmul) on a GPU machine without Rust, from the
# burn-ternary bench executable built here (benches/cube_kernels.rs, table
# `gemv_benchmarks`).
#
# Here (with Rust, no GPU needed), from the repository root:
#   scripts/gpu/gemv_times.sh build
# which runs
#   cargo bench --profile gpu -p burn-ternary --features cuda,autotune --bench cube_kernels --no-run
# and packs the executable into the git-ignored .gpu/ folder
# (.gpu/cube_kernels_bench.xz, with .gpu/cube_kernels_bench.COMMIT).
#
# On the GPU machine, from the repository root, with OUT set:
#   scripts/gpu/gemv_times.sh
# unpacks it and writes the table to $OUT/gemv.txt (and prints it). Other
# launch shapes: the environment variables of the bench's `GemvSetup`
# (GEMV_PATH, GEMV_TUNE, GEMV_FUSED_KIB, GEMV_GROUPS, PLANE_TUNE). TABLES
# names other tables of the bench (default gemv_benchmarks).
set -uo pipefail
cd "$(dirname "$0")/../.."
XZ=.gpu/cube_kernels_bench.xz

# shellcheck source=scripts/gpu/packed_executable.sh
source scripts/gpu/packed_executable.sh
if [ "${1:-run}" = build ]; then
  pack_executable "$XZ" cube_kernels bench --profile gpu -p burn-ternary --features cuda,autotune --bench cube_kernels --no-run
  exit
fi

: "${OUT:?set OUT to the output folder}"
bin=.gpu/cube_kernels_bench
unpack_executable "$XZ" "$bin"
# shellcheck disable=SC2086 # table names are separate arguments
"$bin" ${TABLES:-gemv_benchmarks} > "$OUT/gemv.txt" 2>&1
rc=$?
cat "$OUT/gemv.txt"
exit $rc
