#!/usr/bin/env bash
# ARBModel train smoke on CUDA from a carried test executable: scripts/gpu/gpu_arb_smoke.sh
# Build first: cargo test --profile gpu -p arbitor-models --features cuda --test arb_gpu --no-run;
# cp target/gpu/deps/arb_gpu-<hash> .gpu/arb_gpu
set -uo pipefail
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
.gpu/arb_gpu --nocapture
