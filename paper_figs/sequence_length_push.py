"""The length push of each loss aggregation on a task where length does not enter the reward.

Answer-filler family (docs/design.md §4.12): two answers, then filler or the end token with a stop
logit per answer (answer logits (0.3, 0), stop logits (−1, −1), T = 6), reward 1 for answer 0.
Left: the exact component of E[ĝ] along the wrong answer's stop logit at G = 4 (negative = wrong
answers get longer), per aggregation and advantage estimator. Right: the same against G for the
two modes that read the response's own length (seq-mean-token-mean and token-mean); every other
mode is exactly zero. Each value is the exact engine's (type-alphabet route, float64).
"""

from __future__ import annotations

import numpy as np

from paper_figs import style
from sims import sequences as Q
from sims.claims import sequences as C

SEED = 0
CLAIMS = ["sequences.seq_mean_token_mean_length_bias", "sequences.length_neutral_aggregations",
          "sequences.token_mean_residual_push"]
ESTIMATORS = ("grpo", "grpo_mean", "rloo")


def make(quick: bool) -> "Path":  # noqa: F821
    aggs = list(Q.AGGREGATIONS)
    groups = (2, 4, 8) if quick else (2, 4, 8, 16)  # token-mean at G = 32: 3.5e8 type multisets
    at4 = C.exact_pushes(aggs, (4,))
    by_g = C.exact_pushes(["seq-mean-token-mean", "token-mean"], groups)
    with style.figure(1, 2, figsize=(12, 4.2)) as (fig, axes):
        x = np.arange(len(aggs))
        width = 0.8 / len(ESTIMATORS)
        for k, name in enumerate(ESTIMATORS):
            axes[0].bar(x + (k - 1) * width, [at4[(name, a, 4)][1] for a in aggs], width, label=name,
                        color=style.PALETTE[k])
        axes[0].axhline(0, color="k", lw=0.8)
        axes[0].set_xticks(x, aggs, rotation=45, ha="right", fontsize=8)
        axes[0].set_ylabel("E[ĝ] along the wrong answer's stop logit")
        axes[0].set_title("length push at G = 4 (negative: wrong answers lengthen)")
        axes[0].legend(fontsize=8)
        for k, name in enumerate(ESTIMATORS):
            for agg, ls in (("seq-mean-token-mean", "-"), ("token-mean", "--")):
                axes[1].plot(groups, [-by_g[(name, agg, g)][1] for g in groups], ls, marker="o", ms=3,
                             color=style.PALETTE[k], label=f"{name}, {agg}")
        axes[1].set_xscale("log", base=2)
        axes[1].set_yscale("log")
        axes[1].set_xlabel("group size G")
        axes[1].set_ylabel("− push on the wrong answer's stop logit")
        axes[1].set_title("the modes that read the own length, against G")
        axes[1].legend(fontsize=7)
        data = {
            "family": {"answers": 2, "max_len": C.FAMILY.max_len, "params": C.PARAMS.tolist(), "correct": 0},
            "at_G4": {f"{n}|{a}": np.round(at4[(n, a, 4)], 14).tolist() for n in ESTIMATORS for a in aggs},
            "by_G": {f"{n}|{a}": [np.round(by_g[(n, a, g)], 14).tolist() for g in groups]
                     for n in ESTIMATORS for a in ("seq-mean-token-mean", "token-mean")},
            "groups": list(groups), "claims": CLAIMS,
        }
        return style.save(fig, "sequence_length_push", data)
