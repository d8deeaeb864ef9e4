"""Expand ``--sae`` values (paths, globs, folders of SAEs) into single SAEs with unique names.

One ``--sae`` value may stand for many SAEs:

- a **glob** (``sweep/*/trainer_*``, ``sweeps/*``): every match, each expanded as below;
- a **folder holding several SAEs**: every SAE directory beneath it, in sorted order. An SAE
  directory is a SAELens one (``cfg.json``) or a dictionary_learning one (``ae.pt``), as
  :func:`saebench.sae.formats.load_sae` tells them apart; the folder is not searched below one. A
  dictionary_learning ``trainSAE`` output (``DIR/trainer_0/ae.pt`` + ``config.json``, ...,
  ``trainer_N/``) is such a folder;
- **checkpoints**: ``ae_N.pt`` files in a ``checkpoints`` folder next to a dictionary_learning
  ``config.json`` (what ``trainSAE(save_steps=...)`` writes). They are scored when the value
  names the ``checkpoints`` folder or an ``ae_N.pt`` file, or when ``checkpoints=True`` (CLI
  ``--checkpoints``) for the trainers found in a folder.

Anything else (a single SAE directory, a release id ``RELEASE/SAE_ID``, ``supervised:mean``, a
path that does not exist) stays one value, for :func:`load` to load or reject.

Every SAE gets a name that is unique within the call and says where it came from: the SAE's
directory name for a value that is one SAE; ``ROOT/RELATIVE/PATH`` for an SAE found in folder
``ROOT`` (``trainSAE-dir/trainer_3``); a dictionary_learning ``trainer_N`` always keeps its
parent folder's name; a checkpoint is ``TRAINER/ae_N`` (``trainSAE-dir/trainer_3/ae_400``).
Names that would still collide get more of their path. The per-run JSON path is made from the
name, so two SAEs of one call never write the same JSON.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from saebench.sae import SAE
from saebench.sae.formats import (
    DL_CFG,
    DL_WEIGHTS,
    SAELENS_CFG,
    SAELENS_WEIGHTS,
    SAELoadError,
    load_dictionary_learning_dir,
    load_sae,
)

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
"""Folder of dictionary_learning checkpoints, next to the trainer's ``config.json``."""
_CHECKPOINT_RE = re.compile(r"^ae_(\d+)\.pt$")
_TRAINER_RE = re.compile(r"^trainer_\d+$")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Found:
    """One SAE a ``--sae`` value stands for (or why the value stands for none)."""

    spec: str
    """What :func:`load` takes: an SAE directory, a checkpoint file, a release id, ..."""
    name: str
    """Unique, meaningful name within the call (``trainSAE-dir/trainer_3``)."""
    value: str
    """The ``--sae`` value it came from."""
    error: str | None = None
    """Why the value gave no SAE (a glob that matches none); None when it did."""


def expand(values: list[str] | tuple[str, ...], checkpoints: bool = False) -> list[Found]:
    """Every SAE the ``--sae`` values stand for, in order, each once, with unique names.

    A value that matches nothing gives one :class:`Found` with ``error`` set, so the caller
    can report it and go on with the others.
    """
    items: list[tuple[_Item, str, str | None]] = []  # item, value, error
    seen: set[str] = set()
    for value in values:
        found = _expand_value(value, checkpoints)
        if not found:
            items.append((_Item(value, (value,), None), value, f"{value}: no SAE matches"))
            continue
        for item in found:
            key = _key(item.spec)
            if key not in seen:
                seen.add(key)
                items.append((item, value, None))
    names = _unique_names([item for item, _, _ in items])
    return [
        Found(spec=item.spec, name=name, value=value, error=error)
        for (item, value, error), name in zip(items, names, strict=True)
    ]


@dataclass(frozen=True)
class _Item:
    """One SAE found, before names are made unique."""

    spec: str
    parts: tuple[str, ...]
    """Name parts, ``/``-joined into the name."""
    anchor: Path | None
    """The folder ``parts[0]`` names (its parents lengthen a colliding name); None when the
    value is no local path."""


def load(spec: str, device: str = "cpu") -> SAE:
    """Load one SAE :func:`expand` found: a dictionary_learning checkpoint ``ae_N.pt`` (with
    the ``config.json`` of its trainer; ``meta.training_step`` = N), else
    :func:`saebench.sae.formats.load_sae`."""
    path = Path(spec).expanduser()
    match = _CHECKPOINT_RE.match(path.name)
    if path.is_file() and match:
        return load_checkpoint(path, device=device)
    return load_sae(spec, device=device)


def load_checkpoint(path: Path, device: str = "cpu") -> SAE:
    """A dictionary_learning checkpoint ``.../checkpoints/ae_N.pt``, read with the trainer's
    ``config.json`` (in the folder above ``checkpoints``, or beside the file)."""
    match = _CHECKPOINT_RE.match(path.name)
    if not match:
        raise SAELoadError(f"{path}: not a checkpoint file (expected ae_N.pt)")
    config = _checkpoint_config(path)
    with tempfile.TemporaryDirectory(prefix="saebench-ckpt-") as tmp:
        # the loader reads DIR/ae.pt + DIR/config.json: point both at the checkpoint's files
        view = Path(tmp)
        _link(path.resolve(), view / DL_WEIGHTS)
        if config is not None:
            _link(config.resolve(), view / DL_CFG)
        try:
            sae = load_dictionary_learning_dir(view, device=device)
        except SAELoadError as exc:
            raise SAELoadError(str(exc).replace(str(view / DL_WEIGHTS), str(path))) from exc
    sae.meta.source = str(path)
    sae.meta.training_step = int(match.group(1))
    return sae


def _checkpoint_config(path: Path) -> Path | None:
    for folder in (path.parent.parent, path.parent):
        if (folder / DL_CFG).is_file():
            return folder / DL_CFG
    return None


def _link(target: Path, link: Path) -> None:
    try:
        link.symlink_to(target)
    except OSError:  # no symlinks here: copy
        link.write_bytes(target.read_bytes())


def _expand_value(value: str, checkpoints: bool) -> list[_Item]:
    """Every SAE one value stands for; [] for a glob or folder without any."""
    if _GLOB_CHARS.search(value) and not Path(value).expanduser().exists():
        found = []
        for match in sorted(glob.glob(os.path.expanduser(value), recursive=True)):
            # each match as a path: an SAE, a checkpoint, or a folder searched for SAEs (an
            # SAE that several matches reach, as with saes/**, counts once, named by the first)
            try:
                found.extend(_expand_path(Path(match), checkpoints))
            except (OSError, RuntimeError) as err:  # e.g. a symlink loop: not an SAE
                logger.warning("skipping %s: %s", match, getattr(err, "strerror", None) or err)
        return found
    path = Path(value).expanduser()
    if not path.exists():  # a release id, supervised:..., or a missing path: load() says
        parts = _value_parts(value)
        return [_Item(value, parts, None)]
    found = _expand_path(path, checkpoints)
    if not found:  # no SAE here: load() says why (e.g. a folder without cfg.json or ae.pt)
        return [_Item(value, (_name_of(path),), path.resolve())]
    return found


def _expand_path(path: Path, checkpoints: bool) -> list[_Item]:
    """The SAEs at an existing path: itself, its checkpoints, or the SAE dirs beneath it."""
    if path.is_file():
        if _CHECKPOINT_RE.match(path.name):
            return [_checkpoint_item(path)]
        if path.name in (SAELENS_CFG, SAELENS_WEIGHTS, DL_WEIGHTS, DL_CFG):
            return _expand_path(path.parent, checkpoints)
        return []
    if path.name == CHECKPOINTS_DIR and _checkpoint_files(path):
        return [_checkpoint_item(f) for f in _checkpoint_files(path)]
    if _is_sae_dir(path):
        found = [_dir_item(path)]
        if checkpoints:
            found += [_checkpoint_item(f) for f in _checkpoint_files(path / CHECKPOINTS_DIR)]
        return found
    found = []
    root = path.resolve()
    for directory in _sae_dirs_under(path, checkpoints):
        if directory.name == CHECKPOINTS_DIR:
            found += [_checkpoint_item(f) for f in _checkpoint_files(directory)]
        else:
            relative = directory.relative_to(path).parts
            found.append(_Item(str(directory), (_name_of(path), *relative), root))
    return found


def _sae_dirs_under(root: Path, checkpoints: bool) -> list[Path]:
    """SAE directories below ``root`` (not searched below one) and, with ``checkpoints``,
    the checkpoint folders of dictionary_learning trainers, in sorted order."""
    found = []
    for current, subdirs, _files in os.walk(root):
        here = Path(current)
        subdirs.sort()
        if here != root and _is_sae_dir(here):
            found.append(here)
            if checkpoints and _checkpoint_files(here / CHECKPOINTS_DIR):
                found.append(here / CHECKPOINTS_DIR)
            subdirs[:] = []
        elif here.name == CHECKPOINTS_DIR:
            if checkpoints and _checkpoint_files(here):
                found.append(here)
            subdirs[:] = []
    return sorted(found)


def _is_sae_dir(path: Path) -> bool:
    """A SAELens (``cfg.json``) or dictionary_learning (``ae.pt``) directory, as
    :func:`saebench.sae.formats.load_sae` dispatches (a missing weights file is its error)."""
    return path.is_dir() and ((path / SAELENS_CFG).is_file() or (path / DL_WEIGHTS).is_file())


def _checkpoint_files(folder: Path) -> list[Path]:
    """``ae_N.pt`` files of a checkpoints folder, by step."""
    if not folder.is_dir():
        return []
    steps = {f: _CHECKPOINT_RE.match(f.name) for f in folder.iterdir() if f.is_file()}
    return sorted((f for f, m in steps.items() if m), key=lambda f: int(steps[f].group(1)))


def _name_of(path: Path) -> str:
    return path.name or path.resolve().name or "sae"


def _dir_item(path: Path) -> _Item:
    """An SAE directory given on its own: its name, with its parent's for a
    dictionary_learning ``trainer_N`` (every trainSAE output has a ``trainer_0``)."""
    resolved = path.resolve()
    if _TRAINER_RE.match(resolved.name):
        return _Item(str(path), (resolved.parent.name, resolved.name), resolved.parent)
    return _Item(str(path), (resolved.name,), resolved)


def _checkpoint_item(path: Path) -> _Item:
    """``TRAINER/ae_N`` (with TRAINER named as :func:`_dir_item` names it) for
    ``TRAINER/checkpoints/ae_N.pt``."""
    folder = path.resolve().parent
    trainer = folder.parent if folder.name == CHECKPOINTS_DIR else folder
    item = _dir_item(trainer)
    return _Item(str(path), (*item.parts, path.stem), item.anchor)


def _value_parts(value: str) -> tuple[str, ...]:
    """Name parts of a value that is no local path: a release id keeps all of it."""
    if value.startswith(("/", ".", "~")):
        return (_name_of(Path(value)),)
    return tuple(part for part in value.split("/") if part) or (value,)


def _key(spec: str) -> str:
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def _unique_names(items: list[_Item]) -> list[str]:
    """``/``-joined names; while names collide, each colliding one gets the name of one more
    folder above its anchor; names that cannot grow get ``#2``, ``#3``..."""
    parts = [list(item.parts) for item in items]
    anchors = [item.anchor for item in items]
    while True:
        names = ["/".join(p) for p in parts]
        grown = False
        for i, name in enumerate(names):
            anchor = anchors[i]
            if names.count(name) > 1 and anchor is not None and anchor.parent != anchor:
                anchors[i] = anchor.parent
                parts[i].insert(0, anchor.parent.name or anchor.parent.anchor)
                grown = True
        if not grown:
            break
    result: list[str] = []
    for name in names:
        unique, index = name, 1
        while unique in result:
            index += 1
            unique = f"{name}#{index}"
        result.append(unique)
    return result
