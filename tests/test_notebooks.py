"""Every notebook executes top to bottom in quick mode (nbclient, a fresh kernel)."""

import pytest

from sims.tools import notebooks


@pytest.mark.parametrize("source", notebooks.sources(), ids=lambda p: p.stem)
def test_notebook_executes(source):
    nb = notebooks.execute(source, quick=True)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def test_a_notebook_showing_a_wrong_number_fails(tmp_path):
    """The planted defect: a notebook whose stated number is wrong stops at its assertion."""
    source = tmp_path / "planted.py"
    source.write_text("# %%\nvariance = 4 / 27 + 1e-3  # the stated value is 4/27\n"
                      "assert abs(variance - 4 / 27) < 1e-12\n")
    with pytest.raises(Exception, match="AssertionError"):
        notebooks.execute(source, quick=True)
