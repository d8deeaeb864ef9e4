"""Uncertainty (docs/metrics.md §11): :mod:`~saebench.stats.bootstrap`, intervals over the
evaluation prompts; :mod:`~saebench.stats.compare`, paired differences between two scored
dictionaries; :mod:`~saebench.stats.seeds`, the spread across seeds."""
