#!/usr/bin/env python3
"""Checks the BitNet checkpoints that arbitor-models writes, with the
upstream libraries.

    BITNET_EXPORT_DIR=/tmp/bitnet-export cargo test -p arbitor-models --test cpu bitnet_hf
    python scripts/hf/check_export.py /tmp/bitnet-export

For every `hf_*/` directory (written by `BitNetForCausalLM::save_hf_dir`):
loads it with transformers' `BitNetForCausalLM.from_pretrained` (float32),
runs the ids of `arbitor_logits.safetensors` and compares transformers'
logits with the ones arbitor computed (max |difference| / max |logit|, bound
1e-3). For `model.gguf` (written by `save_gguf`): reads it with the `gguf`
package's `GGUFReader`, dequantizes every tensor with `gguf.quants` and
compares with `gguf_expected.safetensors` (the dense weights arbitor holds;
bound 2^-11 relative, the f16 block scale of TQ2_0). Exits non-zero on any
failure. `check_gguf_llama_cpp.py` runs the GGUF with its tokenizer through
llama.cpp.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

BOUND = 1e-3


def check_hf(directory: Path) -> bool:
    from transformers import BitNetForCausalLM

    ours = load_file(str(directory / "arbitor_logits.safetensors"))
    ids = torch.from_numpy(ours["ids"].astype(np.int64))
    model = BitNetForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    kinds = {type(m).__name__ for m in model.modules() if "BitLinear" in type(m).__name__}
    with torch.no_grad():
        theirs = model(ids).logits.float().numpy()
    err = np.abs(theirs - ours["logits"]).max() / np.abs(theirs).max()
    ok = err < BOUND
    print(f"{directory.name}: transformers loaded it ({', '.join(sorted(kinds))}); "
          f"logits max relative difference {err:.2e} {'ok' if ok else 'FAIL'}")
    return ok


def check_gguf(path: Path, expected_path: Path) -> bool:
    try:
        from gguf import GGUFReader
        from gguf.quants import dequantize
    except ImportError:
        print("the gguf package is not installed (pip install gguf): GGUF not checked FAIL")
        return False
    reader = GGUFReader(str(path))
    expected = load_file(str(expected_path))
    arch = reader.fields["general.architecture"]
    arch = bytes(arch.parts[arch.data[0]]).decode()
    types = {}
    ok = True
    worst = 0.0
    for t in reader.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        values = dequantize(t.data, t.tensor_type).reshape(-1)
        want = expected[t.name].reshape(-1)
        err = np.abs(values - want).max() / max(np.abs(want).max(), 1e-12)
        worst = max(worst, err)
        if err > 2.0 ** -11:
            print(f"  {t.name} ({t.tensor_type.name}, shape {list(t.shape)}): off by {err:.2e} FAIL")
            ok = False
    missing = set(expected) - {t.name for t in reader.tensors}
    if missing:
        print(f"  missing tensors: {sorted(missing)} FAIL")
        ok = False
    print(f"{path.name}: GGUFReader read architecture {arch!r}, {len(reader.tensors)} tensors {types}, "
          f"{len(reader.fields)} metadata fields; dequantized vs arbitor max relative difference "
          f"{worst:.2e} {'ok' if ok else 'FAIL'}")
    return ok


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    ok = True
    dirs = sorted(d for d in root.glob("hf_*") if d.is_dir())
    if not dirs:
        print(f"no hf_* directories under {root}")
        ok = False
    for d in dirs:
        ok &= check_hf(d)
    if (root / "model.gguf").exists():
        ok &= check_gguf(root / "model.gguf", root / "gguf_expected.safetensors")
    else:
        print(f"no model.gguf under {root}")
        ok = False
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
