# Sourced by the scripts/gpu/ runners: pack_executable builds a test or bench executable here and xz-packs it into .gpu/; unpack_executable unpacks it on the GPU machine; timed runs a command there with its seconds and peak device memory logged.
# The GPU machine has no Rust and its checkout no history, so each packed
# executable carries a `<name>.COMMIT` file beside it naming the commit it was
# built from; unpack_executable writes that, the date and the GPU to $OUT/gpu.txt.

# pack_executable XZ TARGET CARGO_ARGS...: runs `cargo CARGO_ARGS...` (a build,
# or a test/bench build with --no-run), packs the executable of the target
# named TARGET into XZ (with XZ's COMMIT).
pack_executable() {
  local xz=$1 target=$2 exe
  shift 2
  exe=$(cargo "$@" --message-format=json | TARGET=$target python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == os.environ["TARGET"]:
        print(m["executable"])')
  [ -n "$exe" ] || { echo "no executable named $target" >&2; return 1; }
  mkdir -p "$(dirname "$xz")"
  xz -T0 -c "$exe" > "$xz"
  git rev-parse HEAD > "${xz%.xz}.COMMIT"
  ls -l "$xz"
}

# unpack_executable XZ BIN: unpacks XZ to BIN (xz, or Python's lzma where xz is
# missing) and records the machine, the date and the commit in $OUT/gpu.txt.
unpack_executable() {
  local xz=$1 bin=$2
  if command -v xz > /dev/null; then
    xz -d -c "$xz" > "$bin"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$xz" "$bin"
  fi
  chmod +x "$bin"
  {
    date -u
    echo "built from commit $(cat "${xz%.xz}.COMMIT" 2> /dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  } > "$OUT/gpu.txt"
}

# timed LOG CMD...: runs CMD with each output line, prefixed by the seconds
# since launch, appended to LOG, then the peak of nvidia-smi's memory.used
# (CUDA context included) over the run.
timed() {
  local log=$1
  shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > /tmp/mem.txt &
  local sampler=$!
  "$@" 2>&1 | python3 -u -c '
import sys, time
t0 = time.time()
for line in sys.stdin:
    print(f"{time.time() - t0:7.1f} {line}", end="", flush=True)' >> "$log"
  kill "$sampler" 2> /dev/null
  echo "peak device memory (nvidia-smi memory.used): $(sort -n /tmp/mem.txt | tail -1) MiB" >> "$log"
}

# arbitor_executable MODE: with MODE `build`, builds the arbitor executable
# with the cuda and wgpu features, packs it into .gpu/arbitor.xz and exits;
# otherwise (on the GPU machine, OUT set) unpacks it to .gpu/arbitor once.
# decode_speed.sh, wgpu_h200.sh and bitnet_2b.sh share it.
arbitor_executable() {
  if [ "$1" = build ]; then
    pack_executable .gpu/arbitor.xz arbitor build --profile gpu -p arbitor-train --features cuda,wgpu
    exit
  fi
  : "${OUT:?set OUT to the output folder}"
  [ -x .gpu/arbitor ] || unpack_executable .gpu/arbitor.xz .gpu/arbitor
}
