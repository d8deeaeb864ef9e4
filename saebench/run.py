"""One ``saebench run``: resolve the SAE, model, task and node, score, and record the result.

The record is a JSON (config, the SAE's hyperparameters, library versions, git commit, wall
times, every metric, per-attribute detail) and one leaderboard row (see
:mod:`saebench.leaderboard.schema`). :func:`run_outcomes` scores several SAEs in one process:
one model load per model, and one :func:`saebench.evaluate.prepare` per node (the
SAE-independent work), shared by its SAEs. An SAE whose row with the same settings is already
in the leaderboard can be skipped before any work; one that fails is reported in its
:class:`Outcome` while the others finish.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from saebench import __version__, evaluate
from saebench.defaults import (
    DEFAULT_CACHE_BUDGET_MB,
    DEFAULT_COVERAGE_MIN_PROMPTS,
    DEFAULT_COVERAGE_PROMPTS,
    DEFAULT_KS,
    DEFAULT_N_FIT_PROMPTS,
    DEFAULT_N_PROMPTS,
    PAPER_FIT_SPLIT,
    PAPER_SCORE_CLIP,
    PAPER_TASK_OPTIONS,
    PAPER_VERSION_SUFFIX,
    PROTOCOLS,
    default_json_out,
    default_leaderboard,
)
from saebench.discover import load as load_sae
from saebench.evaluate import (
    FIT_SEED_OFFSET,
    EvalResult,
    EvalSettings,
    counterfactual_seed,
)
from saebench.io_utils import atomic_write, check_writable, dumps_strict, save_unsaved
from saebench.leaderboard.schema import IDENTITY_COLUMNS, LEGACY_TASK_VERSION, format_ks
from saebench.model import effective_processing, load_model, prepends_bos, tokenizer_of
from saebench.node import Node
from saebench.sae import SAE, SAEMeta
from saebench.sae.formats import hyperparameters
from saebench.stats import bootstrap
from saebench.task import load_task, task_factory
from saebench.validation.finite import check_codes, non_finite_metrics
from saebench.validation.outputs import Planned, check_plan, fill_template
from saebench.validation.resources import check_memory
from saebench.validation.settings import RULES, check_settings

logger = logging.getLogger(__name__)

SUPERVISED_SPECS = {"supervised:mean": "mean", "supervised:lstsq": "lstsq"}
"""``--sae`` values that score a supervised dictionary itself (needs ``--model``, ``--hook``)."""
DEFAULT_MODEL = "gpt2-small"
DEFAULT_TASK = "ioi"
DEFAULT_POSITION = "END"
# relative paths are relative to the working directory; records and messages name them absolute


@dataclass
class RunConfig:
    """Everything ``saebench run`` takes from the command line."""

    sae: str
    task: str | None = None
    """Task plugin; None: the SAE's ``training_task`` (saebench's metadata), else ``ioi``."""
    model: str | None = None
    hook: str | None = None
    head: int | None = None
    position: str | None = None
    """Position label; None: the SAE's ``training_position`` where the task has it, else
    ``END``. :func:`resolve` fills ``task`` and ``position`` in."""
    n_prompts: int = DEFAULT_N_PROMPTS
    n_fit_prompts: int = DEFAULT_N_FIT_PROMPTS
    ks: tuple[int, ...] = DEFAULT_KS
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 256
    tau: float = 0.8
    n_bootstrap: int = bootstrap.DEFAULT_N_BOOTSTRAP
    """Bootstrap replicates of the intervals (docs/metrics.md §11); 0: none."""
    coverage_min_prompts: int = DEFAULT_COVERAGE_MIN_PROMPTS
    """Prompts a value needs to count in F1 coverage (docs/metrics.md §6)."""
    coverage_prompts: int = DEFAULT_COVERAGE_PROMPTS
    """Prompts the interpretability metrics are computed on, whatever ``n_prompts`` is
    (docs/metrics.md §6)."""
    leaderboard: str | None = field(default_factory=default_leaderboard)
    """CSV to upsert the row into; ``{model}`` and ``{task}`` are filled in; None: no row.
    Default: the user's results folder (``$SAEBENCH_RESULTS``, else ``saebench-results``),
    never a shipped leaderboard."""
    json_out: str | None = field(default_factory=default_json_out)
    """Per-run JSON; ``{model}``, ``{task}``, ``{sae}`` and ``{node}`` are filled in."""
    cache_dir: Path | None = None
    progress: bool = True
    cache_budget_mb: float = DEFAULT_CACHE_BUDGET_MB
    """Bound on the clean run's attention keys and values (MB), see :mod:`saebench.runner`."""
    name: str | None = None
    architecture: str | None = None
    data_source: str | None = None
    label: str | None = None
    """The SAE's name within a call of several (:func:`saebench.discover.expand`): the
    ``{sae}`` of the JSON path and the display name when neither ``name`` nor the SAE's
    metadata gives one. None: the last part of ``sae``."""
    sae_id: str | None = None
    """What the leaderboard row's ``sae_id`` records; None: ``sae``. A sweep passes the path as
    its spec writes it (relative to the working directory) while ``sae`` is made absolute for
    workers elsewhere, so committed leaderboards hold no machine's absolute paths."""
    skip_existing: bool = False
    """Skip the SAE, before any work, when the leaderboard already has its row at this node
    computed with the same settings."""
    force: bool = False
    """Score even when such a row exists, and replace a row of this SAE at this node that was
    computed with other settings (without it, that SAE fails before any work)."""
    lock_timeout: float | None = None
    """Seconds to wait for the leaderboard's lock (None: ``$SAEBENCH_LOCK_TIMEOUT`` or 30)."""
    max_memory_mb: float | None = None
    """Refuse, before its work, an SAE whose scoring is estimated to need more memory (MB;
    None: 80% of the machine's, :mod:`saebench.validation.resources`)."""
    protocol: str = "saebench"
    """``saebench`` (the defaults) or ``paper`` (docs/metrics.md §10): fit over all names,
    counterfactual names from the other vocabulary half, the normalised score clipped to
    [0, 2]. Prompt counts and ks are the config's own: :func:`saebench.defaults.paper_preset`
    fills them."""


def check_protocol(protocol: str, task: str | None) -> None:
    """``ValueError`` unless ``protocol`` is known and defined for ``task`` (None: the task is
    not known yet, it will come from the SAE's record; checked again then)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol == "paper" and task is not None and task not in PAPER_TASK_OPTIONS:
        raise ValueError(
            f"--protocol paper is defined for the task(s) {', '.join(PAPER_TASK_OPTIONS)} "
            f"(the paper's), not {task!r}"
        )


def task_options(config: RunConfig) -> dict[str, Any]:
    """Options the task plugin is loaded with: the paper protocol's for its task, else none."""
    return dict(PAPER_TASK_OPTIONS.get(config.task, {})) if config.protocol == "paper" else {}


@dataclass
class RunRecord:
    config: dict[str, Any]
    identity: dict[str, Any]
    """Model, node, SAE (hash, name, ...) and the evaluation settings (:func:`identity_of`)."""
    provenance: dict[str, Any]
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    """Where the JSON and the leaderboard row were written."""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    """The SAE's hyperparameters where its config states them
    (:func:`saebench.sae.formats.hyperparameters`; None where unknown)."""
    intervals: dict[str, list[float]] = field(default_factory=dict)
    """Metric -> [lo, hi], its 95% bootstrap interval over evaluation prompts
    (docs/metrics.md §11; ``bootstrap`` says how it was drawn)."""
    bootstrap: dict[str, Any] = field(default_factory=dict)
    """``n_bootstrap``, ``level``, ``seed`` and ``method`` of the intervals."""


@dataclass
class Outcome:
    """What became of one SAE of :func:`run_outcomes`."""

    config: RunConfig
    status: str = "failed"
    """``scored``, ``skipped`` (its row with the same settings exists) or ``failed``."""
    record: RunRecord | None = None
    """The record of a scored SAE."""
    message: str = ""
    """One line: why it failed or was skipped."""
    error: Exception | None = None
    """The exception it failed with."""
    row: dict[str, str] | None = None
    """A skipped SAE's existing leaderboard row (its stored numbers)."""
    notes: list[str] = field(default_factory=list)
    """Choices made from the SAE's own record (model, task, node, position), one line each."""

    @property
    def name(self) -> str:
        """The SAE's name in messages."""
        return self.config.name or self.config.label or self.config.sae


def git_commit() -> str:
    """The saebench checkout's commit (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    out = {"saebench": __version__}
    for package in ("torch", "transformer_lens", "sae-lens", "transformers"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def trained_elsewhere(meta: SAEMeta, node: Node, task: str) -> list[str]:
    """Where the SAE's own metadata (saebench's ``training_position`` and ``training_task``)
    says it was trained, when that is not where it is about to be scored: scoring there is
    allowed (an SAE can be read anywhere its width fits) but is rarely what was meant."""
    info = meta.cfg.get("metadata") if isinstance(meta.cfg, dict) else None
    info = info if isinstance(info, dict) else {}
    notes = []
    position = info.get("training_position")
    if position and position != "all" and position != node.position:
        notes.append(
            f"it was trained on activations at {position} and is scored at {node.position} "
            f"(--position {position} scores it where it was trained)"
        )
    trained_task = info.get("training_task")
    if trained_task and trained_task != task:
        notes.append(
            f"it was trained on task {trained_task!r} and is scored on {task!r} "
            f"(--task {trained_task} scores it on its own task)"
        )
    return notes


def own_task_and_position(meta: SAEMeta | None, config: RunConfig) -> dict[str, str]:
    """The task and position the SAE's own record names (saebench's ``training_task`` and
    ``training_position``) for those ``config`` leaves unset (None); a position is taken only
    where the task has it."""
    info = meta.cfg.get("metadata") if meta is not None and isinstance(meta.cfg, dict) else None
    info = info if isinstance(info, dict) else {}
    chosen: dict[str, str] = {}
    task = config.task
    if task is None and isinstance(info.get("training_task"), str) and info["training_task"]:
        task = chosen["task"] = info["training_task"]
    position = info.get("training_position")
    if config.position is None and isinstance(position, str) and position not in ("", "all"):
        labels = tuple(getattr(task_factory(task or DEFAULT_TASK), "position_labels", ()) or ())
        if not labels or position in labels:
            chosen["position"] = position
    return chosen


def resolve(
    config: RunConfig, notes: list[str] | None = None
) -> tuple[SAE | str, str, dict | None, Node]:
    """The dictionary (an SAE, or a supervised spec), model name, processing and node.

    Fills in ``config.task`` and ``config.position`` where they are None: from the SAE's own
    record (:func:`own_task_and_position`), else ``ioi`` and ``END``; appends to ``notes`` one
    line saying what was taken from the SAE (model, task, hook, position)."""
    from saebench.cli.common import check_task_options

    if config.sae in SUPERVISED_SPECS:
        if not config.model or not config.hook:
            raise ValueError(f"--sae {config.sae} needs --model and --hook")
        if config.task is None and config.position is not None:
            check_task_options(DEFAULT_TASK, (config.position,))
        config.task = config.task or DEFAULT_TASK
        config.position = config.position or DEFAULT_POSITION
        return config.sae, config.model, None, Node(config.hook, config.position, config.head)
    sae = load_sae(config.sae, device="cpu")
    meta = sae.meta
    model_name = config.model or meta.model_name or DEFAULT_MODEL
    if config.model and meta.model_name and config.model != meta.model_name:
        logger.warning("the SAE was trained on %r but --model is %r", meta.model_name, config.model)
    hook = config.hook or meta.hook_name
    if not hook:
        raise ValueError(f"the SAE at {config.sae} names no hook; pass --hook")
    head = config.head if config.head is not None else meta.hook_head_index
    chosen = own_task_and_position(meta, config)
    from_sae = [
        name
        for name, given, own in (
            ("model", config.model, meta.model_name),
            ("task", config.task, chosen.get("task")),
            ("hook", config.hook, meta.hook_name),
            ("position", config.position, chosen.get("position")),
        )
        if given is None and own
    ]
    if config.task is None and config.position is not None:  # not checked before: no task
        check_task_options(chosen.get("task") or DEFAULT_TASK, (config.position,))
    config.task = config.task or chosen.get("task") or DEFAULT_TASK
    config.position = config.position or chosen.get("position") or DEFAULT_POSITION
    node = Node(hook, config.position, head)
    if notes is not None and from_sae:
        notes.append(
            f"{model_name} / {config.task} at {node}: {', '.join(from_sae)} from the SAE's own "
            f"record (--{', --'.join(from_sae)} override)"
        )
    for note in trained_elsewhere(meta, node, config.task):
        logger.warning("%s: %s", config.sae, note)
    return sae, model_name, meta.model_from_pretrained_kwargs, node


def task_version(task: str) -> str:
    """The task plugin's ``version`` (:data:`~saebench.leaderboard.schema.LEGACY_TASK_VERSION`
    when it has none), read from its class without instantiating it."""
    return str(getattr(task_factory(task), "version", LEGACY_TASK_VERSION))


def identity_of(
    dictionary, config: RunConfig, model_name: str, processing: dict | None, node: Node
) -> dict[str, Any]:
    """The row's identity (model, node, SAE) with its descriptive columns, and the evaluation
    settings (:data:`~saebench.leaderboard.schema.SETTINGS_COLUMNS`): a row is one SAE at one
    node under one set of settings."""
    if isinstance(dictionary, str):
        kind = "supervised_" + SUPERVISED_SPECS[dictionary]
        # fitted at run time: named by what determines the fit (at this node and model)
        fit = f"{kind}:{config.n_fit_prompts}:{config.seed}"
        sae_hash = hashlib.sha256(fit.encode()).hexdigest()[:16]
        d_sae, arch, default_name = None, kind, kind
    else:
        sae_hash, d_sae, arch = dictionary.content_hash(), dictionary.d_sae, dictionary.architecture
        default_name = config.label or Path(config.sae).name or config.sae
    cfg = {} if isinstance(dictionary, str) else dictionary.meta.cfg
    return {
        "model": model_name,
        "model_processing": json.dumps(
            effective_processing(model_name, processing), sort_keys=True, separators=(",", ":")
        ),
        "task": config.task,
        "hook": node.hook_name,
        "head": node.head,
        "position": node.position,
        "sae_id": config.sae_id or config.sae,
        "sae_hash": sae_hash,
        "sae_name": config.name or cfg.get("metadata", {}).get("sae_name") or default_name,
        "architecture": config.architecture or cfg.get("metadata", {}).get("saebench_kind") or arch,
        "data_source": config.data_source or cfg.get("metadata", {}).get("data_source", ""),
        "d_sae": d_sae,
        "n_prompts": config.n_prompts,
        "n_fit_prompts": config.n_fit_prompts,
        "seed": config.seed,
        "ks": format_ks(config.ks),
        "tau": float(config.tau),
        "task_version": task_version(config.task)
        + (PAPER_VERSION_SUFFIX if config.protocol == "paper" else ""),
        "coverage_min_prompts": config.coverage_min_prompts,
        "coverage_prompts": config.coverage_prompts,
    }


def settings_of(config: RunConfig) -> EvalSettings:
    """The scorer's settings from a run's config."""
    return EvalSettings(
        n_prompts=config.n_prompts,
        n_fit_prompts=config.n_fit_prompts,
        ks=tuple(config.ks),
        seed=config.seed,
        batch_size=config.batch_size,
        tau=config.tau,
        cache_dir=config.cache_dir,
        progress=config.progress,
        cache_budget_mb=config.cache_budget_mb,
        fit_split=PAPER_FIT_SPLIT if config.protocol == "paper" else "test",
        clip_score=PAPER_SCORE_CLIP if config.protocol == "paper" else None,
        n_bootstrap=config.n_bootstrap,
        coverage_min_prompts=config.coverage_min_prompts,
        coverage_prompts=config.coverage_prompts,
    )


def run(config: RunConfig) -> RunRecord | None:
    """Score one dictionary; write its JSON and leaderboard row when asked. None when it was
    skipped (``config.skip_existing``); raises what it failed with."""
    records = run_many([config])
    return records[0] if records else None


def run_many(configs: list[RunConfig]) -> list[RunRecord]:
    """:func:`run_outcomes`, then raise the first failure's exception (after the others have
    finished); the records of the scored SAEs, in order (skipped ones have none)."""
    outcomes = run_outcomes(configs)
    for outcome in outcomes:
        if outcome.status == "failed":
            raise outcome.error or RuntimeError(outcome.message)
    return [o.record for o in outcomes if o.record is not None]


@dataclass
class _Job:
    """One resolved SAE of :func:`run_outcomes`."""

    index: int
    config: RunConfig
    dictionary: SAE | str
    model_name: str
    processing: dict | None
    node: Node
    paths: dict[str, str]
    identity: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    progress: str = ""
    """The progress bar's label: ``SAE i of N: name``."""


def run_outcomes(configs: list[RunConfig]) -> list[Outcome]:
    """Score several dictionaries; write each one's JSON and leaderboard row when asked.

    Before any work: every output path template is checked, and outputs that would lose data
    refused (``ValueError``, for the whole call: a JSON that is a leaderboard, two SAEs writing
    one JSON or one leaderboard row, :func:`saebench.validation.outputs.check_plan`); every SAE
    is resolved, and one whose leaderboard row exists is skipped (same settings,
    ``skip_existing``) or refused (other settings, unless ``force``). Runs that share the model
    (name, processing, device), task, prompt BOS, node and scorer settings are scored on one
    :func:`saebench.evaluate.prepare`, then one :func:`saebench.evaluate.score` each, so their
    clean run, supervised fit, counterfactual activations and supervised interventions are
    computed once; each record is exactly what a run of its own gives. An SAE that fails
    (loading, width, scoring, writing) is an outcome with its one-line message; the others go
    on. Outcomes come back in the order of ``configs``; each record is written as soon as it is
    scored.
    """
    for config in configs:
        check_settings(
            {k: v for k, v in asdict(config).items() if k in RULES and k != "name"}, "api"
        )
        check_templates(config)
        check_protocol(config.protocol, config.task)
    outcomes = [Outcome(config) for config in configs]
    jobs: list[_Job] = []
    for index, config in enumerate(configs):
        try:
            jobs.append(_job(index, config))
            outcomes[index].notes = jobs[-1].notes
        except Exception as err:  # one SAE's problem: report it, go on with the others
            _fail(outcomes[index], err)
    check_plan(output_plan(jobs))
    jobs = [job for job in jobs if _needs_scoring(job, outcomes[job.index])]
    for number, job in enumerate(jobs, start=1):
        job.progress = f"SAE {number} of {len(jobs)}: {outcomes[job.index].name}"

    groups: dict[str, list[_Job]] = {}
    for job in jobs:
        # prompts start with BOS as the SAE saw in training (SAELens ``prepend_bos``)
        bos = None if isinstance(job.dictionary, str) else job.dictionary.meta.prepend_bos
        key = json.dumps(
            [
                job.model_name,
                effective_processing(job.model_name, job.processing),
                job.config.device,
                job.config.task,
                bos,
                str(job.node),
                asdict(settings_of(job.config)),
            ],
            sort_keys=True,
            default=str,
        )
        groups.setdefault(key, []).append(job)
    models: dict[str, Any] = {}
    for members in groups.values():
        _score_group(members, models, outcomes)
    return outcomes


def _job(index: int, config: RunConfig) -> _Job:
    """Resolve one SAE: dictionary, model, node, output paths and row identity."""
    notes: list[str] = []
    dictionary, model_name, processing, node = resolve(config, notes)
    check_protocol(config.protocol, config.task)  # the task may come from the SAE's record
    return _Job(
        index=index,
        config=config,
        dictionary=dictionary,
        model_name=model_name,
        processing=processing,
        node=node,
        paths=output_paths(config, model_name, node),
        identity=identity_of(dictionary, config, model_name, processing, node),
        notes=notes,
    )


def check_outputs_writable(paths: dict[str, str]) -> None:
    """``OSError`` (:class:`saebench.io_utils.OutputPathError`) naming the first output of
    ``paths`` (``json``, ``leaderboard`` and its lock) that could not be written
    (:func:`saebench.io_utils.check_writable`); shared by ``saebench run`` and the API."""
    for what, path in paths.items():
        check_writable(path, what="leaderboard" if what == "leaderboard" else "JSON")
    if "leaderboard" in paths:
        from saebench.leaderboard.store import lock_path

        check_writable(lock_path(paths["leaderboard"]), what="leaderboard lock")


def _needs_scoring(job: _Job, outcome: Outcome) -> bool:
    """Whether ``job`` is scored; sets ``outcome`` when its leaderboard row rules it out."""
    from saebench.leaderboard import has_row

    try:  # before any work: an output that could not be written fails the SAE now
        check_outputs_writable(job.paths)
    except OSError as err:
        _fail(outcome, err)
        return False
    csv_path = job.paths.get("leaderboard")
    if csv_path is None or job.config.force:
        return True
    try:
        exists = has_row(csv_path, job.identity)
    except Exception as err:  # a row with other settings, or a leaderboard that does not parse
        _fail(outcome, err)
        return False
    if exists and job.config.skip_existing:
        from saebench.leaderboard.store import find_row

        outcome.status = "skipped"
        outcome.message = f"{csv_path} has its row with these settings (--force recomputes)"
        try:
            outcome.row = find_row(csv_path, job.identity)
        except Exception:  # the numbers are a courtesy; the skip stands
            outcome.row = None
        return False
    return True


def _score_group(members: list[_Job], models: dict[str, Any], outcomes: list[Outcome]) -> None:
    """Score the jobs of one group (same model, task, node, settings) on one preparation."""
    first = members[0]
    config, node = first.config, first.node
    model_name, processing = first.model_name, first.processing
    try:
        model_key = json.dumps(
            [model_name, effective_processing(model_name, processing), config.device]
        )
        if model_key not in models:
            from saebench.offline import check_model

            check_model(model_name)  # not cached and no hub: fail now, without retries
            models[model_key] = load_model(model_name, processing, device=config.device)
        model = models[model_key]
        bos = (
            prepends_bos(model)
            if isinstance(first.dictionary, str)
            else first.dictionary.meta.prepend_bos
        )
        task = load_task(
            config.task, tokenizer=tokenizer_of(model), prepend_bos=bos, **task_options(config)
        )
        node.check(model)
    except Exception as err:  # the model, task or node: every SAE of the group fails
        for job in members:
            _fail(outcomes[job.index], err)
        return
    ready = []
    for job in members:
        try:
            check_before_work(job.dictionary, node, model, job.config)
            ready.append(job)
        except Exception as err:
            _fail(outcomes[job.index], err)
    if not ready:
        return
    start = time.perf_counter()
    try:
        context = evaluate.prepare(model, task, node, settings_of(config), model_name)
    except Exception as err:
        for job in ready:
            _fail(outcomes[job.index], err)
        return
    shared_s = time.perf_counter() - start
    for job in ready:
        outcome = outcomes[job.index]
        try:
            start = time.perf_counter()
            result = checked_score(context, job.dictionary, outcome.name, job.progress or None)
            timing = {"wall_time_s": time.perf_counter() - start, "shared_wall_time_s": shared_s}
            outcome.record = _record(job, result, timing)
            outcome.status, outcome.message = "scored", ""
        except Exception as err:
            _fail(outcome, err)


def check_before_work(dictionary: Any, node: Node, model: Any, config: RunConfig, style="cli"):
    """Before an SAE's work (shared by ``saebench run``, sweeps and the API): its width fits
    the node, an edit size beyond its width is said, and its memory estimate is within
    ``config.max_memory_mb`` (:func:`saebench.validation.resources.check_memory`; the option
    named as ``style`` spells it)."""
    evaluate.check_width(dictionary, node, model)
    warn_k_beyond_width(dictionary, tuple(config.ks), config.sae)
    if not isinstance(dictionary, str):
        check_memory(
            config.n_prompts,
            dictionary.d_sae,
            dictionary.d_in,
            len(config.ks),
            config.max_memory_mb,
            style=style,
        )


def checked_score(
    context: evaluate.NodeContext, dictionary: Any, name: str, desc: str | None = None
) -> EvalResult:
    """:func:`saebench.evaluate.score`, refusing first an SAE whose codes or reconstructions
    are not finite (:func:`saebench.validation.finite.check_codes`), and flagging after it any
    other metric left NaN or infinite (a warning, and ``details["non_finite_metrics"]``)."""
    if not isinstance(dictionary, str):
        inputs = [("evaluation", context.acts_ND, context.labels)]
        inputs += [
            (f"counterfactual {attr}", shared.acts_cf_ND, shared.cf_labels)
            for attr, shared in context.attributes.items()
        ]
        with torch.no_grad():
            check_codes(dictionary.to(context.runner.device), inputs)
    result = evaluate.score(context, dictionary, desc=desc)
    bad = non_finite_metrics(result.metrics)
    if bad:
        logger.warning(
            "%s: %d metric(s) are NaN or infinite (written empty): %s",
            name,
            len(bad),
            ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else ""),
        )
        result.details["non_finite_metrics"] = bad
    return result


def warn_k_beyond_width(dictionary: Any, ks: tuple[int, ...], name: str) -> None:
    """Say so when an edit size k exceeds the SAE's width: such an edit may use every latent,
    and is computed (and scored) as the edit of k = d_sae."""
    width = getattr(dictionary, "d_sae", None)
    if isinstance(width, int) and ks and max(ks) > width:
        beyond = [k for k in ks if k > width]
        logger.warning(
            "%s: k = %s exceed(s) the SAE's %d latents; those edits are capped at k = %d",
            name,
            ", ".join(map(str, beyond[:3])) + (", ..." if len(beyond) > 3 else ""),
            width,
            width,
        )


def _fail(outcome: Outcome, err: Exception) -> None:
    """Mark ``outcome`` failed with ``err``'s one-line message."""
    from saebench.leaderboard import LeaderboardError
    from saebench.model import ModelUnavailableError
    from saebench.offline import OfflineError
    from saebench.sae.formats import SAELoadError

    expected = (
        OfflineError,
        SAELoadError,
        ModelUnavailableError,
        LeaderboardError,
        ValueError,
        KeyError,
        UnsavedResultError,
    )
    if isinstance(err, OSError) and err.strerror:
        expected += (OSError,)
        message = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    else:
        message = str(err.args[0]) if err.args else str(err)
    if not isinstance(err, expected):
        message = f"{type(err).__name__}: {message}"
        logger.info("%s failed", outcome.config.sae, exc_info=err)
    outcome.status, outcome.error = "failed", err
    outcome.message = " ".join(message.split())


def _record(job: _Job, result: EvalResult, timing: dict[str, float]) -> RunRecord:
    """The run's record, written to its JSON and leaderboard row (as ``job.paths`` say)."""
    config, dictionary = job.config, job.dictionary
    record = RunRecord(
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        identity=job.identity,
        provenance={
            "saebench_version": __version__,
            "git_commit": git_commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seed": config.seed,
            "fit_seed": config.seed + FIT_SEED_OFFSET,
            "counterfactual_seeds": counterfactual_seeds(config.task, config.seed),
            "n_prompts": config.n_prompts,
            "n_fit_prompts": config.n_fit_prompts,
            **timing,
            "versions": library_versions(),
        },
        metrics=result.metrics,
        details=result.details,
        hyperparameters=(
            {"architecture": job.identity["architecture"], "d_sae": None}
            if isinstance(dictionary, str)
            else hyperparameters(dictionary)
        ),
        intervals={k: [lo, hi] for k, (lo, hi) in result.intervals.items()},
        bootstrap={
            "n_bootstrap": config.n_bootstrap,
            "level": bootstrap.LEVEL,
            "seed": config.seed + bootstrap.BOOTSTRAP_SEED_OFFSET,
            "method": "percentile over evaluation prompts, the coverage prompts resampled "
            "apart (docs/metrics.md §11)",
        },
    )
    write_outputs(record, job.paths, config.force, config.lock_timeout)
    if "json" in job.paths and result.outcomes:
        try:  # the per-prompt outcomes, for paired comparisons (saebench compare)
            bootstrap.save(
                bootstrap.sidecar_path(job.paths["json"]), result.outcomes, result.outcomes_meta
            )
            record.paths["outcomes"] = str(bootstrap.sidecar_path(record.paths["json"]))
        except OSError as err:
            logger.warning("could not write the per-prompt outcomes: %s", err)
    return record


class UnsavedResultError(RuntimeError):
    """An output of a scored SAE could not be written; the message names where the result
    was saved instead (:func:`saebench.io_utils.save_unsaved`), so it is not lost."""


def write_outputs(
    record: RunRecord,
    paths: dict[str, str],
    replace_settings: bool = False,
    lock_timeout: float | None = None,
) -> None:
    """Write the record's JSON, then its leaderboard row, as ``paths`` say.

    The JSON goes first: if the leaderboard cannot be written the result is still on disk.
    When the JSON cannot be written either, the record is saved under
    :func:`saebench.io_utils.unsaved_dir`; either way :class:`UnsavedResultError` names the
    failure and where the result is.
    """
    from saebench.leaderboard import LeaderboardError, upsert_row

    record.paths = {what: str(Path(path).absolute()) for what, path in paths.items()}
    saved, stage = None, ""
    try:
        if "json" in paths:
            stage = f"the JSON {record.paths['json']}"
            write_json(Path(paths["json"]), record)
            saved = record.paths["json"]
        if "leaderboard" in paths:
            stage = f"the leaderboard row to {record.paths['leaderboard']}"
            upsert_row(
                paths["leaderboard"],
                leaderboard_row(record),
                replace_settings=replace_settings,
                lock_timeout=lock_timeout,
            )
    except (OSError, LeaderboardError) as err:
        if isinstance(err, OSError) and err.strerror:
            why = err.strerror
        else:
            why = str(err)
        if saved is None:
            name = f"{record.identity.get('sae_name', 'sae')}-{record.identity['task']}.json"
            saved = str(save_unsaved(name.replace("/", "_"), dumps_strict(asdict(record))))
        raise UnsavedResultError(
            f"could not write {stage} ({why}); the result is saved in {saved}"
        ) from err


def counterfactual_seeds(task: str, seed: int) -> dict[str, int]:
    """The seed of each attribute's counterfactual prompts
    (:func:`saebench.evaluate.counterfactual_seed`), by attribute name."""
    attributes = getattr(task_factory(task), "attributes", ())
    return {attr: counterfactual_seed(seed, i) for i, attr in enumerate(attributes)}


def check_templates(config: RunConfig) -> None:
    """``ValueError`` unless the JSON and leaderboard path templates fill in (before any work)."""
    from dataclasses import replace

    filled = replace(config, task=config.task or DEFAULT_TASK)
    output_paths(filled, "model", Node("hook", config.position or DEFAULT_POSITION))


def output_paths(config: RunConfig, model_name: str, node: Node) -> dict[str, str]:
    """The JSON and leaderboard paths with ``{model}``, ``{task}``, ``{sae}``, ``{node}`` filled
    in; raises ``ValueError`` on any other placeholder, or a filled-in path that leaves its
    template's folder (:func:`saebench.validation.outputs.fill_template`; checked before the
    work starts)."""
    fields = {
        "model": model_name,
        "task": config.task,
        "sae": (config.label or Path(config.sae).name or "sae").replace(":", "-"),
        "node": str(node).replace("/", "_"),
    }
    paths = {}
    for what, template in (("json", config.json_out), ("leaderboard", config.leaderboard)):
        if template is not None:
            paths[what] = fill_template(str(template), fields, what)
    return paths


def output_plan(jobs: list[_Job]) -> list[Planned]:
    """The outputs of ``jobs`` for :func:`saebench.validation.outputs.check_plan`."""
    return [
        planned(
            job.config,
            job.paths,
            job.identity,
            inputs=() if isinstance(job.dictionary, str) else (job.config.sae,),
        )
        for job in jobs
    ]


def planned(
    config: RunConfig,
    paths: dict[str, str],
    identity: dict[str, Any] | None,
    source: str | None = None,
    inputs: tuple[str, ...] = (),
) -> Planned:
    """One SAE's outputs and leaderboard row identity (its :data:`IDENTITY_COLUMNS`) for
    :func:`saebench.validation.outputs.check_plan`, as ``saebench run``, sweeps and the API
    plan them. ``source`` (default ``config.sae``) tells SAEs apart: two outputs of one
    source never collide with each other."""
    return Planned(
        owner=config.name or config.label or config.sae,
        source=config.sae if source is None else source,
        paths=paths,
        row=None if identity is None else tuple(identity.get(c) for c in IDENTITY_COLUMNS),
        inputs=inputs,
    )


def leaderboard_row(record: RunRecord) -> dict[str, Any]:
    """The flat CSV row: identity and settings, hyperparameters (the identity's architecture
    and d_sae win: a baseline's kind, not its SAE architecture), provenance (without the
    version table), metrics."""
    from saebench.leaderboard.schema import interval_columns, sufficiency_uninformative

    provenance = {k: v for k, v in record.provenance.items() if k != "versions"}
    return {
        **record.hyperparameters,
        **record.identity,
        **provenance,
        "n_bootstrap": record.bootstrap.get("n_bootstrap") if record.intervals else None,
        **record.metrics,
        "sufficiency_uninformative": sufficiency_uninformative(
            record.metrics.get("clean_logit_diff"), record.metrics.get("meanabl_logit_diff")
        ),
        **interval_columns(record.intervals),
    }


def write_json(path: Path, record: RunRecord) -> None:
    """Write the run record atomically as strict JSON (NaN written as ``null``), mode 0644
    under the usual umask (:func:`saebench.io_utils.atomic_write`)."""
    atomic_write(path, dumps_strict(asdict(record)) + "\n")
