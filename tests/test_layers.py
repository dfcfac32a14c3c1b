"""The direction of dependencies (docs/design.md §1): no package imports from a layer above it.

The map below is the one drawn in §1: `theory` and `bandits` import nothing of the lab, `sims`
imports `theory` and `bandits`, figures and notebooks import the packages. Every import statement
counts, at module level or inside a function. An edge that runs upward is an error unless it is
listed in KNOWN_UPWARD with its reason; a listed edge that has gone must leave the list too, so the
list only shrinks. `make lint` runs this file.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ALLOWED = {  # layer -> the layers it may import
    "theory": set(),
    "bandits": set(),
    "sims": {"theory", "bandits"},
    "paper_figs": {"theory", "bandits", "sims"},
    "notebooks": {"theory", "bandits", "sims", "paper_figs"},
}

KNOWN_UPWARD = {  # (file, layer it imports) -> why it is there for now
    ("sims/cli.py", "paper_figs"): "`pglab figures` runs the figure pipeline from the command line",
}


def upward_edges(root: Path) -> set[tuple[str, str]]:
    """(file relative to `root`, imported layer) for every import of a layer that the file's own
    layer may not import (absolute imports only; a relative import stays inside its package)."""
    edges = set()
    for layer, allowed in ALLOWED.items():
        for path in sorted((root / layer).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in ALLOWED and top != layer and top not in allowed:
                        edges.add((path.relative_to(root).as_posix(), top))
    return edges


def test_no_module_imports_from_a_layer_above_it():
    found = upward_edges(ROOT)
    new = sorted(found - set(KNOWN_UPWARD))
    assert not new, "imports against docs/design.md §1: " + "; ".join(f"{f} imports {t}" for f, t in new)
    gone = sorted(set(KNOWN_UPWARD) - found)
    assert not gone, "listed upward imports that no longer exist (remove them from KNOWN_UPWARD): " + \
        "; ".join(f"{f} → {t}" for f, t in gone)


@pytest.mark.parametrize("layer, source, flagged", [
    ("bandits", "from sims import estimators\n", True),
    ("bandits", "def f():\n    import theory.npg\n", True),  # inside a function counts
    ("theory", "import bandits.softmax\n", True),
    ("sims", "from paper_figs import style\n", True),
    ("sims", "from bandits import softmax\nfrom theory import npg\n", False),
    ("bandits", "from . import rewards\nimport numpy\n", False),
])
def test_the_check_flags_a_planted_upward_import(tmp_path, layer, source, flagged):
    (tmp_path / layer).mkdir()
    (tmp_path / layer / "planted.py").write_text(source)
    assert bool(upward_edges(tmp_path)) == flagged
