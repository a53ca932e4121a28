#!/usr/bin/env bash
# Seed-scale runs on one H200: here `scripts/gpu/seed_scale.sh build`, on the GPU machine `OUT=<dir> scripts/gpu/seed_scale.sh PHASE [STEPS]`.
# Phases (each writes $OUT/<phase>.txt, plus the runs' summaries and JSONs):
#   text STEPS   configs/arb-text.toml (ternary) and configs/arb-text-dense.toml
#                for STEPS steps each (10 epochs), then the BitNet-style and the
#                dense PyTorch transformer peers of the same shape for the same
#                steps (scripts/peers/bitnet_peer.py --model transformer).
#                TEXT_CONFIGS (default "arb-text arb-text-dense") picks the
#                arbitor runs; an entry NAME@KEY=VALUE,... sets [train] keys
#                (e.g. arb-text@grad_normalization=row,lr=0.1); PEERS=0
#                leaves the peers out.
#   multimodal STEPS   configs/arb-seed.toml for STEPS steps (10 epochs) from
#                an empty kernel cache (at most LIMIT1 s, default 540), then a second launch (LIMIT2 s,
#                default 20) on the cache the first left.
#   long         configs/arb-seed.toml as it stands (20 epochs of 100 steps)
#                in runs/arb-seed-long for at most LIMIT s (default 570); a
#                later call on the same warm machine resumes it from its last
#                epoch checkpoint (`--resume`), so the 2,000 steps can span
#                calls. Writes $OUT/long.txt, the loss curve and steps.csv.
# Every run's peak device memory is sampled with nvidia-smi (memory.used,
# every 200 ms, the CUDA context included) beside each run's own figures.
set -uo pipefail
cd "$(dirname "$0")/../.."
XZ=.gpu/arbitor.xz
# shellcheck source=scripts/gpu/packed_executable.sh
source scripts/gpu/packed_executable.sh
phase=${1:-}
if [ "$phase" = build ]; then
  pack_executable "$XZ" arbitor build --profile gpu -p arbitor-train --features cuda
  exit
fi
: "${OUT:?set OUT to the output folder}"
bin=.gpu/arbitor
[ -x "$bin" ] || unpack_executable "$XZ" "$bin"

# with_steps CONFIG STEPS DIR [KEY=VALUE,...]: CONFIG with STEPS optimizer
# steps over 10 epochs, run.dir = DIR and the given [train] keys, written to
# a temporary file; prints its path.
with_steps() {
  python3 - "$1" "$2" "$3" "${4:-}" << 'EOF'
import re, sys, tempfile
config, steps, run_dir, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
text = open(config).read()
for pair in filter(None, keys.split(",")):
    key, value = pair.split("=", 1)
    value = value if re.fullmatch(r"[0-9.e-]+", value) else f'"{value}"'
    text = re.sub(rf"(?m)^{key} = .*\n", "", text)
    text = text.replace("[train]\n", f"[train]\n{key} = {value}\n")
epochs = 10 if steps >= 10 else 1
text = re.sub(r'(?m)^epochs = .*', f'epochs = {epochs}', text)
text = re.sub(r'(?m)^steps_per_epoch = .*', f'steps_per_epoch = {steps // epochs}', text)
text = re.sub(r'(?m)^dir = .*', f'dir = "{run_dir}"', text)
f = tempfile.NamedTemporaryFile('w', suffix='.toml', delete=False)
f.write(text)
print(f.name)
EOF
}

case "$phase" in
  text)
    steps=${2:?steps}
    for entry in ${TEXT_CONFIGS:-arb-text arb-text-dense}; do
      config=${entry%%@*}
      keys=${entry#"$config"}
      name=$config${keys:+-$(echo "${keys#@}" | tr -c 'A-Za-z0-9.\n' '_')}
      cfg=$(with_steps "configs/$config.toml" "$steps" "runs/$name" "${keys#@}")
      rm -rf "runs/$name"
      timed "$OUT/$name.txt" "$bin" train --config "$cfg" --backend cuda
      grep -E 'validation|valid_full|Tokens per second|peak' "$OUT/$name.txt" | tail -4 | cut -c1-300
    done
    [ "${PEERS:-1}" = 1 ] || exit 0
    for dense in "" --dense; do
      name=peer${dense:+-dense}
      timed /tmp/$name.txt python3 scripts/peers/bitnet_peer.py --model transformer $dense \
        --steps "$steps" --eval-every $((steps / 10)) --out "$OUT/$name.json"
      tail -1 /tmp/$name.txt >> "$OUT/$name.json"
      tail -2 /tmp/$name.txt | cut -c1-300
    done
    ;;
  multimodal)
    steps=${2:?steps}
    cfg=$(with_steps configs/arb-seed.toml "$steps" runs/arb-seed)
    rm -rf runs target ~/.cache/cubecl # the kernel caches (CubeCL keeps them under target/)
    echo "== launch 1 (empty kernel cache)" >> "$OUT/multimodal.txt"
    timed "$OUT/multimodal.txt" timeout "${LIMIT1:-540}" "$bin" train --config "$cfg" --backend cuda
    cp runs/arb-seed/loss_curve.png "$OUT/multimodal-loss.png" 2> /dev/null
    cp runs/arb-seed/steps.csv "$OUT/multimodal-steps.csv" 2> /dev/null
    rm -rf runs/arb-seed
    echo "== launch 2 (the kernel cache of launch 1), ${LIMIT2:-20} s" >> "$OUT/multimodal.txt"
    timed "$OUT/multimodal.txt" timeout "${LIMIT2:-20}" "$bin" train --config "$cfg" --backend cuda
    grep -E '== launch|step 1 |compiling GPU|validation|peak' "$OUT/multimodal.txt" | cut -c1-200 | tail -40
    ;;
  long)
    dir=runs/arb-seed-long
    cfg=/tmp/arb-seed-long.toml
    sed "s|^dir = .*|dir = \"$dir\"|" configs/arb-seed.toml > "$cfg"
    resume=()
    if ls "$dir"/checkpoint/model-*.mpk > /dev/null 2>&1; then resume=(--resume); fi
    echo "== long run ${resume[*]:-(new)}" >> "$OUT/long.txt"
    timed "$OUT/long.txt" timeout "${LIMIT:-570}" "$bin" train --config "$cfg" --backend cuda "${resume[@]}"
    cp "$dir/loss_curve.png" "$OUT/long-loss.png" 2> /dev/null
    cp "$dir/steps.csv" "$OUT/long-steps.csv" 2> /dev/null
    grep -E '== long|step 1 |validation|epoch|peak' "$OUT/long.txt" | cut -c1-200 | tail -30
    ;;
  *)
    echo "usage: $0 build | text STEPS | multimodal STEPS | long" >&2
    exit 2
    ;;
esac
