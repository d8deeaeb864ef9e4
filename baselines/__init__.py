"""Baseline SAEs for saebench: trainers for the paper's architectures and reference dictionaries.

- :func:`train_sae` (:mod:`saebench_baselines.trainers`): ``standard`` (ReLU + L1), ``gated``,
  ``topk`` and ``batchtopk`` SAEs on an activation matrix, optionally with the decoder frozen at
  initialisation; returns a :class:`saebench.sae.SAE` on raw activations and a training report.
- :func:`pca_sae`, :func:`random_sae` (:mod:`saebench_baselines.reference`): PCA and random
  dictionaries written as exact ReLU SAEs.

Every result is a :class:`saebench.sae.SAE`, saveable with
:func:`saebench.sae.formats.save_saelens`.
"""

from saebench_baselines.architectures import ARCHITECTURES
from saebench_baselines.reference import pca_sae, random_sae
from saebench_baselines.trainers import train_sae

__all__ = ["ARCHITECTURES", "pca_sae", "random_sae", "train_sae"]
