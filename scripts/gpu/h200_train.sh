#!/usr/bin/env bash
# Ternary vs dense Shakespeare training through the CLI on CUDA, with peak memory and tokens/s: OUT=<dir> [ARBITOR_XZ=.gpu/<dir>/arbitor.xz] [RUNS=ternary] scripts/gpu/h200_train.sh
# Build first: cargo build --profile gpu -p arbitor-train --features cuda;
# cp target/gpu/arbitor .gpu/arbitor (or xz-pack it and set ARBITOR_XZ).
# Logs, metrics.csv, loss curves, peak GPU memory and each epoch's tokens/s go to
# $OUT (default .gpu/out).
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
