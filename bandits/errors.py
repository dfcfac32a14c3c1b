"""The one error type for bad user input; the CLI turns it into a one-line message and exit code 2."""


class InputError(ValueError):
    """Raised for invalid user input (lengths, probabilities, names, group sizes, ...)."""


MAX_SEED = 2**63 - 1


def check_seed(seed, what: str = "seed") -> int:
    """Seeds are integers in [0, 2⁶³ − 1] (what `jax.random.key` and numpy accept)."""
    if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "__index__"):
        raise InputError(f"{what} must be an integer in [0, 2^63 - 1], got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"{what} must be an integer in [0, 2^63 - 1], got {seed}")
    return seed
