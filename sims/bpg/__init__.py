"""Bayesian policy gradients (docs/design.md §4.6): the closed-form Bayesian-quadrature posterior
(`quadrature`), the same posterior through gpytorch (`gpytorch_path`) and the calibration data sets
(`experiments`)."""
