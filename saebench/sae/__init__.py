"""Sparse autoencoders as saebench reads them: :mod:`~saebench.sae.base`, the one internal
representation; :mod:`~saebench.sae.adapters`, any SAE object seen through the interface the
scorer reads; :mod:`~saebench.sae.formats`, SAELens and dictionary_learning files.

The internal representation's names are re-exported here (``from saebench.sae import SAE``)."""

from saebench.sae.base import ARCHITECTURES, SAE, SAEMeta

__all__ = ["ARCHITECTURES", "SAE", "SAEMeta"]
