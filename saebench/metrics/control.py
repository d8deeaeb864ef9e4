"""Control metrics (metrics.md §5): editing an attribute through a dictionary's latents.

Ground truth: patch the counterfactual activation a_cf into the clean run at the node;
y_gt = argmax of the next-token logits at END. An edit's **accuracy** is the fraction of
prompts whose argmax under the edit equals y_gt; the **normalised score** is
(acc − acc_noint) ÷ (acc_sup − acc_noint).

- **Interpretation-agnostic edit** (:func:`greedy_edit`): target diff = a_cf − a; latent j
  offers c_j = (f_j(a_cf) − f_j(a)) d_j; take k steps, each adding the unused c_j that brings
  the running sum closest (L2) to diff; a_edit = a + Σ chosen c_j. A latent with f_j(a_cf) =
  f_j(a) offers c_j = 0, so when no change helps the greedy step "adds nothing".
- **Budget k** (one convention for both edits): k is the number of latents an edit may
  change. The greedy edit takes k steps; the aware edit exchanges n = ⌊k/2⌋ latents (removes
  up to n, adds up to n), as the paper files its aware edit under ``2*num_exchange``
  (``amakelov/sae`` ``collect_results.ipynb``). k = 2 is the paper's headline budget; an odd
  k leaves one latent of its budget unused; k = 1 allows no exchange, so the aware metrics at
  k = 1 are NaN (:func:`aware_exchanges`).
- **Interpretation-aware edit** (:func:`aware_edit`), the paper's
  ``sae_interventions.get_edit_using_f1_scores`` ("version 1"): with F1 scores of each latent
  for each value, the removed set R is the top-n latents by F1 for the clean value v among
  those *active on the clean prompt*, the added set A the top-n latents by F1 for v′ among
  those *active on the counterfactual prompt* (only latents with F1 > 0; ties in F1 go to the
  lower latent index; fewer than n candidates: all of them, so the edit changes fewer
  latents). a_edit = a − Σ_{j∈R} f_j(a) d_j + Σ_{j∈A} f_j(a_cf) d_j, i.e. codes
  f′_j = f_j·[j ∉ R] + f_j(a_cf)·[j ∈ A].
- **Edit magnitude** (:func:`edit_weights`): with â − b_dec = Σ_i f_i d_i,
  weight(i) = (f_i d_i)ᵀ(â − b_dec) ÷ ‖â − b_dec‖²; an edit's magnitude is the summed weight
  of the latents it removes: for the greedy edit those active in the clean codes whose
  coefficient the edit changes (:func:`edit_magnitude`), for the aware edit the set R
  (:func:`removed_magnitude`, the paper's ``compute_removed_weight(features_removed)``).
  Supervised analogue: weight(u_{i,v}) = u_{i,v}ᵀ r ÷ ‖r‖² with r = â − ā.
- **Edit distance** (:func:`edit_distance`): mean over prompts of ‖a_edit − a_cf‖₂, the
  paper's ``get_activation_distance(method='l2')``, by which it picks one SAE of a sweep per
  (node, attribute, k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

GREEDY_CHUNK_ELEMENTS = 2**21
"""Default bound on a greedy chunk's float64 candidate array [n, m, max(D, m)] (16 MB): chunks
that fit in cache run fastest (measured at d_sae 24576, D 768)."""


def greedy_edit(
    diff_ND: Tensor,
    delta_NF: Tensor,
    W_dec_FD: Tensor,
    ks: list[int],
    chunk: int = 256,
    max_elements: int = GREEDY_CHUNK_ELEMENTS,
) -> dict[int, tuple[Tensor, Tensor]]:
    """Greedy interpretation-agnostic edits for every k in ``ks`` (one greedy run to max k,
    capped at the width F: a k beyond it is the edit of k = F).

    ``delta_NF`` = f(a_cf) − f(a). Returns k -> (Σ chosen c_j [N, D], chosen latents [N, F]).
    Only latents with δ_j ≠ 0 can move the sum; the others form a pool of "no change" choices
    (each usable once). Ties go to "no change", then to the lowest latent index.

    Prompt p has m_p = #{j : δ_pj ≠ 0} candidates. Prompts are processed in order of m_p, in
    chunks of at most ``chunk`` prompts and (beyond one prompt) ``max_elements`` entries of the
    chunk's float64 candidates [n, m, max(D, m)], each chunk padded to its own largest m: the
    work and memory (candidates [n, m, D], Gram matrix [n, m, m]) then follow the real m_p,
    Σ_p m_p (D + m_p), rather than N·m_max·(D + m_max) for chunks taken in prompt order. Each
    prompt's greedy run only ever reads its own row, so the result does not depend on the
    chunking.

    >>> diff, delta = torch.tensor([[1.0, -2.0, 0.0]]), torch.tensor([[1.0, -2.0, 5.0]])
    >>> out = greedy_edit(diff, delta, torch.eye(3), [1, 2])
    >>> out[1][0].tolist(), out[2][0].tolist()
    ([[0.0, -2.0, 0.0]], [[1.0, -2.0, 0.0]])
    """
    n, f = delta_NF.shape
    # k beyond the width F uses every latent, as k = F does: run to min(k, F) at most
    capped = sorted({min(k, f) for k in ks})
    m_N = (delta_NF != 0).sum(1)
    order_N = torch.argsort(m_N, stable=True)
    sums = {k: torch.empty_like(diff_ND) for k in capped}
    chosen = {k: torch.zeros(n, f, dtype=torch.bool, device=delta_NF.device) for k in capped}
    for rows_C in _chunks_by_size(m_N[order_N].tolist(), diff_ND.shape[1], chunk, max_elements):
        rows_C = order_N[rows_C]
        part = _greedy_chunk(diff_ND[rows_C], delta_NF[rows_C], W_dec_FD, capped)
        for k in capped:
            sums[k][rows_C] = part[k][0]
            chosen[k][rows_C] = part[k][1]
    return {k: (sums[min(k, f)], chosen[min(k, f)]) for k in ks}


def _chunks_by_size(sorted_m: list[int], d: int, max_rows: int, max_elements: int) -> list[slice]:
    """Consecutive slices of prompts sorted by m: each as long as possible with at most
    ``max_rows`` prompts and rows · m_max · max(d, m_max) ≤ ``max_elements`` (a single prompt
    is always allowed).

    >>> _chunks_by_size([1, 2, 2, 8], d=4, max_rows=3, max_elements=20)
    [slice(0, 2, None), slice(2, 3, None), slice(3, 4, None)]
    """
    out, start = [], 0
    while start < len(sorted_m):
        stop = start + 1
        while stop < len(sorted_m) and stop - start < max_rows:
            m = max(1, sorted_m[stop])
            if (stop + 1 - start) * m * max(d, m) > max_elements:
                break
            stop += 1
        out.append(slice(start, stop))
        start = stop
    return out


def _greedy_chunk(
    diff_ND: Tensor, delta_NF: Tensor, W_dec_FD: Tensor, ks: list[int]
) -> dict[int, tuple[Tensor, Tensor]]:
    """:func:`greedy_edit` on one chunk, every row padded to the chunk's largest m.

    Row n's candidates are its latents with δ_nj ≠ 0 in increasing index order (then padding),
    c_j = δ_j d_j. With the running sum S, each step takes the unused candidate minimising
    ‖diff − (S + c_j)‖² − ‖diff − S‖² = ‖c_j‖² − 2 c_j·(diff − S), if that is negative and
    a "no change" latent remains (else it must take the best one); c_j·(diff − S) is updated
    through the Gram matrix c_i·c_j, so each step costs O(m).
    """
    n, f = delta_NF.shape
    nonzero_NF = delta_NF != 0
    m = max(1, int(nonzero_NF.sum(1).max()))
    # candidates first, each group in increasing latent index (a stable sort of ~nonzero)
    idx_NM = torch.argsort((~nonzero_NF).to(torch.int8), dim=1, stable=True)[:, :m]
    valid_NM = nonzero_NF.gather(1, idx_NM)
    c_NMD = (delta_NF.gather(1, idx_NM) * valid_NM)[..., None] * W_dec_FD[idx_NM]
    c_NMD, diff_ND = c_NMD.double(), diff_ND.double()
    cr_NM = torch.einsum("nmd,nd->nm", c_NMD, diff_ND)
    cc_NM = c_NMD.pow(2).sum(-1)
    gram_NMM = c_NMD @ c_NMD.transpose(1, 2)
    used_NM = ~valid_NM
    zero_left_N = (f - nonzero_NF.sum(1)).double()
    rows = torch.arange(n, device=delta_NF.device)
    sum_ND = torch.zeros_like(diff_ND)
    chosen_NF = torch.zeros(n, f, dtype=torch.bool, device=delta_NF.device)
    out = {}
    for step in range(1, max(ks) + 1):
        obj_NM = (cc_NM - 2 * cr_NM).masked_fill(used_NM, float("inf"))
        best_N, j_N = obj_NM.min(1)
        zero_obj_N = torch.where(zero_left_N > 0, 0.0, float("inf")).to(best_N)
        take_N = (best_N < zero_obj_N) & torch.isfinite(best_N)
        zero_left_N -= (~take_N).double()
        r, j = rows[take_N], j_N[take_N]
        sum_ND[r] += c_NMD[r, j]
        cr_NM[r] -= gram_NMM[r, :, j]
        used_NM[r, j] = True
        chosen_NF[r, idx_NM[r, j]] = True
        if step in ks:
            out[step] = (sum_ND.to(delta_NF.dtype).clone(), chosen_NF.clone())
    return out


def aware_exchanges(k: int) -> int:
    """Latents the aware edit removes (and adds) at budget k: n = ⌊k/2⌋ (metrics.md §5).

    >>> [aware_exchanges(k) for k in (1, 2, 3, 4, 32)]
    [0, 1, 1, 2, 16]
    """
    return k // 2


@dataclass
class AwareEdit:
    """One aware edit per prompt: the edited codes f′ [N, F] and the removed set R [N, F]."""

    codes_NF: Tensor
    removed_NF: Tensor


def aware_edit(
    codes_NF: Tensor,
    codes_cf_NF: Tensor,
    active_NF: Tensor,
    active_cf_NF: Tensor,
    f1_FV: Tensor,
    value_N: Tensor,
    value_cf_N: Tensor,
    k: int,
) -> AwareEdit:
    """The aware edit at budget ``k`` (k ≥ 2): remove the top-⌊k/2⌋ latents for v active on
    the clean prompt, add the top-⌊k/2⌋ latents for v′ active on the counterfactual prompt."""
    args = (codes_NF, codes_cf_NF, active_NF, active_cf_NF, f1_FV, value_N, value_cf_N)
    return aware_edits(*args, [k])[k]


def aware_edits(
    codes_NF: Tensor,
    codes_cf_NF: Tensor,
    active_NF: Tensor,
    active_cf_NF: Tensor,
    f1_FV: Tensor,
    value_N: Tensor,
    value_cf_N: Tensor,
    ks: list[int],
) -> dict[int, AwareEdit]:
    """:func:`aware_edit` for every k in ``ks`` with k ≥ 2 (k = 1 allows no exchange and has
    no entry), ranking the latents' F1 scores once.

    Prompt p's removal ranking is F1(j, v_p) over the latents active on it, its addition
    ranking F1(j, v′_p) over the latents active on its counterfactual (0 elsewhere); n = ⌊k/2⌋
    takes the top n of each with score > 0. Ties in F1 (common: F1 is a ratio of small
    counts) go to the lower latent index, as in
    :func:`saebench.metrics.interpretability.rank_latents_for_value`: a stable descending sort. The
    edited codes are f′_j = f_j·[j ∉ R] + f_j(a_cf)·[j ∈ A] (a − Σ_R f_j d_j + Σ_A f_j(a_cf) d_j,
    the paper's ``get_edit_using_f1_scores``).

    Latents 0, 1 stand for v; 2, 3 for v′, but latent 2 is inactive on the counterfactual, so
    the edit adds latent 3 (ranking every latent would add latent 2 with code 0):

    >>> f1_FV = torch.tensor([[0.5, 0.0], [0.4, 0.0], [0.0, 0.9], [0.0, 0.8]])
    >>> codes, codes_cf = torch.tensor([[1.0, 1.0, 0, 0]]), torch.tensor([[0, 0, 0, 3.0]])
    >>> edit = aware_edits(codes, codes_cf, codes > 0, codes_cf > 0, f1_FV,
    ...                    torch.tensor([0]), torch.tensor([1]), [1, 2])
    >>> sorted(edit), edit[2].codes_NF, edit[2].removed_NF
    ([2], tensor([[0., 1., 0., 3.]]), tensor([[ True, False, False, False]]))
    """
    n, f = codes_NF.shape
    rows_N1 = torch.arange(n, device=codes_NF.device)[:, None]
    score_clean_NF = f1_FV[:, value_N].T.masked_fill(~active_NF.bool(), 0.0)
    score_cf_NF = f1_FV[:, value_cf_N].T.masked_fill(~active_cf_NF.bool(), 0.0)
    sorted_clean_NF, order_clean_NF = score_clean_NF.sort(dim=1, descending=True, stable=True)
    sorted_cf_NF, order_cf_NF = score_cf_NF.sort(dim=1, descending=True, stable=True)
    out = {}
    for k in ks:
        n_ex = min(aware_exchanges(k), f)
        if n_ex == 0:
            continue
        removed_NF = torch.zeros(n, f, dtype=torch.bool, device=codes_NF.device)
        added_NF = torch.zeros_like(removed_NF)
        for sorted_NF, order_NF, mask_NF in (
            (sorted_clean_NF, order_clean_NF, removed_NF),
            (sorted_cf_NF, order_cf_NF, added_NF),
        ):
            take_NK = sorted_NF[:, :n_ex] > 0
            idx_NK = order_NF[:, :n_ex]
            mask_NF[rows_N1.expand_as(idx_NK)[take_NK], idx_NK[take_NK]] = True
        new_NF = codes_NF.masked_fill(removed_NF, 0.0) + codes_cf_NF * added_NF
        out[k] = AwareEdit(codes_NF=new_NF, removed_NF=removed_NF)
    return out


def edit_weights(codes_NF: Tensor, W_dec_FD: Tensor) -> Tensor:
    """weight(i) = (f_i d_i)ᵀ(â − b_dec) ÷ ‖â − b_dec‖², per prompt [N, F]; rows sum to 1."""
    recon_ND = codes_NF @ W_dec_FD
    proj_NF = codes_NF * (recon_ND @ W_dec_FD.T)
    return proj_NF / recon_ND.pow(2).sum(1, keepdim=True).clamp(min=1e-12)


def edit_magnitude(weights_NF: Tensor, codes_NF: Tensor, new_codes_NF: Tensor) -> float:
    """Mean over prompts of the summed weight of latents that were active and were changed."""
    removed_NF = (codes_NF > 0) & (new_codes_NF != codes_NF)
    return (weights_NF * removed_NF).sum(1).mean().item()


def removed_magnitude(weights_NF: Tensor, removed_NF: Tensor) -> float:
    """Mean over prompts of the summed weight of the removed latents R [N, F] (the aware edit's
    magnitude; the paper's ``compute_removed_weight(features_removed)``)."""
    return (weights_NF * removed_NF).sum(1).mean().item()


def edit_distance(edit_ND: Tensor, acts_cf_ND: Tensor) -> float:
    """Mean over prompts of ‖a_edit − a_cf‖₂ (float64): how close an edit lands to the
    counterfactual activation (the paper's ``get_activation_distance(method='l2')``).

    >>> edit_distance(torch.tensor([[3.0, 4.0], [0.0, 1.0]]), torch.zeros(2, 2))  # (5 + 1) / 2
    3.0
    """
    return (edit_ND.double() - acts_cf_ND.double()).norm(dim=1).mean().item()


def agreement(pred_N: Tensor, target_N: Tensor) -> float:
    """Fraction of prompts whose prediction equals the target token: exactly k / N as a
    Python float (counted, not averaged in float32); NaN for no prompts.

    >>> agreement(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 0]))
    0.6666666666666666
    """
    n = pred_N.numel()
    return int((pred_N == target_N).sum().item()) / n if n else float("nan")


def normalised_edit_score(
    acc: float, acc_noint: float, acc_sup: float, clip: tuple[float, float] | None = None
) -> float:
    """(acc − acc_noint) ÷ (acc_sup − acc_noint); NaN when the supervised edit is no better;
    clipped to ``clip`` (the paper protocol's [0, 2]) when given.

    >>> normalised_edit_score(0.1, 0.5, 0.9), normalised_edit_score(0.1, 0.5, 0.9, (0.0, 2.0))
    (-1.0, 0.0)
    """
    denom = acc_sup - acc_noint
    score = (acc - acc_noint) / denom if abs(denom) > 1e-12 else float("nan")
    if clip is not None and score == score:
        score = min(max(score, clip[0]), clip[1])
    return score
