"""Option parsers shared by the commands: lists of numbers, bounded counts, seed ranges, output
paths. Each refuses bad input with one `InputError` line naming the option and the limit."""

from __future__ import annotations

from typing import Optional

from bandits.errors import MAX_SEED, InputError, check_seed
from bandits.rewards import list_fields

MAX_ARMS = 4096  # the covariance is K × K
MAX_MC_SAMPLES = 10**9
MAX_MC_CHUNK_ENTRIES = 1 << 27  # Monte Carlo works on chunk × G × K arrays


def number_list(text, what: str, max_len: int | None = None) -> list[float]:
    """A comma-separated list of finite numbers (no empty fields; at most `max_len` of them)."""
    import math

    fields = list_fields(text, what)
    if max_len is not None and len(fields) > max_len:
        raise InputError(f"{what}: {len(fields):,} values, over the limit of {max_len:,}")
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise InputError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} must be finite numbers, got {text!r}")
    return values


def check_count(value, what: str, low: int, high: int) -> int:
    """An integer option in [low, high], refused up front with the limit named."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be an integer, got {value!r}")
    if value < low:
        raise InputError(f"{what} must be at least {low:,}, got {value:,}")
    if value > high:
        raise InputError(f"{what} must be at most {high:,}, got {value:,}")
    return value


def check_seed_range(seed, count: int = 1, what: str = "--seed") -> int:
    """A first seed S of `count` consecutive seeds S, ..., S + count − 1, each a seed
    `bandits.errors.check_seed` accepts ([0, 2^63 − 1])."""
    seed = check_seed(seed, what)
    if seed + count - 1 > MAX_SEED:
        raise InputError(f"{what} {seed} with {count:,} seed(s) runs past 2^63 - 1, the largest seed")
    return seed


MAX_NAME = 255  # bytes in one path component (NAME_MAX on Linux)


def _path_text(path, what: str) -> str:
    import os

    text = str(path)
    if not text.strip():
        raise InputError(f"{what}: empty path")
    if "\0" in text:
        raise InputError(f"{what}: the path holds a NUL character")
    for part in text.split(os.sep):
        if len(os.fsencode(part)) > MAX_NAME:
            raise InputError(f"{what}: a name in the path is {len(os.fsencode(part))} bytes, over the "
                             f"limit of {MAX_NAME}")
    return text


def output_file(path, what: str):
    """A file the command will write: its folder must exist and be writable, and the path must
    not be a folder. None stays None."""
    import os
    from pathlib import Path

    if path is None:
        return None
    p = Path(_path_text(path, what))
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder; give a file name")
    if p.exists() and not p.is_file():
        raise InputError(f"{what} {str(path)!r} exists and is not a regular file")
    if not parent.is_dir():
        raise InputError(f"{what} {str(path)!r}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"{what} {str(path)!r}: not writable")
    return p


def output_folder(out: Optional[str], what: str = "--out"):
    """--out as a folder (created if missing); a path that exists and is not a folder, or that
    cannot be created, is an InputError. None stays None."""
    import os
    from pathlib import Path

    if out is None:
        return None
    path = Path(_path_text(out, what))
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {out!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{what} {out!r}: cannot create the folder ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{what} {out!r}: the folder is not writable")
    return path


def parse_params(items) -> dict:
    """--param NAME=VALUE items as {name: float}; a missing or non-numeric value is an InputError."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value) if sep else None
        except ValueError:
            out[name.strip()] = None
        if out[name.strip()] is None:
            raise InputError(f"--param takes NAME=VALUE with a number, got {item!r}")
    return out
