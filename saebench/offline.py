"""Fast failures without network: a SAELens release or a pretrained model that is not in the
local Hugging Face cache fails at once, in one line, when the hub is offline
(``HF_HUB_OFFLINE``) or unreachable, instead of after a minute of retries.

Nothing here imports torch, sae_lens or TransformerLens: the release's repository is read from
sae_lens's ``pretrained_saes.yaml`` (only the release's own entry is parsed), the model's from
TransformerLens's tables of official names and aliases (read from its source with :mod:`ast`),
and the cache is looked at on disk. A repository that is partly cached is left to the loaders
(they run offline then, so they do not retry either).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

HUB_TIMEOUT_S = 1.0
"""How long to wait for the hub to accept a connection before calling it unreachable."""


class OfflineError(RuntimeError):
    """What is asked for is not in the local cache and the hub cannot be reached."""


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    values = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(v.strip().lower() in ("1", "true", "yes", "on") for v in values)


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the hub's endpoint (``HF_ENDPOINT``, else huggingface.co) accepts a TCP
    connection within ``timeout`` seconds."""
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_cache() -> Path:
    """The Hugging Face hub cache (``HF_HUB_CACHE``, ``HF_HOME/hub``, ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def repo_cached(repo_id: str) -> bool:
    """Whether the cache holds any snapshot of model repository ``repo_id``."""
    snapshots = hub_cache() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def _package_file(package: str, name: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / name
    return path if path.is_file() else None


def release_repo(spec: str) -> tuple[str, str, str] | None:
    """(release, sae_id, repo_id) of ``RELEASE/SAE_ID`` from sae_lens's directory, or None
    when sae_lens is absent or has no such release or SAE (the loader then says why)."""
    import yaml

    path = _package_file("sae_lens", "pretrained_saes.yaml")
    if path is None:
        return None
    text = path.read_text(encoding="utf-8")
    parts = spec.split("/")
    for i in range(1, len(parts)):
        release, sae_id = "/".join(parts[:i]), "/".join(parts[i:])
        start = text.find(f"\n{release}:\n")
        if start < 0 and text.startswith(f"{release}:\n"):
            start = -1
        elif start < 0:
            continue
        end = start + 1
        while True:  # the entry ends at the next top-level key
            end = text.find("\n", end + 1)
            if end < 0 or (end + 1 < len(text) and text[end + 1] not in " \n#-"):
                break
        chunk = text[start + 1 : None if end < 0 else end]
        try:
            entry = yaml.safe_load(chunk)[release]
        except (yaml.YAMLError, KeyError, TypeError):
            return None
        repo_id = entry.get("repo_id") if isinstance(entry, dict) else None
        ids = {str(s.get("id")) for s in entry.get("saes") or [] if isinstance(s, dict)}
        if not isinstance(repo_id, str) or sae_id not in ids:
            return None  # the loader names what is wrong
        return release, sae_id, repo_id
    return None


@lru_cache(maxsize=1)
def _transformer_lens_names() -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """TransformerLens's ``OFFICIAL_MODEL_NAMES`` and ``MODEL_ALIASES``, read from its
    source without importing it (empty when they cannot be read)."""
    names: tuple[str, ...] = ()
    aliases: dict[str, list[str]] = {}
    for module in ("supported_models.py", "loading_from_pretrained.py"):
        path = _package_file("transformer_lens", module)
        if path is None:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
        for node in tree.body:
            targets = []
            if isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            try:
                if "OFFICIAL_MODEL_NAMES" in targets and not names:
                    names = tuple(ast.literal_eval(node.value))
                if "MODEL_ALIASES" in targets and not aliases:
                    aliases = dict(ast.literal_eval(node.value))
            except (ValueError, TypeError, SyntaxError):
                continue
    return names, aliases


def model_repo(name: str) -> str | None:
    """The Hugging Face repository TransformerLens loads ``name`` from (its official name,
    through its aliases), or None when it is not one TransformerLens knows."""
    names, aliases = _transformer_lens_names()
    if name in names:
        return name
    lowered = name.lower()
    for official, alias_list in aliases.items():
        if lowered in (a.lower() for a in alias_list) or lowered == official.lower():
            return official
    return None


def unreachable() -> str | None:
    """Why the hub cannot be used (offline, unreachable), or None when it can."""
    if hub_offline():
        return "the Hugging Face hub is offline (HF_HUB_OFFLINE)"
    if not hub_reachable():
        return "the Hugging Face hub cannot be reached"
    return None


def check_release(spec: str) -> None:
    """:class:`OfflineError` when release ``spec`` has nothing in the local cache and the
    hub cannot be used."""
    found = release_repo(spec)
    if found is None or repo_cached(found[2]):
        return
    why = unreachable()
    if why is not None:
        raise OfflineError(
            f"{spec}: release {found[0]!r} ({found[2]}) is not in the local Hugging Face cache "
            f"({hub_cache()}) and {why}; download it once with network, or score a local SAE "
            "directory (cfg.json + sae_weights.safetensors)"
        )


def check_model(name: str) -> None:
    """:class:`OfflineError` when pretrained model ``name`` has nothing in the local cache
    and the hub cannot be used (embedded and unknown names are left to the loader)."""
    repo = model_repo(name)
    if repo is None or repo_cached(repo):
        return
    why = unreachable()
    if why is not None:
        raise OfflineError(
            f"cannot load model {name!r}: {repo} is not in the local Hugging Face cache "
            f"({hub_cache()}) and {why}; use --model tiny-ioi (shipped with saebench) or run "
            "once with network access"
        )
