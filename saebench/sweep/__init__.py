"""Sweeps (docs/sweeps.md): :mod:`~saebench.sweep.spec` reads a TOML spec and expands it into
jobs, one per model and node; :mod:`~saebench.sweep.execute` runs them, in this process or on
Ray."""
