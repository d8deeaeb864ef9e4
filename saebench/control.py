"""Control metrics (metrics.md §5): editing an attribute through a dictionary's latents.

Ground truth: patch the counterfactual activation a_cf into the clean run at the node;
y_gt = argmax of the next-token logits at END. An edit's **accuracy** is the fraction of
prompts whose argmax under the edit equals y_gt; the **normalised score** is
(acc − acc_noint) ÷ (acc_sup − acc_noint).

- **Interpretation-agnostic edit** (:func:`greedy_edit`): target diff = a_cf − a; latent j
  offers c_j = (f_j(a_cf) − f_j(a)) d_j; take k steps, each adding the unused c_j that brings
  the running sum closest (L2) to diff; a_edit = a + Σ chosen c_j. A latent with f_j(a_cf) =
  f_j(a) offers c_j = 0, so when no change helps the greedy step "adds nothing".
- **Interpretation-aware edit** (:func:`aware_edit`): with F1 scores of each latent for each
  value, zero the top-k *active* latents for the clean value v and set the top-k latents for
  the counterfactual value v′ to their counterfactual coefficients f_j(a_cf) (only latents
  with F1 > 0 are used; ties in F1 go to the lower latent index); a_edit = a + Σ_j (f′_j − f_j) d_j.
- **Edit magnitude** (:func:`edit_weights`): with â − b_dec = Σ_i f_i d_i,
  weight(i) = (f_i d_i)ᵀ(â − b_dec) ÷ ‖â − b_dec‖²; an edit's magnitude is the summed weight
  of the latents it removes: those active in the clean codes whose coefficient the edit
  changes. Supervised analogue: weight(u_{i,v}) = u_{i,v}ᵀ r ÷ ‖r‖² with r = â − ā.
"""

from __future__ import annotations

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


def aware_edit(
    codes_NF: Tensor,
    codes_cf_NF: Tensor,
    f1_FV: Tensor,
    value_N: Tensor,
    value_cf_N: Tensor,
    k: int,
) -> Tensor:
    """Edited codes f′: zero the top-k active latents for v, set the top-k for v′ to f(a_cf)."""
    return aware_edits(codes_NF, codes_cf_NF, f1_FV, value_N, value_cf_N, [k])[k]


def aware_edits(
    codes_NF: Tensor,
    codes_cf_NF: Tensor,
    f1_FV: Tensor,
    value_N: Tensor,
    value_cf_N: Tensor,
    ks: list[int],
) -> dict[int, Tensor]:
    """:func:`aware_edit` for every k in ``ks``, ranking the latents' F1 scores once.

    Prompt p's clean ranking is F1(j, v_p) over its active latents (0 elsewhere), its
    counterfactual ranking F1(j, v′_p) over all latents; each k takes the top k of each
    (only scores > 0) and returns f′ [N, F]. Ties in F1 (common: F1 is a ratio of small
    counts) go to the lower latent index, as in
    :func:`saebench.interpretability.rank_latents_for_value`: a stable descending sort.

    >>> f1_FV = torch.tensor([[0.5, 0.0], [0.5, 0.0], [0.0, 0.9], [0.0, 0.9]])
    >>> codes, codes_cf = torch.tensor([[1.0, 1.0, 0, 0]]), torch.tensor([[0, 0, 2.0, 3.0]])
    >>> aware_edits(codes, codes_cf, f1_FV, torch.tensor([0]), torch.tensor([1]), [1])[1]
    tensor([[0., 1., 2., 0.]])
    """
    rows = torch.arange(codes_NF.shape[0], device=codes_NF.device)[:, None]
    score_clean_NF = f1_FV[:, value_N].T.masked_fill(codes_NF <= 0, 0.0)
    score_cf_NF = f1_FV[:, value_cf_N].T
    k_max = min(max(ks), codes_NF.shape[1])
    sorted_clean_NF, order_clean_NF = score_clean_NF.sort(dim=1, descending=True, stable=True)
    sorted_cf_NF, order_cf_NF = score_cf_NF.sort(dim=1, descending=True, stable=True)
    zeros_NF = torch.zeros_like(codes_NF)
    out = {}
    for k in ks:
        k_eff = min(k, k_max)
        top_clean, remove_NK = sorted_clean_NF[:, :k_eff], order_clean_NF[:, :k_eff]
        top_cf, add_NK = sorted_cf_NF[:, :k_eff], order_cf_NF[:, :k_eff]
        new_NF = codes_NF.clone()
        remove_NK = torch.where(top_clean > 0, remove_NK, -1)
        add_NK = torch.where(top_cf > 0, add_NK, -1)
        for idx_NK, source_NF in ((remove_NK, zeros_NF), (add_NK, codes_cf_NF)):
            mask = idx_NK >= 0
            r, c = rows.expand_as(idx_NK)[mask], idx_NK[mask]
            new_NF[r, c] = source_NF[r, c]
        out[k] = new_NF
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


def agreement(pred_N: Tensor, target_N: Tensor) -> float:
    """Fraction of prompts whose prediction equals the target token: exactly k / N as a
    Python float (counted, not averaged in float32); NaN for no prompts.

    >>> agreement(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 0]))
    0.6666666666666666
    """
    n = pred_N.numel()
    return int((pred_N == target_N).sum().item()) / n if n else float("nan")


def normalised_edit_score(acc: float, acc_noint: float, acc_sup: float) -> float:
    """(acc − acc_noint) ÷ (acc_sup − acc_noint); NaN when the supervised edit is no better."""
    denom = acc_sup - acc_noint
    return (acc - acc_noint) / denom if abs(denom) > 1e-12 else float("nan")
