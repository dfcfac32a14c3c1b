"""The complexity sweep's verdicts (planted CIs above the rate are caught) and the figure redrawn
from its JSON without re-running (docs/design.md §4.7)."""

import copy
import json

import numpy as np

from paper_figs import npg_complexity as F
from sims.claims import npg as C
from sims.npg import complexity as S
from sims.npg import methods as npg
from sims.npg import problems as P


def _data(exponent, ci, method="pg"):
    comp = {"exponent": exponent, "exponent_ci": ci, "reached": [1.0], "reason": None, "warning": None}
    return {"problems": {"p": {"eps": [0.1], "budget": 10, "methods": {
        method: {"complexity": comp, "gamma0": 0.1, "paper_exponent": npg.METHODS[method].paper_exponent}}}}}


def test_verdicts_and_planted_exponents_above_the_rate():
    assert S.verdict(2.0, [1.5, 2.5], 3.0) == "below"
    assert S.verdict(2.0, [1.5, 3.0], 3.0) == "below"  # the CI's upper end at the rate
    assert S.verdict(3.4, [2.9, 3.9], 3.0) == "unresolved"  # the CI straddles the rate
    assert S.verdict(3.4, [3.1, 3.9], 3.0) == "above"
    assert S.verdict(None, None, 3.0) == "undefined"
    assert C.check_exponent("pg", True, _data(1.0, [0.5, 1.5])).holds
    assert not C.check_exponent("pg", True, _data(3.5, [3.2, 3.8])).holds  # planted: above ε^-3
    assert not C.check_exponent("pg", True, _data(1.0, [0.99, 5.02])).holds  # too wide to resolve
    assert not C.check_exponent("n-harpg", True, _data(2.2, [2.05, 2.4], "n-harpg")).holds
    assert not C.check_exponent("pg", True, _data(None, None)).holds  # nothing measured
    both = _data(1.0, [0.5, 1.5])
    both["problems"]["q"] = copy.deepcopy(_data(3.5, [3.2, 3.8])["problems"]["p"])
    assert not C.check_exponent("pg", True, both).holds
    both["claimed"] = ["p"]  # an unclaimed problem is reported, not ruled on
    out = C.check_exponent("pg", True, both)
    assert out.holds and out.measured["q"]["verdict"] == "above" and not out.measured["q"]["claimed"]
    both["claimed"] = ["p", "r"]  # a claimed problem missing from the data fails
    assert not C.check_exponent("pg", True, both).holds


def test_config_is_the_same_budget_for_every_method():
    for quick, cfg in S.CONFIG.items():
        assert set(cfg["methods"]) == set(S.PAPER_METHODS)
        assert "mdp-logistic" in cfg["claimed"] and set(cfg["claimed"]) <= set(cfg["problems"])
        for spec in cfg["problems"].values():
            assert len(spec["grid"]) == len(spec["grid_normalised"])
            assert list(spec["eps"]) == sorted(spec["eps"], reverse=True)
        runs = len(cfg["problems"]) * len(cfg["methods"]) * (len(spec["grid"]) * cfg["tune_seeds"] + cfg["seeds"])
        assert runs * cfg["budget"] <= (4_000_000 if not quick else 300_000)  # trajectories in all


def test_figure_redraws_from_json(tmp_path):
    prob = P.get("quadratic")
    sweep = npg.sweep(prob, ["pg", "n-harpg"], budget=200, seeds=3, eps=[0.3, 0.1, 0.03, 0.01],
                      gamma_grid=[0.05, 0.5], tune_seeds=2)
    for m in sweep["methods"].values():
        m.pop("seconds")
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"problems": {"quadratic": sweep}}, allow_nan=False))
    png = F.redraw(path, tmp_path / "out")
    assert png.is_file() and png.stat().st_size > 1000
    again = json.loads((tmp_path / "out" / "npg_complexity.json").read_text())
    assert again["problems"]["quadratic"]["methods"]["pg"]["gamma0"] == sweep["methods"]["pg"]["gamma0"]
    assert np.isfinite(again["problems"]["quadratic"]["methods"]["n-harpg"]["complexity"]["median"][0])


def test_numpy_igt_reference_of_the_bench_optimises_lqr1():
    """The bench's NumPy N-PG-IGT is a working optimiser (its speed is compared with `sims.npg`)."""
    from sims.tools import bench

    prob = P.get("lqr1")
    k = bench.numpy_igt(150, seeds=16, gamma0=0.1)
    gaps = np.array([float(prob.suboptimality(np.array([x]))) for x in k])
    assert np.median(gaps) < 0.1 * float(prob.suboptimality(prob.theta0))
    jax_run = npg.run("n-pg-igt", prob, np.arange(16), 150, 0.1, record_every=150)
    assert abs(np.median(k) - np.median(jax_run.theta[:, 0])) < 0.15  # same algorithm, other noise
