#!/usr/bin/env bash
# Issue 36 item 6, one H200, one call: the BitNet b1.58 2B-4T shape (random
# weights) against transformers' own BitNet and a bf16 Llama-shaped peer,
# and one fine-tuning step of the whole 2B model with the ternary optimizer.
# Here: `scripts/gpu/bitnet_2b.sh build` (the arbitor executable, shared
# with decode_speed.sh) and, where the GPU machine's Python lacks
# transformers, its wheels into the git-ignored .wheels/ (`pip download
# transformers==5.25.0 --only-binary=:all: --python-version X.Y -d .wheels`
# for that machine's Python, numpy and torch left out). On the GPU machine,
# with .gpu/arbitor.xz, its .COMMIT (and .wheels) carried:
# `OUT=<dir> scripts/gpu/bitnet_2b.sh`. Writes into $OUT:
#   ours.txt        arbitor decode-bench: prefill of 512 tokens (batch 1),
#                   decode of 256 tokens after 64 (batches 1 and 8)
#   hf_peer.json    scripts/peers/bitnet_hf_peer.py (transformers BitLinear)
#   bf16_peer.json  scripts/peers/decode_peer.py --preset bitnet-2b, eager and
#                   compiled, prefill 512 and decode
#   finetune.txt    arbitor train of configs/bitnet-2b4t-finetune.toml
#                   (2 x 4 steps of 4 x 256 tokens), timed per output line,
#                   with nvidia-smi's peak memory.used
set -uo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/gpu/packed_executable.sh
source scripts/gpu/packed_executable.sh
arbitor_executable "${1:-run}"
bin=.gpu/arbitor
: > "$OUT/ours.txt"
timed "$OUT/ours.txt" timeout 120 "$bin" decode-bench --config configs/bitnet-2b4t.toml --backend cuda \
  --batches 1 --prompt-len 512 --new 8 --no-launch-count
timed "$OUT/ours.txt" timeout 150 "$bin" decode-bench --config configs/bitnet-2b4t.toml --backend cuda \
  --batches 1,8 --prompt-len 64 --new 256 --no-launch-count
if ! python3 -c "import transformers" 2> /dev/null && [ -d .wheels ]; then
  pip install -q --no-index --find-links .wheels transformers 2>&1 | tail -2
fi
timeout 150 python3 scripts/peers/bitnet_hf_peer.py --out "$OUT/hf_peer.json" > /dev/null
timeout 150 python3 scripts/peers/decode_peer.py --preset bitnet-2b --prompt-len 512 \
  --out "$OUT/bf16_peer.json" > /dev/null
: > "$OUT/finetune.txt"
timed "$OUT/finetune.txt" timeout 200 "$bin" train --config configs/bitnet-2b4t-finetune.toml \
  --backend cuda --set run.dir=runs/bitnet-2b4t-finetune-h200
