"""Sweep specs: a TOML file listing SAEs, nodes and settings, expanded into jobs.

A spec is read with :mod:`tomllib` (Python 3.11+; ``tomli`` before). It has one ``[sweep]``
table with the settings every SAE is scored with, and ``[[sae]]`` entries and/or ``[[node]]``
lists naming the SAEs::

    [sweep]
    model = "tiny-ioi"                 # optional: default each SAE's own model_name
    task = "ioi"
    leaderboard = "results/{model}-sweep.csv"   # default $SAEBENCH_RESULTS/{model}.csv, else
                                       # saebench-results/{model}.csv; false: write no rows
    json_out = "results/runs/{sae}.json"  # default beside it in runs/; false: write no JSON
    position = "END"                   # default position of every node
    n_prompts = 1000
    n_fit_prompts = 10000
    ks = [1, 2, 4, 6, 8, 16, 32]
    seed = 0
    protocol = "saebench"              # "paper": docs/metrics.md §10 (fills n_prompts,
                                       # n_fit_prompts, ks where the spec does not set them)
    # also: tau, coverage_prompts (docs/metrics.md §6), batch_size, device, cache_dir
    # (false: no cache), cache_budget_mb,
    # checkpoints (score dictionary_learning checkpoints in folders), lock_timeout,
    # max_memory_mb (--max-memory)

    [[sae]]                            # one entry per path, folder, glob or release id
    path = "baselines/saes/tiny-ioi/L3-resid_post-END/topk-*"
    # optional node override: hook, head, position; name (an entry that is one SAE)

    [[node]]                           # a node and the SAEs to score there
    hook = "blocks.0.attn.hook_z"
    head = 3                           # optional
    position = "END"                   # optional
    saes = ["baselines/saes/tiny-ioi/L0-z-h3-END/topk-k6-task", "supervised:mean"]

Every key of ``[sweep]`` except ``leaderboard``, ``json_out`` and ``checkpoints`` is the
``saebench run`` option of the same name (``ks`` is ``--k``) with the same default. Paths are
relative to the working directory, as with ``saebench run``. An ``[[sae]]`` value is what
``--sae`` takes (:mod:`saebench.discover`): an SAE directory, a folder or glob of several, a
SAELens release id, ``supervised:mean`` / ``supervised:lstsq`` (these need a node and
``model``). SAEs without a node override are scored at their own config's node.

:func:`expand_spec` loads each SAE once to learn its model and node (and its content hash,
for the leaderboard identity), then groups the SAEs by (model, node) into :class:`Job`\\ s:
one job loads its model once and shares the SAE-independent work across its SAEs
(:func:`saebench.run.run_outcomes`). SAE paths that exist are made absolute, so a worker
whose working directory differs (a Ray cluster sharing the file system) finds them; the
leaderboard's ``sae_id`` keeps the path as the spec writes it (e.g. repo-relative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saebench.cli.common import check_task_options
from saebench.defaults import (
    DEFAULT_CACHE_BUDGET_MB,
    DEFAULT_COVERAGE_PROMPTS,
    DEFAULT_JSON_OUT,
    DEFAULT_KS,
    DEFAULT_LEADERBOARD,
    DEFAULT_N_FIT_PROMPTS,
    DEFAULT_N_PROMPTS,
    PROTOCOLS,
    default_json_out,
    default_leaderboard,
    paper_preset,
)
from saebench.validation.settings import RULES, SettingsError, check_settings

SWEEP_KEYS: dict[str, Any] = {
    "model": None,
    "task": "ioi",
    "leaderboard": DEFAULT_LEADERBOARD,
    "json_out": DEFAULT_JSON_OUT,
    "position": "END",
    "n_prompts": DEFAULT_N_PROMPTS,
    "n_fit_prompts": DEFAULT_N_FIT_PROMPTS,
    "coverage_prompts": DEFAULT_COVERAGE_PROMPTS,
    "ks": list(DEFAULT_KS),
    "seed": 0,
    "tau": 0.8,
    "batch_size": 256,
    "device": "cpu",
    "cache_dir": None,
    "cache_budget_mb": DEFAULT_CACHE_BUDGET_MB,
    "checkpoints": False,
    "lock_timeout": None,
    "max_memory_mb": None,
    "protocol": "saebench",
}
"""The keys of ``[sweep]`` and their defaults (``cache_dir`` None: ``$SAEBENCH_CACHE`` or
``~/.cache/saebench``)."""
NODE_KEYS = ("hook", "head", "position")
SAE_KEYS = ("path", "name", *NODE_KEYS)
NODE_LIST_KEYS = ("saes", *NODE_KEYS)


class SpecError(ValueError):
    """The spec cannot be read or is malformed (one line, naming the file)."""


@dataclass(frozen=True)
class SAEEntry:
    """One SAE value of the spec and the node it is scored at (None: the SAE's own)."""

    path: str
    """What ``saebench run --sae`` takes: directory, folder, glob, release id, supervised:..."""
    hook: str | None = None
    head: int | None = None
    position: str | None = None
    """None: ``[sweep] position``."""
    name: str | None = None
    """Display name (only for an entry that is one SAE)."""


@dataclass
class SweepSpec:
    """A parsed spec: the ``[sweep]`` settings and the SAE entries (``[[node]]`` lists are
    flattened into entries with that node)."""

    settings: dict[str, Any]
    entries: list[SAEEntry]
    source: str = "<spec>"


@dataclass
class JobItem:
    """One SAE of a job: its run configuration, row identity and output paths."""

    config: Any
    """A :class:`saebench.run.RunConfig`."""
    identity: dict[str, Any]
    """Its leaderboard identity and settings (:func:`saebench.run.identity_of`)."""
    paths: dict[str, str]
    """Its JSON and leaderboard paths (:func:`saebench.run.output_paths`)."""

    @property
    def name(self) -> str:
        return self.config.name or self.config.label or self.config.sae


@dataclass
class Job:
    """The SAEs of one (model, node): scored on one model load and one shared preparation."""

    model: str
    node: str
    """``HOOK[HEAD]@POSITION`` (``str(Node)``)."""
    items: list[JobItem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.model} {self.node}"


@dataclass
class Expansion:
    """The jobs of a spec, and the SAE values that gave no SAE (name, one-line message)."""

    jobs: list[Job]
    errors: list[tuple[str, str]]


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a TOML spec file (:class:`SpecError` when it is malformed)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError as err:
            raise SpecError(
                f"{path}: reading TOML needs Python 3.11+ or pip install tomli"
            ) from err
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as err:
        raise SpecError(f"{path}: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err})") from err
    except UnicodeDecodeError as err:
        raise SpecError(
            f"{path}: not valid TOML (not UTF-8 text: {err.reason} at byte {err.start})"
        ) from err
    except RecursionError as err:
        raise SpecError(f"{path}: not valid TOML (nested too deeply)") from err
    return parse_spec(raw, source=str(path))


def parse_spec(raw: dict[str, Any], source: str = "<spec>") -> SweepSpec:
    """Check a spec's tables and fill in the defaults.

    >>> spec = parse_spec({"sweep": {"model": "tiny-ioi", "ks": [2, 1]},
    ...                    "node": [{"hook": "blocks.1.hook_resid_pre", "saes": ["a", "b"]}]})
    >>> spec.settings["ks"], [(e.path, e.hook, e.position) for e in spec.entries]
    ((1, 2), [('a', 'blocks.1.hook_resid_pre', None), ('b', 'blocks.1.hook_resid_pre', None)])
    """

    def bad(message: str) -> SpecError:
        return SpecError(f"{source}: {message}")

    unknown = set(raw) - {"sweep", "sae", "node"}
    if unknown:
        raise bad(
            f"unknown table(s) {', '.join(sorted(unknown))} (expected [sweep], [[sae]], [[node]])"
        )
    table = raw.get("sweep", {})
    if not isinstance(table, dict):
        raise bad("[sweep] must be a table")
    unknown = set(table) - set(SWEEP_KEYS)
    if unknown:
        raise bad(
            f"unknown [sweep] key(s) {', '.join(sorted(unknown))} (known: {', '.join(SWEEP_KEYS)})"
        )
    settings = {**SWEEP_KEYS, "leaderboard": default_leaderboard(), "json_out": default_json_out()}
    settings.update(table)
    if settings["protocol"] not in PROTOCOLS:
        raise bad(f"[sweep] protocol must be one of {', '.join(PROTOCOLS)}")
    if settings["protocol"] == "paper":
        preset = paper_preset(
            {k: table[k] for k in ("n_prompts", "n_fit_prompts", "ks") if k in table}
        )
        settings.update(preset, ks=list(preset["ks"]))
    for key in ("leaderboard", "json_out", "cache_dir"):
        if settings[key] is False:
            settings[key] = None if key != "cache_dir" else False
        elif settings[key] is not None and not isinstance(settings[key], str):
            raise bad(f"[sweep] {key} must be a path or false")
    try:  # types and ranges, as the CLI and the API check them
        check_settings({k: v for k, v in settings.items() if k in RULES}, "spec")
    except SettingsError as err:
        raise bad(str(err)) from err
    settings["ks"] = tuple(sorted(set(settings["ks"])))

    entries: list[SAEEntry] = []
    for i, entry in enumerate(_tables(raw, "sae", bad)):
        _check_keys(entry, SAE_KEYS, f"[[sae]] #{i + 1}", bad)
        if not isinstance(entry.get("path"), str) or not entry["path"]:
            raise bad(f"[[sae]] #{i + 1} needs a path (a path, folder, glob or release id)")
        if entry.get("name") is not None and (
            not isinstance(entry["name"], str) or not entry["name"].strip()
        ):
            raise bad(f"[[sae]] #{i + 1}: name must be a non-empty string")
        entries.append(
            SAEEntry(
                **_node_fields(entry, f"[[sae]] #{i + 1}", bad),
                path=entry["path"],
                name=entry.get("name"),
            )
        )
    for i, node in enumerate(_tables(raw, "node", bad)):
        where = f"[[node]] #{i + 1}"
        _check_keys(node, NODE_LIST_KEYS, where, bad)
        if not isinstance(node.get("hook"), str):
            raise bad(f"{where} needs a hook")
        saes = node.get("saes")
        if not isinstance(saes, list) or not all(isinstance(s, str) and s for s in saes or [0]):
            raise bad(f"{where} needs saes, a non-empty list of SAE paths, globs or ids")
        fields = _node_fields(node, where, bad)
        entries.extend(SAEEntry(path=value, **fields) for value in saes)
    if not entries:
        raise bad("lists no SAE: add [[sae]] entries or [[node]] lists")
    try:  # the task, its positions and the device, before any model is loaded
        check_task_options(
            settings["task"], tuple({settings["position"], *(e.position for e in entries)} - {None})
        )
        from saebench.model import check_device

        check_device(settings["device"])
    except (KeyError, ValueError) as err:
        raise bad(str(err.args[0]) if err.args else str(err)) from err
    return SweepSpec(settings=settings, entries=entries, source=source)


def _tables(raw: dict, key: str, bad) -> list[dict]:
    tables = raw.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise bad(f"{key} must be an array of tables ([[{key}]])")
    return tables


def _check_keys(table: dict, known: tuple[str, ...], where: str, bad) -> None:
    unknown = set(table) - set(known)
    if unknown:
        raise bad(
            f"unknown {where} key(s) {', '.join(sorted(unknown))} (known: {', '.join(known)})"
        )


def _node_fields(table: dict, where: str, bad) -> dict[str, Any]:
    from saebench.cli.common import check_hook_syntax

    hook, head, position = (table.get(k) for k in NODE_KEYS)
    if hook is not None and not isinstance(hook, str):
        raise bad(f"{where}: hook must be a string")
    if hook is not None:
        try:
            check_hook_syntax(hook)
        except ValueError as err:
            raise bad(f"{where}: {err}") from err
    if head is not None and (not isinstance(head, int) or isinstance(head, bool) or head < 0):
        raise bad(f"{where}: head must be an integer, 0 or more")
    if position is not None and (not isinstance(position, str) or not position.strip()):
        raise bad(f"{where}: position must be a non-empty string")
    return {"hook": hook, "head": head, "position": position}


def expand_spec(spec: SweepSpec, force: bool = False) -> Expansion:
    """Expand the spec's entries into single SAEs (:func:`saebench.discover.expand`), resolve
    each one's model and node (loading it once) and group them into one :class:`Job` per
    (model, node), in the order first seen. An SAE that cannot be found or loaded is an
    error of the expansion; the others go on. Outputs of the whole sweep that would lose data
    (:func:`saebench.validation.outputs.check_plan`) raise :class:`SpecError`."""
    from saebench.discover import expand
    from saebench.io_utils import default_cache_dir
    from saebench.leaderboard.schema import IDENTITY_COLUMNS
    from saebench.run import RunConfig, identity_of, output_paths, resolve
    from saebench.validation.outputs import Planned, check_plan

    s = spec.settings
    if s["cache_dir"] is False:  # no cache: refit the supervised dictionaries
        cache_dir = None
    else:
        cache_dir = Path(s["cache_dir"] or default_cache_dir()).expanduser().absolute()
    jobs: dict[tuple[str, str], Job] = {}
    errors: list[tuple[str, str]] = []
    planned: list[Planned] = []
    for entry in spec.entries:
        try:
            found = expand([entry.path], checkpoints=bool(s["checkpoints"]))
        except OSError as err:  # e.g. a name too long, a folder that cannot be read
            name = entry.path if len(entry.path) <= 80 else entry.path[:77] + "..."
            errors.append((name, err.strerror or str(err)))
            continue
        for item in found:
            if item.error:
                errors.append((item.name, item.error))
                continue
            local = Path(item.spec).expanduser()
            config = RunConfig(
                sae=str(local.absolute()) if local.exists() else item.spec,
                sae_id=item.spec,
                task=s["task"],
                model=s["model"],
                hook=entry.hook,
                head=entry.head,
                position=entry.position or s["position"],
                n_prompts=s["n_prompts"],
                n_fit_prompts=s["n_fit_prompts"],
                coverage_prompts=s["coverage_prompts"],
                ks=s["ks"],
                seed=s["seed"],
                device=s["device"],
                batch_size=s["batch_size"],
                tau=s["tau"],
                leaderboard=s["leaderboard"],
                json_out=s["json_out"],
                cache_dir=cache_dir,
                progress=False,
                cache_budget_mb=s["cache_budget_mb"],
                name=entry.name if len(found) == 1 else None,
                label=item.name,
                skip_existing=True,
                force=force,
                lock_timeout=s["lock_timeout"],
                max_memory_mb=s["max_memory_mb"],
                protocol=s["protocol"],
            )
            try:
                dictionary, model_name, processing, node = resolve(config)
                job_item = JobItem(
                    config=config,
                    identity=identity_of(dictionary, config, model_name, processing, node),
                    paths=output_paths(config, model_name, node),
                )
            except Exception as err:  # one SAE's problem: report it, go on with the others
                errors.append((item.name, one_line(err)))
                continue
            key = (model_name, str(node))
            jobs.setdefault(key, Job(model=model_name, node=str(node))).items.append(job_item)
            planned.append(
                Planned(
                    owner=job_item.name,
                    source=config.sae,
                    paths=job_item.paths,
                    row=tuple(job_item.identity.get(c) for c in IDENTITY_COLUMNS),
                    inputs=() if isinstance(dictionary, str) else (config.sae,),
                )
            )
    try:  # every output of the sweep, before any work
        check_plan(planned)
    except ValueError as err:
        raise SpecError(f"{spec.source}: {err}") from err
    return Expansion(jobs=list(jobs.values()), errors=errors)


def one_line(err: BaseException) -> str:
    """An exception as one line (its type when it is not one of the expected input errors)."""
    from saebench.leaderboard import LeaderboardError
    from saebench.sae.formats import SAELoadError

    message = str(err.args[0]) if err.args else str(err)
    if isinstance(err, OSError) and err.strerror:
        message = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    elif not isinstance(err, (SAELoadError, LeaderboardError, ValueError, KeyError)):
        message = f"{type(err).__name__}: {message}"
    return " ".join(message.split())
