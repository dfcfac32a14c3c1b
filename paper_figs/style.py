"""The one matplotlib style of every figure, and atomic writers for figures and their data."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

from sims.runtime.files import atomic_write_bytes, write_json  # noqa: F401  (figures write through these)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PACKAGE_DIR = Path(__file__).resolve().parent


def output_dir() -> Path:
    """Where figures go: $PGLAB_FIGURES_DIR if set, else paper_figs/figures."""
    return Path(os.environ.get("PGLAB_FIGURES_DIR") or PACKAGE_DIR / "figures")
PALETTE = ["#1f5aa6", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6cab", "#30343f", "#e07a5f"]

RC = {
    "figure.figsize": (6.0, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "font.size": 10,
    "legend.frameon": False,
    "pdf.fonttype": 42,
    "svg.hashsalt": "pglab",
    "path.simplify": False,
}


@contextlib.contextmanager
def figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """A figure in the lab style; closed on exit."""
    with plt.rc_context(RC):
        fig, ax = plt.subplots(nrows, ncols, **kwargs)
        try:
            yield fig, ax
        finally:
            plt.close(fig)


def save(fig, name: str, data: dict, out_dir: Path | None = None) -> Path:
    """Write `name`.png, `name`.pdf and the data behind them, `name`.json, atomically.

    Returns the PNG path. PDF metadata carries no date, so equal inputs give equal files."""
    out = Path(out_dir or output_dir())
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", data)
    for ext, meta in (("pdf", {"CreationDate": None, "ModDate": None, "Producer": "pglab"}),
                      ("png", {"Software": "pglab"})):
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=f".{ext}")
        os.close(fd)
        try:
            fig.savefig(tmp, format=ext, metadata=meta, bbox_inches="tight")
            os.chmod(tmp, 0o644)
            os.replace(tmp, out / f"{name}.{ext}")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return out / f"{name}.png"


def rounded(x, digits: int = 10):
    """JSON-ready values rounded to `digits` significant digits, so that figure data is
    byte-stable across runs: floats → float (None if not finite), arrays and lists → lists,
    dicts → dicts; strings, booleans, integers and None pass through."""
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if x is None or isinstance(x, (str, bool, int, np.integer, np.bool_)):
        return x.item() if isinstance(x, (np.integer, np.bool_)) else x
    arr = np.asarray(x, dtype=np.float64) if not isinstance(x, (list, tuple)) else None
    if arr is None or arr.ndim:
        return [rounded(v, digits) for v in (x if arr is None else arr)]
    v = float(arr)
    return float(f"{v:.{digits}g}") if np.isfinite(v) else None
