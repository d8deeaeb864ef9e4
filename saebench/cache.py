"""On-disk cache of fitted supervised dictionaries, keyed by everything they depend on.

The key is a SHA-256 of a JSON description (model name, weight processing, a fingerprint
of the weights, task and its vocabulary, node, number of fitting prompts, seed and the
saebench version). Entries are a safetensors file plus the JSON key, written atomically.
The sidecar holds the SHA-256 of the tensors file. The cache is derived data: an entry that
cannot be read (truncated, its sidecar missing), whose checksum does not match, whose shapes do
not fit the task's attribute values, or that holds NaN or infinite values is a miss, refitted
and rewritten with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load, save

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
            return _read_entry(path, description)
        except Exception as err:  # noqa: BLE001 - derived data: any damage is a miss
            logger.warning("supervised cache entry %s is unusable (%s); refitting", path, err)
    dictionary = fit()
    try:
        _write_entry(path, dictionary, description)
    except OSError as err:  # a cache that cannot be written costs a refit next time, no more
        logger.warning("could not cache the supervised dictionary in %s (%s)", path, err)
    return dictionary


def _read_entry(path: Path, description: dict | None = None) -> SupervisedDictionary:
    """The dictionary stored at ``path`` (safetensors) and its ``.json`` sidecar; ``ValueError``
    when the tensors' SHA-256 is not the sidecar's, their shapes do not fit the attribute
    sizes (or ``description``'s values), or a value is not finite."""
    data = path.read_bytes()
    meta = json.loads(path.with_suffix(".json").read_text())
    if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        raise ValueError("its checksum does not match its sidecar's")
    tensors = load(data)
    if description is not None and meta.get("kind") != description.get("kind", meta.get("kind")):
        raise ValueError(f"it holds a {meta.get('kind')!r} dictionary")
    sizes = meta["attribute_sizes"]
    if not isinstance(sizes, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes.values()
    ):
        raise ValueError("its attribute sizes are malformed")
    if description is not None and "attribute_values" in description:
        want = {a: len(v) for a, v in description["attribute_values"].items()}
        if sizes != want:
            raise ValueError(f"attribute sizes {sizes} are not the task's {want}")
    features_FD, bias_D, present_F = (
        tensors["features_FD"],
        tensors["bias_D"],
        tensors["present_F"],
    )
    n_features = sum(sizes.values())
    if (
        features_FD.ndim != 2
        or features_FD.shape[0] != n_features
        or bias_D.shape != (features_FD.shape[1],)
        or present_F.shape != (n_features,)
    ):
        raise ValueError(
            f"shapes {tuple(features_FD.shape)}, {tuple(bias_D.shape)}, "
            f"{tuple(present_F.shape)} do not fit {n_features} features"
        )
    if not (torch.isfinite(features_FD).all() and torch.isfinite(bias_D).all()):
        raise ValueError("it holds NaN or infinite values")
    return SupervisedDictionary(meta["kind"], features_FD, bias_D, sizes, present_F.bool())


def _write_entry(path: Path, dictionary: SupervisedDictionary, description: dict) -> None:
    """Store ``dictionary`` at ``path``: the sidecar first, then the tensors, each atomically
    (a reader finding the tensors finds their sidecar)."""
    data = save(
        {
            "features_FD": dictionary.features_FD.contiguous().cpu(),
            "bias_D": dictionary.bias_D.contiguous().cpu(),
            "present_F": dictionary.present_F.to(torch.uint8).cpu(),
        }
    )
    meta = {
        "kind": dictionary.kind,
        "attribute_sizes": dictionary.attribute_sizes,
        "key": description,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=1, default=str))
    atomic_write(path, data)
