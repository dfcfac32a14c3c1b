"""Per-arm reward distributions for softmax bandits.

A finite distribution is stored as padded tables `values[a, j]` and `probs[a, j]` (rows sum to 1;
padding has probability 0), so deterministic, Bernoulli and categorical rewards share one shape
and one sampler. A Gaussian reward (Monte Carlo only) keeps `means` and `stds`.

`parse_rewards` reads the command-line spellings of docs/design.md §3:
`bernoulli:p1,...,pK`, `deterministic:r1,...,rK`, `categorical:v1/q1;v2/q2|...`,
and `gaussian:m1/s1,...,mK/sK`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError

_PROB_TOL = 1e-9
MAX_ABS_VALUE = 1e100  # rewards and their spreads: squared moments must fit in float64


@dataclasses.dataclass(frozen=True)
class RewardModel:
    """Reward law of every arm. `values`/`probs` are (K, V) for finite laws, None for Gaussian."""

    kind: str
    values: np.ndarray | None = None
    probs: np.ndarray | None = None
    gaussian_means: np.ndarray | None = None
    gaussian_stds: np.ndarray | None = None

    @property
    def num_arms(self) -> int:
        return len(self.means)

    @property
    def finite(self) -> bool:
        return self.values is not None

    @property
    def means(self) -> np.ndarray:
        """m_a = E[R | a]."""
        if self.finite:
            return np.sum(self.values * self.probs, axis=1)
        return np.asarray(self.gaussian_means, dtype=np.float64)

    @property
    def second_moments(self) -> np.ndarray:
        """v_a = E[R² | a]."""
        if self.finite:
            return np.sum(self.values**2 * self.probs, axis=1)
        return self.gaussian_means**2 + self.gaussian_stds**2

    def outcomes(self):
        """The finite outcome list (arm, value, conditional prob) with zero-probability entries removed."""
        if not self.finite:
            raise InputError("exact moments need finite reward distributions, not gaussian")
        arms, vals, probs = [], [], []
        for a in range(self.values.shape[0]):
            for v, q in zip(self.values[a], self.probs[a]):
                if q > 0:
                    arms.append(a)
                    vals.append(v)
                    probs.append(q)
        return np.array(arms), np.array(vals, dtype=np.float64), np.array(probs, dtype=np.float64)

    def tables(self) -> dict:
        """Arrays that `sample_rewards` needs: {"values", "cdf"} (finite) or {"mean", "std"}."""
        if self.finite:
            return {"values": jnp.asarray(self.values), "cdf": jnp.asarray(np.cumsum(self.probs, axis=1))}
        return {"mean": jnp.asarray(self.gaussian_means), "std": jnp.asarray(self.gaussian_stds)}


def uniform_thresholds(cdf):
    """32-bit thresholds t = ⌊F·2³²⌋ of a CDF, so that for u uniform on {0, …, 2³²−1}
    P(u < t) = F to within 2⁻³² (sampling from raw random bits, no float conversion)."""
    scaled = jnp.floor(jnp.asarray(cdf, dtype=jnp.float64) * 2.0**32)
    return jnp.clip(scaled, 0, 2.0**32 - 1).astype(jnp.uint32)


def random_words(key, shape):
    """Uniform 32-bit words of `shape` from one `jax.random.bits` call.

    Counter-based generators emit words in blocks (XLA's Philox, behind the `rbg` keys, four per
    counter), so the words are drawn as an (n/4, 4) array and laid out column after column: the
    same i.i.d. words, but whatever consumes them fuses with the generator instead of first
    copying out the interleaved block layout (on CPU that copy costs several times the
    generation itself)."""
    n = math.prod(shape)
    if n % 4:
        return jax.random.bits(key, shape, dtype=jnp.uint32)
    w = jax.random.bits(key, (n // 4, 4), dtype=jnp.uint32)
    return jnp.concatenate([w[:, i] for i in range(4)]).reshape(shape)


UNROLL = 32  # up to this many thresholds, count with one fused compare each; beyond, a reduction


def count_at_or_below(u, thresholds):
    """#{j : t_j ≤ u}, thresholds (..., J) broadcast against u: the inverse-CDF index."""
    j = thresholds.shape[-1]
    if j > UNROLL:
        return jnp.sum(u[..., None] >= thresholds, axis=-1, dtype=jnp.int32)
    return sum((u >= thresholds[..., i]).astype(jnp.int32) for i in range(j)) if j else \
        jnp.zeros(u.shape, jnp.int32)


def sample_rewards(tables: dict, key, arms):
    """Draw R | a for every entry of `arms`: one 32-bit word by inverse CDF (finite laws, exact
    to 2⁻³²) or one standard normal (Gaussian laws) per draw. `tables` is `RewardModel.tables()`."""
    if "cdf" in tables:
        u = random_words(key, arms.shape)
        thresholds = uniform_thresholds(tables["cdf"][:, :-1])  # (K, V − 1)
        idx = count_at_or_below(u, thresholds[arms])
        width = tables["values"].shape[-1]
        return tables["values"].reshape(-1)[arms * width + idx]
    z = jax.random.normal(key, arms.shape, dtype=tables["mean"].dtype)
    return tables["mean"][arms] + tables["std"][arms] * z


def _check_finite_numbers(xs, what):
    for x in xs:
        if not math.isfinite(x):
            raise InputError(f"{what}: {float(x):g} is not a finite number")


def _check_magnitude(xs, what):
    """Reward values (and Gaussian spreads) are limited to |x| ≤ MAX_ABS_VALUE, so that the
    second moments and covariances the engines form stay finite in float64."""
    _check_finite_numbers(xs, what)
    for x in xs:
        if abs(x) > MAX_ABS_VALUE:
            raise InputError(f"{what}: |{float(x):g}| exceeds the limit of {MAX_ABS_VALUE:g} on reward magnitudes")


def _check_prob(p, what):
    if not 0.0 <= p <= 1.0:
        raise InputError(f"{what}: probability {float(p):g} is outside [0, 1]")


def deterministic(rewards) -> RewardModel:
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    _check_magnitude(r, "deterministic rewards")
    return RewardModel("deterministic", values=r[:, None], probs=np.ones((len(r), 1)))


def bernoulli(p) -> RewardModel:
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    _check_finite_numbers(p, "bernoulli")
    for x in p:
        _check_prob(x, "bernoulli")
    values = np.tile(np.array([0.0, 1.0]), (len(p), 1))
    probs = np.stack([1.0 - p, p], axis=1)
    return RewardModel("bernoulli", values=values, probs=probs)


def categorical(arms_values, arms_probs) -> RewardModel:
    """Arm a pays arms_values[a][j] with probability arms_probs[a][j]."""
    if len(arms_values) != len(arms_probs):
        raise InputError("categorical: values and probabilities have different numbers of arms")
    width = max(len(v) for v in arms_values)
    values = np.zeros((len(arms_values), width))
    probs = np.zeros((len(arms_values), width))
    for a, (vs, qs) in enumerate(zip(arms_values, arms_probs)):
        if len(vs) != len(qs) or not vs:
            raise InputError(f"categorical: arm {a + 1} needs as many probabilities as values")
        _check_magnitude(vs, f"categorical arm {a + 1}")
        _check_finite_numbers(qs, f"categorical arm {a + 1}")
        for q in qs:
            _check_prob(q, f"categorical arm {a + 1}")
        if abs(sum(qs) - 1.0) > _PROB_TOL:
            raise InputError(f"categorical: probabilities of arm {a + 1} sum to {sum(qs):g}, not 1")
        values[a, : len(vs)] = vs
        probs[a, : len(qs)] = qs
        values[a, len(vs):] = vs[-1]
    return RewardModel("categorical", values=values, probs=probs)


def gaussian(means, stds) -> RewardModel:
    m = np.asarray(means, dtype=np.float64).reshape(-1)
    s = np.asarray(stds, dtype=np.float64).reshape(-1)
    _check_magnitude(np.concatenate([m, s]), "gaussian")
    if len(m) != len(s):
        raise InputError("gaussian: means and standard deviations differ in length")
    if np.any(s < 0):
        raise InputError("gaussian: standard deviations must be non-negative")
    return RewardModel("gaussian", gaussian_means=m, gaussian_stds=s)


def list_fields(text, what: str, sep: str = ",") -> list[str]:
    """The fields of a `sep`-separated list, stripped; an empty list, or an empty field anywhere
    (`0.1,,0.01`, `,1`, `1,`), is an InputError naming the list and the field, never dropped."""
    fields = [f.strip() for f in str(text).split(sep)]
    if not str(text).strip():
        raise InputError(f"{what}: empty list; give {sep!r}-separated values")
    for i, f in enumerate(fields):
        if not f:
            where = "leading" if i == 0 else "trailing" if i == len(fields) - 1 else f"field {i + 1}"
            raise InputError(f"{what} {text!r}: empty {where} field; give {sep!r}-separated values")
    return fields


def _floats(text: str, what: str) -> list[float]:
    fields = list_fields(text, what)
    try:
        return [float(x) for x in fields]
    except ValueError:
        raise InputError(f"{what}: cannot read numbers from {text!r}") from None


def parse_rewards(spec: str) -> RewardModel:
    """Parse `kind:payload` (see module docstring) into a RewardModel."""
    kind, sep, payload = spec.partition(":")
    kind = kind.strip().lower()
    if not sep:
        raise InputError(f"rewards {spec!r}: expected KIND:VALUES, e.g. bernoulli:0.8,0.4,0.1")
    if kind == "bernoulli":
        return bernoulli(_floats(payload, "bernoulli"))
    if kind == "deterministic":
        return deterministic(_floats(payload, "deterministic"))
    if kind == "categorical":
        vals, qs = [], []
        for a, block in enumerate(list_fields(payload, "categorical", "|")):
            pairs = list_fields(block, f"categorical arm {a + 1}", ";")
            try:
                vq = [tuple(float(x) for x in p.split("/")) for p in pairs]
            except ValueError:
                raise InputError(f"categorical arm {a + 1}: cannot read {block!r} as v/q;v/q") from None
            if not vq or any(len(t) != 2 for t in vq):
                raise InputError(f"categorical arm {a + 1}: expected v1/q1;v2/q2, got {block!r}")
            vals.append([t[0] for t in vq])
            qs.append([t[1] for t in vq])
        return categorical(vals, qs)
    if kind == "gaussian":
        pairs = list_fields(payload, "gaussian")
        try:
            ms = [tuple(float(x) for x in p.split("/")) for p in pairs]
        except ValueError:
            raise InputError(f"gaussian: cannot read {payload!r} as m1/s1,m2/s2") from None
        if not ms or any(len(t) != 2 for t in ms):
            raise InputError(f"gaussian: expected m1/s1,m2/s2,..., got {payload!r}")
        return gaussian([t[0] for t in ms], [t[1] for t in ms])
    raise InputError(
        f"unknown reward kind {kind!r}; expected bernoulli, deterministic, categorical or gaussian"
    )


def parse_floats(text: str, what: str) -> np.ndarray:
    """Comma-separated finite floats, e.g. logits `0.3,-0.2,0.1`."""
    xs = _floats(text, what)
    _check_finite_numbers(xs, what)
    return np.asarray(xs, dtype=np.float64)
