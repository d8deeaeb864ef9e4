"""The three metric axes, one module each (docs/metrics.md): :mod:`~saebench.metrics.approximation`
(§4), :mod:`~saebench.metrics.control` (§5) and :mod:`~saebench.metrics.interpretability`
(§6, §7)."""
