#!/usr/bin/env python3
"""Trains the small byte-level BPE tokenizer the tokenizer tests and the
BitNet fine-tuning configs use, and records reference encodings.

Writes, into data/tokenizer/ (or --out):
  tokenizer.json      a Hugging Face `tokenizers` file (byte-level BPE,
                      VOCAB tokens including the <|endoftext|> special token),
                      trained on the training split of Tiny Shakespeare (the
                      first 90% of data/tinyshakespeare.txt, as [data]
                      val_fraction = 0.1 splits it);
  expected_ids.json   lines of the text and the ids this Python library gives
                      them, which the Rust tests compare against.

Run from the repository root with a Python that has `tokenizers`
(e.g. python3 -m venv /tmp/venv-tok && /tmp/venv-tok/bin/pip install tokenizers):
  /tmp/venv-tok/bin/python scripts/hf/train_tokenizer.py
The BPE trainer is deterministic, so a rerun rewrites the same files.
"""

import argparse
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB = 512
SPECIAL = "<|endoftext|>"
# Lines for the reference encodings: from the training text, from the
# validation tail, and a few that the training text never shows.
EXTRA = [
    "ROMEO:\nBut, soft! what light through yonder window breaks?",
    "Zebra café — naïve 42 € 😀\t\r\n",
    "  leading spaces,\n\n\ntrailing  ",
    f"two documents{SPECIAL}joined",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default="data/tinyshakespeare.txt")
    parser.add_argument("--out", default="data/tokenizer")
    parser.add_argument("--vocab", type=int, default=VOCAB)
    args = parser.parse_args()

    with open(args.text, "rb") as f:
        raw = f.read()
    split = int(len(raw) * 0.9)
    train_text = raw[:split].decode("utf-8", errors="replace")

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Whole lines as the training "documents", in file order.
    tokenizer.train_from_iterator(train_text.splitlines(keepends=True), trainer)

    os.makedirs(args.out, exist_ok=True)
    tokenizer.save(os.path.join(args.out, "tokenizer.json"), pretty=False)

    lines = raw.decode("utf-8").splitlines(keepends=True)
    picked = lines[:6] + lines[len(lines) - 4 :] + EXTRA
    cases = [{"text": t, "ids": tokenizer.encode(t).ids} for t in picked]
    # One case per line, so a change shows as a small diff.
    with open(os.path.join(args.out, "expected_ids.json"), "w") as f:
        f.write(f'{{"vocab_size": {tokenizer.get_vocab_size()}, "special": {json.dumps(SPECIAL)}, "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    print(
        f"vocab {tokenizer.get_vocab_size()}, "
        f"{len(tokenizer.encode(raw[split:].decode('utf-8')).ids)} tokens for the "
        f"{len(raw) - split} validation bytes; wrote {args.out}/tokenizer.json and expected_ids.json"
    )


if __name__ == "__main__":
    main()
