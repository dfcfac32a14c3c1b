"""docs/design.md is the document the code cites: every section a module cites exists there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("theory", "bandits", "sims", "paper_figs", "notebooks", "tests")
# "docs/design.md §4.2", and the older short form of the same citation (case-insensitive)
CITATION = re.compile(r"(?:docs/)?design(?:\.md)? ?§ ?(\d+(?:\.\d+)?)", re.IGNORECASE)


def _sections() -> set[str]:
    text = (ROOT / "docs" / "design.md").read_text()
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, flags=re.M))


def _citations(text: str) -> set[str]:
    return set(CITATION.findall(text))


def test_design_has_the_numbered_sections():
    want = {"1", "2", "3", "4", *(f"4.{i}" for i in range(1, 12))}
    assert want <= _sections()


def test_every_cited_section_exists():
    sections = _sections()
    missing = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            gone = _citations(path.read_text()) - sections
            if gone:
                missing[str(path.relative_to(ROOT))] = sorted(gone)
    assert not missing, missing


def test_citation_check_catches_a_missing_section():
    planted = "see docs/design.md §" + "4.99 and §" + "3"  # split: not a citation in this file
    assert _citations(planted) - _sections() == {"4.99"}
