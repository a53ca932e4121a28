#!/usr/bin/env bash
# Ternary and dense Shakespeare runs through the CLI, then the PyTorch BitNet-style peer, in one call with the same memory sampling: OUT=<dir> scripts/gpu/h200_peer.sh
# Build first: cargo build --profile gpu -p arbitor-train --features cuda; cp target/gpu/arbitor .gpu/arbitor
# Peak memory is the whole-device nvidia-smi peak for all three, plus torch's allocator peak.
set -uo pipefail
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1 | tee $OUT/vulkan.txt; ldconfig -p | grep -i vulkan | tee -a $OUT/vulkan.txt
monitor() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/mem-$1.txt" & echo $!; }
for run in ternary dense; do
  rm -rf runs/shakespeare-$run
  pid=$(monitor $run); s=$(date +%s.%N)
  .gpu/arbitor train --config configs/shakespeare-$run.toml --backend cuda > $OUT/$run.log 2>&1
  e=$(date +%s.%N); kill $pid
  echo "$run wall $(python3 -c "print(round($e-$s,1))") s, peak device MiB $(sort -n $OUT/mem-$run.txt | tail -1)" | tee -a $OUT/summary.txt
  tail -5 $OUT/$run.log
  for ep in 1 2 3 4 5 6 7 8; do f="runs/shakespeare-$run/train/epoch-$ep/Tokens_per_second.log"; [ -f "$f" ] && echo "$run epoch $ep tokens/s $(tail -1 "$f" | cut -d, -f1)" | tee -a $OUT/summary.txt; done
  cp runs/shakespeare-$run/metrics.csv $OUT/metrics-$run.csv; cp runs/shakespeare-$run/loss_curve.png $OUT/loss_curve-$run.png 2>/dev/null
done
pid=$(monitor bitnet)
python3 scripts/peers/bitnet_peer.py --steps 3200 --out $OUT/bitnet_peer.json | tail -1
kill $pid; echo "bitnet peak device MiB $(sort -n $OUT/mem-bitnet.txt | tail -1)" | tee -a $OUT/summary.txt
