"""Pieces the claims modules share (docs/design.md §2): random softmax-bandit instances from one
seed, their description in a counterexample, the worst residual over instances, the outcome of a
Monte Carlo z-check, and the check "every sympy residual simplifies to 0"."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import numpy as np

from bandits import rewards as R
from sims.engines import montecarlo, stats
from sims.ledger import Check, Outcome, symbolic_zero

KINDS = ("bernoulli", "deterministic", "categorical")


def random_instances(quick: bool, seed: int = 0, kinds=KINDS):
    """Random softmax bandits (K 2..5, logits in [−3, 3], G 2..6) from one seed: (logits, law, G)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(6 if quick else 24):
        k = int(rng.integers(2, 6))
        logits = rng.uniform(-3, 3, size=k)
        kind = kinds[i % len(kinds)]
        if kind == "bernoulli":
            model = R.bernoulli(rng.uniform(size=k))
        elif kind == "deterministic":
            model = R.deterministic(rng.choice([0.0, 0.35, 1.0, 0.5, 2.0, -1.0], size=k))
        else:
            vals = [list(rng.uniform(-1, 2, size=2)) for _ in range(k)]
            qs = [list(q) for q in rng.dirichlet(np.ones(2), size=k)]
            model = R.categorical(vals, qs)
        out.append((logits, model, int(rng.integers(2, 5 if kind == "categorical" else 7))))
    return out


def describe(logits, model, group) -> dict:
    """A softmax-bandit instance as a counterexample (rounded to 6 digits)."""
    return {"logits": np.round(logits, 6).tolist(), "means": np.round(model.means, 6).tolist(),
            "rewards": model.kind, "G": group}


def worst_over(instances, residual):
    """(max |residual(logits, law, G)| over the instances, the instance where it is reached);
    a non-finite residual counts as infinite."""
    worst, where = 0.0, None
    for logits, model, group in instances:
        r = float(np.max(np.abs(residual(logits, model, group))))
        if not np.isfinite(r) or r > worst:
            worst, where = (r if np.isfinite(r) else math.inf), describe(logits, model, group)
    return worst, where


@dataclasses.dataclass(frozen=True, eq=False)
class PerKey:
    """Engine problem from a per-key function `fn(key) -> (d,)`: draw(key, n, args) stacks fn over
    n keys split from the chunk's key."""

    fn: Callable

    def __call__(self, key, n, args):
        return jax.vmap(self.fn)(jax.random.split(key, n))


def mc_mean(fn, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error) of `fn(key)` over `samples` keys, drawn by the Monte Carlo engine
    (its generator, merges and standard errors) from one integer seed."""
    s = montecarlo.stream(PerKey(fn), (), samples, seed)
    return s.mean, s.mean_se


def mc_outcome(c: stats.ZCheck, label: str, want_pass: bool = True) -> Outcome:
    """The outcome of a Monte Carlo z-check: holds when the check passes (or, with
    `want_pass=False`, when it rejects); the interval is measured ± 5 standard errors."""
    return Outcome(c.passed == want_pass, np.round(c.measured, 6).tolist(), np.round(c.expected, 6).tolist(),
                   f"{label}: {c.summary()}",
                   interval=[(c.measured - 5 * c.se).tolist(), (c.measured + 5 * c.se).tolist()])


def symbolic(residuals, what: str | None = None) -> Check:
    """The symbolic check: every sympy residual of `residuals()` (an expression, a sequence, or a
    dict name → residual) simplifies to 0; `what` defaults to the residuals' names."""

    def run(quick):
        r = residuals()
        return symbolic_zero(r, what if what is not None else "; ".join(r))

    return Check("symbolic", run)
