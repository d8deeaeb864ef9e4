"""The ``saebench`` command line: the group in :mod:`saebench.cli.main`, one module per
command or command group beside it, :mod:`saebench.cli.common` for what they share, and the
tables ``saebench run`` prints (:mod:`saebench.cli.report` for one SAE,
:mod:`saebench.cli.comparison_table` for several).

Importing this package imports no torch (``saebench --help`` stays fast)."""

from saebench.cli.main import main

__all__ = ["main"]
