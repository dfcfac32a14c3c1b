"""The sample-complexity sweep of docs/design.md §4.7: trajectories to ε and fitted exponents of
vanilla PG, N-PG-IGT, HARPG and N-HARPG on the Fisher-non-degenerate problems of
`sims.npg.problems` (the Gaussian bandit and LQR), against the rates of Fatkhullin, Barakat,
Kireeva & He (ICML 2023): O(ε⁻³) (vanilla PG), Õ(ε⁻²·⁵) (N-PG-IGT), Õ(ε⁻²) ((N)-HARPG).

Protocol (`CONFIG`, one entry per mode): for every problem and method, γ_0 is tuned on a grid of
the same size for every method (one grid for the unnormalised steps γ_t ∝ γ_0 and one for the
normalised ones, whose γ_0 is a distance in θ), `tune_seeds` seeds per value, the same
trajectory budget, scored by the median trajectories to the smallest ε (`sims.npg.methods.tune_gamma0`);
then `seeds` evaluation seeds (disjoint from the tuning seeds) run with the chosen γ_0 and
`sims.npg.complexity` gives the median trajectories to each ε with bootstrap CIs and the fitted
log-log slope p (n ∝ ε^{−p}; n counts until J* − J stays ≤ ε to the end of the run) with a
bootstrap CI. The papers' rates are upper bounds: a slope whose whole CI lies at or below the rate
is "below" (what the exponent claims require on every claimed problem), one whose CI straddles it
"unresolved", one whose whole CI lies above it "above" (a finding, valid for the ε range, budget
and tuning recorded in the data). Claimed problems (`CONFIG[...]["claimed"]`): the paper's
setting `mdp-logistic` (bounded score and reward, γ < 1, H from the accuracy) and the Gaussian
bandit; the LQR problems of the full sweep (γ = 1, H = 50) are drawn but not claimed.

`sweep(quick)` returns strict-JSON data (cached per process, so the ledger and the figure share
one run); `paper_figs/npg_complexity.py` draws it and writes it beside the figure.
"""

from __future__ import annotations

import functools

import numpy as np

from sims.npg import methods as npg
from sims.npg import problems as P

NORMALISED = {"n-pg-m", "n-pg-igt", "n-harpg"}
PAPER_METHODS = ("pg", "n-pg-igt", "harpg", "n-harpg")
# Trajectories to ε count until J* − J stays ≤ ε for the rest of the run: noisy iterates cross the
# optimum on their way (a 1-D μ passes through μ*), so the first crossing says little.
RULE = "stay"

CONFIG = {
    # grids: 7 values each (same tuning budget for every method)
    False: {
        "methods": PAPER_METHODS,
        "problems": {
            "gaussian": {"eps": np.geomspace(0.1, 0.01, 7), "grid": np.geomspace(1e-3, 1.0, 7),
                         "grid_normalised": np.geomspace(0.03, 3.0, 7)},
            "lqr1": {"eps": np.geomspace(2.0, 0.2, 7), "grid": np.geomspace(3e-6, 3e-3, 7),
                     "grid_normalised": np.geomspace(0.01, 1.0, 7)},
            "lqr2": {"eps": np.geomspace(1.5, 0.3, 7), "grid": np.geomspace(3e-6, 3e-3, 7),
                     "grid_normalised": np.geomspace(0.01, 1.0, 7)},
            "mdp-logistic": {"eps": np.geomspace(0.03, 0.001, 7), "grid": np.geomspace(0.03, 3.0, 7),
                             "grid_normalised": np.geomspace(0.03, 3.0, 7)},
        },
        "claimed": ("gaussian", "mdp-logistic"),
        "budget": 4000, "tune_seeds": 4, "seeds": 28, "record_every": 4, "seed": 0,
    },
    True: {
        "methods": PAPER_METHODS,
        "problems": {
            "gaussian": {"eps": np.geomspace(0.3, 0.03, 5), "grid": np.geomspace(1e-2, 1.0, 4),
                         "grid_normalised": np.geomspace(0.1, 3.0, 4)},
            "mdp-logistic": {"eps": np.geomspace(0.03, 0.003, 5), "grid": np.geomspace(0.03, 3.0, 4),
                             "grid_normalised": np.geomspace(0.1, 3.0, 4)},
        },
        "claimed": ("gaussian", "mdp-logistic"),
        "budget": 1000, "tune_seeds": 4, "seeds": 16, "record_every": 5, "seed": 0,
    },
}


def grid_for(method: str, spec: dict) -> np.ndarray:
    return spec["grid_normalised"] if method in NORMALISED else spec["grid"]


@functools.lru_cache(maxsize=None)
def sweep(quick: bool) -> dict:
    """The whole sweep of CONFIG[quick]: {"quick", "methods", "problems": {name: npg.sweep
    data}}. Deterministic given the config (wall times are left out: `make bench` times the
    sweep). Cached per process."""
    cfg = CONFIG[bool(quick)]
    out = {"quick": bool(quick), "methods": list(cfg["methods"]), "claimed": list(cfg["claimed"]),
           "problems": {}}
    for name, spec in cfg["problems"].items():
        problem = P.get(name)
        merged = None
        for method in cfg["methods"]:
            data = npg.sweep(problem, [method], cfg["budget"], cfg["seeds"], spec["eps"],
                             grid_for(method, spec), cfg["tune_seeds"], seed=cfg["seed"],
                             record_every=cfg["record_every"], rule=RULE)
            data["methods"][method]["gamma_grid"] = data.pop("gamma_grid")
            data["methods"][method].pop("seconds")
            if merged is None:
                merged = data
            else:
                merged["methods"].update(data["methods"])
        out["problems"][name] = merged
    return npg.strict_json(out)


def exponents(data: dict) -> dict:
    """{problem: {method: (exponent, [lo, hi], paper exponent)}} from sweep data."""
    return {p: {m: (d["complexity"]["exponent"], d["complexity"]["exponent_ci"], d["paper_exponent"])
                for m, d in pd["methods"].items()} for p, pd in data["problems"].items()}


def verdict(exponent, ci, paper) -> str:
    """"below" (the whole CI is at or below the paper's rate: the measurement resolves that the
    rate is not exceeded), "unresolved" (the CI straddles the rate), "above" (the whole CI is
    above it: a finding) or "undefined" (no fitted exponent)."""
    if exponent is None or ci is None:
        return "undefined"
    if ci[1] <= paper:
        return "below"
    return "unresolved" if ci[0] <= paper else "above"


# The setting of each problem, as the exponent claims state it.
SETTINGS = {
    "gaussian": "1-D Gaussian bandit (θ = μ, σ = 1; unbounded score, unbounded reward −(a − 1)², "
                "H = 1): J strongly concave, a normalised step is a sign step; outside the paper's "
                "assumptions",
    "lqr1": "scalar LQR, γ = 1, H = 50 fixed, Gaussian policy σ = 0.5 (unbounded score and reward); "
            "strongly concave near K*; outside the paper's assumptions (figure only)",
    "lqr2": "2-D LQR, γ = 1, H = 50 fixed, Gaussian policy σ = 0.5 (unbounded score and reward); "
            "outside the paper's assumptions (figure only)",
    "mdp-logistic": "the paper's setting: two-state MDP, θ ∈ ℝ², logistic policy (score bounded by "
                    "1/b, Fisher information 1/(3b²)), rewards in [0, 1], γ = 0.5, H = 15 chosen "
                    "from the accuracy (γ^H/(1 − γ) ≤ ε/10 for ε = 1e-3); J smooth with an interior "
                    "maximum (locally strongly concave, so the measured exponent may sit well below "
                    "the paper's worst-case rate)",
}
