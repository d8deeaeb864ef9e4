"""Editing: greedy interpretation-agnostic edits, interpretation-aware edits, magnitudes."""

from __future__ import annotations

import itertools

import pytest
import torch

from saebench.metrics.control import (
    aware_edit,
    aware_edits,
    edit_magnitude,
    edit_weights,
    greedy_edit,
    normalised_edit_score,
)


def brute_force_greedy(diff_D, delta_F, W_dec_FD, k):
    """metrics.md §5 literally: k steps, each the unused c_j bringing the sum closest to diff."""
    used, total = set(), torch.zeros_like(diff_D)
    for _ in range(k):
        best = min(
            (j for j in range(len(delta_F)) if j not in used),
            key=lambda j: (
                (total + delta_F[j] * W_dec_FD[j] - diff_D).norm().item(),
                delta_F[j] != 0,
                j,
            ),
        )
        used.add(best)
        total = total + delta_F[best] * W_dec_FD[best]
    return total


def test_greedy_edit_reaches_the_counterfactual_exactly_in_k_steps():
    g = torch.Generator().manual_seed(0)
    d, f, k = 16, 16, 4
    W_dec_FD = torch.linalg.qr(torch.randn(d, d, generator=g))[0].T[:f]  # orthonormal rows
    codes_NF = torch.rand(8, f, generator=g) * (torch.rand(8, f, generator=g) < 0.5)
    codes_cf_NF = codes_NF.clone()
    for n in range(8):  # change exactly k latents per prompt
        idx = torch.randperm(f, generator=g)[:k]
        codes_cf_NF[n, idx] = codes_NF[n, idx] + 1 + torch.rand(k, generator=g)
    a_ND, a_cf_ND = codes_NF @ W_dec_FD, codes_cf_NF @ W_dec_FD
    out = greedy_edit(a_cf_ND - a_ND, codes_cf_NF - codes_NF, W_dec_FD, [k - 1, k])
    shift_ND, chosen_NF = out[k]
    assert torch.allclose(a_ND + shift_ND, a_cf_ND, atol=1e-5)
    assert torch.equal(chosen_NF, codes_cf_NF != codes_NF)
    partial_ND, _ = out[k - 1]
    assert (a_ND + partial_ND - a_cf_ND).norm(dim=1).min() > 0.99  # k−1 steps leave one change ≥ 1


def test_greedy_edit_matches_the_literal_definition_on_random_problems():
    g = torch.Generator().manual_seed(1)
    for trial in range(20):
        n, f, d = 3, 7, 5
        W_dec_FD = torch.randn(f, d, generator=g, dtype=torch.float64)
        delta_NF = torch.randn(n, f, generator=g, dtype=torch.float64)
        delta_NF[torch.rand(n, f, generator=g) < 0.4] = 0
        diff_ND = torch.randn(n, d, generator=g, dtype=torch.float64)
        ks = [1, 2, 3, 5]
        out = greedy_edit(diff_ND, delta_NF, W_dec_FD, ks)
        for k, p in itertools.product(ks, range(n)):
            expected = brute_force_greedy(diff_ND[p], delta_NF[p], W_dec_FD, k)
            got = out[k][0][p]
            err_expected = (expected - diff_ND[p]).norm().item()
            assert (got - diff_ND[p]).norm().item() == pytest.approx(err_expected, abs=1e-9), (
                trial,
                k,
            )


def test_greedy_never_moves_away_when_no_latent_helps():
    W_dec_FD = torch.cat([torch.eye(3), torch.ones(2, 3)])
    diff = torch.tensor([[1.0, 0.0, 0.0]])
    delta = torch.tensor([[0.0, 5.0, -4.0, 0.0, 0.0]])  # every real change makes things worse
    shift, chosen = greedy_edit(diff, delta, W_dec_FD, [2])[2]
    assert torch.equal(shift, torch.zeros(1, 3)) and not chosen.any()


def test_aware_edit_exchanges_half_the_budget_among_active_latents():
    # latents 0,1 encode value 0; latents 2,3 encode value 1; latent 4 is noise
    f1_FV = torch.tensor([[0.9, 0.0], [0.6, 0.1], [0.0, 0.95], [0.1, 0.7], [0.0, 0.0]])
    codes_NF = torch.tensor([[2.0, 1.0, 0.0, 0.0, 3.0]])
    codes_cf_NF = torch.tensor([[0.0, 0.0, 4.0, 1.5, 3.0]])
    v, v_cf = torch.tensor([0]), torch.tensor([1])

    def edit(codes, codes_cf, k):
        return aware_edit(codes, codes_cf, codes > 0, codes_cf > 0, f1_FV, v, v_cf, k)

    # budget 2: one out (latent 0), one in (latent 2); budget 3 is the same exchange
    for k in (2, 3):
        assert edit(codes_NF, codes_cf_NF, k).codes_NF.tolist() == [[0.0, 1.0, 4.0, 0.0, 3.0]]
    k4 = edit(codes_NF, codes_cf_NF, 4)
    assert k4.codes_NF.tolist() == [[0.0, 0.0, 4.0, 1.5, 3.0]]
    assert k4.removed_NF.tolist() == [[True, True, False, False, False]]
    # budget 1 allows no exchange: no entry
    assert aware_edits(
        codes_NF, codes_cf_NF, codes_NF > 0, codes_cf_NF > 0, f1_FV, v, v_cf, [1, 2]
    ).keys() == {2}
    # an inactive latent is never "removed", even with the best F1 for the clean value
    inactive = torch.tensor([[0.0, 1.0, 0.0, 0.0, 3.0]])
    assert edit(inactive, codes_cf_NF, 2).codes_NF[0, :2].tolist() == [0.0, 0.0]
    # nor added: latent 2 inactive on the counterfactual, so latent 3 (next by F1) is added
    cf_without_2 = torch.tensor([[0.0, 0.0, 0.0, 1.5, 3.0]])
    assert edit(codes_NF, cf_without_2, 2).codes_NF.tolist() == [[0.0, 1.0, 0.0, 1.5, 3.0]]
    # an added latent already active on the clean prompt and not removed: f + f_cf
    # (a − Σ_R f_j d_j + Σ_A f_j(a_cf) d_j, as in the paper's get_edit_using_f1_scores)
    both = torch.tensor([[2.0, 1.0, 0.5, 0.0, 3.0]])
    assert edit(both, codes_cf_NF, 2).codes_NF.tolist() == [[0.0, 1.0, 4.5, 0.0, 3.0]]


def test_edit_weights_sum_to_one_and_magnitude_counts_removed_latents():
    W_dec_FD = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    codes_NF = torch.tensor([[3.0, 4.0, 0.0]])
    w_NF = edit_weights(codes_NF, W_dec_FD)
    # â − b_dec = (3, 4); weight = (f_i d_i)·(3, 4) / 25 -> 9/25, 16/25, 0
    assert torch.allclose(w_NF, torch.tensor([[9 / 25, 16 / 25, 0.0]]))
    new_NF = torch.tensor([[0.0, 4.0, 2.0]])  # removes latent 0, adds latent 2
    assert edit_magnitude(w_NF, codes_NF, new_NF) == pytest.approx(9 / 25)


def test_normalised_edit_score():
    assert normalised_edit_score(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert normalised_edit_score(0.9, 0.5, 0.9) == pytest.approx(1.0)


def test_greedy_edit_does_not_depend_on_chunking_or_prompt_order():
    """Prompts are grouped by their number m of changed latents and each group is padded to
    its own largest m; every prompt's greedy run reads only its own row, so any chunking and
    any order of the prompts give bit-identical edits."""
    g = torch.Generator().manual_seed(2)
    n, f, d = 40, 300, 24
    W_dec_FD = torch.randn(f, d, generator=g)
    m_N = torch.randint(0, 60, (n,), generator=g)
    delta_NF = torch.zeros(n, f)
    for p in range(n):
        idx = torch.randperm(f, generator=g)[: m_N[p]]
        delta_NF[p, idx] = torch.randn(len(idx), generator=g)
    diff_ND = delta_NF @ W_dec_FD * 0.7 + torch.randn(n, d, generator=g)
    ks = [1, 3, 8]
    reference = greedy_edit(diff_ND, delta_NF, W_dec_FD, ks, chunk=n, max_elements=2**40)
    perm = torch.randperm(n, generator=g)
    variants = [
        greedy_edit(diff_ND, delta_NF, W_dec_FD, ks),
        greedy_edit(diff_ND, delta_NF, W_dec_FD, ks, chunk=1),
        greedy_edit(diff_ND, delta_NF, W_dec_FD, ks, chunk=7, max_elements=1),
    ]
    permuted = greedy_edit(diff_ND[perm], delta_NF[perm], W_dec_FD, ks, chunk=5)
    for k in ks:
        for out in variants:
            assert torch.equal(out[k][0], reference[k][0])
            assert torch.equal(out[k][1], reference[k][1])
        assert torch.equal(permuted[k][0], reference[k][0][perm])
        assert torch.equal(permuted[k][1], reference[k][1][perm])
    # and each edit is still the literal greedy of metrics.md §5
    for p in range(0, n, 9):
        expected = brute_force_greedy(
            diff_ND[p].double(), delta_NF[p].double(), W_dec_FD.double(), 3
        )
        got = reference[3][0][p].double()
        assert (got - diff_ND[p]).norm().item() == pytest.approx(
            (expected - diff_ND[p]).norm().item(), abs=1e-4
        )


def reference_aware_edit(codes_F, codes_cf_F, f1_FV, v, v_cf, k):
    """metrics.md §5 aware edit for one prompt at budget k: k // 2 out among the active clean
    latents, k // 2 in among the active counterfactual ones, F1 ties to the lower index."""
    n = k // 2
    new_F = codes_F.clone()
    clean = [(-f1_FV[j, v].item(), j) for j in range(len(codes_F)) if codes_F[j] > 0]
    cf = [(-f1_FV[j, v_cf].item(), j) for j in range(len(codes_F)) if codes_cf_F[j] > 0]
    for score, j in sorted(clean)[:n]:
        if -score > 0:
            new_F[j] = 0.0
    for score, j in sorted(cf)[:n]:
        if -score > 0:
            new_F[j] += codes_cf_F[j]
    return new_F


def test_aware_edit_breaks_f1_ties_by_the_lower_latent_index():
    """F1 is a ratio of small counts, so ties are common: with F1 drawn from three levels
    over 600 latents, every prompt's top-k has ties at its boundary, and the edit must take
    the lowest-index latents among them (the rule of ``rank_latents_for_value``)."""
    g = torch.Generator().manual_seed(3)
    n, f, v = 30, 600, 4
    f1_FV = torch.tensor([0.0, 0.25, 0.5])[torch.randint(0, 3, (f, v), generator=g)].double()
    codes_NF = torch.rand(n, f, generator=g) * (torch.rand(n, f, generator=g) < 0.3)
    codes_cf_NF = torch.rand(n, f, generator=g) * (torch.rand(n, f, generator=g) < 0.3)
    value_N = torch.randint(0, v, (n,), generator=g)
    value_cf_N = (value_N + 1) % v
    ks = [2, 5, 40, 400]
    args = (codes_NF, codes_cf_NF, codes_NF > 0, codes_cf_NF > 0, f1_FV, value_N, value_cf_N)
    got = aware_edits(*args, ks)
    for k in ks:
        assert torch.equal(got[k].codes_NF, aware_edit(*args, k).codes_NF)
        for p in range(n):
            expected = reference_aware_edit(
                codes_NF[p], codes_cf_NF[p], f1_FV, value_N[p].item(), value_cf_N[p].item(), k
            )
            assert torch.equal(got[k].codes_NF[p], expected), (k, p)
