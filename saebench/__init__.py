"""saebench: rate sparse autoencoders against supervised feature dictionaries.

Metric definitions live in one module per axis: :mod:`saebench.approximation`,
:mod:`saebench.control` and :mod:`saebench.interpretability`; ``../shared/SPEC.md`` (mirrored
in the README) is the reference they follow.
"""

__version__ = "0.1.0"
