#!/usr/bin/env bash
# The start of an `arbitor train` run on WGPU, launched twice (empty kernel cache, then the cache the first left): cargo build -p arbitor-train --features wgpu && scripts/cpu/wgpu_start.sh [CONFIG] [LIMIT]
# Where no GPU is present, Mesa's software Vulkan driver (lavapipe, `apt-get
# install mesa-vulkan-drivers`) runs it, compiling every shader on the CPU.
# Prints each launch's seconds to the first step line and its kernel-compile
# progress lines; each launch runs at most LIMIT seconds (default 300).
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${BIN:-target/debug/arbitor}
config=${1:-configs/arb-multimodal.toml}
limit=${2:-300}
rm -rf target/cubecl ~/.cache/cubecl
for launch in 1 2; do
  dir=$(mktemp -d)
  cfg=$dir/config.toml
  sed -e "s#^dir = .*#dir = \"$dir/run\"#" "$config" > "$cfg"
  echo "== launch $launch"
  timeout "$limit" "$bin" train --config "$cfg" --backend wgpu 2>&1 | python3 -u -c '
import sys, time
t0 = time.time()
for line in sys.stdin:
    if "step 1 " in line or "compiling GPU" in line or "validation" in line:
        print(f"{time.time() - t0:7.1f} {line[:160].rstrip()}", flush=True)
        if "validation" in line:
            break'
  rm -rf "$dir"
done
