"""Sampling G completions per prompt: KV-cached decoding in one `lax.scan`.

Temperature τ > 0 samples y_t ~ softmax(logits/τ) over the action tokens; τ = 0 is greedy.
After a sequence emits EOS every later token is PAD and is masked out of the loss. The prompt's
prefix is computed once per prompt and shared by its G members.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sims.scaleup import tokenizer as tok
from sims.scaleup.model import Policy, action_logits


def _draw(key, logits, temperature):
    logits = action_logits(logits)
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


def sample(model: Policy, prompts, key, group: int, length: int, temperature: float = 1.0):
    """prompts (P, Tp) → completions (P, G, T) int32 (PAD after EOS) and the loss mask (P, G, T),
    1 up to and including EOS. Call inside `jit`; `group`, `length` and `temperature` are static."""
    p = prompts.shape[0]
    first, kv = model.prefix(prompts)
    logits = jnp.broadcast_to(first[:, None, :], (p, group, first.shape[-1]))
    cache = model.empty_cache(p, group, length)
    done = jnp.zeros((p, group), bool)

    def emit(key_t, logits, done):
        token = jnp.where(done, tok.PAD, _draw(key_t, logits, temperature))
        return token, done | (token == tok.EOS)

    def body(carry, t):
        logits, cache, done = carry
        token, new_done = emit(jax.random.fold_in(key, t), logits, done)
        logits, cache = model.step(token, t, kv, cache)
        return (logits, cache, new_done), (token, ~done)

    (logits, _, done_last), (tokens, live) = jax.lax.scan(
        body, (logits, cache, done), jnp.arange(length - 1))
    last, _ = emit(jax.random.fold_in(key, length - 1), logits, done_last)
    tokens = jnp.concatenate([tokens, last[None]], axis=0).transpose(1, 2, 0)
    live = jnp.concatenate([live, (~done_last)[None]], axis=0).transpose(1, 2, 0)
    return tokens, live.astype(jnp.float32)
