"""Tokens/s of the compiled JAX train step beside the PyTorch reference, one thread each.

Run as `python -m sims.scaleup.bench` (XLA's and torch's thread pools are pinned to one thread
before either library starts); prints one JSON object. `sims.bench` (`make bench`) calls it.
Shapes: P prompts × G completions × T completion tokens, 2 layers, width 128, 4 heads.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1").strip()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

SHAPES = [("addition", 8, 8), ("longreverse", 64, 8)]  # (task, P, G): T = 4 and 16


def _timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def jax_row(task, p, g, repeats):
    import jax

    from sims.scaleup import tasks
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
    from flax import nnx

    from sims.scaleup import rollout

    sample = jax.jit(lambda prm, x, k: rollout.sample(nnx.merge(graphdef, prm), x, k, g, t_.completion_len))
    prompts = pool_p[:p]
    jax.block_until_ready(sample(state["params"], prompts, key))
    rollout_s = _timed(lambda: jax.block_until_ready(sample(state["params"], prompts, key)), repeats)
    return _timed(run, repeats), compile_s, t_.prompt_len, t_.completion_len, rollout_s


def torch_row(task, p, g, repeats):
    import numpy as np
    import torch

    from sims.scaleup import tasks, torch_ref

    torch.set_num_threads(1)
    torch.manual_seed(0)
    t_ = tasks.get(task)
    model = torch_ref.Policy(128, 2, 4, t_.prompt_len + t_.completion_len)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)

    def run():
        idx = rng.integers(0, t_.size, p)
        torch_ref.train_step(model, opt, torch.as_tensor(t_.prompts[idx]).long(),
                             torch.as_tensor(t_.targets[idx]).long(), g, t_.completion_len)

    run()
    return _timed(run, repeats)


def main():
    quick = "--quick" in sys.argv
    rows = []
    for task, p, g in SHAPES:
        repeats = 3 if quick else 10
        jt, compile_s, tp, t, rollout_s = jax_row(task, p, g, repeats)
        tt = torch_row(task, p, g, repeats)
        comp, total = p * g * t, p * g * (tp + t)
        rows.append({"shape": f"{p}x{g}x{t}", "prompt_tokens": tp, "jax_step_s": jt, "torch_step_s": tt,
                     "jax_completion_tokens_per_s": comp / jt, "torch_completion_tokens_per_s": comp / tt,
                     "jax_total_tokens_per_s": total / jt, "torch_total_tokens_per_s": total / tt,
                     "speedup": tt / jt, "jax_compile_s": compile_s,
                     "jax_rollout_s": rollout_s, "jax_rollout_fraction": rollout_s / jt,
                     "target": 2.0 if t == 4 else 3.0, "meets_target": tt / jt >= (2.0 if t == 4 else 3.0)})
    print(json.dumps({"threads": 1, "rows": rows}))


if __name__ == "__main__":
    main()
