#!/usr/bin/env python3
"""Runs the GGUF that arbitor-models writes through llama.cpp (the
`llama-cpp-python` bindings, which build llama.cpp from PyPI's source).

    BITNET_EXPORT_DIR=/tmp/bitnet-export cargo test -p arbitor-models --test cpu bitnet_hf
    python3 -m venv /tmp/venv-llama
    /tmp/venv-llama/bin/pip install llama-cpp-python safetensors numpy   # builds llama.cpp, ~20 min on 2 cores
    /tmp/venv-llama/bin/python scripts/hf/check_gguf_llama_cpp.py /tmp/bitnet-export

Reads `model_tok.gguf` (written by `save_gguf_with_tokenizer` with
data/tokenizer/tokenizer.json) with llama.cpp, then:

1. tokenizes every line of data/tokenizer/expected_ids.json with llama.cpp's
   own tokenizer from the file and requires the ids that the Python
   `tokenizers` library gave (exact);
2. runs the ids of `gguf_tok_logits.safetensors` and compares llama.cpp's
   logits with arbitor's (max |difference| / max |logit|, bound 5e-2: llama.cpp
   quantizes activations per 256-value block for its TQ2_0 dot product where
   BitNet quantizes per token, so the two differ by rounding).

A llama.cpp whose `bitnet` graph ignores `bitnet.hidden_activation` runs a
SiLU gate instead of relu² and fails step 2 by far (about 0.37 here); the
script says so. Exits non-zero on any failure.
"""

import json
import sys
from pathlib import Path

import numpy as np
from llama_cpp import Llama, __version__
from safetensors.numpy import load_file

BOUND = 5e-2
REPO = Path(__file__).resolve().parents[2]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    llm = Llama(model_path=str(root / "model_tok.gguf"), n_ctx=64, logits_all=True,
                n_threads=2, verbose=False)
    meta = llm.metadata
    print(f"llama-cpp-python {__version__}: loaded model_tok.gguf, architecture "
          f"{meta.get('general.architecture')!r}, vocabulary {meta.get('tokenizer.ggml.model')!r} "
          f"with pre-tokenizer {meta.get('tokenizer.ggml.pre')!r}, "
          f"hidden_activation {meta.get('bitnet.hidden_activation')!r}")

    cases = json.loads((REPO / "data/tokenizer/expected_ids.json").read_text())["cases"]
    wrong = [c for c in cases
             if llm.tokenize(c["text"].encode(), add_bos=False, special=True) != c["ids"]]
    for c in wrong[:3]:
        print(f"  {c['text']!r}: llama.cpp gives "
              f"{llm.tokenize(c['text'].encode(), add_bos=False, special=True)}, expected {c['ids']}")
    ok = not wrong
    print(f"tokenizer: {len(cases) - len(wrong)} of {len(cases)} lines give the reference ids "
          f"{'ok' if ok else 'FAIL'}")

    ours = load_file(str(root / "gguf_tok_logits.safetensors"))
    ids = ours["ids"].astype(np.int64).reshape(-1).tolist()
    want = ours["logits"].reshape(len(ids), -1)
    llm.reset()
    llm.eval(ids)
    theirs = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
    err = np.abs(theirs - want).max() / np.abs(want).max()
    agree = (theirs.argmax(-1) == want.argmax(-1)).mean()
    logits_ok = err < BOUND
    print(f"logits of {len(ids)} tokens: max relative difference {err:.2e}, "
          f"argmax agrees at {agree:.0%} of positions {'ok' if logits_ok else 'FAIL'}")
    if not logits_ok:
        print("  (a llama.cpp bitnet graph that hard-codes a SiLU gate ignores "
              "bitnet.hidden_activation = 'relu2')")
    ok &= logits_ok
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
