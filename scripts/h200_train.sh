#!/usr/bin/env bash
# The ternary-vs-dense Shakespeare comparison on a CUDA machine, from an
# `arbitor` binary built on a development machine:
#   cargo build --profile gpu -p arbitor-train --features cuda
#   mkdir -p .gpu && cp target/gpu/arbitor .gpu/arbitor
# then, on the GPU machine, from the repository root: scripts/h200_train.sh
# (or, with the binary packed, ARBITOR_XZ=.gpu/<dir>/arbitor.xz scripts/h200_train.sh;
# RUNS="ternary" runs one config only).
# Logs, metrics.csv, loss curves, peak GPU memory and the tokens/s of each
# epoch go to $OUT (default .gpu/out).
set -uo pipefail
OUT=${OUT:-.gpu/out}
mkdir -p "$OUT"
if [ -n "${ARBITOR_XZ:-}" ]; then
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open('.gpu/arbitor', 'wb'))" "$ARBITOR_XZ"
  chmod +x .gpu/arbitor
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
for run in ${RUNS:-dense ternary}; do
  rm -rf "runs/shakespeare-$run"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/mem-$run.txt" &
  monitor=$!
  start=$(date +%s.%N)
  .gpu/arbitor train --config "configs/shakespeare-$run.toml" --backend cuda 2>&1 | tee "$OUT/$run.log"
  end=$(date +%s.%N)
  kill $monitor
  echo "wall seconds: $(python3 -c "print(round($end - $start, 1))")" | tee -a "$OUT/$run.log"
  echo "peak GPU memory used (MiB, whole device): $(sort -n "$OUT/mem-$run.txt" | tail -1)" | tee -a "$OUT/$run.log"
  for log in runs/shakespeare-"$run"/train/epoch-*/Tokens_per_second.log; do
    echo "$log: $(tail -1 "$log")"
  done | tee "$OUT/tokens_per_second-$run.txt"
  cp "runs/shakespeare-$run/metrics.csv" "$OUT/metrics-$run.csv"
  cp "runs/shakespeare-$run/loss_curve.png" "$OUT/loss_curve-$run.png"
done
