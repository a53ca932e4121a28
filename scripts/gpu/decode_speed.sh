#!/usr/bin/env bash
# Decode speed of the seed-scale ARBModel and of the BitNet 2B-4T shape against PyTorch bf16 peers with a KV cache, one H200, one call: here `scripts/gpu/decode_speed.sh build`, on the GPU machine `OUT=<dir> scripts/gpu/decode_speed.sh`.
# Batch 1 and 8, prompt 64, 256 new tokens: `arbitor decode-bench` on
# configs/arb-text.toml (random weights, or CHECKPOINT=<model.safetensors>),
# then scripts/peers/decode_peer.py at the same shape (eager and
# torch.compile); then the same for the BitNet b1.58 2B-4T shape:
# `arbitor decode-bench` on configs/bitnet-2b4t.toml (random ternary weights)
# and `decode_peer.py --preset bitnet-2b` (dense bf16, GQA, gated relu² MLP,
# RoPE, tied embeddings). Writes $OUT/decode_arbitor.txt,
# $OUT/decode_peer.json, $OUT/decode_bitnet.txt and $OUT/decode_peer_bitnet.json.
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
"$bin" decode-bench --config configs/bitnet-2b4t.toml --backend cuda \
  --batches 1,8 --prompt-len 64 --new 256 2>&1 | tee "$OUT/decode_bitnet.txt"
python3 scripts/peers/decode_peer.py --preset bitnet-2b --out "$OUT/decode_peer_bitnet.json" > /dev/null
for peer in decode_peer decode_peer_bitnet; do
  echo "$peer:"
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    print(r["mode"], r["batch"], r.get("decode_tokens_per_s"), r.get("ms_per_token"), r.get("compile_error", ""))' "$OUT/$peer.json"
done
