"""The scorer: one dictionary at one node, on one task, next to the supervised reference.

``evaluate`` runs every axis of metrics.md §4–6 on the task's test split:

1. the clean run of the evaluation prompts (cached once, :class:`saebench.runner.NodeRunner`);
2. the supervised mean and least-squares dictionaries, fitted on ``n_fit_prompts`` other
   prompts of the same split (a supervised feature for a name can only be estimated from
   prompts that contain it; the train/test vocabulary split exists for SAE training);
3. approximation: ``l0``, ``fvu``, ``dead_fraction``, ``sufficiency``,
   ``logit_diff_recovered_vs_meanabl``, ``necessity`` for the
   dictionary and (``sup_`` prefix) the mean dictionary, (``sup_lstsq_``) the lstsq one;
4. control, per attribute: ground truth from patching the counterfactual activation,
   ``noint_accuracy``, the supervised edit, and for each budget k the interpretation-agnostic
   (``edit_*``) and -aware (``aware_edit_*``) SAE edits with their magnitudes and their L2
   distances to the counterfactual activation; the aware edit ranks latents by F1 over the
   clean and counterfactual prompts together, so that every counterfactual value occurs;
5. interpretability, per attribute: F1 coverage and the other summaries of
   :func:`saebench.metrics.interpretability.attribute_summary`, on the run's own coverage prompts
   (``coverage_prompts`` of the test split, drawn with the run's seed whatever ``n_prompts``
   is; the evaluation prompts themselves when the two counts are equal).

Steps 1–2, the supervised parts of 3–4, the counterfactual activations, ground truth and
``noint_accuracy`` do not depend on the dictionary: :func:`prepare` computes them once into a
:class:`NodeContext` and :func:`score` adds one dictionary's numbers, so :func:`evaluate_many`
scores several dictionaries at a node for one preparation (``evaluate`` is ``prepare`` then
``score``; the metrics are the same either way).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from saebench.cache import cached_supervised, model_fingerprint
from saebench.defaults import (
    DEFAULT_CACHE_BUDGET_MB,
    DEFAULT_COVERAGE_MIN_PROMPTS,
    DEFAULT_COVERAGE_PROMPTS,
    DEFAULT_KS,
    DEFAULT_N_FIT_PROMPTS,
    DEFAULT_N_PROMPTS,
)
from saebench.metrics import approximation, control, interpretability
from saebench.node import Node
from saebench.runner import NodeRunner
from saebench.stats import bootstrap
from saebench.supervised import FITTERS, SupervisedDictionary
from saebench.task import Task

logger = logging.getLogger(__name__)

FIT_SEED_OFFSET = 1_000_003
"""Fitting prompts use ``seed + FIT_SEED_OFFSET`` so they differ from the evaluation prompts."""
CF_SEED_STRIDE = 7919


def counterfactual_seed(seed: int, attribute_index: int) -> int:
    """Seed of the counterfactual prompts for the task's ``attribute_index``-th attribute:
    ``seed + 7919 · (attribute_index + 1)``.

    >>> counterfactual_seed(0, 0), counterfactual_seed(3, 2)
    (7919, 23760)
    """
    return seed + CF_SEED_STRIDE * (attribute_index + 1)


@dataclass
class EvalSettings:
    """How much work ``evaluate`` does and where."""

    n_prompts: int = DEFAULT_N_PROMPTS
    """Evaluation prompts (test split)."""
    n_fit_prompts: int = DEFAULT_N_FIT_PROMPTS
    """Prompts the supervised dictionaries are fitted on (test split, another seed)."""
    ks: tuple[int, ...] = DEFAULT_KS
    """Numbers of latents an SAE edit may use."""
    seed: int = 0
    batch_size: int = 256
    tau: float = 0.8
    """F1 threshold for a latent to count as interpretable."""
    cache_dir: Path | None = None
    """Where fitted supervised dictionaries are cached; None disables the cache."""
    progress: bool = True
    cache_budget_mb: float = DEFAULT_CACHE_BUDGET_MB
    """Bound on the attention keys and values the clean run keeps for interventions (MB);
    batches past it resume the whole sequence (see :mod:`saebench.runner`)."""
    prefix_cache: bool = True
    """Recompute only positions p..END per intervention (False: resume the whole sequence)."""
    fit_split: str = "test"
    """Split the supervised fitting prompts come from (the paper protocol: ``"all"``, every
    name, for tasks that have that split)."""
    clip_score: tuple[float, float] | None = None
    """Clip the normalised edit score to this range (the paper protocol: [0, 2]); None: no
    clipping."""
    n_bootstrap: int = bootstrap.DEFAULT_N_BOOTSTRAP
    """Bootstrap replicates of every metric's interval (metrics.md §11); 0: no intervals."""
    coverage_min_prompts: int = DEFAULT_COVERAGE_MIN_PROMPTS
    """A value counts in F1 coverage only with at least this many prompts (metrics.md §6)."""
    coverage_prompts: int = DEFAULT_COVERAGE_PROMPTS
    """Prompts the interpretability metrics are computed on (metrics.md §6), whatever
    ``n_prompts`` is: ``task.prompts("test", coverage_prompts, seed)``, which are the
    evaluation prompts when the two counts are equal."""


@dataclass
class EvalResult:
    metrics: dict[str, float]
    """Flat metric name -> value (the leaderboard's columns)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Per-attribute detail that does not fit a flat row."""
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Metric -> 95% bootstrap interval (lo, hi) over evaluation prompts (metrics.md §11)."""
    outcomes: dict[str, Tensor] = field(default_factory=dict)
    """Per-prompt outcomes the metrics are computed from (:mod:`saebench.stats.bootstrap`)."""
    outcomes_meta: dict[str, Any] = field(default_factory=dict)
    """What :func:`saebench.stats.bootstrap.metric_values` needs besides ``outcomes``."""


def encode(dictionary, x_ND: Tensor, labels: dict[str, Tensor]) -> Tensor:
    """Codes [N, F]; supervised dictionaries encode from the labels."""
    if getattr(dictionary, "needs_labels", False):
        return dictionary.encode(x_ND, labels)
    return dictionary.encode(x_ND)


def active(dictionary, x_ND: Tensor, labels: dict[str, Tensor]) -> Tensor:
    """Which latents are active [N, F], in the dictionary's own sense (metrics.md §6)."""
    if getattr(dictionary, "needs_labels", False):
        return dictionary.active(x_ND, labels)
    return dictionary.active(x_ND)


def fit_supervised(
    runner: NodeRunner, task: Task, settings: EvalSettings, model_name: str
) -> dict[str, SupervisedDictionary]:
    """Mean and lstsq dictionaries at the runner's node, through the on-disk cache."""
    sizes = {a: len(task.attribute_values(a)) for a in task.attributes}
    fit_seed = settings.seed + FIT_SEED_OFFSET
    description = {
        "model": model_name,
        "model_fingerprint": model_fingerprint(runner.model),
        "task": task.name,
        "attribute_values": {a: task.attribute_values(a) for a in task.attributes},
        "node": str(runner.node),
        "n_fit_prompts": settings.n_fit_prompts,
        "fit_seed": fit_seed,
        "format": 1,
    }
    if settings.fit_split != "test":  # (keeps the cache keys of the default fits)
        description["fit_split"] = settings.fit_split
    state: dict[str, Any] = {}

    def fit_data():
        if not state:
            prompts = task.prompts(settings.fit_split, settings.n_fit_prompts, fit_seed)
            state["acts"] = runner.activations(prompts, desc="fit activations").float().cpu()
            state["labels"] = {a: prompts.attributes[a].cpu() for a in task.attributes}
        return state["acts"], state["labels"]

    out = {}
    for kind, fitter in FITTERS.items():
        out[kind] = cached_supervised(
            dict(description, kind=kind),
            settings.cache_dir,
            lambda fitter=fitter: fitter(*fit_data(), sizes),
        ).to(runner.device)
    return out


def _approximation(
    prefix: str,
    runner: NodeRunner,
    dictionary,
    acts_ND: Tensor,
    mean_D: Tensor,
    ld_meanabl_N: Tensor,
    codes_NF: Tensor,
    is_active_NF: Tensor,
    per_prompt: dict[str, Tensor] | None = None,
) -> dict[str, float]:
    """metrics.md §4 for one dictionary: L0, FVU, dead fraction, sufficiency, logit difference
    recovered vs mean ablation, necessity. ``per_prompt`` receives the per-prompt outcomes
    (``{prefix}recon_ld``, ``{prefix}removed_ld``, ``{prefix}sq_err`` = ‖a − â‖²)."""
    recon_ND = dictionary.decode(codes_NF)
    clean_N = runner.clean.metric_N
    ld_recon_N = runner.patched(recon_ND, desc=f"{prefix}sufficiency").metric_N
    ld_removed_N = runner.patched(mean_D + acts_ND - recon_ND, desc=f"{prefix}necessity").metric_N
    if per_prompt is not None:
        per_prompt[f"{prefix}recon_ld"] = ld_recon_N.double().cpu()
        per_prompt[f"{prefix}removed_ld"] = ld_removed_N.double().cpu()
        per_prompt[f"{prefix}sq_err"] = (acts_ND.double() - recon_ND.double()).pow(2).sum(1).cpu()
    return {
        f"{prefix}l0": approximation.l0(is_active_NF),
        f"{prefix}fvu": approximation.fvu(acts_ND, recon_ND),
        f"{prefix}dead_fraction": approximation.dead_fraction(is_active_NF),
        f"{prefix}sufficiency": approximation.sufficiency(ld_recon_N, clean_N),
        f"{prefix}logit_diff_recovered_vs_meanabl": (
            approximation.logit_diff_recovered_vs_meanabl(ld_recon_N, ld_meanabl_N, clean_N)
        ),
        f"{prefix}necessity": approximation.necessity(ld_meanabl_N, ld_removed_N, clean_N),
    }


@dataclass
class AttributeContext:
    """The SAE-independent part of one attribute's control axis (metrics.md §5) at a node."""

    cf_labels: dict[str, Tensor]
    """Attribute labels of the counterfactual prompts [N] each."""
    acts_cf_ND: Tensor
    """The node's vectors on the counterfactual prompts, a_cf."""
    target_N: Tensor
    """Ground truth y_gt: argmax at END with a → a_cf."""
    metrics: dict[str, float]
    """``noint_accuracy_{a}``, ``sup_edit_accuracy_{a}``, ``sup_edit_magnitude_{a}``."""
    per_prompt: dict[str, Tensor] = field(default_factory=dict)
    """Their per-prompt outcomes (``noint_correct_{a}``, ``sup_edit_correct_{a}``,
    ``sup_edit_weight_{a}``)."""


@dataclass
class NodeContext:
    """Everything ``score`` needs that does not depend on the dictionary scored, for one
    (model, task, node, settings): built once by :func:`prepare`, shared by every dictionary
    scored there (:func:`evaluate_many`)."""

    model: Any
    task: Task
    node: Node
    settings: EvalSettings
    model_name: str
    runner: NodeRunner
    """The clean run of the evaluation prompts and the interventions at the node."""
    sup: dict[str, SupervisedDictionary]
    """The supervised ``mean`` and ``lstsq`` dictionaries at the node."""
    acts_ND: Tensor
    """Clean vectors a at the node (float)."""
    labels: dict[str, Tensor]
    """Attribute labels of the evaluation prompts [N] each."""
    ld_meanabl_N: Tensor
    """Metric with a → ā (the mean dictionary's bias)."""
    head_metrics: dict[str, float]
    """``clean_logit_diff``, ``clean_accuracy``, ``meanabl_logit_diff``."""
    sup_metrics: dict[str, float]
    """metrics.md §4 of the supervised dictionaries (``sup_``, ``sup_lstsq_`` prefixes)."""
    attributes: dict[str, AttributeContext]
    details: dict[str, Any]
    """``node`` and ``prompts_with_unfitted_values``."""
    per_prompt: dict[str, Tensor] = field(default_factory=dict)
    """Per-prompt outcomes shared by every dictionary (clean run, mean ablation, supervised
    dictionaries, labels; :mod:`saebench.stats.bootstrap`)."""
    coverage: CoverageSample | None = None
    """The coverage prompts' vectors and labels; None: the evaluation prompts are they."""


@dataclass
class CoverageSample:
    """The prompts the interpretability metrics are computed on (metrics.md §6), when they are
    not the evaluation prompts: their node vectors and attribute labels."""

    acts_ND: Tensor
    labels: dict[str, Tensor]
    prompt_hash: str
    """One hash of their per-prompt ids (:func:`prompt_ids`): paired runs need equal ones."""


def coverage_sample(
    runner: NodeRunner, task: Task, settings: EvalSettings
) -> CoverageSample | None:
    """The run's coverage prompts at the runner's node: ``settings.coverage_prompts`` prompts of
    the test split drawn with the run's seed, as ``n_prompts`` prompts are drawn, so that they do
    not depend on ``n_prompts``; one forward pass that stops after the node. None when the two
    counts are equal: the draw is then the evaluation prompts themselves."""
    if settings.coverage_prompts == settings.n_prompts:
        return None
    prompts = task.prompts("test", settings.coverage_prompts, settings.seed)
    acts = runner.activations(prompts, desc="coverage activations").float()
    labels = {a: prompts.attributes[a].to(acts.device) for a in task.attributes}
    return CoverageSample(acts, labels, hash_ids(prompt_ids(prompts.tokens_BL)))


def check_width(dictionary, node: Node, model) -> None:
    """``ValueError`` unless ``dictionary`` (an SAE; supervised specs always fit) reads
    vectors of the node's width."""
    width = node.width(model)
    if not isinstance(dictionary, str) and dictionary.d_in != width:
        raise ValueError(
            f"the dictionary reads {dictionary.d_in}-dim vectors but node {node} has width {width}"
        )


@torch.no_grad()
def prepare(
    model,
    task: Task,
    node: Node,
    settings: EvalSettings,
    model_name: str = "",
) -> NodeContext:
    """The dictionary-independent work of scoring at ``node``: the clean run (with its prefix
    key-value cache), the supervised fit, the mean ablation and the supervised dictionaries'
    approximation metrics, and per attribute the counterfactual prompts and activations, the
    ground truth, ``noint_accuracy`` and the supervised edit. 11 of the 49 interventions of a
    default run."""
    node.check(model)
    prompts = task.prompts("test", settings.n_prompts, settings.seed)
    runner = NodeRunner(
        model,
        task,
        node,
        prompts,
        settings.batch_size,
        settings.progress,
        cache_budget_mb=settings.cache_budget_mb,
        prefix_cache=settings.prefix_cache,
    )
    sup = fit_supervised(runner, task, settings, model_name)
    sup_mean = sup["mean"]
    acts_ND = runner.acts_ND.float()
    labels = {a: runner.prompts.attributes[a] for a in task.attributes}
    clean = runner.clean
    details: dict[str, Any] = {"node": str(node), "attributes": {}}
    unfitted = {
        a: int((~sup_mean.present_F[sup_mean.feature_index(a, labels[a])]).sum())
        for a in task.attributes
    }
    details["prompts_with_unfitted_values"] = unfitted
    if any(unfitted.values()):
        logger.warning(
            "some evaluation prompts use attribute values absent from the %d fitting prompts "
            "(their supervised features are zero): %s; raise n_fit_prompts (the CLI's "
            "--n-fit-prompts)",
            settings.n_fit_prompts,
            unfitted,
        )
    coverage = coverage_sample(runner, task, settings)
    steps = tqdm(
        total=1 + len(task.attributes), desc=f"preparing {node}", disable=not settings.progress
    )
    mean_D = sup_mean.bias_D
    ld_meanabl_N = runner.patched(mean_D.expand_as(acts_ND), desc="mean ablation").metric_N
    head_metrics = {
        "clean_logit_diff": clean.metric_N.mean().item(),
        "clean_accuracy": control.agreement(clean.argmax_N, runner.prompts.answer_B),
        "meanabl_logit_diff": ld_meanabl_N.mean().item(),
    }
    acts_64 = acts_ND.double()
    per_prompt: dict[str, Tensor] = {
        "clean_ld": clean.metric_N.double().cpu(),
        "clean_correct": (clean.argmax_N == runner.prompts.answer_B).double().cpu(),
        "meanabl_ld": ld_meanabl_N.double().cpu(),
        "sq_dev": (acts_64 - acts_64.mean(0)).pow(2).sum(1).cpu(),
        **{f"labels_{a}": labels[a].long().cpu() for a in task.attributes},
    }
    if coverage is not None:
        for a in task.attributes:
            per_prompt[f"{bootstrap.COVERAGE_PREFIX}labels_{a}"] = coverage.labels[a].long().cpu()
    sup_metrics: dict[str, float] = {}
    for kind, prefix in (("mean", "sup_"), ("lstsq", "sup_lstsq_")):
        d = sup[kind]
        d_codes = d.encode(acts_ND, labels)
        full = _approximation(
            prefix, runner, d, acts_ND, mean_D, ld_meanabl_N, d_codes, d_codes > 0, per_prompt
        )
        sup_metrics.update(
            {k: v for k, v in full.items() if not k.endswith(("l0", "dead_fraction"))}
        )
    steps.update(1)

    sup_codes_NF = sup_mean.encode(acts_ND, labels)
    sup_weights_NF = control.edit_weights(sup_codes_NF, sup_mean.features_FD)
    attributes = {}
    for i, attr in enumerate(task.attributes):
        cf_prompts = task.counterfactual(
            runner.prompts, attr, counterfactual_seed(settings.seed, i)
        )
        cf_labels = {a: cf_prompts.attributes[a] for a in task.attributes}
        acts_cf_ND = runner.activations(cf_prompts, desc=f"counterfactual {attr}").float()
        target_N = runner.patched(acts_cf_ND, desc=f"ground truth {attr}").argmax_N
        old_N, new_N = labels[attr], cf_labels[attr]
        sup_edit_ND = sup_mean.edit(acts_ND, attr, old_N, new_N)
        removed = sup_mean.feature_index(attr, old_N)
        noint_N = clean.argmax_N == target_N
        sup_correct_N = runner.patched(sup_edit_ND).argmax_N == target_N
        sup_weight_N = sup_weights_NF.gather(1, removed[:, None])[:, 0]
        attributes[attr] = AttributeContext(
            cf_labels=cf_labels,
            acts_cf_ND=acts_cf_ND,
            target_N=target_N,
            metrics={
                f"noint_accuracy_{attr}": control.agreement(clean.argmax_N, target_N),
                f"sup_edit_accuracy_{attr}": control.agreement(
                    runner.patched(sup_edit_ND).argmax_N, target_N
                ),
                f"sup_edit_magnitude_{attr}": (
                    sup_weights_NF.gather(1, removed[:, None]).mean().item()
                ),
            },
            per_prompt={
                f"noint_correct_{attr}": noint_N.double().cpu(),
                f"sup_edit_correct_{attr}": sup_correct_N.double().cpu(),
                f"sup_edit_weight_{attr}": sup_weight_N.double().cpu(),
            },
        )
        steps.update(1)
    steps.close()
    return NodeContext(
        model=model,
        task=task,
        node=node,
        settings=settings,
        model_name=model_name,
        runner=runner,
        sup=sup,
        acts_ND=acts_ND,
        labels=labels,
        ld_meanabl_N=ld_meanabl_N,
        head_metrics=head_metrics,
        sup_metrics=sup_metrics,
        attributes=attributes,
        details=details,
        per_prompt=per_prompt,
        coverage=coverage,
    )


def aware_edited_activations(
    dictionary,
    acts_ND: Tensor,
    acts_cf_ND: Tensor,
    labels: dict[str, Tensor],
    cf_labels: dict[str, Tensor],
    attr: str,
    n_values: int,
    ks: tuple[int, ...] | list[int],
) -> dict[int, tuple[Tensor, Tensor]]:
    """The interpretation-aware edit of ``attr`` (metrics.md §5) at every budget k ≥ 2:
    k -> (a_edit [N, D], removed latents R [N, F]).

    F1 ranks latents on the clean and the counterfactual prompts together (so every
    counterfactual value v′ occurs); :func:`saebench.metrics.control.aware_edits` picks R and
    A among the latents active on the clean and on the counterfactual prompt;
    a_edit = a + (f′ − f) W_dec. Budget 1 allows no exchange and has no entry.
    """
    codes_NF = encode(dictionary, acts_ND, labels)
    codes_cf_NF = encode(dictionary, acts_cf_ND, cf_labels)
    is_active_NF = active(dictionary, acts_ND, labels)
    is_active_cf_NF = active(dictionary, acts_cf_ND, cf_labels)
    old_N, new_N = labels[attr], cf_labels[attr]
    f1_FV = interpretability.predicate_f1(
        torch.cat([is_active_NF, is_active_cf_NF]), torch.cat([old_N, new_N]), n_values
    )[2]
    edits = control.aware_edits(
        codes_NF, codes_cf_NF, is_active_NF, is_active_cf_NF, f1_FV, old_N, new_N, list(ks)
    )
    W_dec_FD = dictionary.W_dec_FD.float()
    return {
        k: (acts_ND + (edit.codes_NF - codes_NF) @ W_dec_FD, edit.removed_NF)
        for k, edit in edits.items()
    }


@torch.no_grad()
def score(context: NodeContext, dictionary, desc: str | None = None) -> EvalResult:
    """Score ``dictionary`` at the context's node: everything that depends on it (its codes,
    approximation (metrics.md §4), the greedy and aware edits at each k, interpretability (§6)),
    next to the context's shared numbers. 38 of the 49 interventions of a default run.

    ``dictionary`` is an SAE (anything with ``encode``, ``decode``, ``active``, ``W_dec_FD``),
    or ``"supervised:mean"`` / ``"supervised:lstsq"`` to score a supervised dictionary itself.
    ``desc`` labels the progress bar (default ``scoring at NODE``).
    """
    check_width(dictionary, context.node, context.model)
    task, settings, runner = context.task, context.settings, context.runner
    sup_mean = context.sup["mean"]
    if isinstance(dictionary, str):  # "supervised:mean" / "supervised:lstsq": score it as the SAE
        dictionary = context.sup[dictionary.split(":", 1)[1]]
    dictionary = dictionary.to(runner.device)
    acts_ND, labels = context.acts_ND, context.labels
    metrics: dict[str, float] = dict(context.head_metrics)
    details: dict[str, Any] = {
        "node": context.details["node"],
        "attributes": {},
        "prompts_with_unfitted_values": dict(context.details["prompts_with_unfitted_values"]),
    }
    steps = tqdm(
        total=1 + len(task.attributes),
        desc=desc or f"scoring at {context.node}",
        disable=not settings.progress,
    )
    codes_NF = encode(dictionary, acts_ND, labels)
    is_active_NF = active(dictionary, acts_ND, labels)
    per_prompt: dict[str, Tensor] = dict(context.per_prompt)
    per_prompt["n_active"] = is_active_NF.sum(1).double().cpu()
    per_prompt["active"] = is_active_NF.bool().cpu()
    metrics.update(
        _approximation(
            "",
            runner,
            dictionary,
            acts_ND,
            sup_mean.bias_D,
            context.ld_meanabl_N,
            codes_NF,
            is_active_NF,
            per_prompt,
        )
    )
    metrics.update(context.sup_metrics)
    steps.update(1)

    coverage = context.coverage
    if coverage is None:  # the evaluation prompts are the coverage prompts
        cov_active_NF, cov_labels = is_active_NF, labels
    else:
        cov_active_NF = active(dictionary, coverage.acts_ND, coverage.labels)
        cov_labels = coverage.labels
        per_prompt[f"{bootstrap.COVERAGE_PREFIX}active"] = cov_active_NF.bool().cpu()
    W_dec_FD = dictionary.W_dec_FD.float()
    weights_NF = control.edit_weights(codes_NF, W_dec_FD)
    for attr, shared in context.attributes.items():
        n_values = len(task.attribute_values(attr))
        acts_cf_ND, cf_labels, target_N = shared.acts_cf_ND, shared.cf_labels, shared.target_N
        metrics.update(shared.metrics)
        per_prompt.update(shared.per_prompt)
        acc_noint = shared.metrics[f"noint_accuracy_{attr}"]
        acc_sup = shared.metrics[f"sup_edit_accuracy_{attr}"]

        codes_cf_NF = encode(dictionary, acts_cf_ND, cf_labels)
        greedy = control.greedy_edit(
            acts_cf_ND - acts_ND, codes_cf_NF - codes_NF, W_dec_FD, list(settings.ks)
        )
        aware = aware_edited_activations(
            dictionary, acts_ND, acts_cf_ND, labels, cf_labels, attr, n_values, settings.ks
        )
        for k in settings.ks:
            shift_ND, chosen_NF = greedy[k]
            new_codes_NF = torch.where(chosen_NF, codes_cf_NF, codes_NF)
            edit_argmax_N = runner.patched(acts_ND + shift_ND).argmax_N
            acc = control.agreement(edit_argmax_N, target_N)
            metrics[f"edit_accuracy_{attr}_k{k}"] = acc
            per_prompt[f"edit_correct_{attr}_k{k}"] = (edit_argmax_N == target_N).double().cpu()
            per_prompt[f"edit_weight_{attr}_k{k}"] = removed_weight_N(
                weights_NF, codes_NF, new_codes_NF
            )
            metrics[f"edit_magnitude_{attr}_k{k}"] = control.edit_magnitude(
                weights_NF, codes_NF, new_codes_NF
            )
            metrics[f"edit_distance_{attr}_k{k}"] = control.edit_distance(
                acts_ND + shift_ND, acts_cf_ND
            )
            per_prompt[f"edit_dist_{attr}_k{k}"] = distance_N(acts_ND + shift_ND, acts_cf_ND)
            metrics[f"edit_score_{attr}_k{k}"] = control.normalised_edit_score(
                acc, acc_noint, acc_sup, clip=settings.clip_score
            )
            if k not in aware:  # k = 1: no exchange fits the budget (metrics.md §5)
                for name in ("accuracy", "magnitude", "distance"):
                    metrics[f"aware_edit_{name}_{attr}_k{k}"] = float("nan")
                continue
            aware_ND, removed_NF = aware[k]
            aware_argmax_N = runner.patched(aware_ND).argmax_N
            metrics[f"aware_edit_accuracy_{attr}_k{k}"] = control.agreement(
                aware_argmax_N, target_N
            )
            per_prompt[f"aware_edit_correct_{attr}_k{k}"] = (
                (aware_argmax_N == target_N).double().cpu()
            )
            per_prompt[f"aware_edit_weight_{attr}_k{k}"] = (
                (weights_NF * removed_NF).sum(1).double().cpu()
            )
            per_prompt[f"aware_edit_dist_{attr}_k{k}"] = distance_N(aware_ND, acts_cf_ND)
            metrics[f"aware_edit_magnitude_{attr}_k{k}"] = control.removed_magnitude(
                weights_NF, removed_NF
            )
            metrics[f"aware_edit_distance_{attr}_k{k}"] = control.edit_distance(
                aware_ND, acts_cf_ND
            )

        cov_N = cov_labels[attr]
        eligible_V = eligible_values(cov_N, n_values, settings.coverage_min_prompts)
        summary = interpretability.attribute_summary(
            cov_active_NF,
            cov_N,
            n_values,
            W_dec_FD,
            sup_mean.attribute_features(attr).float(),
            tau=settings.tau,
            present_values=eligible_V if eligible_V.any() else None,
        )
        if not eligible_V.any():  # no value has enough prompts: coverage is not measured
            for key in ("f1_coverage", "f1_mean_best", "latents_per_value"):
                summary[key] = math.nan
        summary["coverage_values"] = float(eligible_V.sum())
        for key in ("f1_coverage", "f1_mean_best", "latents_per_value", "max_cosine"):
            metrics[f"{key}_{attr}"] = summary[key]
        details["attributes"][attr] = summary
        steps.update(1)
    steps.close()
    ids = prompt_ids(runner.prompts.tokens_BL)
    meta = {
        "attributes": {a: len(task.attribute_values(a)) for a in task.attributes},
        "ks": list(settings.ks),
        "tau": settings.tau,
        "clip_score": list(settings.clip_score) if settings.clip_score else None,
        "coverage_min_prompts": settings.coverage_min_prompts,
        "coverage_prompts": settings.coverage_prompts,
        "coverage_prompt_hash": hash_ids(ids) if coverage is None else coverage.prompt_hash,
        "constants": {k: v for k, v in metrics.items() if k.startswith("max_cosine_")},
        "n_latents": int(is_active_NF.shape[1]),
        "prompt_ids": ids,
        "seed": settings.seed,
    }
    result = EvalResult(metrics=metrics, details=details, outcomes=per_prompt, outcomes_meta=meta)
    result.intervals = bootstrap.intervals(
        per_prompt, meta, settings.n_bootstrap, settings.seed + bootstrap.BOOTSTRAP_SEED_OFFSET
    )
    flags = uninformative(metrics)
    if flags:
        details["uninformative"] = flags
    return result


def eligible_values(labels_N: Tensor, n_values: int, min_prompts: int) -> Tensor:
    """Values with at least ``min_prompts`` evaluation prompts, bool [V]: those F1 coverage
    counts (metrics.md §6).

    >>> eligible_values(torch.tensor([0, 0, 1, 2, 2, 2]), 4, 2).tolist()
    [True, False, True, False]
    """
    return torch.bincount(labels_N.long().cpu(), minlength=n_values) >= min_prompts


def distance_N(edit_ND: Tensor, acts_cf_ND: Tensor) -> Tensor:
    """Per prompt, ‖a_edit − a_cf‖₂, float64 [N]: the terms of
    :func:`saebench.metrics.control.edit_distance`."""
    return (edit_ND.double() - acts_cf_ND.double()).norm(dim=1).cpu()


def removed_weight_N(weights_NF: Tensor, codes_NF: Tensor, new_codes_NF: Tensor) -> Tensor:
    """Per prompt, the summed weight of the latents an edit removes (active and changed): the
    per-prompt terms of :func:`saebench.metrics.control.edit_magnitude`, float64 [N]."""
    removed_NF = (codes_NF > 0) & (new_codes_NF != codes_NF)
    return (weights_NF * removed_NF).sum(1).double().cpu()


def prompt_ids(tokens_BL: Tensor) -> list[int]:
    """A 62-bit hash per prompt of its tokens: two runs are paired only on equal ids.

    Σ_l t_l · 1000003^l mod 2^61 − 1 (with t_l the token ids, padding included)."""
    modulus, base = (1 << 61) - 1, 1_000_003
    out = []
    for row in tokens_BL.cpu().tolist():
        h = 0
        for t in row:
            h = (h * base + int(t) + 1) % modulus
        out.append(h)
    return out


def hash_ids(ids: list[int]) -> str:
    """One hash of a list of prompt ids (:func:`prompt_ids`, each < 2^61), in order: the first
    16 hex digits of the SHA-256 of their int64 bytes.

    >>> hash_ids([1, 2]) == hash_ids([1, 2]) != hash_ids([2, 1])
    True
    """
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()[:16]


def uninformative(metrics: dict[str, float]) -> dict[str, str]:
    """Metrics that say nothing at this node, with why (metrics.md §4): sufficiency when mean
    ablation does not lower the task metric (``meanabl_logit_diff`` ≥ ``clean_logit_diff``):
    then any â, even ā, keeps the metric, and a value > 1 is not "better than perfect"."""
    clean, meanabl = metrics.get("clean_logit_diff"), metrics.get("meanabl_logit_diff")
    if clean is None or meanabl is None or not meanabl >= clean:
        return {}
    why = (
        f"mean ablation does not lower the task metric here ({meanabl:.3g} ≥ clean {clean:.3g})"
    )
    return {"sufficiency": why, "sup_sufficiency": why}


def evaluate(
    model,
    task: Task,
    node: Node,
    dictionary,
    settings: EvalSettings,
    model_name: str = "",
) -> EvalResult:
    """Score ``dictionary`` at ``node`` (see the module docstring for what is measured):
    :func:`prepare` then :func:`score`.

    ``dictionary`` is an SAE (anything with ``encode``, ``decode``, ``active``, ``W_dec_FD``),
    or ``"supervised:mean"`` / ``"supervised:lstsq"`` to score a supervised dictionary itself.
    """
    return evaluate_many(model, task, node, [dictionary], settings, model_name)[0]


def evaluate_many(
    model,
    task: Task,
    node: Node,
    dictionaries: list,
    settings: EvalSettings,
    model_name: str = "",
) -> list[EvalResult]:
    """Score every dictionary at ``node`` on one shared :func:`prepare`: each result equals
    ``evaluate`` of that dictionary alone, metric for metric, and each extra dictionary costs
    only its own :func:`score` (its 38 interventions, codes, edits and F1 tables).

    Widths are checked for all dictionaries before any work starts.
    """
    node.check(model)
    for dictionary in dictionaries:
        check_width(dictionary, node, model)
    context = prepare(model, task, node, settings, model_name)
    return [score(context, dictionary) for dictionary in dictionaries]
