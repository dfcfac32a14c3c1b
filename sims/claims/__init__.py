"""Claims of the ledger, one topic module each (docs/design.md §2); `load_all()` imports them."""

import importlib
import pkgutil


def load_all() -> dict:
    """Import every topic module of this package (each registers its claims on import) and return
    the registry, claim id → `sims.ledger.Claim`, that `sims.ledger.run` is handed."""
    from sims import ledger

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return ledger.REGISTRY
