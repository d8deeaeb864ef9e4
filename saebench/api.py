"""The Python API: score SAE objects (or paths) on a model you may already have loaded.

>>> import saebench                                                          # doctest: +SKIP
>>> result = saebench.evaluate_sae(sae, model=model, task="ioi", position="END")  # doctest: +SKIP
>>> result.metrics["sufficiency"], result.to_frame()                         # doctest: +SKIP

:func:`evaluate_saes` scores several SAEs with shared work: SAEs at the same (model, node,
prompt BOS) share one :func:`saebench.evaluate.prepare` (the clean run, the supervised fit,
the counterfactual activations and the supervised interventions), then get one
:func:`saebench.evaluate.score` each, as in :func:`saebench.evaluate.evaluate_many`; each
result equals :func:`evaluate_sae` of that SAE alone.

As in ``saebench run``, the node's hook and head come from the SAE's metadata unless
``hook=`` / ``head=`` say otherwise, the prompts start with BOS as the SAE's ``prepend_bos``
says, and a model given by name is loaded with the processing the SAE's
``model_from_pretrained_kwargs`` asks for (else the paper's). Nothing is written to disk unless
``leaderboard=`` or ``json_out=`` is given; fitted supervised dictionaries are cached on disk
under :func:`saebench.cache.default_cache_dir` unless ``cache_dir=None``.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saebench import __version__, evaluate
from saebench.cache import default_cache_dir
from saebench.defaults import (
    DEFAULT_CACHE_BUDGET_MB,
    DEFAULT_COVERAGE_PROMPTS,
    DEFAULT_KS,
    DEFAULT_N_FIT_PROMPTS,
    DEFAULT_N_PROMPTS,
    PAPER_FIT_SPLIT,
    PAPER_SCORE_CLIP,
    paper_preset,
)
from saebench.evaluate import EvalResult, EvalSettings
from saebench.model import effective_processing, load_model, tokenizer_of
from saebench.node import Node
from saebench.run import (
    DEFAULT_MODEL,
    RunConfig,
    RunRecord,
    check_before_work,
    check_outputs_writable,
    check_protocol,
    checked_score,
    git_commit,
    identity_of,
    leaderboard_row,
    library_versions,
    output_paths,
    planned,
    task_options,
    trained_elsewhere,
    write_outputs,
)
from saebench.sae import SAE, SAEMeta
from saebench.sae.adapters import (
    Scorable,
    as_scorable,
    check_sae_like,
    is_saelens_sae,
    saelens_meta,
)
from saebench.sae.formats import SAELENS_CFG, SAELoadError
from saebench.task import load_task
from saebench.validation.settings import check_settings

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["SAEResult", "evaluate_sae", "evaluate_saes", "DEFAULT_CACHE_DIR"]


class _DefaultCacheDir:
    """Sentinel: the CLI's supervised-dictionary cache, :func:`default_cache_dir`."""

    def __repr__(self) -> str:
        return "DEFAULT_CACHE_DIR"


DEFAULT_CACHE_DIR: Any = _DefaultCacheDir()
"""``cache_dir`` default: ``$SAEBENCH_CACHE`` or ``~/.cache/saebench``, as ``saebench run``."""


@dataclass
class SAEResult:
    """One SAE's scores at one node, with everything needed to file them."""

    metrics: dict[str, float]
    """Flat metric name -> value (README "Metrics"; the leaderboard's metric columns)."""
    details: dict[str, Any]
    """Per-attribute detail (F1 summaries, occlusion and over-splitting numbers)."""
    identity: dict[str, Any]
    """The leaderboard's key and descriptive columns (model, processing, task, hook, head,
    position, sae_id, sae_hash, sae_name, architecture, data_source, d_sae)."""
    node: Node
    """Where the SAE was read and edited."""
    provenance: dict[str, Any]
    """saebench version, git commit, UTC date, seed, prompt counts, library versions."""
    config: dict[str, Any]
    """The run's settings, in the JSON record's ``config`` format."""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    """Architecture, widths, k, ... where the SAE's config states them."""
    paths: dict[str, str] = field(default_factory=dict)
    """Where the JSON and the leaderboard row were written (empty unless asked)."""

    def __repr__(self) -> str:
        shown = ("l0", "fvu", "sufficiency", "necessity")
        numbers = ", ".join(f"{k}={self.metrics[k]:.4g}" for k in shown if k in self.metrics)
        name = self.identity.get("sae_name", "")
        return f"SAEResult({name!r} at {self.node}: {numbers}, ... {len(self.metrics)} metrics)"

    def record(self) -> RunRecord:
        """The result as the record ``saebench run`` writes to its JSON."""
        extra = {}
        if "hyperparameters" in {f.name for f in fields(RunRecord)}:
            extra["hyperparameters"] = self.hyperparameters
        return RunRecord(
            config=self.config,
            identity=self.identity,
            provenance=self.provenance,
            metrics=self.metrics,
            details=self.details,
            paths=dict(self.paths),
            **extra,
        )

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame in the leaderboard's row format
        (:func:`saebench.run.leaderboard_row`: identity, provenance, metrics)."""
        import pandas as pd

        return pd.DataFrame([leaderboard_row(self.record())])


def evaluate_sae(
    sae: Any,
    model: Any = None,
    *,
    task: str = "ioi",
    position: str = "END",
    hook: str | None = None,
    head: int | None = None,
    n_prompts: int = DEFAULT_N_PROMPTS,
    n_fit_prompts: int = DEFAULT_N_FIT_PROMPTS,
    ks: Sequence[int] = DEFAULT_KS,
    seed: int = 0,
    batch_size: int = 256,
    tau: float = 0.8,
    device: str | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    cache_budget_mb: float = DEFAULT_CACHE_BUDGET_MB,
    progress: bool = True,
    name: str | None = None,
    leaderboard: str | Path | None = None,
    json_out: str | Path | None = None,
    force: bool = False,
    protocol: str = "saebench",
    max_memory_mb: float | None = None,
    coverage_prompts: int = DEFAULT_COVERAGE_PROMPTS,
) -> SAEResult:
    """Score one SAE on ``task`` at its node of ``model``; see :func:`evaluate_saes`."""
    return evaluate_saes(
        [sae],
        model,
        task=task,
        position=position,
        hook=hook,
        head=head,
        n_prompts=n_prompts,
        n_fit_prompts=n_fit_prompts,
        ks=ks,
        seed=seed,
        batch_size=batch_size,
        tau=tau,
        device=device,
        cache_dir=cache_dir,
        cache_budget_mb=cache_budget_mb,
        progress=progress,
        names=None if name is None else [name],
        leaderboard=leaderboard,
        json_out=json_out,
        force=force,
        protocol=protocol,
        max_memory_mb=max_memory_mb,
        coverage_prompts=coverage_prompts,
    )[0]


def evaluate_saes(
    saes: Sequence[Any],
    model: Any = None,
    *,
    task: str = "ioi",
    position: str = "END",
    hook: str | None = None,
    head: int | None = None,
    n_prompts: int = DEFAULT_N_PROMPTS,
    n_fit_prompts: int = DEFAULT_N_FIT_PROMPTS,
    ks: Sequence[int] = DEFAULT_KS,
    seed: int = 0,
    batch_size: int = 256,
    tau: float = 0.8,
    device: str | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    cache_budget_mb: float = DEFAULT_CACHE_BUDGET_MB,
    progress: bool = True,
    names: Sequence[str] | None = None,
    leaderboard: str | Path | None = None,
    json_out: str | Path | None = None,
    force: bool = False,
    protocol: str = "saebench",
    max_memory_mb: float | None = None,
    coverage_prompts: int = DEFAULT_COVERAGE_PROMPTS,
) -> list[SAEResult]:
    """Score every SAE in ``saes``; results in the same order.

    Each SAE may be a ``sae_lens`` SAE object (any architecture; codes and reconstructions
    through sae-lens itself, :class:`saebench.sae.adapters.SAELensAdapter`), a
    dictionary_learning dictionary or any other :class:`saebench.sae.adapters.SAELike`
    object, a :class:`saebench.sae.SAE`, or a string / path: a SAELens or dictionary_learning
    directory or a ``RELEASE/SAE_ID`` (:func:`saebench.sae.formats.load_sae`; a SAELens directory
    saebench's own loader cannot represent, e.g. ``abstopk`` or ``layer_norm``, is loaded
    with ``sae_lens.SAE.load_from_disk``).

    ``model`` is a model name (``tiny-ioi``, ``gpt2-small``, ...; loaded once per processing
    the SAEs ask for) or a ``HookedTransformer`` / ``HookedSAETransformer`` you already have
    (used as it is; a processing different from the SAE's is warned about where TransformerLens
    records it). ``None``: the SAE's own ``model_name``. A ``HookedSAETransformer`` with SAEs
    attached is refused: attached SAEs replace the activations saebench reads and edits, so
    call ``model.reset_saes()`` first (pass an attached SAE as ``sae`` to score it).

    ``hook`` / ``head`` override every SAE's metadata; ``device`` is where a named model is
    loaded (default cpu; a model object stays where it is). Settings as ``saebench run``:
    ``n_prompts`` evaluation prompts, ``n_fit_prompts`` for the supervised fit, edit sizes
    ``ks``, F1 threshold ``tau``, ``coverage_prompts`` for the interpretability metrics
    (``--coverage-prompts``: their own prompts, whatever ``n_prompts`` is; docs/metrics.md
    §6); ``cache_dir=None`` disables the supervised cache;
    ``max_memory_mb`` refuses, before its work, an SAE whose scoring is estimated to need more
    memory (default 80% of the machine's, as ``--max-memory``).
    ``protocol="paper"`` is ``saebench run --protocol paper`` (docs/metrics.md §10): the
    paper's prompt counts and ``ks`` replace those left at their defaults here.

    ``names`` name the SAEs in the identity (``sae_name``). ``leaderboard`` (a CSV) and
    ``json_out`` (one JSON per SAE) are written only when given; both may use ``{model}``,
    ``{task}``, ``{sae}`` and ``{node}`` as ``saebench run`` does. They are written as
    ``saebench run`` writes them (:func:`saebench.run.write_outputs`): the JSON first; a
    leaderboard row of the same SAE and node computed with other settings raises
    :class:`saebench.leaderboard.SettingsConflict` (wrapped in
    :class:`saebench.run.UnsavedResultError`, the result kept on disk) unless ``force``.
    Outputs that would lose data are refused with ``ValueError`` before any work, as by
    ``saebench run``: two SAEs writing one JSON, a JSON over the leaderboard or over a file
    that is not a run record, two SAEs with identical weights writing one leaderboard row.
    """
    if not isinstance(ks, str | bytes) and hasattr(ks, "__iter__"):
        ks = tuple(ks)  # once: a generator would be empty when read again
    check_settings(
        {
            "task": task,
            "position": position,
            "hook": hook,
            "head": head,
            "n_prompts": n_prompts,
            "n_fit_prompts": n_fit_prompts,
            "coverage_prompts": coverage_prompts,
            "ks": ks,
            "seed": seed,
            "batch_size": batch_size,
            "tau": tau,
            "device": device,
            "cache_budget_mb": cache_budget_mb,
            "max_memory_mb": max_memory_mb,
        },
        "api",
    )
    saes = list(saes)
    if names is not None:
        if isinstance(names, str):
            raise TypeError("names must be a list of strings, one per SAE, not a string")
        names = list(names)
        if len(names) != len(saes):
            raise ValueError(f"{len(names)} names for {len(saes)} SAEs")
        for name in names:
            check_settings({"name": name}, "api")
    check_protocol(protocol, task)
    if protocol == "paper":
        given = {"n_prompts": n_prompts, "n_fit_prompts": n_fit_prompts, "ks": tuple(ks)}
        defaults = {"n_prompts": DEFAULT_N_PROMPTS, "n_fit_prompts": DEFAULT_N_FIT_PROMPTS}
        defaults["ks"] = tuple(DEFAULT_KS)
        preset = paper_preset({k: v for k, v in given.items() if v != defaults[k]})
        n_prompts, n_fit_prompts, ks = preset["n_prompts"], preset["n_fit_prompts"], preset["ks"]
    settings = EvalSettings(
        n_prompts=n_prompts,
        n_fit_prompts=n_fit_prompts,
        ks=tuple(ks),
        seed=seed,
        batch_size=batch_size,
        tau=tau,
        cache_dir=default_cache_dir() if cache_dir is DEFAULT_CACHE_DIR else _path(cache_dir),
        progress=progress,
        cache_budget_mb=cache_budget_mb,
        fit_split=PAPER_FIT_SPLIT if protocol == "paper" else "test",
        clip_score=PAPER_SCORE_CLIP if protocol == "paper" else None,
        coverage_prompts=coverage_prompts,
    )
    if model is not None and not isinstance(model, str):
        _check_model_object(model, device)

    jobs = []
    for i, spec in enumerate(saes):
        raw, sae_id, meta = _load(spec)
        model_name = _model_name(model, meta)
        processing = meta.model_from_pretrained_kwargs
        hook_name = hook or meta.hook_name
        if not hook_name:
            raise ValueError(
                f"SAE {sae_id} names no hook (no hook_name in its metadata); pass hook="
            )
        node = Node(hook_name, position, head if head is not None else meta.hook_head_index)
        for note in trained_elsewhere(meta, node, task):
            logger.warning("%s: %s", sae_id, note)
        config = RunConfig(
            sae=sae_id,
            task=task,
            model=model_name,
            hook=node.hook_name,
            head=node.head,
            position=position,
            n_prompts=n_prompts,
            n_fit_prompts=n_fit_prompts,
            ks=tuple(ks),
            seed=seed,
            device=device or _device_of(model),
            batch_size=batch_size,
            tau=tau,
            leaderboard=None if leaderboard is None else str(leaderboard),
            json_out=None if json_out is None else str(json_out),
            force=force,
            protocol=protocol,
            cache_dir=settings.cache_dir,
            progress=progress,
            cache_budget_mb=cache_budget_mb,
            name=None if names is None else names[i],
            max_memory_mb=max_memory_mb,
            coverage_prompts=coverage_prompts,
            **_label(None if names is None else names[i]),
        )
        jobs.append(_Job(raw, meta, config, model_name, processing, node))
        jobs[-1].source = sae_id if isinstance(spec, str | Path) else f"object {id(raw)}"
    _check_output_paths(jobs)

    models: dict[str, Any] = {}
    groups: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        if model is None or isinstance(model, str):
            key = [job.model_name, effective_processing(job.model_name, job.processing)]
        else:
            key = ["<given model>"]
        job.model_key = json.dumps(key + [job.config.device], sort_keys=True, default=str)
        group = json.dumps([job.model_key, str(job.node), job.meta.prepend_bos])
        groups.setdefault(group, []).append(i)

    results: list[SAEResult | None] = [None] * len(jobs)
    for members in groups.values():
        first = jobs[members[0]]
        if first.model_key not in models:
            models[first.model_key] = (
                model
                if model is not None and not isinstance(model, str)
                else load_model(first.model_name, first.processing, device=first.config.device)
            )
        lm = models[first.model_key]
        if model is not None and not isinstance(model, str):
            _check_processing(lm, first.model_name, first.processing)
        first.node.check(lm)
        for i in members:
            jobs[i].scorable = as_scorable(
                jobs[i].raw, d_head=lm.cfg.d_head, source=jobs[i].config.sae
            )
            check_before_work(jobs[i].scorable, first.node, lm, jobs[i].config, style="api")
        lm_task = load_task(
            task,
            tokenizer=tokenizer_of(lm),
            prepend_bos=first.meta.prepend_bos,
            **task_options(first.config),
        )
        start = time.perf_counter()
        context = evaluate.prepare(lm, lm_task, first.node, settings, first.model_name)
        shared_s = time.perf_counter() - start
        for i in members:
            start = time.perf_counter()
            result = checked_score(context, jobs[i].scorable, jobs[i].config.sae)
            timing = {"wall_time_s": time.perf_counter() - start, "shared_wall_time_s": shared_s}
            results[i] = _result(jobs[i], result, timing)
    return [result for result in results if result is not None]


@dataclass
class _Job:
    raw: Any
    meta: SAEMeta
    config: RunConfig
    model_name: str
    processing: dict | None
    node: Node
    model_key: str = ""
    scorable: Scorable | None = None
    source: str = ""
    """What tells it apart from the call's other SAEs: its path, or the object's id."""


def _load(spec: Any) -> tuple[Any, str, SAEMeta]:
    """The SAE object, its ``sae_id`` and its metadata (node, BOS, model, processing)."""
    if isinstance(spec, str | Path):
        raw = _load_path(spec)
        sae_id = str(spec)
    else:
        raw = spec
        sae_id = ""
    if isinstance(raw, SAE):
        meta = raw.meta
    elif is_saelens_sae(raw):
        meta = saelens_meta(raw, source=sae_id)
    else:
        check_sae_like(raw)
        meta = getattr(raw, "meta", None)
        meta = meta if isinstance(meta, SAEMeta) else SAEMeta()
    if not sae_id:  # an object: where its class comes from (sae_lens:TopKSAE, ...)
        library = (type(raw).__module__ or "python").split(".")[0]
        sae_id = meta.source or f"{library}:{type(raw).__name__}"
    return raw, sae_id, meta


def _load_path(spec: str | Path) -> Any:
    """What ``saebench run --sae`` loads (:func:`saebench.discover.load`: also a
    dictionary_learning checkpoint ``ae_N.pt``), falling back to sae-lens for SAELens
    directories saebench's own reader cannot represent (abstopk, matching_pursuit, layer_norm
    normalisation, ...)."""
    from saebench.discover import load as load_like_the_cli

    try:
        return load_like_the_cli(str(spec), device="cpu")
    except SAELoadError as err:
        path = Path(spec).expanduser()
        if not (path / SAELENS_CFG).is_file():
            raise
        try:
            import sae_lens
        except ImportError:
            raise err from None
        try:
            return sae_lens.SAE.load_from_disk(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - report saebench's reason and sae-lens's
            raise SAELoadError(f"{err} (sae_lens could not load it either: {exc})") from exc


def _label(name: str | None) -> dict[str, str]:
    """``label=name`` (the ``{sae}`` of output paths) where :class:`RunConfig` has it."""
    if name is None or "label" not in {f.name for f in fields(RunConfig)}:
        return {}
    return {"label": name}


def _model_name(model: Any, meta: SAEMeta) -> str:
    """The name the run is filed under: ``model`` if a name, else the SAE's model name when
    it is the given model's, else the given model's own name."""
    if isinstance(model, str):
        if meta.model_name and meta.model_name != model:
            logger.warning("the SAE was trained on %r but model is %r", meta.model_name, model)
        return model
    if model is None:
        return meta.model_name or DEFAULT_MODEL
    own = str(model.cfg.model_name)
    if meta.model_name and _official_name(meta.model_name) == _official_name(own):
        return meta.model_name
    if meta.model_name:
        warnings.warn(
            f"the SAE was trained on {meta.model_name!r} but the model is {own!r}", stacklevel=4
        )
    return own


def _official_name(name: str) -> str:
    try:
        from transformer_lens.loading_from_pretrained import get_official_model_name

        return get_official_model_name(name).split("/")[-1]
    except Exception:  # noqa: BLE001 - unknown names (tiny-ioi, local models) are themselves
        return name.split("/")[-1]


def _check_model_object(model: Any, device: str | None) -> None:
    """Refuse a model with attached SAEs, or one on another device than ``device``."""
    attached = getattr(model, "acts_to_saes", None)
    if attached:
        raise ValueError(
            f"the model has SAEs attached at {sorted(attached)}: an attached SAE replaces the "
            "activations saebench reads and edits (and renames its hook). Call "
            "model.reset_saes() first; to score an attached SAE, pass it as the sae argument"
        )
    if not hasattr(model, "cfg") or not hasattr(model, "hook_dict"):
        raise TypeError(
            f"model must be a model name or a TransformerLens HookedTransformer, got "
            f"{type(model).__name__}"
        )
    if device is not None and str(model.cfg.device) != str(device):
        raise ValueError(
            f"the model is on {model.cfg.device} but device={device!r}; move the model "
            "(model.to(...)) or leave device unset"
        )


def _check_processing(model: Any, model_name: str, processing: dict | None) -> None:
    """Warn when a given model's weights are visibly processed otherwise than the SAE asks
    (TransformerLens records only LayerNorm folding, as ``normalization_type`` ``LNPre``)."""
    wanted = effective_processing(model_name, processing)
    if "fold_ln" not in wanted:
        return
    folded = str(model.cfg.normalization_type).endswith("Pre")
    if bool(wanted["fold_ln"]) != folded:
        warnings.warn(
            f"the SAE expects a model loaded with fold_ln={wanted['fold_ln']} but the given "
            f"model's LayerNorms are {'folded' if folded else 'not folded'}; its activations "
            "may not be the ones the SAE was trained on",
            stacklevel=4,
        )


def _device_of(model: Any) -> str:
    if model is None or isinstance(model, str):
        return "cpu"
    return str(model.cfg.device)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _check_output_paths(jobs: list[_Job]) -> None:
    """Fill in the output templates; refuse outputs that would lose data, as ``saebench run``
    does: two SAEs writing one JSON, a JSON over the leaderboard, two SAEs with identical
    weights writing one leaderboard row (before any work, :func:`saebench.run.planned` and
    :func:`saebench.validation.outputs.check_plan`)."""
    from saebench.validation.outputs import check_plan

    plan = []
    for job in jobs:
        paths = output_paths(job.config, job.model_name, job.node)
        identity = None
        if "leaderboard" in paths:  # the row it would write (the hash needs no model)
            early = as_scorable(job.raw, source=job.config.sae)
            identity = identity_of(early, job.config, job.model_name, job.processing, job.node)
        inputs = (job.config.sae,) if Path(job.config.sae).exists() else ()
        plan.append(planned(job.config, paths, identity, source=job.source, inputs=inputs))
    check_plan(plan)
    for item in plan:  # as `saebench run`: an output that could not be written, before work
        check_outputs_writable(dict(item.paths))


def _result(job: _Job, result: EvalResult, timing: dict[str, float]) -> SAEResult:
    """The SAE's result; its JSON and leaderboard row written if asked."""
    config, scored = job.config, job.scorable
    assert scored is not None
    out = SAEResult(
        metrics=result.metrics,
        details=result.details,
        identity=identity_of(scored, config, job.model_name, job.processing, job.node),
        node=job.node,
        provenance={
            "saebench_version": __version__,
            "git_commit": git_commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seed": config.seed,
            "n_prompts": config.n_prompts,
            "n_fit_prompts": config.n_fit_prompts,
            **timing,
            "versions": library_versions(),
        },
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        hyperparameters=_hyperparameters(scored),
    )
    paths = output_paths(config, job.model_name, job.node)
    if paths:
        record = out.record()
        write_outputs(record, paths, replace_settings=config.force)
        out.paths.update(paths)
    return out


def _hyperparameters(scored: Scorable) -> dict[str, Any]:
    """The SAE's hyperparameters as ``saebench run`` records them, where saebench's reader
    represents the SAE; else architecture and widths (and ``k`` when its config has one)."""
    try:
        from saebench.sae.formats import hyperparameters
    except ImportError:
        return {}
    view = scored if isinstance(scored, SAE) else getattr(scored, "saebench_view", None)
    if isinstance(view, SAE):
        return hyperparameters(view)
    cfg = scored.meta.cfg if isinstance(scored.meta.cfg, dict) else {}
    k = cfg.get("k")
    return {
        "architecture": scored.architecture,
        "d_in": scored.d_in,
        "d_sae": scored.d_sae,
        "k": k if isinstance(k, int) and not isinstance(k, bool) else None,
    }
