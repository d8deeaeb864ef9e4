"""Interpretability axis: how well single latents match attribute predicates (metrics.md §6, §7).

Every function here is a pure tensor function. The caller decides what "active" means for its
SAE (ReLU: ``f_j > 0``; gated: gate pre-activation ``> 0``; TopK: selected) and passes the
boolean matrix ``active_NF``; attributes arrive as integer labels ``labels_N`` in
``0 .. n_values - 1``.

For latent j with active set F_j = {p : active_NF[p, j]} and a predicate A over prompts
(``attr = v``, or ``attr ∈ S`` for a set S of values)::

    precision(j, A) = |A ∩ F_j| / |F_j|
    recall(j, A)    = |A ∩ F_j| / |A|
    F1(j, A)        = 2 P R / (P + R) = 2 |A ∩ F_j| / (|F_j| + |A|)

and every ratio whose denominator is 0 is reported as 0 (a dead latent has F1 0, not NaN).
Values of one attribute are disjoint, so for a union S the counts add:
|A_S ∩ F_j| = Σ_{v∈S} |A_v ∩ F_j| and |A_S| = Σ_{v∈S} |A_v|.

A latent's interpretation is its highest-F1 predicate; it is interpretable at F1 ≥ τ.

>>> import torch
>>> active_NF = torch.tensor([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=torch.bool)
>>> labels_N = torch.tensor([0, 0, 1, 1])
>>> precision_FV, recall_FV, f1_FV = predicate_f1(active_NF, labels_N, n_values=2)
>>> precision_FV.tolist()  # latent 0 fires on 2 of the "0" prompts and 1 of the "1" prompts
[[0.6666666666666666, 0.3333333333333333], [0.0, 1.0]]
>>> f1_FV.tolist()  # F1 = 2 |A ∩ F| / (|F| + |A|): 4/5, 2/5; 0, 1
[[0.8, 0.4], [0.0, 1.0]]
>>> best_f1_F, size_F = greedy_union_f1(active_NF, labels_N, n_values=2)
>>> best_f1_F.tolist(), size_F.tolist()  # "attr ∈ {0, 1}" is always true, so never a union here
([0.8, 1.0], [1, 1])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_CHUNK_ELEMENTS = 2**25
"""Largest integer chunk of ``active_NF`` materialised at once (128 MB in int32)."""


def _check_inputs(active_NF: Tensor, labels_N: Tensor, n_values: int) -> None:
    if active_NF.dtype != torch.bool:
        raise TypeError(f"active_NF must be a bool tensor, got {active_NF.dtype}")
    if active_NF.ndim != 2 or labels_N.ndim != 1 or active_NF.shape[0] != labels_N.shape[0]:
        raise ValueError(
            f"need active_NF [N, F] and labels_N [N], got {tuple(active_NF.shape)} "
            f"and {tuple(labels_N.shape)}"
        )
    if labels_N.numel() and (labels_N.min() < 0 or labels_N.max() >= n_values):
        raise ValueError(f"labels must lie in 0..{n_values - 1}")


def _counts(active_NF: Tensor, labels_N: Tensor, n_values: int) -> tuple[Tensor, Tensor, Tensor]:
    """Exact counts as float64: |A_v ∩ F_j| [F, V], |F_j| [F] and |A_v| [V].

    |A_v ∩ F_j| = (onehot(labels)ᵀ active)[v, j], computed as an integer scatter-add of the
    rows of ``active_NF`` into their value (O(N·F) instead of the matmul's O(N·F·V)), over
    chunks of latents so that at most ``_CHUNK_ELEMENTS`` integers are materialised at once.
    """
    _check_inputs(active_NF, labels_N, n_values)
    n_prompts, n_latents = active_NF.shape
    count_dtype = torch.int32 if n_prompts < 2**31 else torch.int64
    labels_N = labels_N.to(device=active_NF.device, dtype=torch.long)
    inter_FV = torch.empty(n_latents, n_values, dtype=torch.float64, device=active_NF.device)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_prompts))
    for start in range(0, n_latents, chunk):
        block_NC = active_NF[:, start : start + chunk].to(count_dtype)
        inter_VC = torch.zeros(
            n_values, block_NC.shape[1], dtype=count_dtype, device=active_NF.device
        )
        inter_VC.index_add_(0, labels_N, block_NC)
        inter_FV[start : start + chunk] = inter_VC.T.to(torch.float64)
    size_F = inter_FV.sum(dim=1)  # every prompt has exactly one value
    size_V = torch.bincount(labels_N, minlength=n_values).to(torch.float64)
    return inter_FV, size_F, size_V


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den with 0 where den == 0."""
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def _scores(inter_FV: Tensor, size_F: Tensor, size_V: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    precision_FV = _ratio(inter_FV, size_F[:, None].expand_as(inter_FV))
    recall_FV = _ratio(inter_FV, size_V[None, :].expand_as(inter_FV))
    f1_FV = _ratio(2 * inter_FV, size_F[:, None] + size_V[None, :])
    return precision_FV, recall_FV, f1_FV


def predicate_f1(
    active_NF: Tensor, labels_N: Tensor, n_values: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and F1 of every latent for every predicate ``attr = v``.

    precision_FV[j, v] = |A_v ∩ F_j| / |F_j|, recall_FV[j, v] = |A_v ∩ F_j| / |A_v|,
    f1_FV[j, v] = 2 |A_v ∩ F_j| / (|F_j| + |A_v|), with A_v = {p : labels_N[p] = v}; each is 0
    where its denominator is 0. Returns float64 tensors of shape [F, V]. Counts are exact and
    computed in chunks of latents, so nothing of shape [N, F, V] is ever built.
    """
    return _scores(*_counts(active_NF, labels_N, n_values))


def _greedy_union(
    inter_FV: Tensor, size_F: Tensor, size_V: Tensor, allowed_V: Tensor, max_values: int
) -> tuple[Tensor, Tensor]:
    """Greedy best union predicate per latent from exact counts (see :func:`greedy_union_f1`).

    Each step works on the G latents that still grow, with their running sums
    Σ_{v∈S} |A_v ∩ F_j| (``inter_G``) and Σ_{v∈S} |A_v| (``union_G``).
    """
    n_values = inter_FV.shape[1]
    cap = max(1, min(max_values, int(allowed_V.sum()) - 1))
    _, _, f1_FV = _scores(inter_FV, size_F, size_V)
    f1_FV = torch.where(allowed_V[None, :], f1_FV, torch.full_like(f1_FV, -1.0))
    best_f1_F, first_F = f1_FV.max(dim=1)
    best_f1_F = best_f1_F.clamp_min(0.0)
    size_S_F = (best_f1_F > 0).long()
    idx_G = torch.nonzero(best_f1_F > 0).flatten()
    chosen_GV = torch.nn.functional.one_hot(first_F[idx_G], n_values).bool()
    inter_G = inter_FV[idx_G, first_F[idx_G]]
    union_G = size_V[first_F[idx_G]]
    best_G = best_f1_F[idx_G]
    for _ in range(cap - 1):
        if idx_G.numel() == 0:
            break
        sub_GV = inter_FV[idx_G]
        cand_GV = _ratio(
            2 * (inter_G[:, None] + sub_GV),
            size_F[idx_G, None] + union_G[:, None] + size_V[None, :],
        )
        cand_GV = torch.where(allowed_V[None, :] & ~chosen_GV, cand_GV, -1.0)
        cand_G, add_G = cand_GV.max(dim=1)
        take_G = cand_G > best_G  # strict gain, else the latent stops
        idx_G, add_G, best_G = idx_G[take_G], add_G[take_G], cand_G[take_G]
        chosen_GV = chosen_GV[take_G]
        chosen_GV[torch.arange(idx_G.numel()), add_G] = True
        inter_G = inter_G[take_G] + sub_GV[take_G, add_G]
        union_G = union_G[take_G] + size_V[add_G]
        best_f1_F[idx_G] = best_G
        size_S_F[idx_G] += 1
    return best_f1_F, size_S_F


def greedy_union_f1(
    active_NF: Tensor, labels_N: Tensor, n_values: int, max_values: int = 10
) -> tuple[Tensor, Tensor]:
    """Best F1 per latent over predicates ``attr ∈ S``, with S built greedily.

    S starts as the latent's best single value; each step adds the value that most increases
    F1(j, attr ∈ S) = 2 Σ_{v∈S} |A_v ∩ F_j| / (|F_j| + Σ_{v∈S} |A_v|), and the search stops at
    no strict gain or |S| = max_values. S never contains every value that occurs in
    ``labels_N`` (that predicate is always true), so binary attributes get single values only.

    Returns best_f1_F (float64, [F]; 0 for latents with no overlap, e.g. dead ones) and the size
    of S per latent ([F], long; 0 where best_f1_F is 0). Vectorised over latents: each step is
    one [F, V] operation.
    """
    inter_FV, size_F, size_V = _counts(active_NF, labels_N, n_values)
    return _greedy_union(inter_FV, size_F, size_V, size_V > 0, max_values)


def _present_mask(labels_N: Tensor, n_values: int, present_values: Tensor | None) -> Tensor:
    """Bool mask [V] of the values to average over: ``present_values`` (mask or indices) or
    the values that occur in ``labels_N``."""
    if present_values is None:
        return torch.bincount(labels_N.long().cpu(), minlength=n_values) > 0
    present_values = present_values.cpu()
    if present_values.dtype == torch.bool:
        if present_values.shape != (n_values,):
            raise ValueError(f"present_values mask must have shape [{n_values}]")
        return present_values.clone()
    mask_V = torch.zeros(n_values, dtype=torch.bool)
    mask_V[present_values.long()] = True
    return mask_V


def _valid_rows(rows_RD: Tensor) -> tuple[Tensor, Tensor]:
    """Rows that are finite with nonzero norm, and their norms."""
    rows_RD = rows_RD.to(torch.float64)
    norm_R = rows_RD.norm(dim=1)
    keep_R = torch.isfinite(rows_RD).all(dim=1) & (norm_R > 0)
    return rows_RD[keep_R], norm_R[keep_R]


def max_cosine(W_dec_FD: Tensor, features_VD: Tensor) -> float:
    """Mean over decoder rows d_j (nonzero, finite) of max_v cos(d_j, u_v).

    Supervised features u_v that are all-zero or contain NaN (values absent from the fit data)
    are skipped. The cosine is signed. NaN if no valid row or no valid feature remains.
    """
    dec_RD, dec_norm_R = _valid_rows(W_dec_FD.detach().cpu())
    feat_UD, feat_norm_U = _valid_rows(features_VD.detach().cpu())
    if dec_RD.shape[0] == 0 or feat_UD.shape[0] == 0:
        return math.nan
    cos_RU = (dec_RD / dec_norm_R[:, None]) @ (feat_UD / feat_norm_U[:, None]).T
    return float(cos_RU.max(dim=1).values.mean())


def attribute_summary(
    active_NF: Tensor,
    labels_N: Tensor,
    n_values: int,
    W_dec_FD: Tensor,
    features_VD: Tensor,
    tau: float = 0.8,
    present_values: Tensor | None = None,
    unions: bool = True,
) -> dict[str, float]:
    """Per-attribute interpretability report (metrics.md §6) with occlusion and over-splitting (§7).

    Present values P are ``present_values`` (a bool mask [V] or value indices) or else the
    values occurring in ``labels_N``; predicates are only formed over P. Keys (the caller adds
    the attribute suffix):

    - ``f1_coverage``: |{v ∈ P : max_j F1(j, v) ≥ τ}| / |P|
    - ``f1_mean_best``: mean_{v ∈ P} max_j F1(j, v)
    - ``n_interpretable_latents``: #{j : best F1 of j ≥ τ}, best over single values, or over
      greedy unions (:func:`greedy_union_f1`) when ``unions``
    - ``latents_per_value``: ``n_interpretable_latents`` / |P|
    - ``max_cosine``: :func:`max_cosine` of the decoder rows to the supervised features
    - ``n_latents_f1_0.5``: #{j : max_{v ∈ P} F1(j, v) > 0.5} (occlusion count)
    - ``feature_norm_mean``: mean ‖u_v‖ over valid (finite, nonzero) supervised features
    - ``split_latents_max``: max_{v ∈ P} #{j : precision(j, v) ≥ 0.9}
    - ``split_max_recall_mean``: mean_{v ∈ P} max{recall(j, v) : precision(j, v) ≥ 0.9}
      (0 for a value with no such latent)
    """
    inter_FV, size_F, size_V = _counts(active_NF, labels_N, n_values)
    present_V = _present_mask(labels_N, n_values, present_values).to(inter_FV.device)
    n_present = int(present_V.sum())
    if n_present == 0:
        raise ValueError("no attribute value is present: nothing to summarise")
    precision_FV, recall_FV, f1_FV = _scores(inter_FV, size_F, size_V)
    f1_FP = f1_FV[:, present_V]
    precision_FP = precision_FV[:, present_V]
    recall_FP = recall_FV[:, present_V]

    best_per_value_P = (
        f1_FP.max(dim=0).values if f1_FP.shape[0] else torch.zeros(n_present, dtype=f1_FP.dtype)
    )
    best_single_F = f1_FP.max(dim=1).values if f1_FP.shape[0] else torch.zeros(0, dtype=f1_FP.dtype)
    if unions and f1_FP.shape[0]:
        best_F, _ = _greedy_union(inter_FV, size_F, size_V, present_V & (size_V > 0), 10)
    else:
        best_F = best_single_F
    n_interpretable = int((best_F >= tau).sum())

    high_FP = precision_FP >= 0.9
    split_count_P = high_FP.sum(dim=0)
    split_recall_P = torch.where(high_FP, recall_FP, torch.zeros_like(recall_FP))
    split_recall_P = (
        split_recall_P.max(dim=0).values
        if split_recall_P.shape[0]
        else torch.zeros(n_present, dtype=recall_FP.dtype)
    )
    _, feat_norm_U = _valid_rows(features_VD.detach().cpu())

    return {
        "f1_coverage": float((best_per_value_P >= tau).double().mean()),
        "f1_mean_best": float(best_per_value_P.mean()),
        "latents_per_value": n_interpretable / n_present,
        "n_interpretable_latents": float(n_interpretable),
        "max_cosine": max_cosine(W_dec_FD, features_VD),
        "n_latents_f1_0.5": float((best_single_F > 0.5).sum()),
        "feature_norm_mean": float(feat_norm_U.mean()) if feat_norm_U.numel() else math.nan,
        "split_latents_max": float(split_count_P.max()),
        "split_max_recall_mean": float(split_recall_P.mean()),
    }


def interpretations(
    active_NF: Tensor, attribute_labels: dict[str, Tensor], attribute_sizes: dict[str, int]
) -> list[tuple[str, int, float]]:
    """Per latent, its highest-F1 single-value predicate across all attributes.

    Returns ``(attribute, value, f1)`` for each latent j, maximising F1(j, attr = v) over every
    attribute in ``attribute_labels`` and every value; ties go to the earlier attribute (dict
    order), then the lower value. A latent with F1 0 everywhere (e.g. dead) gets
    ``("", -1, 0.0)``: no predicate describes it.
    """
    n_latents = active_NF.shape[1]
    best_f1_F = torch.zeros(n_latents, dtype=torch.float64)
    best_value_F = torch.full((n_latents,), -1, dtype=torch.long)
    best_attr_F = torch.full((n_latents,), -1, dtype=torch.long)
    names = list(attribute_labels)
    for a, name in enumerate(names):
        _, _, f1_FV = predicate_f1(active_NF, attribute_labels[name], attribute_sizes[name])
        if f1_FV.shape[1] == 0:
            continue
        f1_F, value_F = f1_FV.cpu().max(dim=1)
        better_F = f1_F > best_f1_F
        best_f1_F = torch.where(better_F, f1_F, best_f1_F)
        best_value_F = torch.where(better_F, value_F, best_value_F)
        best_attr_F = torch.where(better_F, a, best_attr_F)
    return [
        (names[a], v, f) if a >= 0 else ("", -1, 0.0)
        for a, v, f in zip(
            best_attr_F.tolist(), best_value_F.tolist(), best_f1_F.tolist(), strict=True
        )
    ]


def rank_latents_for_value(f1_FV: Tensor, value_N: Tensor, k: int) -> Tensor:
    """Indices [N, k] of the k highest-F1 latents for each prompt's value ``value_N[n]``.

    Row n lists latents j in decreasing F1(j, value_N[n]); ties go to the lower latent index.
    Sorting happens once per value ([F, V]), never per prompt.
    """
    n_latents = f1_FV.shape[0]
    if not 0 < k <= n_latents:
        raise ValueError(f"k must lie in 1..{n_latents}, got {k}")
    order_FV = torch.sort(f1_FV, dim=0, descending=True, stable=True).indices
    return order_FV[:k].T[value_N.to(order_FV.device).long()]
