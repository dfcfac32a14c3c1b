"""`pglab moments-seq`: exact and Monte Carlo moments of a group estimate on the sequence testbed
(docs/design.md §4.12), for any registry estimator and any loss aggregation; with `--prompts FILE`
of a batch of prompts (`sims.sequence_batches`), for group and batch entries.

Monte Carlo is bounded per chunk: a chunk holds (chunk, G, D) score gradients and (chunk, N, T)
token tables per prompt, D the number of logits, and is refused up front when
chunk × (G·D + Σ_x N_x·T_x) passes `sims.cli.options.MAX_MC_CHUNK_ENTRIES`."""

from __future__ import annotations

import json
import os
from typing import Optional

import jax.numpy as jnp
import numpy as np
import typer

from bandits import sequence as S
from bandits.errors import InputError, check_seed
from sims import batch as B
from sims import estimators
from sims import sequence_batches as SB
from sims import sequences as Q
from sims.cli.options import MAX_MC_CHUNK_ENTRIES, MAX_MC_SAMPLES, check_count, parse_params

MAX_FILE_BYTES = 16 << 20
MAX_GRADIENT = 2048  # P·V: the covariance is (P·V)² floats in the JSON
FAMILIES = {"answer-filler": ("answers", "filler", "correct")}


def _floats(x) -> list:
    return [float(v) for v in np.asarray(x).reshape(-1)]


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InputError(f"duplicate key {dup[0]!r} in a JSON object")
    return dict(pairs)


def read_json(text: str, what: str):
    """The JSON value of the file `text` (at most MAX_FILE_BYTES; duplicate keys refused)."""
    try:
        size = os.path.getsize(text)
    except OSError as err:
        raise InputError(f"{what} {text!r}: cannot read the file ({err.strerror or err})") from None
    if size > MAX_FILE_BYTES:
        raise InputError(f"{what} {text!r}: {size:,} bytes, over the limit of {MAX_FILE_BYTES:,}")
    try:
        with open(text, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=_no_duplicates)
    except InputError as err:
        raise InputError(f"{what} {text!r}: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{what} {text!r}: cannot read the file ({err})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{what} {text!r}: not JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise InputError(f"{what} {text!r}: nested too deeply") from None


def load_prompts(text: str) -> list:
    """The prompts of a `--prompts` file: a JSON list of policy objects in the `--policy` format, or
    {"prompts": [...]}; 1 to `sims.sequence_batches.MAX_PROMPTS` of them."""
    data = read_json(text, "--prompts")
    if isinstance(data, dict):
        if set(data) != {"prompts"}:
            raise InputError("--prompts: the file holds a list of policy objects or {\"prompts\": [...]} and nothing "
                             "else")
        data = data["prompts"]
    if not isinstance(data, list):
        raise InputError("--prompts: the file must hold a list of policy objects")
    if not 1 <= len(data) <= SB.MAX_PROMPTS:
        raise InputError(f"--prompts: {len(data):,} prompts; give 1 to {SB.MAX_PROMPTS}")
    out = []
    for x, item in enumerate(data):
        try:
            sp, theta, rewards, comps = S.policy_from_dict(item)
        except InputError as err:
            raise InputError(f"--prompts: prompt {x}: {err}") from None
        out.append(SB.Prompt(sp, theta, rewards, comps))
    return out


def check_mc(samples, group: int, logits: int, tables: int) -> None:
    """Refuse a Monte Carlo run whose chunk would not fit: chunk × (G·D + Σ N·T) entries, D the
    logits, N·T the token table of each prompt, at most MAX_MC_CHUNK_ENTRIES."""
    from sims.engines import montecarlo

    if isinstance(samples, bool) or not isinstance(samples, int) or not 2 <= samples <= MAX_MC_SAMPLES:
        raise InputError(f"--mc needs at least 2 samples and at most {MAX_MC_SAMPLES:,}, got {samples!r}")
    entries = montecarlo.chunk_size(samples) * (group * logits + tables)
    if entries > MAX_MC_CHUNK_ENTRIES:
        raise InputError(f"Monte Carlo with G={group:,} and {logits:,} logits needs chunks of {entries:,} entries "
                         f"(chunk × (G·D + N·T)), over the limit of {MAX_MC_CHUNK_ENTRIES:,}")


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
    if not os.path.exists(text):
        raise InputError(f"--policy {text!r}: cannot read the file (no such file); or give a family: "
                         f"{', '.join(FAMILIES)}")
    sp, theta, rewards = S.from_dict(read_json(text, "--policy"))
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
    if mc_samples is not None:  # refused before the exact work
        check_mc(mc_samples, group, sp.num_prefixes * sp.vocab, sp.num_responses * sp.max_len)
        check_seed(seed)
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
        s = Q.monte_carlo(est, sp, theta, rewards, group, mc_samples, seed=seed, agg=mode.name, feature=feature,
                          **params)
        out["mc"] = s.to_json()
    return out


def batch_report(prompts_file: str, name: str, agg: str, group: int, feature: str | None, scope: str,
                 params: dict, mc_samples: int | None = None, seed: int = 0) -> dict:
    """The JSON object of `pglab moments-seq --prompts FILE`."""
    entry = B.get(name) if name in B.REGISTRY and name not in estimators.REGISTRY else estimators.get(name)
    is_batch = isinstance(entry, B.BatchEstimator)
    mode = Q.aggregation(agg)
    if scope not in SB.SCOPES:
        raise InputError(f"unknown --scope {scope!r}; known: {', '.join(SB.SCOPES)}")
    check_count(group, "--group", 2 if is_batch else entry.min_group, 1024)
    if feature is not None and feature not in Q.FEATURES:
        raise InputError(f"unknown --feature {feature!r}; known: {', '.join(Q.FEATURES)}")
    prompts = load_prompts(prompts_file)
    d = sum(p.space.num_prefixes * p.space.vocab for p in prompts)
    if d > MAX_GRADIENT:
        raise InputError(f"the prompts have {d:,} logits in all, over the limit of {MAX_GRADIENT:,} "
                         "(the covariance is their square)")
    if mc_samples is not None:  # refused before the exact work
        check_mc(mc_samples, group, d, sum(p.space.num_responses * p.space.max_len for p in prompts))
        check_seed(seed)
    m = SB.batch_moments(entry, prompts, group, agg=mode.name, feature=feature, scope=scope, **params)
    members = []
    for x, p in enumerate(prompts):
        c = m.prompt_scale(x)
        item = {"vocab": p.space.vocab, "max_len": p.space.max_len, "eos": p.space.eos,
                "components": None if p.components is None else int(p.components.shape[1]),
                "pi": _floats(S.policy(p.space, jnp.asarray(p.theta))),
                "true_gradient": _floats(m.true_gradient[m.blocks[x]]), "scale": c}
        if c is None:
            item["scale_reason"] = "undefined: this prompt's ∇J is zero"
        members.append(item)
    out = {
        "estimator": m.estimator, "kind": "batch" if is_batch else "group", "aggregation": mode.name,
        "peers": list(mode.peers), "feature": m.feature, "group": group, "scope": scope, "params": m.params,
        "prompts": members, "objective": m.objective, "true_gradient": _floats(m.true_gradient),
        "exact": {"mean": _floats(m.mean), "bias": _floats(m.bias), "cov": np.asarray(m.cov).tolist(),
                  "trace_var": m.trace_var, "cosine": m.cosine, "route": m.route,
                  "configurations": m.configurations},
    }
    if m.cosine is None:
        out["exact"]["cosine_reason"] = "undefined: E[ĝ] or ∇J is zero"
    if mc_samples is not None:
        s = SB.batch_monte_carlo(entry, prompts, group, mc_samples, seed=seed, agg=mode.name, feature=feature,
                                 scope=scope, **params)
        out["mc"] = s.to_json()
    return out


def moments_seq(
    policy: Optional[str] = typer.Option(None, help="policy file (JSON: vocab, max_len, eos, logits by prefix, "
                                                    "reward) or a family: answer-filler[:answers=A,filler=F,correct=C]"),
    prompts: Optional[str] = typer.Option(None, help=f"a batch of prompts: a JSON list of 1 to {SB.MAX_PROMPTS} "
                                                     "policy objects (or {\"prompts\": [...]}); not with --policy"),
    estimator: str = typer.Option(..., help="registry name: " + ", ".join(estimators.REGISTRY)
                                  + "; with --prompts also a batch entry: " + ", ".join(B.REGISTRY)),
    scope: Optional[str] = typer.Option(None, help="with --prompts: the normaliser over the whole batch (batch, "
                                                   "the default) or per group (group)"),
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
    if (policy is None) == (prompts is None):
        raise InputError("give exactly one of --policy FILE and --prompts FILE")
    if prompts is not None:
        out = batch_report(prompts, estimator, agg, group, feature, "batch" if scope is None else scope,
                           parse_params(param), mc, 0 if seed is None else seed)
        if as_json:
            print(json.dumps(out, allow_nan=False))
        else:
            ex = out["exact"]
            print(f"{out['estimator']} · {out['aggregation']} · scope {out['scope']} · G={out['group']} · "
                  f"{len(out['prompts'])} prompts")
            print(f"cos(E[ĝ], ∇J) = {ex['cosine']}   tr Cov[ĝ] = {ex['trace_var']:.6g}")
            print("c_x:", ", ".join("-" if p["scale"] is None else f"{p['scale']:.6g}" for p in out["prompts"]))
        return
    if scope is not None:
        raise InputError("--scope applies to a batch of prompts; add --prompts FILE")
    if estimator in B.REGISTRY and estimator not in estimators.REGISTRY:
        raise InputError(f"{estimator!r} is a batch estimator: it needs a batch of prompts (--prompts FILE)")
    out = report(policy, estimator, agg, group, feature, parse_params(param), mc, 0 if seed is None else seed)
    if as_json:
        print(json.dumps(out, allow_nan=False))
    else:
        ex = out["exact"]
        print(f"{out['estimator']} · {out['aggregation']} · G={out['group']} · {len(out['responses'])} responses")
        print(f"cos(E[ĝ], ∇J) = {ex['cosine']}   tr Cov[ĝ] = {ex['trace_var']:.6g}")
        if "length_gradient" in ex:
            print("length push (stop logits):", ", ".join(f"{v:+.3e}" for v in ex["length_gradient"]))
