"""docs/figures.md: every figure, the claims it illustrates and the command that regenerates it.

`make docs` (`sims.tools.docs`) rewrites it from the figure modules; a test keeps it current."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from sims.runtime.files import atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "figures.md"
NOT_FIGURES = {"style", "pipeline", "gallery"}


def figure_modules() -> list[str]:
    import paper_figs

    return sorted(i.name for i in pkgutil.iter_modules(paper_figs.__path__)
                  if i.name not in NOT_FIGURES and not i.name.startswith("_"))


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
    for name in figure_modules():
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
    atomic_write_bytes(DOC, render().encode())
    return DOC


if __name__ == "__main__":
    print(write())
