"""The scale-up path: tokenizer, tasks and checkers, the policy's prefix sharing and KV cache, the
surrogate's gradient against the registry's assembly, |s|² per sequence, the CLI."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bandits.errors import InputError
from sims import cli, estimators
from sims.scaleup import loss as L
from sims.scaleup import model as M
from sims.scaleup import rollout, tasks
from sims.scaleup import tokenizer as tok
from sims.scaleup import trainer as T

TINY = M.Config(width=16, layers=2, heads=2, max_len=12, dtype="float64")


def test_tokenizer_round_trip_and_errors():
    ids = tok.encode("07+35=")
    assert ids.tolist() == [3, 10, 13, 6, 8, 14]
    assert tok.decode(np.concatenate([ids, [tok.EOS, 5, 6]])) == "07+35="
    assert tok.decode([tok.BOS, 4, tok.PAD, 5]) == "12"
    with pytest.raises(InputError, match="vocabulary"):
        tok.encode("a")


@pytest.mark.parametrize("name, prompt, answer", [
    ("copy", "7=", "7"), ("parity", "0111=", "1"), ("parity", "0110=", "0"),
    ("digitsum", "7+8=", "5"), ("reverse", "?120=", "021"), ("addition", "07+35=", "42"),
    ("addition", "99+99=", "198"),
])
def test_task_answers_by_hand(name, prompt, answer):
    t = tasks.get(name)
    pairs = dict(t.texts)
    assert pairs[prompt] == answer
    i = [p for p, _ in t.texts].index(prompt)
    assert tok.decode(t.prompts[i]) == prompt and t.prompts[i, 0] == tok.BOS
    assert tasks.check(t, i, t.targets[i])


def test_compiled_checker_agrees_with_the_text_checker():
    t = tasks.get("addition")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, t.size, 400)
    comp = t.targets[idx].copy()
    # perturb half of them: a random action token somewhere, then PAD after any EOS
    flip = rng.random(400) < 0.5
    pos = rng.integers(0, t.completion_len, 400)
    comp[flip, pos[flip]] = rng.integers(2, tok.VOCAB, flip.sum())
    after = (np.cumsum(comp == tok.EOS, axis=1) - (comp == tok.EOS)) > 0
    comp[after] = tok.PAD
    want = np.array([tasks.check(t, i, c) for i, c in zip(idx, comp)], dtype=np.float32)
    got = np.asarray(tasks.rewards(jnp.asarray(comp), jnp.asarray(t.targets[idx])))
    np.testing.assert_array_equal(got, want)
    assert 0 < want.mean() < 1


def _model():
    return M.create(TINY, 0)


def _last_logits(model):
    """Logits after a whole sequence, recomputed from scratch (no extend, no cache)."""
    graphdef, params = nnx.split(model)
    f = jax.jit(lambda prm, seq: nnx.merge(graphdef, prm).prefix(seq[None])[0][0])
    return lambda seq: f(params, seq)


def test_prefix_sharing_and_extend_match_a_plain_forward():
    model = _model()
    prompts = jnp.asarray(tasks.get("addition").prompts[[3, 500]])
    rng = np.random.default_rng(1)
    comp = jnp.asarray(rng.integers(2, tok.VOCAB, (2, 3, 4)), jnp.int32)
    graphdef, params = nnx.split(model)
    logp = jax.jit(lambda prm, x, y: M.token_logprobs(nnx.merge(graphdef, prm), x, y))(params, prompts, comp)
    last = _last_logits(model)
    for p in range(2):
        for g in range(3):
            seq = np.concatenate([prompts[p], comp[p, g]])
            tp = prompts.shape[1]
            want = [jax.nn.log_softmax(M.action_logits(last(jnp.asarray(seq[: tp + t]))))[comp[p, g, t]]
                    for t in range(4)]
            np.testing.assert_allclose(np.asarray(logp[p, g]), np.asarray(want), atol=1e-10)


@pytest.mark.parametrize("n_in, n_out", [(3, 5), (5, 3)])
def test_dense_layer_gradients_are_the_plain_product_gradients(n_in, n_out):
    """Both forms of the weight gradient (x transposed when it is the narrower factor, ∂y
    otherwise) against autodiff of x·K + b written with einsum, for the batch and per example."""
    rng = np.random.default_rng(4)
    x, c = rng.normal(size=(2, 4, n_in)), rng.normal(size=(2, 4, n_out))
    k, b = rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)
    plain = lambda x, k, b: jnp.einsum("...i,io->...o", x, k) + b  # noqa: E731
    objective = lambda f: lambda x, k, b: jnp.sum(jnp.tanh(f(x, k, b)) * c)  # noqa: E731
    got = jax.grad(objective(M.dense_product), argnums=(0, 1, 2))(x, k, b)
    want = jax.grad(objective(plain), argnums=(0, 1, 2))(x, k, b)
    per_example = lambda f: jax.vmap(jax.grad(objective(f), argnums=1), in_axes=(0, None, None))  # noqa: E731
    for g, w in [*zip(got, want), (per_example(M.dense_product)(x, k, b), per_example(plain)(x, k, b))]:
        assert g.shape == w.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12)


def test_kv_cache_greedy_decoding_matches_recomputation():
    model = _model()
    prompts = jnp.asarray(tasks.get("reverse").prompts[[7, 123, 999]])
    graphdef, params = nnx.split(model)
    run = jax.jit(lambda prm, x, k: rollout.sample(nnx.merge(graphdef, prm), x, k, 2, 4, 0.0))
    comp, mask = run(params, prompts, jax.random.key(0))
    last = _last_logits(model)
    for p in range(3):
        seq = prompts[p]
        done = False
        for t in range(4):
            logits = M.action_logits(last(seq))
            nxt = tok.PAD if done else int(jnp.argmax(logits))
            assert int(comp[p, 0, t]) == nxt == int(comp[p, 1, t])
            assert float(mask[p, 0, t]) == (0.0 if done else 1.0)
            done = done or nxt == tok.EOS
            seq = jnp.concatenate([seq, jnp.array([nxt], jnp.int32)])


def test_sampling_never_draws_pad_or_bos_and_pads_after_eos():
    model = _model()
    prompts = jnp.asarray(tasks.get("reverse").prompts[:16])
    graphdef, params = nnx.split(model)
    run = jax.jit(lambda prm, x, k: rollout.sample(nnx.merge(graphdef, prm), x, k, 8, 4, 1.0))
    comp, mask = run(params, prompts, jax.random.key(3))
    comp, mask = np.asarray(comp), np.asarray(mask)
    live = mask.astype(bool)
    assert not np.any(np.isin(comp[live], [tok.PAD, tok.BOS]))
    assert np.all(comp[~live] == tok.PAD)
    eos_first = np.cumsum(comp == tok.EOS, axis=-1) - (comp == tok.EOS) > 0
    np.testing.assert_array_equal(~live, eos_first)


def test_sampling_is_the_same_in_any_number_of_decoding_chunks():
    """Step t's noise is drawn for the whole batch from fold_in(key, t), so decoding in chunks of
    prompts changes nothing; noise drawn per chunk from the same key would repeat across chunks
    and fail here."""
    model = _model()
    prompts = jnp.asarray(tasks.get("reverse").prompts[:8])
    graphdef, params = nnx.split(model)
    run = jax.jit(lambda prm, k, c: rollout.sample(nnx.merge(graphdef, prm), prompts, k, 3, 4, 1.0, c),
                  static_argnums=2)
    whole = run(params, jax.random.key(5), 1)
    for chunks in (2, 4, 8):
        got = run(params, jax.random.key(5), chunks)
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(whole[0]))
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(whole[1]))
    assert len({tuple(np.asarray(whole[0][p]).ravel()) for p in range(8)}) > 1


def _batch(seed=0, p=2, g=3, t=4):
    rng = np.random.default_rng(seed)
    prompts = jnp.asarray(tasks.get("reverse").prompts[rng.integers(0, 1000, p)])
    comp = rng.integers(3, tok.VOCAB, (p, g, t))
    lengths = rng.integers(1, t + 1, (p, g))
    comp[np.arange(t)[None, None, :] == (lengths - 1)[..., None]] = tok.EOS
    mask = (np.arange(t)[None, None, :] < lengths[..., None]).astype(np.float64)
    comp[mask == 0] = tok.PAD
    adv = rng.normal(size=(p, g))
    return prompts, jnp.asarray(comp, jnp.int32), jnp.asarray(mask), jnp.asarray(adv)


@functools.lru_cache(maxsize=2)
def _one_grad(graphdef):
    def f(prm, x, y, m):
        return jnp.sum(m * M.token_logprobs(nnx.merge(graphdef, prm), x[None], y[None, None])[0, 0])

    return jax.jit(jax.grad(f))


def _per_example_grads(graphdef, params, prompts, comp, mask):
    """∇ log π(y_i | x) one sequence at a time (a plain Python loop of jax.grad)."""
    grad = _one_grad(graphdef)
    out = []
    for p in range(comp.shape[0]):
        for g in range(comp.shape[1]):
            gr = grad(params, prompts[p], comp[p, g], mask[p, g])
            out.append(jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(gr)]))
    return jnp.stack(out).reshape(comp.shape[0], comp.shape[1], -1)


def test_surrogate_gradient_is_the_registry_assembly_and_sq_norms_are_exact():
    graphdef, params = nnx.split(_model())
    prompts, comp, mask, _ = _batch()
    rewards = jnp.asarray(np.random.default_rng(5).integers(0, 2, (2, 3)), jnp.float64)
    s = _per_example_grads(graphdef, params, prompts, comp, mask)
    w = jax.jit(lambda prm, *a: L.sequence_sq_norms(graphdef, prm, *a))(params, prompts, comp, mask)
    np.testing.assert_allclose(np.asarray(w), np.asarray(jnp.sum(s**2, -1)), rtol=1e-10)
    sc = jax.jit(lambda prm, *a: L.sequence_scores(graphdef, prm, *a))(params, prompts, comp, mask)
    np.testing.assert_allclose(np.asarray(sc), np.asarray(s), rtol=1e-9, atol=1e-12)
    est = estimators.get("optimal_baseline_loo")
    adv = jax.vmap(est.advantages)(rewards, w)
    _, grads = jax.jit(lambda prm, *a: T.loss_and_grad(graphdef, prm, *a, "seq-mean-token-sum"))(
        params, prompts, comp, mask, adv)
    flat = jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(grads)])
    # ĝ = (1/G) Σ_i A_i s_i per prompt, averaged over prompts; the loss is its negative.
    want = jnp.mean(jax.vmap(estimators.group_gradient)(adv, s), axis=0)
    np.testing.assert_allclose(np.asarray(-flat), np.asarray(want), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("args, fragment", [
    (["--task", "sorting"], "unknown task"),
    (["--estimator", "ppo"], "unknown estimator"),
    (["--estimator", "grpo", "--group", "1"], "at least 2"),
    (["--prompts", "6", "--devices", "4"], "not divisible"),
    (["--steps", "0"], "--steps"),
    (["--steps", "-3"], "--steps"),
    (["--loss-agg", "sum"], "loss aggregation"),
    (["--prompts", "8", "--micro-batches", "3"], "not divisible"),
    (["--estimator", "optimal_baseline_loo_coord"], "per-coordinate"),
    (["--lr", "nan"], "--lr"),
    (["--sampler", "greedy"], "prompt sampler"),
    (["--step-rule", "adaptive"], "step rule"),
    (["--sampler", "vas", "--vas-lambda", "2"], "λ"),
    (["--step-rule", "snr", "--estimator", "reinforce", "--group", "1"], "at least 2"),
])
def test_bad_config_exits_2_with_one_line(capsys, args, fragment):
    with pytest.raises(SystemExit) as err:
        cli.main(["train", *args, "--json"])
    assert err.value.code == 2
    msg = capsys.readouterr().err
    assert msg.count("\n") == 1 and fragment in msg


def _reward_gain(capsys, estimator):
    cli.main(["train", "--task", "parity", "--estimator", estimator, "--group", "8", "--prompts", "8",
              "--steps", "40", "--width", "32", "--lr", "0.01", "--seed", "0", "--json"])
    out = json.loads(capsys.readouterr().out)
    r = np.asarray(out["rewards"])
    return r[:10].mean(), r[-10:].mean(), out


def test_a_short_run_improves_reward_and_a_negated_estimator_does_not(capsys):
    first, last, out = _reward_gain(capsys, "grpo")
    assert last > first + 0.2, (first, last)
    assert set(out) >= {"config", "rewards", "initial_reward", "final_reward", "greedy_accuracy"}
    # planted defect: the same run ascending −A (descending J) must not improve
    estimators.register(estimators.Estimator(name="negated_grpo", advantages=lambda r, w, eps=1e-6: -estimators.grpo(r, w, eps), params={"eps": 1e-6}, summary="−GRPO (planted defect)", property=estimators.BIASED))
    try:
        first_bad, last_bad, _ = _reward_gain(capsys, "negated_grpo")
    finally:
        estimators.unregister("negated_grpo")
    assert last_bad < first_bad + 0.02, (first_bad, last_bad)


def test_vas_selection_with_lambda_zero_is_uniform_and_refreshes_on_schedule():
    task = tasks.get("copy")
    pool_p, pool_t = jnp.asarray(task.prompts), jnp.asarray(task.targets)
    key = jax.random.key(4)
    cfg_u = T.TrainConfig(task="copy", prompts=8, width=16, layers=1, heads=2)
    graphdef, params, _, _ = T.init(cfg_u)
    state = T.init_sampler(cfg_u, task.size)
    uni, _, extra = T.select_prompts(cfg_u, graphdef, params, state, 3, key, pool_p, pool_t)
    cfg_0 = T.TrainConfig(task="copy", prompts=8, width=16, layers=1, heads=2, sampler="vas", vas_lambda=0.0)
    zero, _, extra0 = T.select_prompts(cfg_0, graphdef, params, state, 3, key, pool_p, pool_t)
    np.testing.assert_array_equal(np.asarray(uni), np.asarray(zero))
    assert int(extra) == int(extra0) == 0
    cfg_v = T.TrainConfig(task="copy", prompts=8, width=16, layers=1, heads=2, sampler="vas", vas_lambda=1.0,
                          vas_update_every=5, vas_rollouts=4)
    sel = jax.jit(lambda st, t: T.select_prompts(cfg_v, graphdef, params, st, t, key, pool_p, pool_t))
    idx, st1, e1 = sel(T.init_sampler(cfg_v, task.size), 0)
    assert int(e1) == task.size * 4 and int(st1["last"]) == 0
    scores = np.asarray(st1["scores"])
    assert np.all(scores >= 0) and np.all(scores <= 0.25 + 1.0) and scores.max() > 0
    _, st2, e2 = sel(st1, 4)  # not yet due
    assert int(e2) == 0 and np.array_equal(np.asarray(st2["scores"]), scores)
    _, st3, e3 = sel(st2, 5)  # due again
    assert int(e3) == task.size * 4 and int(st3["last"]) == 5


def test_copg_pair_gradient_is_the_regularised_reward_difference_times_the_score_difference():
    from sims.scaleup import copg as CP

    graphdef, params = nnx.split(_model())
    prompts, comp, mask, _ = _batch(seed=2, p=2, g=2)
    rewards = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    ref = jnp.array([[-3.0, -2.5], [-4.0, -1.0]])
    beta = 0.3

    def objective(prm):
        h = CP.sequence_logprob(graphdef, prm, prompts, comp, mask) - ref
        return jnp.sum(CP.pair_objective(rewards[:, 0] - rewards[:, 1], h[:, 0] - h[:, 1], beta))

    got = jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(jax.jit(jax.grad(objective))(params))])
    s = _per_example_grads(graphdef, params, prompts, comp, mask)
    h = jax.jit(lambda prm: CP.sequence_logprob(graphdef, prm, prompts, comp, mask))(params) - ref
    rb = rewards - beta * h
    want = jnp.sum((rb[:, 0] - rb[:, 1])[:, None] * (s[:, 0] - s[:, 1]), axis=0)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-12)


def test_the_torch_reference_is_the_same_model():
    import torch

    from sims.scaleup import torch_ref

    cfg = M.Config(width=16, layers=2, heads=2, max_len=12, dtype="float32")
    model = M.create(cfg, 1)
    ref = torch_ref.Policy(16, 2, 2, 12).double()
    t = lambda x: torch.tensor(np.asarray(x, np.float64))
    sd = {"tok_emb.weight": t(model.tok_emb.embedding[...]), "pos_emb.weight": t(model.pos_emb.embedding[...]),
          "ln_f.weight": t(model.ln_f.scale[...]), "ln_f.bias": t(model.ln_f.bias[...]),
          "head.weight": t(model.head.kernel[...]).T, "head.bias": t(model.head.bias[...])}
    for i, b in enumerate(model.blocks):
        for name in ("ln1", "ln2"):
            sd[f"blocks.{i}.{name}.weight"] = t(getattr(b, name).scale[...])
            sd[f"blocks.{i}.{name}.bias"] = t(getattr(b, name).bias[...])
        for name in ("qkv", "proj", "fc", "out"):
            sd[f"blocks.{i}.{name}.weight"] = t(getattr(b, name).kernel[...]).T
            sd[f"blocks.{i}.{name}.bias"] = t(getattr(b, name).bias[...])
    ref.load_state_dict({**sd, "banned": ref.banned})
    seq = tasks.get("addition").prompts[17]
    want, _ = ref(torch.as_tensor(seq[None]).long())
    got = model.prefix(jnp.asarray(seq[None]))[0][0]
    np.testing.assert_allclose(np.asarray(M.action_logits(got)), want[0, -1].detach().numpy(), rtol=1e-4, atol=1e-4)


def test_the_torch_reference_gradient_does_not_depend_on_its_chunks():
    import torch

    from sims.scaleup import torch_ref

    t = tasks.get("parity")
    prompts, targets = torch.as_tensor(t.prompts[:8]).long(), torch.as_tensor(t.targets[:8]).long()
    ref = torch_ref.Policy(16, 1, 2, t.prompt_len + t.completion_len).double()
    with torch.no_grad():  # answers drawn from {0, 1, EOS}: groups with mixed rewards
        ref.head.bias[torch.as_tensor(tok.encode("01").tolist() + [tok.EOS])] = 10.0
    grads = []
    for chunks in (1, 4):
        torch.manual_seed(3)
        torch_ref.train_step(ref, torch.optim.SGD(ref.parameters(), lr=0.0), prompts, targets, 8,
                             t.completion_len, chunks)
        grads.append(torch.cat([q.grad.ravel() for q in ref.parameters()]).numpy().copy())
    assert np.abs(grads[0]).max() > 1e-3
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-10, atol=1e-14)
