"""Tokens/s of the compiled JAX train step beside the PyTorch reference, one thread each.

Run as `python -m sims.scaleup.bench` (the process is pinned to one core, and XLA's and torch's
thread pools to one thread, before either library starts); prints one JSON object.
`sims.tools.bench` (`make bench`) calls it.
Shapes: P prompts × G completions × T completion tokens, 2 layers, width 128, 4 heads.

Every timed callable (the JAX step, the torch step and the parts of each) runs in turn, repeat
after repeat, and each keeps its best time, so the ratios are measured side by side under the
same background load. Where the JAX step's time goes: `jax_rollout_s` (KV-cached sampling),
`jax_grad_s` (the teacher-forced forward and backward pass of the surrogate over the batch, prefix
once per prompt) and `jax_grad_forward_s` (its forward pass alone); the rest of the step (scoring,
advantages, Adam) is what remains of `jax_step_s`. The PyTorch loop runs its gradient pass in the
same chunks of prompts as the JAX step (`trainer.grad_chunks`), since both gain from it.
Each side's dense work is counted (`dense_flops`) and its rate reported in GFLOP/s, so a ratio
can be read as less work (prefix sharing) times a faster rate.
"""

from __future__ import annotations

import os

# One core for both: XLA's CPU runtime keeps thread pools of its own beyond Eigen's (on an idle
# machine the step used 1.6 CPU-seconds per second without this), so the whole process is pinned
# to one core, and XLA and torch are also asked for one thread (cpu_per_wall checks both).
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

SHAPES = [("addition", 8, 8, 50), ("longreverse", 64, 8, 10)]  # (task, P, G, repeats): T = 4 and 16


def _best_interleaved(fns, repeats):
    """Best-of-`repeats` seconds of each named callable, run in turn (A, B, C, A, B, C, …) so that
    every one sees the same background load and the ratios are side by side; also each one's
    process CPU time per wall-clock second over all repeats (about 1 on one thread)."""
    best = {name: float("inf") for name in fns}
    cpu = {name: [0.0, 0.0] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c, t = time.process_time(), time.perf_counter()
            fn()
            wall = time.perf_counter() - t
            best[name] = min(best[name], wall)
            cpu[name][0] += time.process_time() - c
            cpu[name][1] += wall
    return best, {name: c / w for name, (c, w) in cpu.items()}


def _rates(flops, best):
    """GFLOP/s of the dense work (`dense_flops`): JAX's rollout, gradient pass and whole step, and
    the PyTorch rollout and step (its gradient pass is not timed alone)."""
    g = lambda n, s: n / s / 1e9  # noqa: E731
    return {"jax_rollout_gflops": g(flops["jax_rollout"], best["jax_rollout"]),
            "jax_grad_gflops": g(flops["jax_grad"], best["jax_grad"]),
            "jax_step_gflops": g(flops["jax_rollout"] + flops["jax_grad"], best["jax_step"]),
            "torch_rollout_gflops": g(flops["torch_rollout"], best["torch_rollout"]),
            "torch_step_gflops": g(flops["torch_rollout"] + flops["torch_grad"], best["torch_step"]),
            "dense_gflop": {k: v / 1e9 for k, v in flops.items()}}


def jax_parts(task, p, g):
    """The compiled train step and, for the breakdown, its rollout and its gradient pass alone
    (the same functions the step calls, compiled separately). Returns (callables, compile_s)."""
    import jax
    from flax import nnx

    from sims.scaleup import rollout, tasks
    from sims.scaleup import trainer as T

    cfg = T.TrainConfig(task=task, estimator="grpo", group=g, prompts=p, width=128, layers=2, heads=4)
    graphdef, params, opt, opt_state = T.init(cfg)
    step = T.make_step(cfg, graphdef, opt)
    t_ = tasks.get(task)
    opt_state = {"opt": opt_state, "sampler": T.init_sampler(cfg, t_.size)}
    pool_p, pool_t = jax.numpy.asarray(t_.prompts), jax.numpy.asarray(t_.targets)
    key = jax.random.key(0)
    state = {"params": params, "opt": opt_state, "t": 0}
    t0 = time.perf_counter()
    compiled = step.lower(params, opt_state, 0, key, pool_p, pool_t).compile()
    compile_s = time.perf_counter() - t0

    def run():
        state["params"], state["opt"], m = compiled(state["params"], state["opt"], state["t"], key, pool_p, pool_t)
        jax.block_until_ready(m)
        state["t"] += 1

    run()
    prompts, targets = pool_p[:p], pool_t[:p]
    sample = jax.jit(lambda prm, k: rollout.sample(nnx.merge(graphdef, prm), prompts, k, g, t_.completion_len,
                                                   chunks=T.decode_chunks(cfg)))
    comp, mask = sample(state["params"], key)
    adv = T.rollout_and_advantages(cfg, graphdef, state["params"], prompts, targets, key,
                                   {k: jax.numpy.float32(v) for k, v in T.validate(cfg).items()})[-1]
    chunks = T.grad_chunks(cfg, t_.completion_len)
    grad = jax.jit(lambda prm: T.loss_and_grad(graphdef, prm, prompts, comp, mask, adv, cfg.loss_agg, chunks))
    logp = jax.jit(lambda prm: T.M.token_logprobs(nnx.merge(graphdef, prm), prompts, comp))
    parts = {"jax_step": run,
             "jax_rollout": lambda: jax.block_until_ready(sample(state["params"], key)),
             "jax_grad": lambda: jax.block_until_ready(grad(state["params"])),
             "jax_grad_forward": lambda: jax.block_until_ready(logp(state["params"]))}
    for fn in parts.values():
        fn()
    return parts, compile_s


def torch_parts(task, p, g):
    import numpy as np
    import torch

    from sims.scaleup import tasks, torch_ref
    from sims.scaleup import trainer as T

    torch.set_num_threads(1)
    torch.manual_seed(0)
    t_ = tasks.get(task)
    model = torch_ref.Policy(128, 2, 4, t_.prompt_len + t_.completion_len)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    chunks = T.grad_chunks(T.TrainConfig(task=task, group=g, prompts=p), t_.completion_len)

    def run():
        idx = rng.integers(0, t_.size, p)
        torch_ref.train_step(model, opt, torch.as_tensor(t_.prompts[idx]).long(),
                             torch.as_tensor(t_.targets[idx]).long(), g, t_.completion_len, chunks)

    prompts = torch.as_tensor(t_.prompts[:p]).long()
    parts = {"torch_step": run,
             "torch_rollout": lambda: torch_ref.sample(model, prompts, g, t_.completion_len)}
    for fn in parts.values():
        fn()
    return parts


def dense_flops(p, g, tp, t, width=128, layers=2):
    """Dense floating-point operations (2 per multiply-add) of each side's rollout and gradient
    pass, masked attention scores included as computed: a token attending to L keys costs
    layers·(24W² + 4W·L) + 2W·V. JAX: the prefix once per prompt, T − 1 cached decoding steps
    over Tp + T keys, and a teacher-forced pass over the prefix and T − 1 completion tokens (the
    gradient is counted as three forward passes). The PyTorch loop: the same rollout with a cache
    that grows, and a gradient pass over the P·G full sequences of Tp + T − 1 tokens."""
    from sims.scaleup import tokenizer as tok

    f = lambda keys: layers * (24 * width**2 + 4 * width * keys) + 2 * width * tok.VOCAB  # noqa: E731
    prefix = p * tp * f(tp)
    return {"jax_rollout": prefix + (t - 1) * p * g * f(tp + t),
            "jax_grad": 3 * (prefix + p * g * (t - 1) * f(tp + t - 1)),
            "torch_rollout": prefix + sum(p * g * f(tp + s + 1) for s in range(t - 1)),
            "torch_grad": 3 * p * g * (tp + t - 1) * f(tp + t - 1)}


def main():
    import jax

    from sims.scaleup import tasks

    jax.config.update("jax_compilation_cache_dir", None)  # compile times are cold by design

    quick = "--quick" in sys.argv
    rows = []
    for task, p, g, repeats in SHAPES:
        repeats = max(3, repeats // 3) if quick else repeats  # a short step needs more tries
        jparts, compile_s = jax_parts(task, p, g)
        best, cpu = _best_interleaved({**jparts, **torch_parts(task, p, g)}, repeats)
        t_ = tasks.get(task)
        tp, t = t_.prompt_len, t_.completion_len
        jt, tt = best["jax_step"], best["torch_step"]
        comp, total = p * g * t, p * g * (tp + t)
        target = 2.0 if t == 4 else 3.0
        rows.append({"shape": f"{p}x{g}x{t}", "prompt_tokens": tp, "jax_step_s": jt, "torch_step_s": tt,
                     "jax_completion_tokens_per_s": comp / jt, "torch_completion_tokens_per_s": comp / tt,
                     "jax_total_tokens_per_s": total / jt, "torch_total_tokens_per_s": total / tt,
                     "speedup": tt / jt, "jax_compile_s": compile_s,
                     "jax_rollout_s": best["jax_rollout"], "jax_rollout_fraction": best["jax_rollout"] / jt,
                     "jax_grad_s": best["jax_grad"], "jax_grad_fraction": best["jax_grad"] / jt,
                     "jax_grad_forward_s": best["jax_grad_forward"],
                     "torch_rollout_s": best["torch_rollout"], "torch_rollout_fraction": best["torch_rollout"] / tt,
                     "jax_cpu_per_wall": cpu["jax_step"], "torch_cpu_per_wall": cpu["torch_step"],
                     **_rates(dense_flops(p, g, tp, t), best),
                     "target": target, "meets_target": tt / jt >= target})
    print(json.dumps({"threads": 1, "rows": rows}))


if __name__ == "__main__":
    main()
