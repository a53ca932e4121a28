#!/usr/bin/env bash
# Data-parallel scaling of the ternary Shakespeare model on two or more GPUs: ARBITOR_XZ=.gpu/dp/arbitor.xz [MODE=diag] scripts/gpu/h200_data_parallel.sh
# Build and pack first:
#   cargo build --profile gpu -p arbitor-train --features cuda
#   mkdir -p .gpu/dp && xz -T2 -c target/gpu/arbitor > .gpu/dp/arbitor.xz
#   git rev-parse --short HEAD > .gpu/dp/COMMIT
# For each per-GPU batch in $BATCHES it trains configs/shakespeare-ternary-2gpu.toml
# (shortened to $EPOCHS epochs) on one GPU and on two, with the collective
# strategy, and once with Burn's main-device strategy; every run's log, its
# tokens/s per epoch, validation loss and the replica check go to $OUT
# (default .gpu/out). MODE=diag instead runs short two-GPU runs that compare the
# replicas after the copy to the devices and after each of the first optimizer
# steps (ARBITOR_DP_CHECK_STEPS), once per environment line in $VARIANTS.
set -uo pipefail
OUT=${OUT:-.gpu/out}
EPOCHS=${EPOCHS:-4}
BATCHES=${BATCHES:-"512 4096"}
mkdir -p "$OUT"
if [ -n "${ARBITOR_XZ:-}" ]; then
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open('.gpu/arbitor', 'wb'))" "$ARBITOR_XZ"
  chmod +x .gpu/arbitor
fi
# cubecl moves tensors between GPUs and all-reduces with NCCL, loaded at run
# time as libnccl.so: use PyTorch's copy. NVLink multicast stays off.
export NCCL_NVLS_ENABLE=0
nccl=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))")
mkdir -p /tmp/nccl && ln -sf "$nccl/libnccl.so.2" /tmp/nccl/libnccl.so
export LD_LIBRARY_PATH=/tmp/nccl:$nccl:${LD_LIBRARY_PATH:-}
{
  date -u
  echo "built from commit $(cat "$(dirname "${ARBITOR_XZ:-.gpu/x}")/COMMIT" 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  nvidia-smi topo -m
} > "$OUT/gpu.txt"

run() { # name, devices line, data_parallel mode, batch, steps per epoch [, env]
  local name=$1 devices=$2 mode=$3 batch=$4 steps=$5 env=${6:-} cfg="/tmp/$1.toml"
  sed -e "s|^dir = .*|dir = \"runs/dp-$name\"|" -e "s|^devices = .*|$devices|" \
      -e "s|^data_parallel = .*|data_parallel = \"$mode\"|" -e "s|^epochs = .*|epochs = $EPOCHS|" \
      -e "s|^batch = .*|batch = $batch|" -e "s|^steps_per_epoch = .*|steps_per_epoch = $steps|" \
      -e "s|^eval_batches = .*|eval_batches = ${EVAL_BATCHES:-50}|" \
      configs/shakespeare-ternary-2gpu.toml > "$cfg"
  rm -rf "runs/dp-$name"
  local start end
  start=$(date +%s.%N)
  env $env .gpu/arbitor train --config "$cfg" --backend cuda > "$OUT/$name.log" 2>&1
  local rc=$?
  end=$(date +%s.%N)
  {
    echo "== $name: devices '$devices', $mode, batch $batch per GPU, $steps batches per epoch, env '$env', exit $rc, wall $(python3 -c "print(round($end - $start, 1))") s"
    for e in $(seq 1 "$EPOCHS"); do
      echo "epoch $e tokens/s $(tail -1 "runs/dp-$name/train/epoch-$e/Tokens_per_second.log" 2>/dev/null | cut -d, -f1)"
    done
    grep -E "replicas bit-identical|differs|panicked|error" "$OUT/$name.log" | sort -u | tail -4
    tail -1 "runs/dp-$name/metrics.csv" 2>/dev/null | sed 's/^/last metrics.csv row: /'
  } | tee -a "$OUT/summary.txt"
}

if [ "${MODE:-scale}" = diag ]; then
  i=0
  while read -r variant; do
    i=$((i + 1))
    run "diag$i" "devices = [0, 1]" collective 512 40 "ARBITOR_DP_CHECK_STEPS=3 $variant"
  done <<< "${VARIANTS:-}"
  exit 0
fi
for batch in $BATCHES; do
  # The same tokens per epoch on one and on two GPUs.
  steps=$(( 819200 / batch ))
  run "1gpu-b$batch" "devices = []" collective "$batch" "$steps" "${RUN_ENV:-}"
  run "2gpu-b$batch" "devices = [0, 1]" collective "$batch" "$steps" "${RUN_ENV:-}"
done
run "2gpu-main-b4096" "devices = [0, 1]" main-device 4096 200 "${RUN_ENV:-}"
