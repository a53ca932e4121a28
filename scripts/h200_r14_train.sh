#!/usr/bin/env bash
# Round 14's last GPU-machine call: the tiled-kernel checks with the new
# register-block choice, the small-shape table, then the Shakespeare
# ternary and dense runs through the CLI and the PyTorch BitNet peer, all
# in one call. Build and pack here:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   cargo build --profile gpu -p arbitor-train --features cuda
#   mkdir -p .gpu/s17 && strip -o /tmp/ck <cube_kernels executable> && xz -c /tmp/ck > .gpu/s17/cube_kernels.xz
#   xz -c target/gpu/arbitor > .gpu/s17/arbitor.xz; git rev-parse HEAD > .gpu/s17/COMMIT
# then on the GPU machine, from the repository root, with OUT set:
#   scripts/h200_r14_train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
BIN_XZ=.gpu/s17/cube_kernels.xz
# shellcheck source=scripts/gpu_bin.sh
source scripts/gpu_bin.sh
.gpu/cube_kernels --test-threads=1 --nocapture tiled > "$OUT/checks_tiled.txt" 2>&1
grep -E "cases passed|cases failed|test result|panicked" "$OUT/checks_tiled.txt"
.gpu/cube_kernels --ignored small_shape_benchmarks --nocapture --test-threads=1 2>&1 | grep "^|" > "$OUT/small_shapes.txt"
cat "$OUT/small_shapes.txt"
ARBITOR_XZ=.gpu/s17/arbitor.xz RUNS="ternary dense" OUT="$OUT/train" scripts/h200_train.sh > "$OUT/train.txt" 2>&1
grep -hE "wall seconds|peak GPU memory" "$OUT"/train/*.log
cat "$OUT"/train/tokens_per_second-*.txt
tail -3 "$OUT"/train/ternary.log "$OUT"/train/dense.log
python3 scripts/bitnet_peer.py --steps 3200 --out "$OUT/bitnet_peer.json" 2>&1 | tail -2
