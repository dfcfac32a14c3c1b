"""`python -m paper_figs` = `pglab figures` (what `make figures` runs)."""

from sims.cli import main

if __name__ == "__main__":
    import sys

    main(["figures", *sys.argv[1:]])
