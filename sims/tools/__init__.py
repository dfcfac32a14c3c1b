"""Developer entry points run with `python -m` (docs/design.md §1): the benchmarks (`make bench`), the
notebooks (`make notebooks`) and the generated documents (`make docs`). No library module imports them."""
