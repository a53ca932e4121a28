#!/usr/bin/env bash
# Training state per weight and peak memory of BitNet training on the CPU:
# the BitNet model with the ternary optimizer against its dense f32 twin
# with Burn's AdamW, same shape, same frozen float parts, same steps, each in
# its own process (peak RSS = VmHWM of /proc/self/status):
#   cargo build --release -p arbitor-train && scripts/cpu/bitnet_train_memory.sh
# The shape is configs/bitnet-2b4t-finetune.toml's keys overridden to a CPU
# size (SHAPE below; change it or STEPS, BATCH, SEQ in the environment).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${ARBITOR:-target/release/arbitor}
steps=${STEPS:-3}
shape=${SHAPE:-"hidden_size=512 intermediate_size=1376 num_hidden_layers=4 num_attention_heads=8 num_key_value_heads=2 vocab_size=512 max_position_embeddings=256"}
sets=(--set "train.batch=${BATCH:-4}" --set "bitnet.seq=${SEQ:-128}")
for kv in $shape; do sets+=(--set "bitnet.$kv"); done
echo "shape: $shape; batch ${BATCH:-4} x seq ${SEQ:-128} tokens; $steps steps"
for optimizer in ternary adamw; do
  echo
  "$bin" train-memory --config configs/bitnet-2b4t-finetune.toml "${sets[@]}" --optimizer "$optimizer" --steps "$steps"
done
