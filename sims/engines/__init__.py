"""The machines every topic uses (docs/design.md §1): enumeration (`exact`), the one sampling loop
(`montecarlo.stream`), the pass/fail routes (`binary`), tests under Holm (`stats`) and the Monte Carlo
against exact checks (`checks`). No engine imports a topic."""
