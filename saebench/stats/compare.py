"""Paired comparison of two scored dictionaries on the same prompts (metrics.md §11).

Each run keeps its per-prompt outcomes (``X.outcomes.npz`` next to ``X.json``). Two runs on
the same evaluation prompts (equal per-prompt ids) and the same coverage prompts are compared
**paired**: B replicates draw prompt indices once (and coverage-prompt indices once) and
recompute both runs' metrics on the same drawn prompts; the
difference's interval is the percentile interval of the replicate differences
θ*_A − θ*_B, and a difference is **distinguishable from zero** when that 95% interval
excludes 0 (a two-sided paired bootstrap test at level 5%).

The reference of a run can stand in for the second run: ``supervised`` (the mean dictionary
at the node: its sufficiency, necessity, FVU, and its edit as every edit accuracy) or
``noint`` (no intervention: ``noint_accuracy`` as every edit accuracy, sufficiency 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from saebench.stats import bootstrap
from saebench.stats.bootstrap import PromptOutcomes


@dataclass
class Difference:
    """One metric's paired difference A − B."""

    metric: str
    a: float
    b: float
    diff: float
    lo: float
    hi: float

    @property
    def significant(self) -> bool:
        """Whether the 95% interval of the difference excludes 0."""
        return math.isfinite(self.lo) and (self.lo > 0 or self.hi < 0)


def reference(outcomes: PromptOutcomes, kind: str) -> PromptOutcomes:
    """The outcomes of a reference as if it were a dictionary: ``supervised`` or ``noint``
    (see the module docstring). Only metrics the reference defines remain."""
    out = {k: v for k, v in outcomes.items() if not k.startswith(("edit_", "aware_edit_"))}
    for key in ("active", "n_active", bootstrap.COVERAGE_PREFIX + "active"):
        out.pop(key, None)
    edits = [k for k in outcomes if k.startswith("edit_correct_")]
    if kind == "supervised":
        for key in ("recon_ld", "removed_ld", "sq_err"):
            if f"sup_{key}" in outcomes:
                out[key] = outcomes[f"sup_{key}"]
        for key in edits:  # edit_correct_{a}_k{K}
            attr = key.removeprefix("edit_correct_").rsplit("_k", 1)[0]
            out[key] = outcomes[f"sup_edit_correct_{attr}"]
            out[key.replace("edit_", "aware_edit_", 1)] = outcomes[f"sup_edit_correct_{attr}"]
    elif kind == "noint":
        out["recon_ld"] = outcomes["clean_ld"]
        for key in ("removed_ld", "sq_err"):
            out.pop(key, None)
        for key in edits:
            attr = key.removeprefix("edit_correct_").rsplit("_k", 1)[0]
            out[key] = outcomes[f"noint_correct_{attr}"]
            out[key.replace("edit_", "aware_edit_", 1)] = outcomes[f"noint_correct_{attr}"]
    else:
        raise ValueError(f"unknown reference {kind!r}: supervised or noint")
    for key in [k for k in out if k.startswith("edit_correct_")]:
        out[key.replace("correct", "weight", 1)] = torch.zeros_like(out[key])
        aware = key.replace("edit_", "aware_edit_", 1)
        out[aware.replace("correct", "weight", 1)] = torch.zeros_like(out[key])
    return out


def compare(
    a: PromptOutcomes,
    b: PromptOutcomes,
    meta: dict,
    n_bootstrap: int = 2000,
    seed: int = 0,
    metrics: list[str] | None = None,
) -> list[Difference]:
    """Paired differences A − B of every metric both define (or of ``metrics``), each with
    its paired bootstrap interval; ``meta`` as in :func:`saebench.stats.bootstrap.metric_values`
    (without prompt-independent constants, which cannot differ by chance)."""
    if bootstrap.n_prompts(a) != bootstrap.n_prompts(b):
        raise ValueError("the two runs have different numbers of prompts: not paired")
    c_a, c_b = bootstrap.n_coverage_prompts(a), bootstrap.n_coverage_prompts(b)
    if c_a is not None and c_b is not None and c_a != c_b:
        raise ValueError("the two runs have different numbers of coverage prompts: not paired")
    meta = {**meta, "constants": {}}
    point_a, point_b = bootstrap.metric_values(a, meta), bootstrap.metric_values(b, meta)
    # one set of indices for both runs (a reference has no coverage outcomes of its own)
    idx_BN, cov_idx_BC = bootstrap.replicates(a if c_a is not None else b, n_bootstrap, seed)
    reps_a, reps_b = (
        bootstrap.metric_values(a, meta, idx_BN, cov_idx_BC),
        bootstrap.metric_values(b, meta, idx_BN, cov_idx_BC),
    )
    shared = [k for k in point_a if k in point_b and (metrics is None or k in metrics)]
    out = []
    for key in shared:
        pa, pb = float(point_a[key][0]), float(point_b[key][0])
        lo, hi = bootstrap.percentile_interval(reps_a[key] - reps_b[key])
        out.append(Difference(key, pa, pb, pa - pb, lo, hi))
    return out


def check_paired(meta_a: dict, meta_b: dict) -> None:
    """``ValueError`` unless the two runs were scored on the same prompts."""
    if meta_a.get("prompt_ids") != meta_b.get("prompt_ids"):
        raise ValueError(
            "the two runs were not scored on the same prompts (task, n_prompts, seed): a "
            "paired comparison needs the same prompts"
        )
    for key in ("attributes", "tau", "coverage_min_prompts", "coverage_prompts",
                "coverage_prompt_hash"):
        if meta_a.get(key) != meta_b.get(key):
            raise ValueError(
                f"the two runs differ in {key}: {meta_a.get(key)} vs {meta_b.get(key)}"
            )


def format_table(diffs: list[Difference], name_a: str, name_b: str) -> str:
    """One line per metric: A, B, A − B [lo, hi] and ``*`` where distinguishable from zero."""
    width = max([len(d.metric) for d in diffs] + [6])
    lines = [
        f"{'metric':<{width}}  {'A':>8}  {'B':>8}  {'A - B':>8}  {'95% interval':>19}  sig",
        f"(A = {name_a}, B = {name_b}; paired bootstrap over prompts, docs/metrics.md §11)",
    ]
    for d in diffs:
        if not math.isfinite(d.diff):
            continue
        lines.append(
            f"{d.metric:<{width}}  {d.a:8.3f}  {d.b:8.3f}  {d.diff:+8.3f}  "
            f"[{d.lo:+8.3f}, {d.hi:+8.3f}]  {'*' if d.significant else ''}"
        )
    return "\n".join(lines)
