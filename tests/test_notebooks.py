"""Every notebook executes top to bottom in quick mode (nbclient, a fresh kernel)."""

import pytest

from sims import notebooks


@pytest.mark.parametrize("source", notebooks.sources(), ids=lambda p: p.stem)
def test_notebook_executes(source):
    nb = notebooks.execute(source, quick=True)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
