"""`pglab moments-gaussian` and `pglab moments-lqr`: the calculator on the continuous problems
(docs/design.md §4.5). The JSON keys are those of `pglab moments`; "pi" describes the policy.

    pglab moments-gaussian --reward cubic --mu 0.3 --sigma 0.8 --estimator rloo --group 4 \\
                           [--mean-only] [--baseline B] [--eps E] [--mc N --seed S] [--json]
    pglab moments-lqr --A 0.9 --B 0.5 --Q 1 --R 0.1 --K -0.6 --sigma 0.5 --horizon 50 --gamma 0.9 \\
                      [--init-cov 1] [--noise-cov 0] [--learn-sigma] [--mc N --seed S] [--json]

`--reward` is `linear`, `quadratic`, `cubic` or the polynomial's coefficients c0,c1,... (ascending).
Matrices are rows separated by ';' (e.g. `0.9,0.1;0,0.7`); a single number is a 1×1 matrix (or
that multiple of the identity for Q, R and the covariances). Bad input: one line, exit code 2.
"""

from __future__ import annotations

import json
import math
from typing import Optional

import numpy as np
import typer

from bandits.errors import InputError


def _floats(x) -> list:
    return [float(v) for v in np.asarray(x).reshape(-1)]


def _finite(name: str, value):
    if value is not None and not math.isfinite(value):
        raise InputError(f"--{name} must be a finite number, got {value}")
    return value


MAX_HORIZON = 10_000  # the exact recursion, its Hessian and Monte Carlo all scan over H steps
MAX_MC_CHUNK_ENTRIES = 1 << 27  # one Monte Carlo chunk holds chunk × G × n_θ (or × H × (d + m)) floats
MAX_MC_DRAWS = 2 * 10**8  # group members (Gaussian) or trajectory steps (LQR) a Monte Carlo run
# draws: about a minute or two on one CPU core (10^6 groups of 4 take about 2 s)
MAX_ENTRY = 1e100  # magnitude of a matrix entry (larger ones overflow the recursion's float64)
MAX_MATRIX_ENTRIES = 4096  # far above the 8 × 8 that LQR allows; longer text is refused before parsing
MAX_COEFFS = 64  # polynomial reward coefficients


def parse_reward(text: str) -> np.ndarray:
    from bandits import gaussian
    from sims.cli.options import number_list

    if text in gaussian.REWARDS:
        return np.asarray(gaussian.REWARDS[text], dtype=np.float64)
    return np.asarray(number_list(text, "--reward", MAX_COEFFS), dtype=np.float64)


def parse_matrix(text: str, name: str) -> np.ndarray:
    """Rows separated by ';', entries by ','; an empty row or entry is refused."""
    from bandits.rewards import list_fields

    rows = list_fields(text, f"--{name}", ";")
    cells = [list_fields(r, f"--{name}", ",") for r in rows]
    if sum(len(r) for r in cells) > MAX_MATRIX_ENTRIES:
        raise InputError(f"--{name} has more than {MAX_MATRIX_ENTRIES:,} entries")
    try:
        m = [[float(x) for x in r] for r in cells]
    except ValueError:
        raise InputError(f"--{name} must be numbers, rows separated by ';', got {text!r}") from None
    if len({len(r) for r in m}) != 1:
        raise InputError(f"--{name} has rows of different lengths: {text!r}")
    a = np.asarray(m, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError(f"--{name} must hold finite numbers, got {text!r}")
    if np.any(np.abs(a) > MAX_ENTRY):
        raise InputError(f"--{name} has an entry beyond the limit of {MAX_ENTRY:g} in magnitude")
    return a[0, 0] if a.shape == (1, 1) else a


def _check_mc(samples, seed, per_sample: int, what: str) -> None:
    """--mc in [2, 10^9] with chunks of at most MAX_MC_CHUNK_ENTRIES floats (`per_sample` floats a
    sample); --seed in [0, 2^63 − 1] and only with --mc."""
    from sims.cli.options import MAX_MC_SAMPLES, check_count, check_seed_range
    from sims.engines import montecarlo

    if samples is None:
        if seed is not None:
            raise InputError("--seed applies to Monte Carlo only; add --mc N")
        return
    check_count(samples, "--mc", 2, MAX_MC_SAMPLES)
    check_seed_range(0 if seed is None else seed, 1, "--seed")
    entries = montecarlo.chunk_size(samples) * per_sample
    if entries > MAX_MC_CHUNK_ENTRIES:
        raise InputError(f"Monte Carlo chunks of {entries:,} floats ({what}) are over the limit of "
                         f"{MAX_MC_CHUNK_ENTRIES:,}")


def gaussian_report(name, coeffs, mu, sigma, group, params, mean_only=False, mc_samples=None, seed=None) -> dict:
    """The JSON object of `pglab moments-gaussian`."""
    from bandits import gaussian
    from sims import continuous as C
    from sims import estimators
    from sims.cli.options import check_count
    from sims.engines import exact

    _finite("mu", mu)
    _finite("sigma", sigma)
    if sigma is None or sigma <= 0:
        raise InputError(f"σ must be a finite number > 0, got {sigma}")
    check_count(group, "--group", 1, MAX_MC_CHUNK_ENTRIES)
    _check_mc(mc_samples, seed, group * (1 if mean_only else 2), "chunk × G × n_θ")
    if mc_samples is not None and mc_samples * group > MAX_MC_DRAWS:
        raise InputError(f"--mc {mc_samples:,} groups × G = {group:,} members is over the limit of "
                         f"{MAX_MC_DRAWS:,} draws")
    seed = 0 if seed is None else seed
    theta = [mu] if mean_only else [mu, math.log(sigma)]
    fixed = sigma if mean_only else None
    c, th = gaussian.validate(coeffs, theta, fixed)
    estimators.get(name)
    out = {"estimator": name, "group": group, "params": {},
           "pi": {"family": "gaussian", "mu": mu, "sigma": sigma, "theta": "mu" if mean_only else "mu,log_sigma"},
           "true_gradient": _floats(gaussian.gradient(th, c, fixed))}
    if name in C.CLOSED_FORM:
        ex = C.gaussian_group_exact(estimators.get(name), th, c, group, fixed, **params)
        out["params"] = ex["params"]
        out["exact"] = exact.moments_json(ex["mean"], ex["true_gradient"], ex["cov"],
                                          ex["optimal_constant_baseline"])
    elif mc_samples is None:
        raise InputError(f"estimator {name!r} has no closed form on a Gaussian bandit "
                         f"(exact moments exist for {', '.join(C.CLOSED_FORM)}); add --mc N")
    if mc_samples is not None:
        mc = C.gaussian_group_mc(estimators.get(name), th, c, group, mc_samples, seed, fixed, **params)
        out["params"] = mc.params
        out["mc"] = mc.to_json()
    return out


def lqr_report(A, B, Q, R, K, sigma, horizon, gamma, init_cov=1.0, noise_cov=0.0, learn_sigma=False,
               mc_samples=None, seed=None) -> dict:
    """The JSON object of `pglab moments-lqr`: exact J_H, ∇J_H (GPOMDP's mean), ∇²J_H, the Riccati
    gain (null with a reason where there is none), and Monte Carlo moments of GPOMDP."""
    import jax.numpy as jnp

    from bandits import lqr as L
    from sims import continuous as C
    from sims.cli.options import check_count

    _finite("sigma", sigma)
    _finite("gamma", gamma)
    check_count(horizon, "--horizon", 1, MAX_HORIZON)
    lqr = L.make(A, B, Q, R, horizon, gamma, init_cov, noise_cov)
    d, m = lqr.dims
    _check_mc(mc_samples, seed, horizon * (d + m), "chunk × H × (d + m)")
    if mc_samples is not None and mc_samples * horizon > MAX_MC_DRAWS:
        raise InputError(f"--mc {mc_samples:,} trajectories × H = {horizon:,} steps is over the limit of "
                         f"{MAX_MC_DRAWS:,} simulated steps")
    seed = 0 if seed is None else seed
    if sigma is None or sigma <= 0:
        raise InputError(f"σ must be a finite number > 0, got {sigma}")
    k = np.atleast_2d(np.asarray(K, dtype=np.float64))
    if k.shape != (m, d):
        raise InputError(f"K must be {m}×{d} (actions × states), got shape {k.shape}")
    theta = np.concatenate([k.reshape(-1), [math.log(sigma)]]) if learn_sigma else k.reshape(-1)
    fixed = None if learn_sigma else sigma
    theta = jnp.asarray(L.check_policy(lqr, theta, fixed))  # overflow: one line in `moments_lqr`
    grad = np.asarray(L.gradient(theta, lqr, fixed))
    try:
        k_star, _ = L.optimal_gain(lqr)
        riccati, reason = np.asarray(k_star).tolist(), None
    except InputError as err:
        riccati, reason = None, str(err)
    out = {"estimator": "gpomdp", "group": 1, "params": {"horizon": horizon, "gamma": gamma},
           "pi": {"family": "linear_gaussian", "K": k.tolist(), "sigma": sigma,
                  "theta": "vec_K,log_sigma" if learn_sigma else "vec_K"},
           "true_gradient": _floats(grad),
           "exact": {"mean": _floats(grad), "bias": [0.0] * grad.size, "objective": float(L.objective(theta, lqr, fixed)),
                     "hessian": np.asarray(L.hessian(theta, lqr, fixed)).tolist(), "riccati_gain": riccati}}
    if reason:
        out["exact"]["riccati_gain_reason"] = reason
    if mc_samples is not None:
        out["mc"] = C.lqr_moments(lqr, theta, fixed, mc_samples, seed).to_json()
    for v in _leaves(out):
        if isinstance(v, float) and not math.isfinite(v):
            raise InputError("the instance's moments overflow float64; use a smaller horizon or gain")
    return out


def _leaves(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif isinstance(x, list):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def _print(report: dict) -> None:
    from rich.console import Console

    c = Console()
    c.print(json.dumps(report, indent=1, allow_nan=False))


def moments_gaussian(
    reward: str = typer.Option(..., help="linear | quadratic | cubic | coefficients c0,c1,... (ascending)"),
    mu: float = typer.Option(..., help="policy mean μ"),
    sigma: float = typer.Option(..., help="policy standard deviation σ > 0"),
    estimator: str = typer.Option(..., help="registry name: reinforce, rloo, grpo_mean, grpo, optimal_baseline_loo"),
    group: int = typer.Option(..., help="group size G"),
    mean_only: bool = typer.Option(False, "--mean-only", help="θ = μ with σ fixed (default θ = (μ, log σ))"),
    eps: Optional[float] = typer.Option(None, help="grpo's eps (default 1e-6)"),
    baseline: Optional[float] = typer.Option(None, help="reinforce's constant baseline b (default 0)"),
    mc: Optional[int] = typer.Option(None, help="also run Monte Carlo with this many groups"),
    seed: Optional[int] = typer.Option(None, help="Monte Carlo seed, 0 ≤ S < 2^63 (default 0; needs --mc)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Exact (closed form) and Monte Carlo moments of a group estimator on a Gaussian-policy bandit."""
    from sims import estimators

    est = estimators.get(estimator)
    params = {"eps": eps, "baseline": baseline}
    for key in [k for k, v in params.items() if v is not None]:
        if key not in est.params:
            raise InputError(f"--{key} does not apply to estimator {estimator!r}")
    report = gaussian_report(estimator, parse_reward(reward), mu, sigma, group,
                             {k: v for k, v in params.items() if k in est.params}, mean_only, mc, seed)
    print(json.dumps(report, allow_nan=False)) if as_json else _print(report)


def moments_lqr(
    a: str = typer.Option(..., "--A", help="dynamics A (d×d)"),
    b: str = typer.Option(..., "--B", help="input matrix B (d×m)"),
    q: str = typer.Option("1", "--Q", help="state cost Q ⪰ 0"),
    r: str = typer.Option("1", "--R", help="action cost R ≻ 0"),
    k: str = typer.Option(..., "--K", help="policy gain K (m×d)"),
    sigma: float = typer.Option(..., help="policy noise σ > 0"),
    horizon: int = typer.Option(..., help="horizon H ≥ 1"),
    gamma: float = typer.Option(1.0, help="discount γ ∈ (0, 1]"),
    init_cov: str = typer.Option("1", help="Σ_0, covariance of x_0"),
    noise_cov: str = typer.Option("0", help="Σ_w, covariance of the process noise"),
    learn_sigma: bool = typer.Option(False, "--learn-sigma", help="θ = (vec K, log σ) (default vec K, σ fixed)"),
    mc: Optional[int] = typer.Option(None, help="also run Monte Carlo with this many trajectories"),
    seed: Optional[int] = typer.Option(None, help="Monte Carlo seed, 0 ≤ S < 2^63 (default 0; needs --mc)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Exact J, ∇J, ∇²J and the Riccati gain on LQR, and Monte Carlo moments of GPOMDP."""
    try:
        report = lqr_report(parse_matrix(a, "A"), parse_matrix(b, "B"), parse_matrix(q, "Q"),
                            parse_matrix(r, "R"), parse_matrix(k, "K"), sigma, horizon, gamma,
                            parse_matrix(init_cov, "init-cov"), parse_matrix(noise_cov, "noise-cov"),
                            learn_sigma, mc, seed)
    except (OverflowError, FloatingPointError):
        raise InputError("the instance's moments overflow float64; use a smaller gain, dynamics or "
                         "horizon") from None
    print(json.dumps(report, allow_nan=False)) if as_json else _print(report)
