"""JAX numerics of the lab. Float64 is on for every module of the package (docs/design.md §3)."""

import jax

jax.config.update("jax_enable_x64", True)
