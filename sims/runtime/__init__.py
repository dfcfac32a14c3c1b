"""The ground floor of `sims` (docs/design.md §1): progress bars, the process's memory-map budget and
atomic file writes. Imports nothing of the lab."""
