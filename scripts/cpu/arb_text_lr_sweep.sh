#!/usr/bin/env bash
# The ternary optimizer's learning rate on a small arb-text model on the CPU, against its dense twin: cargo build -p arbitor-train && scripts/cpu/arb_text_lr_sweep.sh [LRS...]
# configs/arb-text.toml cut to d_model 128, 2 blocks, 4 heads, MLP 256, seq 64,
# batch 16, 3 epochs of 100 steps; one run per ternary lr (default 0.02 0.05
# 0.1 0.2) and the dense twin with AdamW at lr 3e-3. Prints each run's
# full-pass validation loss (nats/byte). NORM=tensor|row sets the ternary runs'
# `[train] grad_normalization` (default: the config's, "row"); DENSE=0
# leaves the dense twin out.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${BIN:-target/debug/arbitor}
out=$(mktemp -d)
small() { # small KIND LR NAME
  python3 - "$1" "$2" "$out/$3" << 'PY'
import os, re, sys
kind, lr, run = sys.argv[1:]
text = open("configs/arb-text.toml").read()
keys = {"d_model": 128, "n_layers": 2, "n_heads": 4, "mlp_hidden": 256, "trigram_buckets": 1024,
        "vq_codes": 64, "memory_slots": 32, "memory_d_key": 16, "expert_hidden": 128, "seq": 64,
        "hidden": 8, "blocks": 0, "epochs": 3, "steps_per_epoch": 100, "batch": 16, "lr": lr}
for key, value in keys.items():
    text = re.sub(rf"(?m)^{key} = .*", f"{key} = {value}", text)
text = re.sub(r'(?m)^kind = .*', f'kind = "{kind}"', text)
text = re.sub(r"(?m)^dir = .*", f'dir = "{run}"', text)
if kind == "arb-text" and os.environ.get("NORM"):
    text = re.sub(r"(?m)^grad_normalization = .*\n", "", text)
    text = text.replace("[train]", f'[train]\ngrad_normalization = "{os.environ["NORM"]}"')
open(run + ".toml", "w").write(text)
PY
  "$bin" train --config "$out/$3.toml" > "$out/$3.log" 2>&1
  echo "$3: $(grep valid_full_pass_nats "$out/$3.log")"
}
for lr in "${@:-0.02 0.05 0.1 0.2}"; do
  for one in $lr; do small arb-text "$one" "ternary-${NORM:-row}-lr$one"; done
done
[ "${DENSE:-1}" = 0 ] || small dense-arb-text 0.003 dense-adamw
