"""Bootstrap confidence intervals over evaluation prompts (metrics.md §11).

A run keeps its **per-prompt outcomes** (:data:`PromptOutcomes`: the task metric and the
answer's correctness under each intervention, each prompt's squared reconstruction error,
its active latents, its attribute labels, ...). Every metric of metrics.md §4–6 is a function
of the prompts' outcomes and of nothing else that the evaluation prompts change, so a
bootstrap replicate draws N prompts with replacement (indices i_1..i_N, seeded local
generator), recomputes every metric from the drawn prompts' outcomes, and the interval is the
percentile interval of B replicates: [q_{(1−c)/2}, q_{(1+c)/2}] with c = 0.95. The model is
never run again.

With w_bp = #{n : i_n = p} (the replicate's multiplicity of prompt p), a mean over prompts
becomes Σ_p w_bp x_p ÷ N; a ratio of means is the ratio of the replicate's means
(sufficiency, necessity, FVU, edit score); F1 counts become weighted counts
(|A ∩ F_j| = Σ_p w_bp [p ∈ A ∩ F_j]), so coverage, mean best F1 and latents per value are
recomputed per replicate, with the value-eligibility rule of §6 (``coverage_min_prompts``)
applied to the replicate's counts. :func:`metric_values` with unit weights gives back the
point estimates (the tests check it).

The interpretability metrics (§6) are computed on their own prompts, the run's
``coverage_prompts`` (C of them): when those are not the evaluation prompts, the outcomes hold
their active sets and labels under ``cov_active`` and ``cov_labels_{a}`` (leading dimension C)
and a replicate resamples them separately, C indices with replacement from a second generator
(:func:`replicates`; seeded ``seed + COVERAGE_SEED_OFFSET``). Without ``cov_`` keys (C equal
to the evaluation prompts, or a run from before the setting) F1 is computed from ``active`` and
``labels_{a}`` with the evaluation prompts' indices.

Held fixed (conditional on the run, documented in metrics.md §11): the supervised
dictionaries (fitted on other prompts), the aware edit's F1 ranking of latents (a choice made
on the evaluation prompts), the evaluation-prompt mean ā_eval in FVU's denominator, and
``max_cosine`` (which does not depend on prompts; its interval is the point).

Two runs on the same prompts are compared **paired** (:mod:`saebench.stats.compare`): the same
replicate indices for both, then percentiles of the replicate differences.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DEFAULT_N_BOOTSTRAP = 500
"""Bootstrap replicates B of a run (``--bootstrap``; 0 turns intervals off). Measured with
``benchmarks/bench_bootstrap.py`` (tiny-ioi, ``topk-k6-general`` at
``blocks.1.hook_resid_pre`` @ END, 1000 prompts, one thread, fit cache warm): a run costs
2.4–3.2 s without intervals, B = 1000 adds 0.53–0.82 s (ratio 1.22–1.25), B = 500 keeps the
ratio under 1.2. The Monte Carlo error of a 2.5% quantile at B = 500 is about a tenth of the
interval's width."""
LEVEL = 0.95
"""Coverage of every interval."""
BOOTSTRAP_SEED_OFFSET = 15_485_863
"""The replicates' generator is seeded with ``seed + BOOTSTRAP_SEED_OFFSET``."""
COVERAGE_SEED_OFFSET = 32_452_843
"""The coverage prompts' replicates (when they are not the evaluation prompts) come from a
generator seeded with the replicates' seed + ``COVERAGE_SEED_OFFSET``."""
COVERAGE_PREFIX = "cov_"
"""Prefix of the outcome keys of the coverage prompts (``cov_active``, ``cov_labels_{a}``)."""
DEAD_RARE_MAX = 40
"""A latent active on more than this many prompts is never dead in a replicate (probability
≤ (1 − 1/N)^{N·40/N} ≈ e^{−40}); only rarer latents are resampled for ``dead_fraction``."""
CHUNK_ELEMENTS = 2**22
"""Bound on the rows × latents of one chunk of F1 replicates."""

PromptOutcomes = dict[str, Tensor]
"""Per-prompt outcomes of one scored dictionary, each of leading dimension N (see
:func:`saebench.outcomes.collect` for the keys)."""


def replicate_indices(n: int, b: int, seed: int) -> np.ndarray:
    """[B, N] prompt indices drawn uniformly with replacement, from a local generator
    (``numpy.random.default_rng(seed)``; the global state is untouched)."""
    return np.random.default_rng(seed).integers(0, n, size=(b, n))


def n_prompts(outcomes: PromptOutcomes) -> int:
    """N, the number of evaluation prompts of ``outcomes`` (the ``cov_`` keys have C rows)."""
    for key, value in outcomes.items():
        if not key.startswith(COVERAGE_PREFIX):
            return int(value.shape[0])
    raise ValueError("no per-prompt outcomes of the evaluation prompts")


def n_coverage_prompts(outcomes: PromptOutcomes) -> int | None:
    """C, the number of coverage prompts, when they are kept apart (``cov_active``); None when
    the interpretability metrics use the evaluation prompts."""
    active = outcomes.get(COVERAGE_PREFIX + "active")
    return None if active is None else int(active.shape[0])


def replicates(
    outcomes: PromptOutcomes, n_bootstrap: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The replicate indices of a run: [B, N] over the evaluation prompts (generator ``seed``)
    and, when the coverage prompts are kept apart, [B, C] over them (generator
    ``seed + COVERAGE_SEED_OFFSET``), else None."""
    idx_BN = replicate_indices(n_prompts(outcomes), n_bootstrap, seed)
    c = n_coverage_prompts(outcomes)
    cov_BC = None if c is None else replicate_indices(c, n_bootstrap, seed + COVERAGE_SEED_OFFSET)
    return idx_BN, cov_BC


def index_weights(idx_BN: np.ndarray, n: int) -> Tensor:
    """Multiplicities w_bp = #{m : idx[b, m] = p}, float64 [B, N].

    >>> index_weights(np.array([[0, 0, 2]]), 3).tolist()
    [[2.0, 0.0, 1.0]]
    """
    b = idx_BN.shape[0]
    flat = (idx_BN + n * np.arange(b)[:, None]).ravel()
    return torch.from_numpy(np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64))


def percentile_interval(reps_B: Tensor, level: float = LEVEL) -> tuple[float, float]:
    """[q_{(1−level)/2}, q_{(1+level)/2}] of the finite replicates (NaN, NaN if none are);
    linear interpolation between order statistics (``torch.quantile``)."""
    reps = reps_B.double()
    reps = reps[torch.isfinite(reps)]
    if reps.numel() == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    q = torch.quantile(reps, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return float(q[0]), float(q[1])


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den != 0, num / torch.where(den != 0, den, 1.0), math.nan)


MEAN_KEYS_PREFIXES = (
    "clean_ld",
    "clean_correct",
    "meanabl_ld",
    "recon_ld",
    "removed_ld",
    "sq_err",
    "sq_dev",
    "n_active",
    "sup_",
    "noint_correct_",
    "edit_",
    "aware_edit_",
)
"""Per-prompt outcome keys (or their prefixes) that metrics use through their mean."""


def _is_mean_key(key: str) -> bool:
    return key.startswith(MEAN_KEYS_PREFIXES) and key != "active"


def mean_metrics(
    means: dict[str, Tensor],
    attributes: Iterable[str],
    ks: Iterable[int],
    clip: tuple[float, float] | None = None,
):
    """Every metric that is a function of means over prompts (metrics.md §4–5), from the
    means ``means[key]`` [B] of the per-prompt outcomes; keys absent in ``means`` are
    skipped (the aware edit at k = 1, which has no outcomes). Edit scores are clipped to
    ``clip`` when given (the paper protocol). Returns metric name -> [B]."""
    m, out = means, {}
    if "clean_ld" in m:
        out["clean_logit_diff"] = m["clean_ld"]
        out["clean_accuracy"] = m["clean_correct"]
        out["meanabl_logit_diff"] = m["meanabl_ld"]
    if "n_active" in m:
        out["l0"] = m["n_active"]
    for prefix in ("", "sup_", "sup_lstsq_"):
        if f"{prefix}recon_ld" in m:
            # sufficiency = mean LD(a → â) ÷ mean LD_clean
            out[f"{prefix}sufficiency"] = _ratio(m[f"{prefix}recon_ld"], m["clean_ld"])
            # recovered vs mean ablation = |LD(a → â) − LD_meanabl| ÷ |LD_clean − LD_meanabl|
            out[f"{prefix}logit_diff_recovered_vs_meanabl"] = _ratio(
                (m[f"{prefix}recon_ld"] - m["meanabl_ld"]).abs(),
                (m["clean_ld"] - m["meanabl_ld"]).abs(),
            )
        if f"{prefix}removed_ld" in m:
            # necessity = 1 − |LD_meanabl − LD_removed| ÷ |LD_meanabl − LD_clean|
            out[f"{prefix}necessity"] = 1 - _ratio(
                (m["meanabl_ld"] - m[f"{prefix}removed_ld"]).abs(),
                (m["meanabl_ld"] - m["clean_ld"]).abs(),
            )
        if f"{prefix}sq_err" in m:
            # fvu = Σ‖a − â‖² ÷ Σ‖a − ā_eval‖²
            out[f"{prefix}fvu"] = _ratio(m[f"{prefix}sq_err"], m["sq_dev"])
    for a in attributes:
        if f"noint_correct_{a}" not in m:
            continue
        noint, sup = m[f"noint_correct_{a}"], m[f"sup_edit_correct_{a}"]
        out[f"noint_accuracy_{a}"] = noint
        out[f"sup_edit_accuracy_{a}"] = sup
        out[f"sup_edit_magnitude_{a}"] = m[f"sup_edit_weight_{a}"]
        for k in ks:
            if f"edit_correct_{a}_k{k}" not in m:
                continue
            acc = m[f"edit_correct_{a}_k{k}"]
            out[f"edit_accuracy_{a}_k{k}"] = acc
            out[f"edit_magnitude_{a}_k{k}"] = m[f"edit_weight_{a}_k{k}"]
            # edit score = (acc − acc_noint) ÷ (acc_sup − acc_noint), NaN at a zero denominator
            denom = sup - noint
            score = torch.where(
                denom.abs() > 1e-12, (acc - noint) / torch.where(denom == 0, 1.0, denom), math.nan
            )
            out[f"edit_score_{a}_k{k}"] = score if clip is None else score.clamp(*clip)
            if f"edit_dist_{a}_k{k}" in m:
                out[f"edit_distance_{a}_k{k}"] = m[f"edit_dist_{a}_k{k}"]
            if f"aware_edit_correct_{a}_k{k}" in m:
                out[f"aware_edit_accuracy_{a}_k{k}"] = m[f"aware_edit_correct_{a}_k{k}"]
                out[f"aware_edit_magnitude_{a}_k{k}"] = m[f"aware_edit_weight_{a}_k{k}"]
                if f"aware_edit_dist_{a}_k{k}" in m:
                    out[f"aware_edit_distance_{a}_k{k}"] = m[f"aware_edit_dist_{a}_k{k}"]
    return out


def weighted_sums(weights_BN: Tensor, rows_E: Tensor, cols_E: Tensor, n_cols: int) -> Tensor:
    """Σ_e w[b, rows_E[e]] scattered into column cols_E[e]: ``weights_BN @ M`` for the 0/1
    matrix M [N, n_cols] with ones at (rows_E, cols_E), as one sparse product, [B, n_cols]."""
    n = weights_BN.shape[1]
    with warnings.catch_warnings():  # "sparse CSR/COO support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        m_CN = torch.sparse_coo_tensor(
            torch.stack([cols_E, rows_E]),
            torch.ones(rows_E.shape[0], dtype=torch.float64),
            (n_cols, n),
        ).coalesce()
    return torch.sparse.mm(m_CN, weights_BN.T.contiguous()).T


def union_f1(
    inter_RV: Tensor,
    size_R: Tensor,
    size_RV: Tensor,
    allowed_RV: Tensor,
    max_values: int = 10,
    n_allowed_R: Tensor | None = None,
) -> Tensor:
    """Best F1 of each row (a latent in one replicate) over predicates ``attr ∈ S``, S grown
    greedily as in :func:`saebench.metrics.interpretability.greedy_union_f1` (start at the
    best single allowed value, add the value that most increases F1 while it strictly does, at most
    min(max_values, |allowed| − 1) values), with per-row value sizes ``size_RV``. [R].
    ``n_allowed_R``: |allowed| when the columns are only some of the values (default: the
    row's allowed columns)."""
    neg = torch.tensor(-1.0, dtype=torch.float64)
    f1_RV = torch.where(allowed_RV, _safe_div(2 * inter_RV, size_R[:, None] + size_RV), neg)
    if f1_RV.shape[1] == 0:
        return torch.zeros_like(size_R)
    best_R, first_R = f1_RV.max(1)
    best_R = best_R.clamp_min(0.0)
    n_allowed_R = allowed_RV.sum(1) if n_allowed_R is None else n_allowed_R
    cap_R = (n_allowed_R - 1).clamp(min=1, max=max_values)
    idx_G = torch.nonzero((best_R > 0) & (cap_R > 1)).flatten()  # rows that may still grow
    first_G = first_R[idx_G]
    chosen_GV = torch.nn.functional.one_hot(first_G, inter_RV.shape[1]).bool()
    inter_G = inter_RV[idx_G, first_G]
    union_G = size_RV[idx_G, first_G]
    best_G, n_G = best_R[idx_G], torch.ones_like(idx_G)
    for _ in range(max_values - 1):
        if idx_G.numel() == 0:
            break
        sub_GV, sizes_GV = inter_RV[idx_G], size_RV[idx_G]
        cand_GV = _safe_div(
            2 * (inter_G[:, None] + sub_GV), size_R[idx_G, None] + union_G[:, None] + sizes_GV
        )
        cand_GV = torch.where(allowed_RV[idx_G] & ~chosen_GV, cand_GV, neg)
        cand_G, add_G = cand_GV.max(1)
        take_G = cand_G > best_G  # strict gain, else the row stops
        rows_G = torch.arange(idx_G.numel())[take_G]
        idx_G, add_G, best_G = idx_G[take_G], add_G[take_G], cand_G[take_G]
        chosen_GV = chosen_GV[take_G]
        chosen_GV[torch.arange(idx_G.numel()), add_G] = True
        inter_G = inter_G[take_G] + sub_GV[rows_G, add_G]
        union_G = union_G[take_G] + sizes_GV[rows_G, add_G]
        n_G = n_G[take_G] + 1
        best_R[idx_G] = best_G
        keep_G = n_G < cap_R[idx_G]
        idx_G, best_G, chosen_GV = idx_G[keep_G], best_G[keep_G], chosen_GV[keep_G]
        inter_G, union_G, n_G = inter_G[keep_G], union_G[keep_G], n_G[keep_G]
    return best_R


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den for counts (num is 0 where den is), 0 where den is 0 (metrics.md §6)."""
    return torch.nan_to_num(num / den, nan=0.0)


def f1_metrics(
    active_NF: Tensor,
    labels_N: Tensor,
    n_values: int,
    idx_BN: np.ndarray | None,
    tau: float,
    min_prompts: int,
) -> dict[str, Tensor]:
    """``f1_coverage``, ``f1_mean_best``, ``latents_per_value`` per replicate [B] (one row of
    unit weights when ``idx_BN`` is None), from weighted counts of the drawn prompts:
    eligible values E = {v : |A_v| ≥ min_prompts}; coverage = |{v ∈ E : max_j F1(j, v) ≥ τ}|
    ÷ |E|, mean best = mean_{v ∈ E} max_j F1(j, v), latents per value = #{j : best union
    F1 over E ≥ τ} ÷ |E| (NaN when E is empty), as in
    :func:`saebench.metrics.interpretability.attribute_summary` with ``present_values`` = E.

    Counts are sparse: only pairs (j, v) with j active on some prompt of value v can have
    F1 > 0, so the work is O(B · N · L0). ``latents_per_value`` re-runs the greedy union for
    the latents whose union F1 on the evaluation prompts is at least τ/2 (the others stay
    below τ; at unit weights the count is exact).
    """
    n = active_NF.shape[0]
    labels_N = labels_N.long().cpu()
    active_NF = active_NF.cpu().bool()
    n_latents = active_NF.shape[1]
    p_E, j_E = active_NF.nonzero(as_tuple=True)
    key_E = j_E * n_values + labels_N[p_E]
    pairs_P, inv_E = torch.unique(key_E, return_inverse=True)
    j_P, v_P = pairs_P // n_values, pairs_P % n_values
    all_N = torch.arange(n)

    def counts(weights_BN: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        inter_BP = weighted_sums(weights_BN, p_E, inv_E, pairs_P.shape[0])
        size_BF = weighted_sums(weights_BN, p_E, j_E, n_latents)
        size_BV = weighted_sums(weights_BN, all_N, labels_N, n_values)
        return inter_BP, size_BF, size_BV

    # candidates for latents_per_value, from the evaluation prompts themselves
    inter_1P, size_1F, size_1V = counts(torch.ones(1, n, dtype=torch.float64))
    allowed_V = (size_1V[0] >= min_prompts) & (size_1V[0] > 0)
    inter_FV = torch.zeros(n_latents, n_values, dtype=torch.float64)
    inter_FV[j_P, v_P] = inter_1P[0]
    best_F = union_f1(
        inter_FV, size_1F[0], size_1V.expand(n_latents, -1), allowed_V.expand(n_latents, -1)
    )
    cand_C = torch.nonzero(best_F >= tau / 2).flatten()
    slot_F = torch.full((n_latents,), -1, dtype=torch.long)
    slot_F[cand_C] = torch.arange(cand_C.numel())
    cand_P = slot_F[j_P] >= 0
    slot_P = slot_F[j_P[cand_P]]
    # column of each candidate pair within its latent's row (pairs are sorted by latent)
    first_C = torch.searchsorted(slot_P, torch.arange(cand_C.numel()))
    col_P = torch.arange(slot_P.numel()) - first_C[slot_P]
    width_W = int(col_P.max()) + 1 if col_P.numel() else 1
    value_CW = torch.zeros(cand_C.numel(), width_W, dtype=torch.long)
    used_CW = torch.zeros(cand_C.numel(), width_W, dtype=torch.bool)
    value_CW[slot_P, col_P] = v_P[cand_P]
    used_CW[slot_P, col_P] = True

    if idx_BN is None:
        idx_BN = np.arange(n)[None, :]
    b_total = idx_BN.shape[0]
    width = max(pairs_P.shape[0], n_latents, cand_C.numel() * width_W, n)
    chunk = max(1, CHUNK_ELEMENTS // width)
    cover, best_mean, per_value = [], [], []
    for start in range(0, b_total, chunk):
        weights_BN = index_weights(idx_BN[start : start + chunk], n)
        b = weights_BN.shape[0]
        inter_BP, size_BF, size_BV = counts(weights_BN)
        f1_BP = _safe_div(2 * inter_BP, size_BF[:, j_P] + size_BV[:, v_P])
        best_BV = torch.zeros(b, n_values, dtype=torch.float64).scatter_reduce(
            1, v_P.expand(b, -1), f1_BP, "amax", include_self=True
        )
        elig_BV = size_BV >= min_prompts
        n_elig = elig_BV.sum(1).double()
        cover.append(_ratio(((best_BV >= tau) & elig_BV).sum(1).double(), n_elig))
        best_mean.append(_ratio((best_BV * elig_BV).sum(1), n_elig))
        n_cand = cand_C.numel()
        if n_cand:
            # each candidate's own values (those it is active on): a value it never fires on
            # lowers any union's F1, so the greedy union never takes it
            inter_BCW = torch.zeros(b, n_cand, width_W, dtype=torch.float64)
            inter_BCW[:, slot_P, col_P] = inter_BP[:, cand_P]
            size_BCW = size_BV[:, value_CW]
            allowed_BCW = (elig_BV & (size_BV > 0))[:, value_CW] & used_CW
            union_BC = union_f1(
                inter_BCW.reshape(b * n_cand, width_W),
                size_BF[:, cand_C].reshape(-1),
                size_BCW.reshape(b * n_cand, width_W),
                allowed_BCW.reshape(b * n_cand, width_W),
                n_allowed_R=(elig_BV & (size_BV > 0)).sum(1).repeat_interleave(n_cand, 0),
            ).view(b, n_cand)
            count_B = (union_BC >= tau).sum(1).double()
        else:
            count_B = torch.zeros(b, dtype=torch.float64)
        per_value.append(_ratio(count_B, n_elig))
    return {
        "f1_coverage": torch.cat(cover),
        "f1_mean_best": torch.cat(best_mean),
        "latents_per_value": torch.cat(per_value),
    }


def dead_fraction(active_NF: Tensor, weights_BN: Tensor) -> Tensor:
    """Fraction of latents active on no drawn prompt, per replicate [B]: only latents active on
    at most :data:`DEAD_RARE_MAX` prompts can be dead in a replicate (see there)."""
    count_F = active_NF.sum(0)
    rare_R = torch.nonzero(count_F <= DEAD_RARE_MAX).flatten()
    p_E, r_E = active_NF[:, rare_R].nonzero(as_tuple=True)
    hits_BR = weighted_sums(weights_BN, p_E, r_E, rare_R.numel())
    return (hits_BR == 0).sum(1).double() / active_NF.shape[1]


def metric_values(
    outcomes: PromptOutcomes,
    meta: dict,
    idx_BN: np.ndarray | None = None,
    cov_idx_BC: np.ndarray | None = None,
) -> dict[str, Tensor]:
    """Every metric, per replicate [B], from the per-prompt ``outcomes`` and the replicate
    indices ``idx_BN`` (None: the evaluation prompts themselves, B = 1, the point estimates)
    and ``cov_idx_BC`` over the coverage prompts when the outcomes keep them apart
    (``cov_active``; None with ``idx_BN`` None: the point estimates; see :func:`replicates`).

    ``meta`` holds ``attributes`` (name -> number of values), ``ks``, ``tau``,
    ``coverage_min_prompts`` and the prompt-independent ``constants`` (metric -> value).
    """
    n = n_prompts(outcomes)
    weights_BN = (
        torch.ones(1, n, dtype=torch.float64) if idx_BN is None else index_weights(idx_BN, n)
    )
    keys = [
        k
        for k, v in outcomes.items()
        if _is_mean_key(k) and v.ndim == 1 and not k.startswith(COVERAGE_PREFIX)
    ]
    stacked_NM = torch.stack([outcomes[k].double() for k in keys], 1)
    means_BM = weights_BN @ stacked_NM / n
    means = {k: means_BM[:, i] for i, k in enumerate(keys)}
    attributes: dict[str, int] = meta["attributes"]
    clip = meta.get("clip_score")
    out = mean_metrics(means, attributes, meta["ks"], tuple(clip) if clip else None)
    if "active" in outcomes:
        out["dead_fraction"] = dead_fraction(outcomes["active"].bool(), weights_BN)
    if COVERAGE_PREFIX + "active" in outcomes:  # the coverage prompts, kept apart
        prefix, f1_idx = COVERAGE_PREFIX, cov_idx_BC
        if idx_BN is not None and cov_idx_BC is None:
            raise ValueError("replicates of the coverage prompts are needed (bootstrap.replicates)")
    else:  # the evaluation prompts are the coverage prompts
        prefix, f1_idx = "", idx_BN
    if prefix + "active" in outcomes:
        active_NF = outcomes[prefix + "active"].bool()
        for a, n_values in attributes.items():
            f1 = f1_metrics(
                active_NF,
                outcomes[f"{prefix}labels_{a}"],
                n_values,
                f1_idx,
                meta["tau"],
                meta["coverage_min_prompts"],
            )
            for key, reps in f1.items():
                out[f"{key}_{a}"] = reps
    for key, value in meta.get("constants", {}).items():
        out[key] = torch.full((weights_BN.shape[0],), float(value), dtype=torch.float64)
    return out


SHIFTED = ("dead_fraction", "f1_coverage", "f1_mean_best", "latents_per_value")
"""Metrics (and prefixes) whose percentile interval is shifted by the bootstrap's bias
estimate: they are maxima or supports over prompts, and a replicate, which holds only about
63% of the distinct prompts, sees more dead latents and higher best F1 than the evaluation
prompts (on tiny-ioi ``dead_fraction`` 0.451 with replicates in 0.467–0.492)."""


def interval(
    reps_B: Tensor, point: float, shifted: bool, level: float = LEVEL
) -> tuple[float, float]:
    """The percentile interval; when ``shifted``, minus the bias estimate
    mean(θ*) − θ̂ and clipped at 0 (these metrics are non-negative)."""
    lo, hi = percentile_interval(reps_B, level)
    if shifted and math.isfinite(lo):
        finite = reps_B[torch.isfinite(reps_B)]
        bias = float(finite.mean()) - point if math.isfinite(point) else 0.0
        lo, hi = max(0.0, lo - bias), max(0.0, hi - bias)
    return lo, hi


def intervals(
    outcomes: PromptOutcomes, meta: dict, n_bootstrap: int, seed: int, level: float = LEVEL
) -> dict[str, tuple[float, float]]:
    """Metric -> (lo, hi) from ``n_bootstrap`` replicates drawn with ``seed``
    (:func:`replicate_indices`, :func:`interval`); empty when ``n_bootstrap`` is 0."""
    if n_bootstrap <= 0:
        return {}
    idx_BN, cov_idx_BC = replicates(outcomes, n_bootstrap, seed)
    reps = metric_values(outcomes, meta, idx_BN, cov_idx_BC)
    points = {k: float(v[0]) for k, v in metric_values(outcomes, meta).items()}
    return {
        key: interval(values, points[key], key.startswith(SHIFTED), level)
        for key, values in reps.items()
    }


def save(path, outcomes: PromptOutcomes, meta: dict) -> None:
    """Write per-prompt outcomes as a compressed ``.npz``: float64 arrays, 0/1 arrays as
    uint8, the active sets (``active``, ``cov_active``) bit-packed along latents, labels as
    int32, ``meta`` as JSON."""
    arrays = {}
    for key, value in outcomes.items():
        array = value.cpu().numpy()
        if key in ("active", COVERAGE_PREFIX + "active"):
            arrays[key + "_packed"] = np.packbits(array.astype(bool), axis=1)
        elif key.startswith(("labels_", COVERAGE_PREFIX + "labels_")):
            arrays[key] = array.astype(np.int32)
        elif np.isin(array, (0.0, 1.0)).all() and ("correct" in key):
            arrays[key] = array.astype(np.uint8)
        else:
            arrays[key] = array.astype(np.float64)
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def load(path) -> tuple[PromptOutcomes, dict]:
    """Read what :func:`save` wrote."""
    with np.load(path) as data:
        meta = json.loads(bytes(data["meta_json"]).decode())
        outcomes = {}
        for key in data.files:
            if key == "meta_json":
                continue
            if key in ("active_packed", COVERAGE_PREFIX + "active_packed"):
                bits = np.unpackbits(data[key], axis=1, count=meta["n_latents"])
                outcomes[key.removesuffix("_packed")] = torch.from_numpy(bits.astype(bool))
            elif key.startswith(("labels_", COVERAGE_PREFIX + "labels_")):
                outcomes[key] = torch.from_numpy(data[key].astype(np.int64))
            else:
                outcomes[key] = torch.from_numpy(data[key].astype(np.float64))
    return outcomes, meta


def sidecar_path(json_path) -> Path:
    """The per-prompt outcomes next to a run JSON: ``X.json`` -> ``X.outcomes.npz``."""
    path = Path(json_path)
    return path.with_name(path.name.removesuffix(".json") + ".outcomes.npz")
