"""Tests for saebench.metrics.interpretability: hand-computed F1 counts, unions, summaries
(metrics.md §6, §7)."""

import math
from fractions import Fraction as Fr

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score

from saebench.metrics.interpretability import (
    attribute_summary,
    greedy_union_f1,
    interpretations,
    max_cosine,
    predicate_f1,
    rank_latents_for_value,
)


def _active(n_prompts: int, firing: list[list[int]]) -> torch.Tensor:
    """Bool [N, F] with latent j active exactly on the prompts listed in firing[j]."""
    active_NF = torch.zeros(n_prompts, len(firing), dtype=torch.bool)
    for j, prompts in enumerate(firing):
        active_NF[prompts, j] = True
    return active_NF


def _as_float(table: list[list[Fr]]) -> torch.Tensor:
    return torch.tensor([[float(x) for x in row] for row in table], dtype=torch.float64)


# 6 prompts, values [0, 0, 0, 1, 1, 2]: |A_0| = 3, |A_1| = 2, |A_2| = 1.
LABELS_6 = torch.tensor([0, 0, 0, 1, 1, 2])
# latent 0 on {0, 1, 3}; latent 1 on {5}; latent 2 on {2, 3, 4, 5}.
ACTIVE_6x3 = _active(6, [[0, 1, 3], [5], [2, 3, 4, 5]])


def test_predicate_f1_matches_hand_computed_6x3_example():
    precision_FV, recall_FV, f1_FV = predicate_f1(ACTIVE_6x3, LABELS_6, n_values=3)
    # precision = |A ∩ F| / |F|: |F| = 3, 1, 4
    precision = [
        [Fr(2, 3), Fr(1, 3), Fr(0)],
        [Fr(0), Fr(0), Fr(1)],
        [Fr(1, 4), Fr(2, 4), Fr(1, 4)],
    ]
    # recall = |A ∩ F| / |A|: |A| = 3, 2, 1
    recall = [
        [Fr(2, 3), Fr(1, 2), Fr(0)],
        [Fr(0), Fr(0), Fr(1)],
        [Fr(1, 3), Fr(2, 2), Fr(1, 1)],
    ]
    # F1 = 2PR / (P + R), e.g. latent 2, value 0: 2 (1/4)(1/3) / (1/4 + 1/3) = 2/7
    f1 = [
        [Fr(2, 3), Fr(2, 5), Fr(0)],
        [Fr(0), Fr(0), Fr(1)],
        [Fr(2, 7), Fr(2, 3), Fr(2, 5)],
    ]
    torch.testing.assert_close(precision_FV, _as_float(precision), rtol=0, atol=1e-15)
    torch.testing.assert_close(recall_FV, _as_float(recall), rtol=0, atol=1e-15)
    torch.testing.assert_close(f1_FV, _as_float(f1), rtol=0, atol=1e-15)
    assert precision_FV.dtype == torch.float64


def test_predicate_f1_matches_sklearn_on_random_data():
    gen = torch.Generator().manual_seed(0)
    n_prompts, n_latents, n_values = 300, 40, 7
    labels_N = torch.randint(0, n_values, (n_prompts,), generator=gen)
    # latents correlated with the labels so that F1 is far from 0 for some pairs
    rate_FV = torch.rand(n_latents, n_values, generator=gen)
    active_NF = torch.rand(n_prompts, n_latents, generator=gen) < rate_FV[:, labels_N].T
    active_NF[:, 0] = False  # a dead latent: sklearn's zero_division=0 gives 0 too
    precision_FV, recall_FV, f1_FV = predicate_f1(active_NF, labels_N, n_values)
    rng = np.random.default_rng(0)
    pairs = [(0, 3)] + [
        (int(j), int(v)) for j, v in zip(rng.integers(1, 40, 8), rng.integers(0, 7, 8), strict=True)
    ]
    for j, v in pairs:
        y_true = (labels_N == v).numpy()
        y_pred = active_NF[:, j].numpy()
        assert f1_FV[j, v].item() == pytest.approx(f1_score(y_true, y_pred, zero_division=0))
        assert precision_FV[j, v].item() == pytest.approx(
            precision_score(y_true, y_pred, zero_division=0)
        )
        assert recall_FV[j, v].item() == pytest.approx(recall_score(y_true, y_pred))
    assert f1_FV.max() > 0.3


def test_dead_latents_and_absent_values_give_zero_not_nan():
    active_NF = _active(4, [[], [0, 1]])
    labels_N = torch.tensor([0, 0, 1, 1])
    precision_FV, recall_FV, f1_FV = predicate_f1(active_NF, labels_N, n_values=3)
    for table in (precision_FV, recall_FV, f1_FV):
        assert not torch.isnan(table).any()
    assert f1_FV[0].tolist() == [0.0, 0.0, 0.0]
    assert f1_FV[1].tolist() == [1.0, 0.0, 0.0]  # value 2 never occurs: recall 0, F1 0
    best_F, size_F = greedy_union_f1(active_NF, labels_N, n_values=3)
    assert best_F.tolist() == [0.0, 1.0]
    assert size_F.tolist() == [0, 1]


def test_predicate_f1_chunked_counts_equal_unchunked(monkeypatch):
    import saebench.metrics.interpretability as interp

    gen = torch.Generator().manual_seed(1)
    labels_N = torch.randint(0, 5, (50,), generator=gen)
    active_NF = torch.rand(50, 23, generator=gen) < 0.3
    whole = predicate_f1(active_NF, labels_N, 5)
    monkeypatch.setattr(interp, "_CHUNK_ELEMENTS", 50 * 4)  # chunks of 4 latents
    chunked = predicate_f1(active_NF, labels_N, 5)
    for a, b in zip(whole, chunked, strict=True):
        assert torch.equal(a, b)


def test_predicate_f1_rejects_non_bool_activity_and_out_of_range_labels():
    with pytest.raises(TypeError):
        predicate_f1(ACTIVE_6x3.float(), LABELS_6, 3)
    with pytest.raises(ValueError):
        predicate_f1(ACTIVE_6x3, LABELS_6, 2)


def test_greedy_union_hand_computed_on_6x3_example():
    best_F, size_F = greedy_union_f1(ACTIVE_6x3, LABELS_6, n_values=3)
    # latent 0: best single {0} 2/3; {0,1}: 2*3/(3+5) = 3/4; {0,1,2} would be always true.
    # latent 1: {2} already F1 = 1, no gain possible.
    # latent 2: best single {1} 2/3; {1,2}: 2*3/(4+3) = 6/7 (beats {0,1}: 2*3/(4+5) = 2/3).
    expected = [Fr(3, 4), Fr(1), Fr(6, 7)]
    torch.testing.assert_close(best_F, torch.tensor([float(x) for x in expected]).double())
    assert size_F.tolist() == [2, 1, 2]


def test_latent_on_two_values_has_single_f1_below_one_but_union_f1_one():
    labels_N = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    active_NF = _active(8, [[0, 1, 2, 3]])  # exactly "value ∈ {0, 1}"
    _, _, f1_FV = predicate_f1(active_NF, labels_N, n_values=4)
    assert f1_FV[0, 0].item() == pytest.approx(2 * 2 / (4 + 2))  # 2/3
    best_F, size_F = greedy_union_f1(active_NF, labels_N, n_values=4)
    assert best_F.item() == 1.0
    assert size_F.item() == 2


def test_greedy_union_stops_at_max_values():
    labels_N = torch.arange(8).repeat_interleave(2)  # 8 values, 2 prompts each
    active_NF = _active(16, [list(range(10))])  # values 0..4
    best_F, size_F = greedy_union_f1(active_NF, labels_N, n_values=8, max_values=3)
    assert size_F.item() == 3
    assert best_F.item() == pytest.approx(2 * 6 / (10 + 6))  # 3/4
    best_F, size_F = greedy_union_f1(active_NF, labels_N, n_values=8, max_values=10)
    assert (best_F.item(), size_F.item()) == (1.0, 5)


def _greedy_reference(
    active_N: list[bool], labels: list[int], max_values: int
) -> tuple[float, int]:
    """One latent, plain Python sets: the greedy search as metrics.md §6 states it."""
    fired = {p for p, a in enumerate(active_N) if a}
    values = sorted(set(labels))

    def f1(subset: set[int]) -> Fr:
        prompts = {p for p, v in enumerate(labels) if v in subset}
        denom = len(fired) + len(prompts)
        return Fr(2 * len(prompts & fired), denom) if denom else Fr(0)

    best = max(values, key=lambda v: (f1({v}), -v))
    chosen, score = {best}, f1({best})
    if score == 0:
        return 0.0, 0
    while len(chosen) < min(max_values, len(values) - 1):
        gain, add = max((f1(chosen | {v}), -v) for v in values if v not in chosen)
        if gain <= score:
            break
        chosen, score = chosen | {-add}, gain
    return float(score), len(chosen)


def test_greedy_union_matches_set_based_reference_on_random_data():
    gen = torch.Generator().manual_seed(3)
    labels_N = torch.randint(0, 9, (120,), generator=gen)
    favoured_FK = torch.randint(0, 9, (40, 4), generator=gen)
    on_value_NF = (labels_N[:, None, None] == favoured_FK[None]).any(-1)
    active_NF = (torch.rand(120, 40, generator=gen) < 0.05) | (
        on_value_NF & (torch.rand(120, 40, generator=gen) < 0.7)
    )
    best_F, size_F = greedy_union_f1(active_NF, labels_N, n_values=9, max_values=3)
    for j in range(40):
        ref = _greedy_reference(active_NF[:, j].tolist(), labels_N.tolist(), max_values=3)
        assert best_F[j].item() == pytest.approx(ref[0]) and size_F[j].item() == ref[1]
    assert (size_F == 3).any() and (size_F == 2).any()


def test_greedy_union_needs_strict_gain_and_never_takes_every_value():
    labels_N = torch.tensor([0, 1, 1, 1, 2, 2])
    # {0}: 2*1/(2+1) = 2/3; {0, 1}: 2*2/(2+4) = 2/3, no strict gain, so S stays {0}
    tie = _active(6, [[0, 1]])
    best_F, size_F = greedy_union_f1(tie, labels_N, n_values=3)
    assert (best_F.item(), size_F.item()) == (pytest.approx(2 / 3), 1)
    # an always-on latent on a binary attribute: "pos ∈ {0, 1}" is always true, not a union
    binary_N = torch.tensor([0, 0, 1, 1])
    best_F, size_F = greedy_union_f1(_active(4, [[0, 1, 2, 3]]), binary_N, n_values=2)
    assert (best_F.item(), size_F.item()) == (pytest.approx(2 * 2 / (4 + 2)), 1)


def test_exact_latents_give_full_coverage_and_threshold_is_inclusive():
    labels_N = torch.tensor([0, 0, 1, 1, 2, 2])
    W_dec_FD = torch.eye(3)
    features_VD = torch.eye(3)
    exact = _active(6, [[0, 1], [2, 3], [4, 5]])
    summary = attribute_summary(exact, labels_N, 3, W_dec_FD, features_VD)
    assert summary["f1_coverage"] == 1.0
    assert summary["f1_mean_best"] == 1.0
    assert summary["n_interpretable_latents"] == 3
    assert summary["latents_per_value"] == 1.0
    # value 2 only matched by a latent on {3, 4, 5}: F1 = 2*2/(3+2) = 4/5, exactly tau
    partial = _active(6, [[0, 1], [2, 3], [3, 4, 5]])
    summary = attribute_summary(partial, labels_N, 3, W_dec_FD, features_VD, tau=0.8)
    assert summary["f1_coverage"] == 1.0
    assert summary["f1_mean_best"] == pytest.approx((1 + 1 + Fr(4, 5)) / 3)
    summary = attribute_summary(partial, labels_N, 3, W_dec_FD, features_VD, tau=0.81)
    assert summary["f1_coverage"] == pytest.approx(2 / 3)
    # latent 2 is "value ∈ {1, 2}" at F1 2*3/(3+4) = 6/7 with unions, 4/5 < 0.81 without
    assert summary["n_interpretable_latents"] == 3
    single = attribute_summary(partial, labels_N, 3, W_dec_FD, features_VD, 0.81, unions=False)
    assert single["n_interpretable_latents"] == 2


def test_unions_count_latents_that_single_values_miss():
    labels_N = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    active_NF = _active(8, [[0, 1, 2, 3], [4, 5]])
    args = (active_NF, labels_N, 4, torch.eye(4), torch.eye(4))
    with_unions = attribute_summary(*args, unions=True)
    single_only = attribute_summary(*args, unions=False)
    assert with_unions["n_interpretable_latents"] == 2
    assert with_unions["latents_per_value"] == 2 / 4
    assert single_only["n_interpretable_latents"] == 1
    # coverage is about single values either way: only value 2 has a latent at F1 >= 0.8
    assert with_unions["f1_coverage"] == single_only["f1_coverage"] == 1 / 4


def test_present_values_restrict_the_averages():
    labels_N = torch.tensor([0, 0, 1, 1, 2, 2])
    active_NF = _active(6, [[0, 1]])
    args = (active_NF, labels_N, 3, torch.eye(3), torch.eye(3))
    assert attribute_summary(*args)["f1_coverage"] == pytest.approx(1 / 3)
    as_index = attribute_summary(*args, present_values=torch.tensor([0, 1]))
    as_mask = attribute_summary(*args, present_values=torch.tensor([True, True, False]))
    assert as_index == as_mask
    assert as_index["f1_coverage"] == 0.5
    assert as_index["latents_per_value"] == 0.5


def test_max_cosine_is_one_for_scaled_copies_of_features():
    gen = torch.Generator().manual_seed(2)
    features_VD = torch.randn(5, 16, generator=gen)
    scale_F = torch.tensor([3.0, 0.5, 2.0, 1.0, 7.0, 0.1])
    W_dec_FD = features_VD[torch.tensor([0, 1, 2, 3, 4, 2])] * scale_F[:, None]
    assert max_cosine(W_dec_FD, features_VD) == pytest.approx(1.0)


def test_max_cosine_skips_zero_rows_and_nan_features_and_keeps_sign():
    features_VD = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [math.nan] * 4, [0.0] * 4])
    W_dec_FD = torch.tensor(
        [
            [3.0, 0, 0, 0],  # cos 1 with u_0
            [0, -2.0, 0, 0],  # cos -1 with u_1, 0 with u_0: max 0
            [1.0, 0, 1.0, 0],  # cos 1/sqrt(2) with u_0
            [0.0, 0, 0, 0],  # zero row: skipped
        ]
    )
    assert max_cosine(W_dec_FD, features_VD) == pytest.approx((1 + 0 + 2**-0.5) / 3)
    labels_N = torch.tensor([0, 1])
    summary = attribute_summary(_active(2, [[0]] * 4), labels_N, 4, W_dec_FD, features_VD)
    assert summary["max_cosine"] == pytest.approx((1 + 0 + 2**-0.5) / 3)


def test_occlusion_counts_are_strictly_above_half_and_feature_norms_skip_absent_values():
    labels_N = torch.tensor([0, 0, 0, 1, 1, 1])
    # latent 0: {0}: F1 = 2/(1+3) = 1/2, not counted; latent 1: {3, 4}: F1 = 4/5; latent 2 dead
    active_NF = _active(6, [[0], [3, 4], []])
    features_VD = torch.tensor([[3.0, 0.0], [0.0, 4.0], [math.nan, math.nan], [0.0, 0.0]])
    summary = attribute_summary(active_NF, labels_N, 4, torch.eye(2).repeat(2, 1)[:3], features_VD)
    assert summary["n_latents_f1_0.5"] == 1
    assert summary["feature_norm_mean"] == 3.5


def test_oversplit_binary_attribute_has_ten_high_precision_latents_with_recall_tenth():
    labels_N = torch.tensor([0] * 100 + [1] * 100)
    # ten latents each on a disjoint tenth of value 0, one latent on all of value 1
    firing = [list(range(10 * i, 10 * i + 10)) for i in range(10)] + [list(range(100, 200))]
    active_NF = _active(200, firing)
    summary = attribute_summary(active_NF, labels_N, 2, torch.eye(11), torch.eye(11)[:2])
    assert summary["split_latents_max"] == 10
    assert summary["split_max_recall_mean"] == pytest.approx((Fr(1, 10) + 1) / 2)
    precision_FV, recall_FV, _ = predicate_f1(active_NF, labels_N, 2)
    assert (precision_FV[:10, 0] == 1).all() and (recall_FV[:10, 0] == 0.1).all()
    # precision 89/100 on value 0 is not high-precision; 9/10 is (threshold inclusive)
    low = _active(200, [list(range(89)) + list(range(100, 111))])
    summary = attribute_summary(low, labels_N, 2, torch.eye(2), torch.eye(2))
    assert summary["split_latents_max"] == 0 and summary["split_max_recall_mean"] == 0
    edge = _active(200, [list(range(9)) + [100]])
    summary = attribute_summary(edge, labels_N, 2, torch.eye(2), torch.eye(2))
    assert summary["split_latents_max"] == 1
    assert summary["split_max_recall_mean"] == pytest.approx((Fr(9, 100) + 0) / 2)


def test_interpretations_pick_best_attribute_and_mark_dead_latents():
    labels = {
        "io": torch.tensor([0, 0, 1, 1, 2, 2]),
        "pos": torch.tensor([0, 1, 0, 1, 0, 1]),
    }
    sizes = {"io": 3, "pos": 2}
    # latent 0 = io 1 exactly; latent 1 = pos 1 exactly; latent 2 = {0, 1}: io 0 (F1 1)
    # latent 3 dead; latent 4 on {0, 2}: io 0 F1 1/2, io 1 F1 1/2, pos 0 F1 2*2/(2+3) = 4/5
    active_NF = _active(6, [[2, 3], [1, 3, 5], [0, 1], [], [0, 2]])
    result = interpretations(active_NF, labels, sizes)
    assert result[0] == ("io", 1, 1.0)
    assert result[1] == ("pos", 1, 1.0)
    assert result[2] == ("io", 0, 1.0)
    assert result[3] == ("", -1, 0.0)
    assert result[4][:2] == ("pos", 0) and result[4][2] == pytest.approx(0.8)


def test_rank_latents_for_value_orders_by_f1_per_prompt_value():
    f1_FV = torch.tensor([[0.1, 0.9], [0.7, 0.2], [0.3, 0.9], [0.7, 0.0]], dtype=torch.float64)
    value_N = torch.tensor([0, 1, 0])
    top_NK = rank_latents_for_value(f1_FV, value_N, k=3)
    # value 0: 0.7 (latents 1 and 3, lower index first), 0.3; value 1: 0.9 (0, 2), 0.2
    assert top_NK.tolist() == [[1, 3, 2], [0, 2, 1], [1, 3, 2]]
    with pytest.raises(ValueError):
        rank_latents_for_value(f1_FV, value_N, k=5)
