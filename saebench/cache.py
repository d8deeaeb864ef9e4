"""On-disk cache of fitted supervised dictionaries, keyed by everything they depend on.

The key is a SHA-256 of a JSON description (model name, weight processing, a fingerprint
of the weights, task and its vocabulary, node, number of fitting prompts, seed and the
saebench version). Entries are a safetensors file plus the JSON key, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from saebench.supervised import SupervisedDictionary


def default_cache_dir() -> Path:
    """``$SAEBENCH_CACHE`` or ``~/.cache/saebench``."""
    return Path(os.environ.get("SAEBENCH_CACHE", Path.home() / ".cache" / "saebench"))


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
    if path.exists():
        tensors = load_file(str(path))
        meta = json.loads(path.with_suffix(".json").read_text())
        return SupervisedDictionary(
            meta["kind"],
            tensors["features_FD"],
            tensors["bias_D"],
            meta["attribute_sizes"],
            tensors["present_F"].bool(),
        )
    dictionary = fit()
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "kind": dictionary.kind,
        "attribute_sizes": dictionary.attribute_sizes,
        "key": description,
    }
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tmp_st, tmp_json = Path(tmp) / "d.safetensors", Path(tmp) / "d.json"
        save_file(
            {
                "features_FD": dictionary.features_FD.contiguous().cpu(),
                "bias_D": dictionary.bias_D.contiguous().cpu(),
                "present_F": dictionary.present_F.to(torch.uint8).cpu(),
            },
            str(tmp_st),
        )
        tmp_json.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(tmp_json, path.with_suffix(".json"))
        os.replace(tmp_st, path)
    return dictionary
