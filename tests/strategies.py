"""Hypothesis strategies for random softmax bandits (docs/design.md §3 conventions)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from bandits import rewards as R
from sims.estimators import REGISTRY

# every registry estimator with one advantage per member (the per-coordinate one is tested apart)
ESTIMATORS = [name for name, e in REGISTRY.items() if not e.per_coordinate]
MAX_MULTISETS = 20_000

logit = st.floats(-3.0, 3.0, allow_nan=False, width=64)
prob = st.floats(0.0, 1.0, allow_nan=False, width=64)
reward_value = st.sampled_from([0.0, 0.35, 0.5, 1.0, -0.25, 2.0]) | st.floats(-2, 2, width=64)


@st.composite
def reward_models(draw, k: int, kinds=("bernoulli", "deterministic", "categorical")):
    kind = draw(st.sampled_from(kinds))
    if kind == "bernoulli":
        return R.bernoulli(draw(st.lists(prob, min_size=k, max_size=k)))
    if kind == "deterministic":
        return R.deterministic(draw(st.lists(reward_value, min_size=k, max_size=k)))
    vals, qs = [], []
    for _ in range(k):
        n = draw(st.integers(1, 3))
        vals.append(draw(st.lists(reward_value, min_size=n, max_size=n)))
        w = np.asarray(draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n)))
        qs.append(list(w / w.sum()))
    return R.categorical(vals, qs)


@st.composite
def bandits(draw, k_range=(2, 6), g_range=(2, 8), kinds=("bernoulli", "deterministic", "categorical")):
    """(logits, reward model, G) with at most MAX_MULTISETS multisets for the exact engine."""
    k = draw(st.integers(*k_range))
    logits = np.asarray(draw(st.lists(logit, min_size=k, max_size=k)))
    model = draw(reward_models(k, kinds))
    m = len(model.outcomes()[0])
    g_max = g_range[0]
    while g_max < g_range[1] and math.comb(m + g_max, g_max + 1) <= MAX_MULTISETS:
        g_max += 1
    return logits, model, draw(st.integers(g_range[0], g_max))
