#!/usr/bin/env bash
# The video head's inference loops (ACT, fixed steps, fixed steps fused) at seed scale on one H200, ms and kernel launches per clip: here `scripts/gpu/video_loop.sh build`, on the GPU machine `OUT=<dir> scripts/gpu/video_loop.sh`.
# `arbitor video-bench` on configs/arb-seed.toml ([video] hidden 960, 6
# blocks, latents (1, 16, 1, 32, 32), random weights) on CUDA: once with the
# launch log (counts; the log costs host time per launch), once without it
# (times). Writes $OUT/video_loop.txt. CLIPS (default 20) clips per loop.
set -uo pipefail
cd "$(dirname "$0")/../.."
XZ=.gpu/arbitor.xz
# shellcheck source=scripts/gpu/packed_executable.sh
source scripts/gpu/packed_executable.sh
if [ "${1:-run}" = build ]; then
  pack_executable "$XZ" arbitor build --profile gpu -p arbitor-train --features cuda
  exit
fi
: "${OUT:?set OUT to the output folder}"
bin=.gpu/arbitor
[ -x "$bin" ] || unpack_executable "$XZ" "$bin"
{
  echo "== launch counts (launch log on)"
  "$bin" video-bench --config configs/arb-seed.toml --backend cuda --clips "${CLIPS:-20}"
  echo "== times (launch log off)"
  "$bin" video-bench --config configs/arb-seed.toml --backend cuda --clips "${CLIPS:-20}" \
    --no-launch-count
} 2>&1 | tee "$OUT/video_loop.txt"
