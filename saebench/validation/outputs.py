"""Output paths, filled in and checked together before any work.

- :func:`fill_template` fills ``{model}``, ``{task}``, ``{sae}``, ``{node}`` into a path
  template. Each value is made a relative path that cannot climb (no ``..``, no absolute
  part), and the filled path must stay under the template's own folder (the literal part
  before the first placeholder), lexically and with symlinks resolved.
- :func:`check_plan` takes every output of a call (each SAE's JSON and leaderboard) and
  refuses, naming both, any two that are one file where that loses data: a JSON that is a
  leaderboard (or its lock files), two SAEs' JSONs that are one file, two SAEs that would write
  one leaderboard row; a JSON over an existing file that is not a saebench run record
  (:func:`is_run_record`: never an SAE's ``cfg.json``, a sweep record or other JSON); an
  output that is one of the SAEs' own files.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FIELDS = ("model", "task", "sae", "node")
"""The placeholders an output path may use."""
_NAME_MAX = 255
_OPTION = {"json": "--json-out (json_out)", "leaderboard": "--leaderboard (leaderboard)"}
_MAX_JSON_PEEK = 64 * 2**20


def safe_value(value: object) -> str:
    """A template value as a relative path that stays where it is put: ``/``- or
    ``\\``-separated parts are kept as folders, empty and ``.`` parts dropped, parts made only
    of dots (``..``) turned into underscores, NUL bytes replaced.

    >>> safe_value("../x1"), safe_value("/abs/./a"), safe_value(".."), safe_value("")
    ('__/x1', 'abs/a', '__', '_')
    """
    parts = []
    for part in str(value).replace("\\", "/").split("/"):
        part = part.replace("\0", "_")
        if part in ("", "."):
            continue
        if set(part) == {"."}:
            part = "_" * len(part)
        parts.append(part)
    return "/".join(parts) or "_"


def template_base(template: str) -> str | None:
    """The folder a template's filled-in paths must stay under: the directory part of the
    literal text before its first placeholder (``"."`` for none); None without placeholders.

    >>> template_base("runs/{model}/{sae}.json"), template_base("{sae}.json")
    ('runs', '.')
    >>> template_base("a.json") is None
    True
    """
    literal = ""
    for text, name, _spec, _conv in string.Formatter().parse(template):
        literal += text
        if name is not None:
            return os.path.dirname(literal) or "."
    return None


def fill_template(template: str, fields: Mapping[str, object], what: str) -> str:
    """``template`` with the ``fields`` filled in (:func:`safe_value` each); ``ValueError``
    naming ``what`` on another placeholder, a format spec or conversion, a part longer than
    the file system allows, or a filled path that leaves the template's folder."""
    template = str(template)
    what = _OPTION.get(what, what)
    if "\0" in template:
        raise ValueError(f"bad {what} path {template!r}: it contains a NUL byte")
    if not template.strip():
        raise ValueError(f"bad {what} path {template!r}: it is empty")
    values = {k: safe_value(v) for k, v in fields.items()}
    out = []
    try:
        for text, name, spec, conversion in string.Formatter().parse(template):
            out.append(text)
            if name is None:
                continue
            if name not in FIELDS or spec or conversion:
                given = name + (f"!{conversion}" if conversion else "")
                given += f":{spec}" if spec else ""
                raise ValueError(f"{{{given}}} is not one of them")
            out.append(values[name])
    except (ValueError, KeyError) as err:
        raise ValueError(
            f"bad {what} path {template!r}: only {{model}}, {{task}}, {{sae}} and {{node}} may "
            f"be filled in ({err})"
        ) from err
    path = "".join(out)
    long = [p for p in path.split("/") if len(os.fsencode(p)) > _NAME_MAX]
    if long:
        raise ValueError(
            f"{what} path {path!r}: the name {long[0][:40]!r}... is longer than {_NAME_MAX} bytes"
        )
    base = template_base(template)
    if base is not None and not _under(path, base):
        raise ValueError(
            f"{what} path {path!r} (from {template!r}) leaves the folder {base!r}; refusing to "
            "write outside it"
        )
    return path


def _under(path: str, base: str) -> bool:
    """Whether ``path`` stays under ``base``, both lexically and with symlinks resolved."""
    for resolve in (os.path.abspath, os.path.realpath):
        p, b = resolve(path), resolve(base)
        if os.path.commonpath([p, b]) != b:
            return False
    return True


@dataclass
class Planned:
    """One SAE's outputs in a call."""

    owner: str
    """The SAE's name in messages."""
    source: str
    """Where it was loaded from: two outputs of one source do not collide with each other."""
    paths: Mapping[str, str]
    """``json`` and/or ``leaderboard`` paths."""
    row: Sequence[object] | None = None
    """Its leaderboard row identity (None: unknown)."""
    inputs: Sequence[str] = field(default_factory=tuple)
    """The SAE's own files or folder (an output may not be one of them)."""


def _keys(path: str | Path) -> set[object]:
    """What identifies the file ``path`` names: its resolved path and, when it exists, its
    device and inode (hard links)."""
    keys: set[object] = {os.path.normcase(os.path.realpath(path))}
    try:
        st = os.stat(path)
        keys.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    return keys


def _input_files(inputs: Iterable[str]) -> dict[object, str]:
    files: dict[object, str] = {}
    for value in inputs:
        p = Path(value).expanduser()
        try:
            members = [c for c in p.iterdir() if c.is_file()] if p.is_dir() else [p]
        except OSError:
            continue
        for member in members:
            if member.exists():
                for key in _keys(member):
                    files[key] = str(member)
    return files


RUN_RECORD_KEYS = frozenset({"config", "identity", "provenance", "metrics"})
"""Top-level keys every saebench run record has had (:class:`saebench.run.RunRecord`; later
versions add ``details``, ``paths``, ``hyperparameters``): a JSON with all of them, each an
object, is a run record a new run may replace."""


def is_run_record(path: str | Path) -> bool:
    """Whether the existing file ``path`` is a saebench run record (a JSON object with the
    :data:`RUN_RECORD_KEYS`, each an object), rather than, say, an SAE's ``cfg.json``, a sweep
    record, a leaderboard CSV or weights: only a run record may be overwritten by a run."""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > _MAX_JSON_PEEK:
            return False  # never opened: a FIFO would block, /dev/zero never end
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read(_MAX_JSON_PEEK + 1))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(data, dict) and all(
        isinstance(data.get(key), dict) for key in RUN_RECORD_KEYS
    )


def check_plan(planned: Sequence[Planned]) -> None:
    """``ValueError`` (one line naming both sides) when the outputs of one call collide in a
    way that loses data; see the module docstring."""
    from saebench.leaderboard.store import holder_path, lock_path

    tables: dict[object, tuple[str, str]] = {}  # file key -> (source, description)
    for item in planned:
        csv = item.paths.get("leaderboard")
        if csv is None:
            continue
        for path, what in (
            (csv, "leaderboard"),
            (str(lock_path(csv)), "leaderboard lock"),
            (str(holder_path(csv)), "leaderboard lock holder"),
        ):
            for key in _keys(path):
                tables.setdefault(key, (item.owner, f"the {what} {path}"))
    inputs = _input_files(i for item in planned for i in item.inputs)
    jsons: dict[object, tuple[str, str]] = {}  # file key -> (source, owner)
    rows: dict[tuple[object, ...], tuple[str, str]] = {}
    for item in planned:
        json_path = item.paths.get("json")
        for what, path in item.paths.items():
            for key in _keys(path):
                if key in inputs:
                    raise ValueError(
                        f"the {what} output {path} of {item.owner} is the SAE file "
                        f"{inputs[key]}: refusing to overwrite an input"
                    )
        if json_path is not None:
            keys = _keys(json_path)
            for key in keys:
                if key in tables:
                    owner, desc = tables[key]
                    raise ValueError(
                        f"the JSON {json_path} of {item.owner} is {desc}"
                        f"{'' if owner == item.owner else f' of {owner}'}: writing it would "
                        "destroy the leaderboard; give --json-out and --leaderboard different "
                        "files"
                    )
                if key in jsons and jsons[key][0] != item.source:
                    raise ValueError(
                        f"{jsons[key][1]} and {item.owner} would both write {json_path}: put "
                        "{sae} in the JSON path"
                    )
            for key in keys:
                jsons.setdefault(key, (item.source, item.owner))
            if os.path.lexists(json_path) and not os.path.isdir(json_path):
                if not is_run_record(json_path):
                    raise ValueError(
                        f"the JSON output {json_path} of {item.owner} exists and is not a "
                        "saebench run record: refusing to overwrite it (remove it or choose "
                        "another path)"
                    )
        csv = item.paths.get("leaderboard")
        if csv is not None and item.row is not None:
            key = (os.path.realpath(csv), *map(str, item.row))
            if key in rows and rows[key][0] != item.source:
                raise ValueError(
                    f"{rows[key][1]} and {item.owner} are the same SAE (identical weights) at the "
                    f"same node: they would write one row of {csv}; score one of them (or "
                    "pass --no-leaderboard)"
                )
            rows.setdefault(key, (item.source, item.owner))


def check_distinct(inputs: Mapping[str, str], outputs: Mapping[str, str]) -> None:
    """``ValueError`` when an output (description -> path) is the same file as an input or as
    another output (a leaderboard's lock files count as the leaderboard)."""
    from saebench.leaderboard.store import holder_path, lock_path

    taken: dict[object, str] = {}
    for what, path in inputs.items():
        for variant in (path, str(lock_path(path)), str(holder_path(path))):
            for key in _keys(variant):
                taken.setdefault(key, f"{what} {path}")
    for what, path in outputs.items():
        keys = _keys(path)
        clash = next((taken[k] for k in keys if k in taken), None)
        if clash is not None:
            raise ValueError(f"{what} {path} is the {clash}: refusing to overwrite it")
        for key in keys:
            taken[key] = f"{what} {path}"
