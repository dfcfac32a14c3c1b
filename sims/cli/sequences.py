"""`pglab moments-seq`: exact and Monte Carlo moments of a group estimate on the sequence testbed
(docs/design.md §4.12), for any registry estimator and any loss aggregation."""

from __future__ import annotations

import json
import os
from typing import Optional

import jax.numpy as jnp
import numpy as np
import typer

from bandits import sequence as S
from bandits.errors import InputError, check_seed
from sims import estimators
from sims import sequences as Q
from sims.cli.options import MAX_MC_SAMPLES, check_count, parse_params

MAX_FILE_BYTES = 16 << 20
MAX_GRADIENT = 2048  # P·V: the covariance is (P·V)² floats in the JSON
FAMILIES = {"answer-filler": ("answers", "filler", "correct")}


def _floats(x) -> list:
    return [float(v) for v in np.asarray(x).reshape(-1)]


def load_policy(text: str):
    """(space, θ, rewards, family or None) from a policy file path or a built-in family
    `answer-filler[:answers=A,filler=F,correct=C]` (θ = 0, reward 1 for answer C)."""
    name, _, args = text.partition(":")
    if name in FAMILIES:
        kw = {"answers": 2, "filler": 5, "correct": 0}
        for item in [a for a in args.split(",") if a] if args else []:
            key, sep, value = item.partition("=")
            if key not in FAMILIES[name] or not sep:
                raise InputError(f"--policy {name}: takes {', '.join(k + '=N' for k in FAMILIES[name])}, got {item!r}")
            try:
                kw[key] = int(value)
            except ValueError:
                raise InputError(f"--policy {name}: {key} must be an integer, got {value!r}") from None
        if not 0 <= kw["correct"] < kw["answers"]:
            raise InputError(f"--policy {name}: correct must be an answer in [0, {kw['answers'] - 1}]")
        fam = S.AnswerFiller(kw["answers"], kw["filler"] + 1)
        theta = np.asarray(fam.logits(jnp.zeros(2 * kw["answers"])))
        return fam.space, theta, S.answer_correct(fam.space, kw["correct"]), fam
    try:
        size = os.path.getsize(text)
    except OSError as err:
        raise InputError(f"--policy {text!r}: cannot read the file ({err.strerror or err}); or give a family: "
                         f"{', '.join(FAMILIES)}") from None
    if size > MAX_FILE_BYTES:
        raise InputError(f"--policy {text!r}: {size:,} bytes, over the limit of {MAX_FILE_BYTES:,}")
    try:
        with open(text, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"--policy {text!r}: cannot read the file ({err})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"--policy {text!r}: not JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise InputError(f"--policy {text!r}: nested too deeply") from None
    sp, theta, rewards = S.from_dict(data)
    return sp, theta, rewards, None


def report(policy: str, name: str, agg: str, group: int, feature: str | None, params: dict,
           mc_samples: int | None = None, seed: int = 0) -> dict:
    """The JSON object of `pglab moments-seq`."""
    est = estimators.get(name)
    mode = Q.aggregation(agg)
    check_count(group, "--group", est.min_group, 1024)
    sp, theta, rewards, fam = load_policy(policy)
    if sp.num_prefixes * sp.vocab > MAX_GRADIENT:
        raise InputError(f"the policy has {sp.num_prefixes * sp.vocab:,} logits, over the limit of {MAX_GRADIENT:,} "
                         "(the covariance is their square)")
    if feature is not None and feature not in Q.FEATURES:
        raise InputError(f"unknown --feature {feature!r}; known: {', '.join(Q.FEATURES)}")
    m = Q.moments(est, sp, theta, rewards, group, agg=mode.name, feature=feature, **params)
    out = {
        "estimator": est.name, "aggregation": mode.name, "peers": list(mode.peers), "feature": m.feature,
        "group": group, "params": m.params, "vocab": sp.vocab, "max_len": sp.max_len, "eos": sp.eos,
        "responses": [list(sp.response(i)) for i in range(sp.num_responses)],
        "pi": _floats(S.policy(sp, jnp.asarray(theta))), "objective": m.objective,
        "true_gradient": _floats(m.true_gradient),
        "exact": {"mean": _floats(m.mean), "bias": _floats(m.bias), "cov": np.asarray(m.cov).tolist(),
                  "trace_var": m.trace_var, "cosine": m.cosine, "types": m.types, "multisets": m.multisets},
    }
    if m.cosine is None:
        out["exact"]["cosine_reason"] = "undefined: E[ĝ] or ∇J is zero"
    if fam is not None:
        push = fam.parameter_gradient(np.zeros(2 * fam.answers), m.mean)[fam.answers:]
        out["exact"]["length_gradient"] = _floats(push)
    if mc_samples is not None:
        if not isinstance(mc_samples, int) or not 2 <= mc_samples <= MAX_MC_SAMPLES:
            raise InputError(f"--mc needs at least 2 samples and at most {MAX_MC_SAMPLES:,}, got {mc_samples!r}")
        check_seed(seed)
        s = Q.monte_carlo(est, sp, theta, rewards, group, mc_samples, seed=seed, agg=mode.name, feature=feature,
                          **params)
        out["mc"] = s.to_json()
    return out


def moments_seq(
    policy: str = typer.Option(..., help="policy file (JSON: vocab, max_len, eos, logits by prefix, reward) or a "
                                         "family: answer-filler[:answers=A,filler=F,correct=C]"),
    estimator: str = typer.Option(..., help="registry name: " + ", ".join(estimators.REGISTRY)),
    agg: str = typer.Option("token-mean", help="loss aggregation: " + ", ".join(Q.AGGREGATIONS)),
    group: int = typer.Option(..., help="group size G"),
    feature: Optional[str] = typer.Option(None, help="per-response feature the estimator reads as weights: "
                                                     + ", ".join(Q.FEATURES) + " (default: its paper's)"),
    param: list[str] = typer.Option([], "--param", help="NAME=VALUE for a parameter of the estimator; repeatable"),
    mc: Optional[int] = typer.Option(None, help="also run Monte Carlo with this many groups"),
    seed: Optional[int] = typer.Option(None, help="Monte Carlo seed, 0 ≤ S < 2^63 (default 0; needs --mc)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Exact (and optionally Monte Carlo) moments of a group estimate on the sequence testbed."""
    if seed is not None and mc is None:
        raise InputError("--seed applies to Monte Carlo only; add --mc N")
    out = report(policy, estimator, agg, group, feature, parse_params(param), mc, 0 if seed is None else seed)
    if as_json:
        print(json.dumps(out, allow_nan=False))
    else:
        ex = out["exact"]
        print(f"{out['estimator']} · {out['aggregation']} · G={out['group']} · {len(out['responses'])} responses")
        print(f"cos(E[ĝ], ∇J) = {ex['cosine']}   tr Cov[ĝ] = {ex['trace_var']:.6g}")
        if "length_gradient" in ex:
            print("length push (stop logits):", ", ".join(f"{v:+.3e}" for v in ex["length_gradient"]))
