"""Planted one-line defects of N-PG-IGT and (N)-HARPG (docs/design.md §4.7): each makes a
quick-mode `npg.*` claim of the ledger fail, and the unplanted algorithms pass the same claims.

A defect is planted by replacing the registered method's step function for the duration of one
test (`monkeypatch` on `sims.npg.methods.METHODS`); the compiled runs are keyed by the step function, so
the defective step is compiled afresh. The catching claim is `npg.trajectory_identities`, which
recomputes every step of a stochastic run from the recorded iterates and that step's oracle
samples; the look-ahead and correction defects also break `npg.igt_transport` /
`npg.harpg_correction` (d_t = ∇J(θ_t) on quadratics), which cannot see where q is drawn (the
Hessian of a quadratic is constant); every (N)-HARPG defect also breaks
`npg.hessian_interpolation`, whose step check averages one step with exact oracles on the
(non-quadratic) softmax J over the step's own draw of q, independently of how keys are split.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import pytest

from sims import ledger
from sims.claims import npg as C  # noqa: F401  (registers the npg claims)
from sims.npg import methods as npg


def _igt_wrong_iterate(problem, gamma0, state):
    """The look-ahead taken from θ_{t−1}: θ̃ = θ_{t−1} + ((1−η)/η)(θ_t − θ_{t−1})."""
    key, kg, _, _ = jax.random.split(state.key, 4)
    gamma, eta = npg.SCHEDULES["n-pg-igt"](state.t, gamma0)
    point = state.theta_prev + (1 - eta) / eta * (state.theta - state.theta_prev)
    d = (1 - eta) * state.d + eta * problem.grad_sample(kg, point)
    return npg.State(state.theta + gamma * npg.normalise(d), state.theta, d, state.t + 1, key)


def _direction(sign=1.0, q=None):
    """HARPG's direction with the correction scaled by `sign` (0: removed, −1: flipped) and the
    interpolation point at a fixed q (None: the uniform draw)."""

    def direction(problem, state, eta, kg, kh, kq):
        qq = jax.random.uniform(kq, dtype=jnp.float64) if q is None else jnp.float64(q)
        delta = state.theta - state.theta_prev
        v = problem.hvp_sample(kh, state.theta_prev + qq * delta, delta)
        return (1.0 - eta) * (state.d + sign * v) + eta * problem.grad_sample(kg, state.theta)

    return direction


def _harpg(normalised, **kw):
    return functools.partial(npg.harpg_step, normalised=normalised, direction=_direction(**kw))


def _igt(lookahead):
    return functools.partial(npg.momentum_step, sched=npg.SCHEDULES["n-pg-igt"],
                             lookahead=lookahead)


# defect: (method replaced, defective step, the claims that must fail)
DEFECTS = {
    "igt look-ahead removed": ("n-pg-igt", _igt(None),
                               ("npg.trajectory_identities", "npg.igt_transport")),
    "igt look-ahead sign-flipped": ("n-pg-igt", _igt(lambda e: -(1 - e) / e),
                                    ("npg.trajectory_identities", "npg.igt_transport")),
    "igt look-ahead on the wrong iterate": ("n-pg-igt", _igt_wrong_iterate,
                                            ("npg.trajectory_identities", "npg.igt_transport")),
    "n-harpg correction removed": ("n-harpg", _harpg(True, sign=0.0),
                                   ("npg.trajectory_identities", "npg.harpg_correction",
                                    "npg.hessian_interpolation")),
    "n-harpg correction sign-flipped": ("n-harpg", _harpg(True, sign=-1.0),
                                        ("npg.trajectory_identities", "npg.harpg_correction",
                                    "npg.hessian_interpolation")),
    "n-harpg q fixed at 0": ("n-harpg", _harpg(True, q=0.0), ("npg.trajectory_identities", "npg.hessian_interpolation")),
    "n-harpg q fixed at 1": ("n-harpg", _harpg(True, q=1.0), ("npg.trajectory_identities", "npg.hessian_interpolation")),
    "harpg q fixed at 0": ("harpg", _harpg(False, q=0.0), ("npg.trajectory_identities", "npg.hessian_interpolation")),
    "harpg correction removed": ("harpg", _harpg(False, sign=0.0),
                                 ("npg.trajectory_identities", "npg.harpg_correction",
                                    "npg.hessian_interpolation")),
}
CLAIMS = ("npg.trajectory_identities", "npg.igt_transport", "npg.harpg_correction",
          "npg.hessian_interpolation")


def _run(ids):
    return {i: ledger.run_claim(ledger.REGISTRY[i], quick=True) for i in ids}


def test_unplanted_algorithms_pass():
    for i, rec in _run(CLAIMS).items():
        assert rec["passed"], (i, rec["checks"])


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_planted_defect_fails_the_ledger(defect, monkeypatch):
    method, step, catchers = DEFECTS[defect]
    monkeypatch.setitem(npg.METHODS, method, dataclasses.replace(npg.METHODS[method], step=step))
    for i, rec in _run(catchers).items():
        assert not rec["passed"], (defect, i, rec["checks"])
        assert any(c["status"] == "refuted" for c in rec["checks"]), (defect, i, rec["checks"])
