#!/usr/bin/env bash
# Tokens/s and peak RSS of the Shakespeare configs on the CPU backend, cut to one epoch of 30 steps: cargo build --release -p arbitor-train && scripts/cpu/shakespeare_bench.sh
# Same model, batch and lr as the GPU runs (a full run would take hours on 2 cores);
# prints the in-epoch Tokens per second metric and the peak resident set size (GNU time).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${ARBITOR:-target/release/arbitor}
for kind in ternary dense; do
  cfg=$(mktemp --suffix=.toml)
  dir=$(mktemp -d)
  rmdir "$dir"
  sed -e "s|^dir = .*|dir = \"$dir\"|; s|backend = \"cuda\"|backend = \"cpu\"|; s|^epochs = .*|epochs = 1|; s|^steps_per_epoch = .*|steps_per_epoch = 30|; s|^eval_batches = .*|eval_batches = 2|" \
    "configs/shakespeare-$kind.toml" > "$cfg"
  /usr/bin/time -v "$bin" train --config "$cfg" > "$dir.log" 2> "$dir.time"
  echo "$kind: $(grep -o 'Tokens per second epoch [0-9]* tok/s' "$dir.log" | tail -1), peak RSS $(grep 'Maximum resident' "$dir.time" | awk '{print int($6/1024)}') MiB"
  rm -rf "$cfg" "$dir" "$dir.log" "$dir.time"
done
