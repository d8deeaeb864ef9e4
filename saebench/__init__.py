"""saebench: rate sparse autoencoders against supervised feature dictionaries.

Metric definitions live in one module per axis: :mod:`saebench.metrics.approximation`,
:mod:`saebench.metrics.control` and :mod:`saebench.metrics.interpretability`;
``docs/metrics.md`` (summarised in the README) is the reference they follow.

The Python API (:mod:`saebench.api`, README "Python API"):

- ``evaluate_sae(sae, model=..., task="ioi", position="END", ...)`` scores one SAE (a sae-lens
  SAE, a dictionary_learning dictionary, a :class:`saebench.sae.SAE`, a path or release id,
  or any :class:`SAELike` object) and returns an :class:`SAEResult`;
- ``evaluate_saes([sae1, sae2, ...], model=...)`` scores several, sharing the work that does
  not depend on the SAE.

Importing ``saebench`` loads neither torch nor TransformerLens; these names load them when
first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["SAELike", "SAEResult", "evaluate_sae", "evaluate_saes", "__version__"]

_LAZY = {
    "evaluate_sae": "saebench.api",
    "evaluate_saes": "saebench.api",
    "SAEResult": "saebench.api",
    "SAELike": "saebench.sae.adapters",
}

if TYPE_CHECKING:
    from saebench.api import SAEResult, evaluate_sae, evaluate_saes
    from saebench.sae.adapters import SAELike


def __getattr__(name: str) -> Any:
    """Import the API on first use (``saebench.__version__`` stays cheap to read)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'saebench' has no attribute {name!r}")
