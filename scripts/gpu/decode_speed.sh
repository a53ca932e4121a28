#!/usr/bin/env bash
# Decode speed of the seed-scale ARBModel and of the BitNet 2B-4T shape against PyTorch bf16 peers with a KV cache, one H200, one call: here `scripts/gpu/decode_speed.sh build` (the arbitor executable with the cuda and wgpu features, which scripts/gpu/wgpu_h200.sh shares), on the GPU machine `OUT=<dir> scripts/gpu/decode_speed.sh`.
# Batch 1 and 8, prompt 64, 256 new tokens: `arbitor decode-bench` on
# configs/arb-text.toml (random weights, or CHECKPOINT=<model.safetensors>),
# then scripts/peers/decode_peer.py at the same shape (eager and
# torch.compile); then the same for the BitNet b1.58 2B-4T shape:
# `arbitor decode-bench` on configs/bitnet-2b4t.toml (random ternary weights)
# and `decode_peer.py --preset bitnet-2b` (dense bf16, GQA, gated relu² MLP,
# RoPE, tied embeddings). Each arbitor model is timed without the launch log,
# then counted with it (--new 8), under an nvidia-smi memory sampler.
# Writes $OUT/decode_arbitor.txt,
# $OUT/decode_peer.json, $OUT/decode_bitnet.txt and $OUT/decode_peer_bitnet.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/gpu/packed_executable.sh
source scripts/gpu/packed_executable.sh
arbitor_executable "${1:-run}"
bin=.gpu/arbitor
# peak LOG CMD...: runs CMD (output to the terminal and LOG) with nvidia-smi's
# memory.used sampled every 100 ms; appends the peak (CUDA context included).
peak() {
  local log=$1
  shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/mem.txt &
  local sampler=$!
  "$@" 2>&1 | tee -a "$log"
  kill "$sampler" 2> /dev/null
  echo "peak device memory (nvidia-smi memory.used): $(sort -n /tmp/mem.txt | tail -1) MiB" | tee -a "$log"
}
# Times without the launch log (it costs host time per launch), then the
# launches per token from a short run with it.
for model in arb-text:decode_arbitor bitnet-2b4t:decode_bitnet; do
  config=configs/${model%%:*}.toml
  log=$OUT/${model#*:}.txt
  : > "$log"
  ckpt=()
  [ "$model" = arb-text:decode_arbitor ] && [ -n "${CHECKPOINT:-}" ] && ckpt=(--checkpoint "$CHECKPOINT")
  peak "$log" "$bin" decode-bench --config "$config" --backend cuda "${ckpt[@]}" \
    --batches 1,8 --prompt-len 64 --new 256 --no-launch-count
  echo "== launch counts" | tee -a "$log"
  "$bin" decode-bench --config "$config" --backend cuda "${ckpt[@]}" \
    --batches 1,8 --prompt-len 64 --new 8 2>&1 | tee -a "$log"
done
python3 scripts/peers/decode_peer.py --out "$OUT/decode_peer.json" > /dev/null
python3 scripts/peers/decode_peer.py --preset bitnet-2b --out "$OUT/decode_peer_bitnet.json" > /dev/null
for peer in decode_peer decode_peer_bitnet; do
  echo "$peer:"
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    print(r["mode"], r["batch"], r.get("decode_tokens_per_s"), r.get("ms_per_token"), r.get("peak_mem_mib"), r.get("compile_error", ""))' "$OUT/$peer.json"
done
