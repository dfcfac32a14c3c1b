"""docs/figures.md: every figure, the claims it illustrates and the command that regenerates it.

`python -m paper_figs.gallery` rewrites it from the figure modules; a test keeps it current."""

from __future__ import annotations

import importlib
from pathlib import Path

from paper_figs import pipeline, style

DOC = pipeline.ROOT / "docs" / "figures.md"


def render() -> str:
    lines = [
        "# Figure gallery",
        "",
        "Every figure is written by `make figures` (all of them, skipping those already up to date) "
        "to `paper_figs/figures/` as PNG, PDF and the JSON data behind it; the claims ledger it "
        "illustrates is in `paper_figs/ledger.md`. Regenerate one figure with "
        "`.venv/bin/pglab figures --only NAME --force`.",
        "",
    ]
    for name in pipeline.figure_modules():
        module = importlib.import_module(f"paper_figs.{name}")
        doc = (module.__doc__ or name).strip().splitlines()
        title, body = doc[0], " ".join(x.strip() for x in doc[1:] if x.strip())
        lines += [f"## {name}", "", f"**{title}**", ""]
        if body:
            lines += [body, ""]
        lines += [
            f"![{name}](../paper_figs/figures/{name}.png)",
            "",
            f"- claims: {', '.join(f'`{c}`' for c in getattr(module, 'CLAIMS', [])) or '—'}",
            f"- data: `paper_figs/figures/{name}.json`, seed {getattr(module, 'SEED', 0)}",
            f"- regenerate: `.venv/bin/pglab figures --only {name} --force`",
            "",
        ]
    return "\n".join(lines)


def write() -> Path:
    style.atomic_write_bytes(DOC, render().encode())
    return DOC


if __name__ == "__main__":
    print(write())
