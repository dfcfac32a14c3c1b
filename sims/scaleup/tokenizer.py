"""A character-level tokenizer built in the lab (no downloads).

Vocabulary: PAD (0), BOS (1), EOS (2), the digits 0–9, and the symbols `+ = ?`. Every task's
prompts and answers are written in these characters. `encode` maps a string to token ids,
`decode` maps ids back, stopping at EOS and skipping PAD/BOS.
"""

from __future__ import annotations

import numpy as np

from bandits.errors import InputError

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
CHARS = "0123456789+=?"
VOCAB = len(SPECIALS) + len(CHARS)
_INDEX = {c: i + len(SPECIALS) for i, c in enumerate(CHARS)}


def encode(text: str) -> np.ndarray:
    """Token ids of `text` (int32); a character outside the vocabulary is an InputError."""
    try:
        return np.array([_INDEX[c] for c in text], dtype=np.int32)
    except KeyError as err:
        raise InputError(f"character {err.args[0]!r} is not in the vocabulary {CHARS!r}") from None


def decode(ids) -> str:
    """The text of token ids up to the first EOS; PAD and BOS are skipped."""
    out = []
    for i in np.asarray(ids).reshape(-1).tolist():
        if i == EOS:
            break
        if i >= len(SPECIALS):
            out.append(CHARS[i - len(SPECIALS)])
    return "".join(out)
