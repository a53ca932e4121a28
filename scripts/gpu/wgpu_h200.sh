#!/usr/bin/env bash
# WGPU on the H200 (Vulkan through NVIDIA's driver): `arbitor generate` on
# CUDA and on WGPU from one checkpoint, and `arbitor decode-bench` on WGPU.
# Here: `scripts/gpu/wgpu_h200.sh build` (the arbitor executable with the
# cuda and wgpu features, shared with decode_speed.sh) and, once, the Vulkan
# loader packages into the git-ignored .gl/ (see the device README:
# `echo /.gl/ >> .git/info/exclude`, then `apt-get download libvulkan1
# libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2` inside .gl/). On
# the GPU machine, with .gpu/arbitor.xz, its .COMMIT and .gl carried:
# `OUT=<dir> scripts/gpu/wgpu_h200.sh`. Writes $OUT/wgpu_h200.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/gpu/packed_executable.sh
source scripts/gpu/packed_executable.sh
arbitor_executable "${1:-run}"
bin=.gpu/arbitor
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
log=$OUT/wgpu_h200.txt
: > "$log"
ldconfig -p | grep libvulkan | tee -a "$log"
# 100 CUDA training steps of the seed-scale arb-text: a checkpoint that
# writes more than one byte over and over.
cfg=$(mktemp --suffix .toml)
sed -e 's/^epochs = .*/epochs = 1/' -e 's/^steps_per_epoch = .*/steps_per_epoch = 100/' \
  -e 's|^dir = .*|dir = "runs/wgpu-h200"|' configs/arb-text.toml > "$cfg"
"$bin" train --config "$cfg" --backend cuda 2>&1 | tail -3 | tee -a "$log"
for backend in cuda wgpu; do
  echo "== generate, greedy, on $backend" | tee -a "$log"
  timeout 240 "$bin" generate --config "$cfg" --checkpoint runs/wgpu-h200/model.safetensors \
    --prompt "ROMEO:" --max-new 96 --temperature 0 --backend "$backend" 2>&1 | tee -a "$log"
done
for config in arb-text bitnet-2b4t; do
  echo "== decode-bench $config on wgpu" | tee -a "$log"
  timeout 200 "$bin" decode-bench --config "configs/$config.toml" --backend wgpu \
    --batches 1,8 --prompt-len 64 --new 64 2>&1 | tee -a "$log"
done
