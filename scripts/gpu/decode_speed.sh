#!/usr/bin/env bash
# Decode speed of the seed-scale ARBModel against a PyTorch bf16 peer with a KV cache, one H200, one call: here `scripts/gpu/decode_speed.sh build`, on the GPU machine `OUT=<dir> scripts/gpu/decode_speed.sh`.
# Batch 1 and 8, prompt 64, 256 new tokens: `arbitor decode-bench` on
# configs/arb-text.toml (random weights, or CHECKPOINT=<model.safetensors>),
# then scripts/peers/decode_peer.py at the same shape (eager and
# torch.compile). Writes $OUT/decode_arbitor.txt and $OUT/decode_peer.json.
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
"$bin" decode-bench --config configs/arb-text.toml --backend cuda \
  ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} --batches 1,8 --prompt-len 64 --new 256 \
  2>&1 | tee "$OUT/decode_arbitor.txt"
python3 scripts/peers/decode_peer.py --out "$OUT/decode_peer.json" > /dev/null
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    print(r["mode"], r["batch"], r.get("decode_tokens_per_s"), r.get("ms_per_token"), r.get("compile_error", ""))' "$OUT/decode_peer.json"
