#!/usr/bin/env bash
# The optimizer-update check and table (issue 3, round 4) and the Shakespeare
# runs with the BitNet peer (issue 6), in one GPU-machine call. Build here:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   cargo build --profile gpu -p arbitor-train --features cuda
#   mkdir -p .gpu/s3 && xz -c <cube_kernels executable> > .gpu/s3/cube_kernels.xz
#   xz -c target/gpu/arbitor > .gpu/s3/arbitor.xz     (compressed: both fit one carry)
# then on the GPU machine, from the repository root, with OUT set:
#   scripts/h200_update_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import lzma, shutil
for name in ["arbitor", "cube_kernels"]:
    with lzma.open(f".gpu/s3/{name}.xz") as packed, open(f".gpu/{name}", "wb") as out:
        shutil.copyfileobj(packed, out)
PY
chmod +x .gpu/arbitor .gpu/cube_kernels
{ date -u; git log -1 --format='commit %H'; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } > "$OUT/gpu.txt"
.gpu/cube_kernels --test-threads=1 --nocapture ternary_update > "$OUT/checks.txt" 2>&1
.gpu/cube_kernels --ignored update_benchmarks --nocapture --test-threads=1 > "$OUT/update.txt" 2>&1
bash scripts/h200_peer.sh > "$OUT/peer.txt" 2>&1
