"""One ``saebench run``: resolve the SAE, model, task and node, score, and record the result.

The record is a JSON (config, library versions, git commit, every metric, per-attribute
detail) and one leaderboard row (see :mod:`saebench.leaderboard.schema`). :func:`run_many`
scores several SAEs in one process: one model load per model, and one
:func:`saebench.evaluate.prepare` per node (the SAE-independent work), shared by its SAEs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from saebench import __version__
from saebench.evaluate import (
    DEFAULT_KS,
    DEFAULT_N_FIT_PROMPTS,
    EvalResult,
    EvalSettings,
    evaluate_many,
)
from saebench.model import effective_processing, load_model, prepends_bos, tokenizer_of
from saebench.node import Node
from saebench.runner import DEFAULT_CACHE_BUDGET_MB
from saebench.sae import SAE
from saebench.sae_io import load_sae
from saebench.task import load_task

logger = logging.getLogger(__name__)

SUPERVISED_SPECS = {"supervised:mean": "mean", "supervised:lstsq": "lstsq"}
"""``--sae`` values that score a supervised dictionary itself (needs ``--model``, ``--hook``)."""
DEFAULT_MODEL = "gpt2-small"
DEFAULT_LEADERBOARD = "leaderboard/{model}.csv"
DEFAULT_JSON_OUT = "runs/{model}/{sae}-{task}-{node}.json"


@dataclass
class RunConfig:
    """Everything ``saebench run`` takes from the command line."""

    sae: str
    task: str = "ioi"
    model: str | None = None
    hook: str | None = None
    head: int | None = None
    position: str = "END"
    n_prompts: int = 1000
    n_fit_prompts: int = DEFAULT_N_FIT_PROMPTS
    ks: tuple[int, ...] = DEFAULT_KS
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 256
    tau: float = 0.8
    leaderboard: str | None = DEFAULT_LEADERBOARD
    """CSV to upsert the row into; ``{model}`` and ``{task}`` are filled in; None: no row."""
    json_out: str | None = DEFAULT_JSON_OUT
    """Per-run JSON; ``{model}``, ``{task}``, ``{sae}`` and ``{node}`` are filled in."""
    cache_dir: Path | None = None
    progress: bool = True
    cache_budget_mb: float = DEFAULT_CACHE_BUDGET_MB
    """Bound on the clean run's attention keys and values (MB), see :mod:`saebench.runner`."""
    name: str | None = None
    architecture: str | None = None
    data_source: str | None = None


@dataclass
class RunRecord:
    config: dict[str, Any]
    identity: dict[str, Any]
    provenance: dict[str, Any]
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    """Where the JSON and the leaderboard row were written."""


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


def resolve(config: RunConfig) -> tuple[SAE | str, str, dict | None, Node]:
    """The dictionary (an SAE, or a supervised spec), model name, processing and node."""
    if config.sae in SUPERVISED_SPECS:
        if not config.model or not config.hook:
            raise ValueError(f"--sae {config.sae} needs --model and --hook")
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
    return sae, model_name, meta.model_from_pretrained_kwargs, Node(hook, config.position, head)


def identity_of(
    dictionary, config: RunConfig, model_name: str, processing: dict | None, node: Node
) -> dict[str, Any]:
    if isinstance(dictionary, str):
        kind = "supervised_" + SUPERVISED_SPECS[dictionary]
        # fitted at run time: named by what determines the fit (at this node and model)
        fit = f"{kind}:{config.n_fit_prompts}:{config.seed}"
        sae_hash = hashlib.sha256(fit.encode()).hexdigest()[:16]
        d_sae, arch, default_name = None, kind, kind
    else:
        sae_hash, d_sae, arch = dictionary.content_hash(), dictionary.d_sae, dictionary.architecture
        default_name = Path(config.sae).name or config.sae
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
        "sae_id": config.sae,
        "sae_hash": sae_hash,
        "sae_name": config.name or cfg.get("metadata", {}).get("sae_name") or default_name,
        "architecture": config.architecture or cfg.get("metadata", {}).get("saebench_kind") or arch,
        "data_source": config.data_source or cfg.get("metadata", {}).get("data_source", ""),
        "d_sae": d_sae,
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
    )


def run(config: RunConfig) -> RunRecord:
    """Score one dictionary; write its JSON and leaderboard row when asked."""
    return run_many([config])[0]


def run_many(configs: list[RunConfig]) -> list[RunRecord]:
    """Score several dictionaries; write each one's JSON and leaderboard row when asked.

    Every SAE is resolved and every output path checked before any work starts. Runs that
    share the model (name, processing, device), task, prompt BOS, node and scorer settings
    are scored together by :func:`saebench.evaluate.evaluate_many`, so their clean run,
    supervised fit, counterfactual activations and supervised interventions are computed
    once; each record is exactly what :func:`run` alone gives. Records come back in the
    order of ``configs``; each group's are written as soon as it is scored.
    """
    jobs = []
    for config in configs:
        dictionary, model_name, processing, node = resolve(config)
        jobs.append((config, dictionary, model_name, processing, node))
    paths = [output_paths(config, model_name, node) for config, _, model_name, _, node in jobs]
    seen: dict[str, str] = {}
    for (config, *_), job_paths in zip(jobs, paths, strict=True):
        json_path = job_paths.get("json")
        if json_path is not None and seen.setdefault(json_path, config.sae) != config.sae:
            raise ValueError(
                f"{seen[json_path]} and {config.sae} would both write {json_path}: put {{sae}} "
                f"in --json-out"
            )

    groups: dict[str, list[int]] = {}
    for i, (config, dictionary, model_name, processing, node) in enumerate(jobs):
        # prompts start with BOS as the SAE saw in training (SAELens ``prepend_bos``)
        bos = None if isinstance(dictionary, str) else dictionary.meta.prepend_bos
        key = json.dumps(
            [
                model_name,
                effective_processing(model_name, processing),
                config.device,
                config.task,
                bos,
                str(node),
                asdict(settings_of(config)),
            ],
            sort_keys=True,
            default=str,
        )
        groups.setdefault(key, []).append(i)

    models: dict[str, Any] = {}
    records: list[RunRecord | None] = [None] * len(jobs)
    for members in groups.values():
        config, first, model_name, processing, node = jobs[members[0]]
        model_key = json.dumps(
            [model_name, effective_processing(model_name, processing), config.device]
        )
        if model_key not in models:
            models[model_key] = load_model(model_name, processing, device=config.device)
        model = models[model_key]
        bos = prepends_bos(model) if isinstance(first, str) else first.meta.prepend_bos
        task = load_task(config.task, tokenizer=tokenizer_of(model), prepend_bos=bos)
        results = evaluate_many(
            model,
            task,
            node,
            [jobs[i][1] for i in members],
            settings_of(config),
            model_name=model_name,
        )
        for i, result in zip(members, results, strict=True):
            records[i] = _record(*jobs[i], result, paths[i])
    return [record for record in records if record is not None]


def _record(
    config: RunConfig,
    dictionary,
    model_name: str,
    processing: dict | None,
    node: Node,
    result: EvalResult,
    paths: dict[str, str],
) -> RunRecord:
    """The run's record, written to its JSON and leaderboard row (as ``paths`` say)."""
    record = RunRecord(
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        identity=identity_of(dictionary, config, model_name, processing, node),
        provenance={
            "saebench_version": __version__,
            "git_commit": git_commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seed": config.seed,
            "n_prompts": config.n_prompts,
            "n_fit_prompts": config.n_fit_prompts,
            "versions": library_versions(),
        },
        metrics=result.metrics,
        details=result.details,
    )
    # the JSON first: if the leaderboard cannot be written, the result is still on disk
    if "json" in paths:
        record.paths["json"] = paths["json"]
        write_json(Path(paths["json"]), record)
    if "leaderboard" in paths:
        from saebench.leaderboard import upsert_row

        record.paths["leaderboard"] = paths["leaderboard"]
        upsert_row(paths["leaderboard"], leaderboard_row(record))
    return record


def output_paths(config: RunConfig, model_name: str, node: Node) -> dict[str, str]:
    """The JSON and leaderboard paths with ``{model}``, ``{task}``, ``{sae}``, ``{node}`` filled
    in; raises ``ValueError`` on any other placeholder (checked before the work starts)."""
    fields = {
        "model": model_name,
        "task": config.task,
        "sae": (Path(config.sae).name or "sae").replace(":", "-"),
        "node": str(node).replace("/", "_"),
    }
    paths = {}
    for what, template in (("json", config.json_out), ("leaderboard", config.leaderboard)):
        if template is None:
            continue
        try:
            paths[what] = str(template).format(**fields)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"bad {what} path {template!r}: only {{model}}, {{task}}, {{sae}} and {{node}} "
                f"may be filled in ({err})"
            ) from err
    return paths


def leaderboard_row(record: RunRecord) -> dict[str, Any]:
    """The flat CSV row: identity, provenance (without the version table), metrics."""
    provenance = {k: v for k, v in record.provenance.items() if k != "versions"}
    return {**record.identity, **provenance, **record.metrics}


def write_json(path: Path, record: RunRecord) -> None:
    """Write the run record atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(record), handle, indent=2, default=str, allow_nan=True)
    os.replace(tmp, path)
