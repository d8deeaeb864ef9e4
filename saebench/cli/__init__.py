"""The ``saebench`` command line: the group in :mod:`saebench.cli.main`, one module per
command or command group beside it, and :mod:`saebench.cli.common` for what they share.

Importing this package imports no torch (``saebench --help`` stays fast)."""

from saebench.cli.main import main

__all__ = ["main"]
