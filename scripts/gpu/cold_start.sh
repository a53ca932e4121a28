#!/usr/bin/env bash
# The start of an `arbitor train` run on CUDA, launched twice (cold, then with the kernel cache the first launch left): here `scripts/gpu/cold_start.sh build`, on the GPU machine `OUT=<dir> scripts/gpu/cold_start.sh`.
# Each launch runs at most LIMIT seconds (default 180) of CONFIG (default
# configs/arb-multimodal-h200.toml) with CubeCL's compilation log on (a
# cubecl.toml written in the repository root, which the CLI keeps, adding its
# persistent kernel cache). $OUT/launch<N>.txt has the run's output, each line
# prefixed with the seconds since launch; $OUT/compiles<N>.txt the number of
# kernels compiled so far, every 10 s, and the most compiled kernel names.
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
unpack_executable "$XZ" "$bin"
config=${CONFIG:-configs/arb-multimodal-h200.toml}
for launch in 1 2; do
  log=/tmp/cubecl-compile-$launch.log
  rm -f "$log"
  printf '[compilation.logger]\nlevel = "basic"\nfile = "%s"\n' "$log" > cubecl.toml
  rm -rf runs
  start=$SECONDS
  ( while sleep 10; do
      echo "$((SECONDS - start)) s: $(grep -c . "$log" 2> /dev/null || echo 0) kernels compiled"
    done ) > "$OUT/compiles$launch.txt" &
  sampler=$!
  timeout "${LIMIT:-180}" "$bin" train --config "$config" --backend cuda 2>&1 |
    python3 -u -c '
import sys, time
t0 = time.time()
for line in sys.stdin:
    print(f"{time.time() - t0:7.1f} {line}", end="", flush=True)' > "$OUT/launch$launch.txt"
  kill "$sampler" 2> /dev/null
  {
    echo "== most compiled kernels (first word of each log line that names one)"
    grep -oE '[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)+' "$log" | sort | uniq -c | sort -rn | head -25
  } >> "$OUT/compiles$launch.txt"
  echo "launch $launch: $(tail -1 "$OUT/launch$launch.txt")"
  tail -3 "$OUT/compiles$launch.txt"
done
rm -f cubecl.toml
