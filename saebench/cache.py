"""On-disk cache of fitted supervised dictionaries, keyed by everything they depend on.

The key is a SHA-256 of a JSON description (model name, weight processing, a fingerprint
of the weights, task and its vocabulary, node, number of fitting prompts, seed and the
saebench version). Entries are a safetensors file plus the JSON key, written atomically.
The cache is derived data: an entry that cannot be read (truncated, its sidecar missing) is a
miss, refitted and rewritten with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from saebench.io_utils import atomic_write, default_cache_dir
from saebench.supervised import SupervisedDictionary

__all__ = ["cache_key", "cached_supervised", "default_cache_dir", "model_fingerprint"]

logger = logging.getLogger(__name__)


def model_fingerprint(model) -> str:
    """A short hash of the model's config and a slice of its embedding and unembedding."""
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True, default=str).encode())
    for tensor in (model.W_E[:32], model.W_U[:, :32], model.blocks[-1].attn.W_O.flatten()[:256]):
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_key(description: dict) -> str:
    return hashlib.sha256(
        json.dumps(description, sort_keys=True, default=str).encode()
    ).hexdigest()[:24]


def cached_supervised(
    description: dict, cache_dir: Path | None, fit: Callable[[], SupervisedDictionary]
) -> SupervisedDictionary:
    """The dictionary cached under ``description``, or ``fit()`` and store it (no cache: fit)."""
    if cache_dir is None:
        return fit()
    path = Path(cache_dir) / "supervised" / f"{cache_key(description)}.safetensors"
    if path.exists() or path.with_suffix(".json").exists():
        try:
            return _read_entry(path)
        except Exception as err:  # noqa: BLE001 - derived data: any damage is a miss
            logger.warning("supervised cache entry %s is unreadable (%s); refitting", path, err)
    dictionary = fit()
    try:
        _write_entry(path, dictionary, description)
    except OSError as err:  # a cache that cannot be written costs a refit next time, no more
        logger.warning("could not cache the supervised dictionary in %s (%s)", path, err)
    return dictionary


def _read_entry(path: Path) -> SupervisedDictionary:
    """The dictionary stored at ``path`` (safetensors) and its ``.json`` sidecar."""
    tensors = load_file(str(path))
    meta = json.loads(path.with_suffix(".json").read_text())
    return SupervisedDictionary(
        meta["kind"],
        tensors["features_FD"],
        tensors["bias_D"],
        meta["attribute_sizes"],
        tensors["present_F"].bool(),
    )


def _write_entry(path: Path, dictionary: SupervisedDictionary, description: dict) -> None:
    """Store ``dictionary`` at ``path``: the sidecar first, then the tensors, each atomically
    (a reader finding the tensors finds their sidecar)."""
    meta = {
        "kind": dictionary.kind,
        "attribute_sizes": dictionary.attribute_sizes,
        "key": description,
    }
    data = save(
        {
            "features_FD": dictionary.features_FD.contiguous().cpu(),
            "bias_D": dictionary.bias_D.contiguous().cpu(),
            "present_F": dictionary.present_F.to(torch.uint8).cpu(),
        }
    )
    atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=1, default=str))
    atomic_write(path, data)
