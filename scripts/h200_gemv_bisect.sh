#!/usr/bin/env bash
# Stream time of the GEMV table (`gemv_benchmarks`) for several packed
# executables in one GPU-machine call, each in its own process; with
# PASSES=2 the executables run interleaved twice, so that a drift of the
# host shows as a difference between passes, not between executables (one
# table takes about 140 s on the H200: three executables, one pass, fit
# one 600 s call). Used to bisect the round-12 stream-time
# regression (BENCHMARKS "Round 12"). Build and pack each commit here:
#   cargo test --profile gpu -p burn-ternary --features cuda --test cube_kernels --no-run
#   mkdir -p .gpu/<name> && strip -o /tmp/ck <executable> && xz -c /tmp/ck > .gpu/<name>/cube_kernels.xz
#   git rev-parse HEAD > .gpu/<name>/COMMIT
# then on the GPU machine, from the repository root, with OUT set:
#   BISECT=".gpu/s10 .gpu/s11 .gpu/s12" scripts/h200_gemv_bisect.sh
# BENCH names another ignored benchmark to run instead (its table rows are
# printed), e.g. BENCH=small_shape_benchmarks (BENCHMARKS "Round 14").
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
for pass in $(seq 1 "${PASSES:-1}"); do
  for dir in ${BISECT:?set BISECT to the folders of the packed executables}; do
    name=$(basename "$dir")
    mkdir -p ".gpu/bisect/$name"
    python3 - "$dir/cube_kernels.xz" ".gpu/bisect/$name/cube_kernels" <<'PY'
import lzma, shutil, sys
with lzma.open(sys.argv[1]) as packed, open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(packed, out)
PY
    chmod +x ".gpu/bisect/$name/cube_kernels"
    bench=${BENCH:-gemv_benchmarks}
    log="$OUT/${bench}_${name}_pass${pass}.txt"
    echo "commit $(cat "$dir/COMMIT" 2>/dev/null || echo unknown)" > "$log"
    ".gpu/bisect/$name/cube_kernels" --ignored "$bench" --nocapture --test-threads=1 >> "$log" 2>&1
    echo "== $name pass $pass ($(head -1 "$log"))"
    if [ "$bench" = gemv_benchmarks ]; then
      grep -E "launch floor|^\| [18] \| (8192|4096|14336) " "$log"
    else
      grep -E "^\|" "$log"
    fi
  done
done
