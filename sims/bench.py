"""`make bench`: throughput of the engines, measured side by side in one run.

- Monte Carlo groups/s at K=8, G=8 for every estimator (the engine: sampling, advantages,
  gradient assembly and the streamed mean/covariance);
- a vectorised NumPy reference of the same computation, timed in the same run;
- the roofline: the rate at which `jax.random` alone produces the 2G random 32-bit words per
  group the engine consumes (G arm draws by inverse CDF, G Bernoulli rewards) — the engine cannot beat it;
- the exact engine's wall time for K=4 Bernoulli arms at G = 4, 8, 16, compilation included;
- LQR trajectories/s (scalar, H = 50): the jitted `lax.scan` sampler against a vectorised NumPy
  loop over time of the same computation (states, actions, rewards of n trajectories);
- N-PG-IGT and its baselines (docs/design.md §4.7) on the scalar LQR `lqr1` (H = 50): steps/s of
  every method vmapped over 64 seeds (one jitted `lax.scan`), beside a vectorised NumPy N-PG-IGT
  over the same 64 seeds, and the wall time of the whole complexity sweep (`sims.npg_complexity`).

Prints a table and writes bench.json. Targets are ratios from this one run.
"""

from __future__ import annotations

import json
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from bandits import rewards as R
from sims import exact, montecarlo

K, G = 8, 8
LOGITS = np.linspace(-1.0, 1.0, K)
SUCCESS = np.linspace(0.1, 0.9, K)


def _best_rate(fn, units: int, repeats: int = 3) -> float:
    fn()  # warm-up and compilation
    best = min(_timed(fn) for _ in range(repeats))
    return units / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _numpy_advantages(name, r, w):
    g = r.shape[1]
    if name == "reinforce":
        return r
    c = r - r.mean(axis=1, keepdims=True)
    if name == "rloo":
        return c * g / (g - 1)
    if name == "grpo_mean":
        return c
    if name == "grpo":
        return c / (r.std(axis=1, ddof=1, keepdims=True) + 1e-6)
    if name == "optimal_baseline_loo":
        num = (w * r).sum(1, keepdims=True) - w * r
        den = w.sum(1, keepdims=True) - w
        return r - np.where(den > 0, num / np.where(den > 0, den, 1), 0)
    raise KeyError(name)


def numpy_reference(name: str, samples: int, seed: int = 0, chunk: int = 1 << 15):
    """The Monte Carlo engine's computation in vectorised NumPy (float64), chunk by chunk."""
    rng = np.random.default_rng(seed)
    pi = np.exp(LOGITS - LOGITS.max())
    pi /= pi.sum()
    cdf = np.cumsum(pi)[:-1]
    total, s1, s2 = 0, np.zeros(K), np.zeros((K, K))
    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        arms = np.searchsorted(cdf, rng.random((n, G)), side="right")
        rew = (rng.random((n, G)) < SUCCESS[arms]).astype(np.float64)
        s = np.eye(K)[arms] - pi  # (n, G, K)
        w = (s**2).sum(-1)
        a = _numpy_advantages(name, rew, w)
        g = np.einsum("ng,ngk->nk", a, s) / G
        total += n
        s1 += g.sum(0)
        s2 += g.T @ g
    mean = s1 / total
    return mean, s2 / total - np.outer(mean, mean)


def rng_roofline(samples: int, chunk: int):
    """A run that only produces the 2G random 32-bit words per group, chunked like the engine
    (same compiled block size): its rate in groups/s is the engine's ceiling."""
    block = montecarlo.BLOCK

    @jax.jit
    def draw(base, first):
        def body(acc, c):
            words = jax.random.bits(jax.random.fold_in(base, c), (chunk, 2 * G), dtype=jnp.uint32)
            return acc + jnp.sum(words, dtype=jnp.uint32), None

        return jax.lax.scan(body, jnp.uint32(0), first + jnp.arange(block))[0]

    base = jax.random.key(0)

    def run():
        acc = [draw(base, first) for first in range(0, samples // chunk, block)]
        jax.block_until_ready(acc)

    return run


def exact_wall_times(groups=(4, 8, 16)) -> dict:
    model = R.bernoulli([0.8, 0.4, 0.1, 0.5])
    out = {}
    for g in groups:
        jax.clear_caches()
        exact.multisets.cache_clear()
        t = time.perf_counter()
        m = exact.moments("grpo", [0.3, -0.2, 0.1, 0.5], model, g)
        out[g] = {"seconds": time.perf_counter() - t, "multisets": m.multisets}
    return out


LQR_H = 50


def lqr_rates(n: int) -> dict:
    """Trajectories/s of `bandits.lqr.sample_trajectories` and of the same rollout in NumPy."""
    from bandits import lqr as L

    a, b, q, r, k, sigma, gamma = 0.9, 0.5, 1.0, 0.1, -0.6, 0.5, 0.95
    lqr = L.make(a, b, q, r, LQR_H, gamma, noise_cov=0.05)
    theta = jnp.array([k])
    key = jax.random.key(0)

    def jax_run():
        jax.block_until_ready(L.sample_trajectories(key, theta, lqr, n, sigma))

    def numpy_run(seed=0):
        rng = np.random.default_rng(seed)
        xs, us, rs = np.empty((n, LQR_H)), np.empty((n, LQR_H)), np.empty((n, LQR_H))
        x = rng.standard_normal(n)
        for t in range(LQR_H):
            u = k * x + sigma * rng.standard_normal(n)
            xs[:, t], us[:, t], rs[:, t] = x, u, -(q * x * x + r * u * u)
            x = a * x + b * u + np.sqrt(0.05) * rng.standard_normal(n)
        return xs, us, rs

    jax_rate = _best_rate(jax_run, n)
    numpy_rate = _best_rate(numpy_run, n)
    return {"H": LQR_H, "trajectories": n, "jax_trajectories_per_s": jax_rate,
            "numpy_trajectories_per_s": numpy_rate, "speedup_vs_numpy": jax_rate / numpy_rate}


NPG_SEEDS = 64
NPG_GAMMA0 = {"pg": 3e-4, "pg-const": 3e-5, "n-pg-m": 0.1, "n-pg-igt": 0.1, "harpg": 3e-5, "n-harpg": 0.1}


def numpy_igt(steps: int, seeds: int = NPG_SEEDS, gamma0: float = 0.1, seed: int = 0) -> np.ndarray:
    """N-PG-IGT on `lqr1` in vectorised NumPy over the seeds: the look-ahead gain
    K̃ = K + ((1−η)/η)(K − K_prev), one H-step rollout per seed at K̃, GPOMDP
    g = Σ_t c_t (u_t − K̃x_t)x_t/σ² with c_t the rewards-to-go, d = (1−η)d + ηg, K += γ_t d/|d|."""
    from sims import npg_problems as P

    c = P.LQR1
    a, b, q, r, h, sw, sigma = c["A"], c["B"], c["Q"], c["R"], c["horizon"], c["noise_cov"], P.LQR_SIGMA
    rng = np.random.default_rng(seed)
    k = np.full(seeds, -0.2)
    k_prev, d = k.copy(), np.zeros(seeds)
    xs, rs, sc = np.empty((h, seeds)), np.empty((h, seeds)), np.empty((h, seeds))
    for t in range(steps):
        eta = (2.0 / (t + 2)) ** 0.8
        kt = k + (1 - eta) / eta * (k - k_prev)
        x = rng.standard_normal(seeds)
        for s in range(h):
            e = rng.standard_normal(seeds)
            u = kt * x + sigma * e
            rs[s], sc[s] = -(q * x * x + r * u * u), e * x / sigma
            x = a * x + b * u + np.sqrt(sw) * rng.standard_normal(seeds)
        togo = np.cumsum(rs[::-1], axis=0)[::-1]
        g = (togo * sc).sum(0)
        d = (1 - eta) * d + eta * g
        k_prev, k = k, k + gamma0 * 2.0 / (t + 2) * np.sign(d)
    return k


def npg_rates(steps: int, numpy_steps: int, quick: bool) -> dict:
    """Steps/s of every `sims.npg` method over 64 seeds on `lqr1` (H = 50), of the NumPy
    N-PG-IGT, and the complexity sweep's wall time (quick or full, compilation included)."""
    from sims import npg
    from sims import npg_complexity as S
    from sims import npg_problems as P

    prob = P.get("lqr1")
    seeds = np.arange(NPG_SEEDS)
    rows = {}
    for name in npg.METHODS:
        fn = lambda name=name: npg.run(name, prob, seeds, steps, NPG_GAMMA0[name], record_every=steps)  # noqa: E731
        rows[name] = _best_rate(fn, steps, repeats=2)
    np_rate = _best_rate(lambda: numpy_igt(numpy_steps), numpy_steps, repeats=1)
    jax.clear_caches()
    t = time.perf_counter()
    S.sweep.__wrapped__(quick)
    sweep_s = time.perf_counter() - t
    return {"problem": "lqr1", "H": prob_h(), "seeds": NPG_SEEDS, "steps": steps,
            "steps_per_s": rows, "numpy_igt_steps_per_s": np_rate,
            "igt_speedup_vs_numpy": rows["n-pg-igt"] / np_rate,
            "sweep": "quick" if quick else "full", "sweep_seconds": sweep_s}


def prob_h() -> int:
    from sims import npg_problems as P

    return P.LQR1["horizon"]


def main() -> None:
    quick = "--quick" in sys.argv
    samples = 1 << (19 if quick else 22)
    numpy_samples = 1 << (16 if quick else 18)
    model = R.bernoulli(SUCCESS)
    chunk = montecarlo.chunk_size(samples)
    names = ["reinforce", "rloo", "grpo_mean", "grpo", "optimal_baseline_loo"]
    runs = {n: (lambda n=n: montecarlo.moments(n, LOGITS, model, G, samples, seed=1, progress=False))
            for n in names}
    runs["roofline"] = rng_roofline(samples, chunk)
    for fn in runs.values():  # compile everything first
        fn()
    # Interleaved rounds, best of each: the machine's speed drifts, the ratios should not.
    best = {n: min(_timed(fn) for _ in range(1)) for n, fn in runs.items()}
    for _ in range(2):
        for n, fn in runs.items():
            best[n] = min(best[n], _timed(fn))
    roof = samples / best["roofline"]
    rows = []
    for name in names:
        np_rate = _best_rate(lambda name=name: numpy_reference(name, numpy_samples), numpy_samples, repeats=2)
        rate = samples / best[name]
        rows.append({"estimator": name, "mc_groups_per_s": rate, "numpy_groups_per_s": np_rate,
                     "speedup_vs_numpy": rate / np_rate, "fraction_of_rng_roofline": rate / roof})
    ex = exact_wall_times()
    lqr = lqr_rates(1 << (14 if quick else 17))
    npg_bench = npg_rates(200 if quick else 2000, 50 if quick else 300, quick)
    report = {
        "config": {"K": K, "G": G, "samples": samples, "numpy_samples": numpy_samples,
                   "chunk": chunk, "quick": quick},
        "platform": {"jax": jax.__version__, "backend": jax.default_backend(),
                     "devices": [str(d) for d in jax.devices()], "machine": platform.machine(),
                     "python": platform.python_version()},
        "rng_roofline_groups_per_s": roof,
        "monte_carlo": rows,
        "exact_k4_bernoulli": ex,
        "lqr_sampler": lqr,
        "npg_lqr1": npg_bench,
        "targets": {
            "mc_vs_numpy_at_least_10x": all(r["speedup_vs_numpy"] >= 10 for r in rows),
            "mc_at_least_half_rng_roofline": all(r["fraction_of_rng_roofline"] >= 0.5 for r in rows),
            "exact_k4_g16_under_2s": ex[16]["seconds"] < 2.0,
        },
    }
    _print(report)
    with open("bench.json", "w") as f:
        json.dump(report, f, indent=1)


def _print(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("estimator", "MC groups/s", "NumPy groups/s", "× NumPy", "of RNG roofline",
              title=f"Monte Carlo, K={K}, G={G} ({report['platform']['backend']})")
    for r in report["monte_carlo"]:
        t.add_row(r["estimator"], f"{r['mc_groups_per_s']:.3g}", f"{r['numpy_groups_per_s']:.3g}",
                  f"{r['speedup_vs_numpy']:.1f}×", f"{100 * r['fraction_of_rng_roofline']:.0f}%")
    c = Console()
    c.print(t)
    c.print(f"RNG roofline (2G random words per group): {report['rng_roofline_groups_per_s']:.3g} groups/s")
    for g, v in report["exact_k4_bernoulli"].items():
        c.print(f"exact K=4 Bernoulli G={g}: {v['multisets']:,} multisets, {v['seconds']:.2f} s")
    lq = report["lqr_sampler"]
    c.print(f"LQR sampler, scalar, H={lq['H']}: {lq['jax_trajectories_per_s']:.3g} trajectories/s (jit) vs "
            f"{lq['numpy_trajectories_per_s']:.3g} (NumPy), {lq['speedup_vs_numpy']:.1f}×")
    nb = report["npg_lqr1"]
    t = Table("method", "steps/s (64 seeds)", title=f"sims.npg on lqr1, H = {nb['H']}, {nb['seeds']} seeds vmapped")
    for name, rate in nb["steps_per_s"].items():
        t.add_row(name, f"{rate:.3g}")
    t.add_row("n-pg-igt (NumPy, vectorised over seeds)", f"{nb['numpy_igt_steps_per_s']:.3g}")
    c.print(t)
    c.print(f"N-PG-IGT jit vs NumPy: {nb['igt_speedup_vs_numpy']:.1f}×; {nb['sweep']} complexity sweep "
            f"{nb['sweep_seconds']:.1f} s")
    c.print(f"targets: {report['targets']}")


if __name__ == "__main__":
    main()
