#!/usr/bin/env bash
# ARBModel train smoke on CUDA, from a test executable built on a development machine:
#   cargo test --profile gpu -p arbitor-models --features cuda --test arb_gpu --no-run
#   cp target/gpu/deps/arb_gpu-<hash> .gpu/arb_gpu
# then, on the GPU machine: scripts/gpu_arb_smoke.sh
set -uo pipefail
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
.gpu/arb_gpu --nocapture
