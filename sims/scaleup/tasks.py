"""Synthetic verifiable tasks: prompts, answers, checkers and difficulty.

Every task has a finite pool of prompts of one fixed length (BOS + text) and completions of one
fixed length T (the answer, then EOS if there is room, then PAD). The reward of a completion is 1
if the checker accepts it and 0 otherwise. Two equivalent checkers exist: `check` decodes the
completion to text and compares it with the answer (the reference), and `rewards` compares token
arrays inside compiled code (exact match of answer + EOS + PAD, which is the same test because the
rollout emits PAD after EOS and never samples PAD or BOS).

| task      | prompt      | answer            | T | level |
|-----------|-------------|-------------------|---|-------|
| `copy`    | `7=`        | `7`               | 1 | 0     |
| `parity`  | `0110=`     | `0` (XOR of bits) | 1 | 0     |
| `digitsum`| `3+5=`      | `8` ((a+b) mod 10)| 1 | 1     |
| `reverse` | `?120=`     | `021` + EOS       | 4 | 2     |
| `addition`| `07+35=`    | `42` + EOS        | 4 | 3     |
| `longreverse` | `?` + 15 digits + `=` | reversed + EOS | 16 | 4 (4096 fixed prompts; the bench's larger shape) |

The level grades the tasks by difficulty (0: learnable from random initialisation, since one of
the 14 sampleable tokens is right; 2–3: learnable after a short supervised warm start). A prompt's
own difficulty under the current policy is its pass rate, estimated from its group — the same
notion as the multi-prompt bandit ensembles of `bandits.ensemble`, where the pool of prompts plays
the role of the ensemble's P prompts.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError
from sims.scaleup import tokenizer as tok


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    level: int
    completion_len: int
    texts: tuple  # (prompt text, answer text) pairs, the task's pool

    @property
    def size(self) -> int:
        return len(self.texts)

    @property
    def prompt_len(self) -> int:
        return 1 + len(self.texts[0][0])

    @functools.cached_property
    def prompts(self) -> np.ndarray:
        """(N, prompt_len) int32: BOS then the prompt's characters."""
        return np.stack([np.concatenate([[tok.BOS], tok.encode(p)]) for p, _ in self.texts]).astype(np.int32)

    @functools.cached_property
    def targets(self) -> np.ndarray:
        """(N, T) int32: the answer, then EOS if it fits, then PAD."""
        out = np.full((self.size, self.completion_len), tok.PAD, dtype=np.int32)
        for i, (_, a) in enumerate(self.texts):
            ids = tok.encode(a)
            out[i, : len(ids)] = ids
            if len(ids) < self.completion_len:
                out[i, len(ids)] = tok.EOS
        return out


def _copy():
    return [(f"{d}=", f"{d}") for d in range(10)]


def _parity(bits=4):
    return [("".join(map(str, b)) + "=", str(sum(b) % 2)) for b in itertools.product((0, 1), repeat=bits)]


def _digitsum():
    return [(f"{a}+{b}=", str((a + b) % 10)) for a in range(10) for b in range(10)]


def _reverse(n=3):
    return [(f"?{s}=", s[::-1]) for s in (f"{i:0{n}d}" for i in range(10**n))]


def _long_reverse(n=15, pool=4096):
    rng = np.random.default_rng(0)
    strings = ["".join(map(str, rng.integers(0, 10, n))) for _ in range(pool)]
    return [(f"?{s}=", s[::-1]) for s in strings]


def _addition():
    return [(f"{a:02d}+{b:02d}=", str(a + b)) for a in range(100) for b in range(100)]


_SPECS = {
    "copy": (0, 1, _copy),
    "parity": (0, 1, _parity),
    "digitsum": (1, 1, _digitsum),
    "reverse": (2, 4, _reverse),
    "addition": (3, 4, _addition),
    "longreverse": (4, 16, _long_reverse),
}
NAMES = tuple(_SPECS)


@functools.lru_cache(maxsize=None)
def get(name: str) -> Task:
    """The task called `name`; an unknown name is an InputError listing the known ones."""
    if name not in _SPECS:
        raise InputError(f"unknown task {name!r}; known: {', '.join(NAMES)}")
    level, length, make = _SPECS[name]
    return Task(name, level, length, tuple(make()))


def check(task: Task, index: int, completion) -> bool:
    """The reference checker: decode the completion and compare its text with the answer."""
    return tok.decode(completion) == task.texts[int(index)][1]


def rewards(completions, targets):
    """Binary rewards inside compiled code: 1 where the completion equals the target exactly.

    completions (..., T), targets broadcastable to it → (...) float32."""
    return jnp.all(completions == targets, axis=-1).astype(jnp.float32)
