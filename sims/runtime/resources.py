"""Keep long runs inside the kernel's memory-map limit.

Every XLA compilation maps its machine code into the process (about three maps each, measured
here), and JAX keeps every executable it compiled. A run that compiles many thousands of
functions — the whole ledger, every figure, the test suite — would reach Linux's default
`vm.max_map_count` (65,530), after which LLVM fails with "Cannot allocate memory". Clearing
JAX's caches returns those maps; functions compile again on their next call.
"""

from __future__ import annotations

import gc

MAP_BUDGET = 32_768  # well below the default vm.max_map_count of 65,530


def mapped_regions() -> int | None:
    """How many memory maps this process holds (None where /proc is not available)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def release_compiled_code(budget: int = MAP_BUDGET) -> bool:
    """Clear JAX's compilation caches when the process holds more than `budget` maps; True if it did."""
    n = mapped_regions()
    if n is None or n <= budget:
        return False
    import jax

    jax.clear_caches()
    gc.collect()
    return True
