"""Bootstrap intervals and paired comparisons (docs/metrics.md §11), on synthetic outcomes with
known truth, and F1 coverage's independence of the prompt count on a shipped SAE (§6)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from saebench.metrics import interpretability
from saebench.stats import bootstrap, compare

META = {"attributes": {}, "ks": [], "tau": 0.8, "coverage_min_prompts": 10}


def _synthetic(rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
    """Clean LD ~ N(2, 1), correctness ~ Bernoulli(0.3), reconstructed LD ~ N(1.5, 1)."""
    return {
        "clean_ld": torch.from_numpy(rng.normal(2.0, 1.0, n)),
        "clean_correct": torch.from_numpy((rng.random(n) < 0.3).astype(float)),
        "meanabl_ld": torch.from_numpy(rng.normal(0.0, 1.0, n)),
        "recon_ld": torch.from_numpy(rng.normal(1.5, 1.0, n)),
    }


def test_95_percent_intervals_cover_the_true_value_90_to_98_percent_of_the_time():
    truth = {"clean_logit_diff": 2.0, "clean_accuracy": 0.3, "sufficiency": 0.75}
    covered = {key: 0 for key in truth}
    for replicate in range(200):
        outcomes = _synthetic(np.random.default_rng(replicate), 300)
        intervals = bootstrap.intervals(outcomes, META, 400, seed=10_000 + replicate)
        for key, value in truth.items():
            lo, hi = intervals[key]
            covered[key] += lo <= value <= hi
    for key, count in covered.items():
        assert 0.90 <= count / 200 <= 0.98, (key, count)


def test_unit_weights_give_the_point_estimates_of_the_f1_summaries():
    gen = torch.Generator().manual_seed(0)
    labels_N = torch.randint(0, 6, (400,), generator=gen)
    active_NF = torch.rand(400, 30, generator=gen) < 0.1
    active_NF[:, 0] = labels_N == 2  # a perfect latent for value 2
    active_NF[:, 1] = (labels_N == 3) | (labels_N == 4)  # a union latent
    for min_prompts in (1, 10):
        present_V = torch.bincount(labels_N, minlength=6) >= min_prompts
        summary = interpretability.attribute_summary(
            active_NF, labels_N, 6, torch.eye(30), torch.eye(30)[:6], present_values=present_V
        )
        point = bootstrap.f1_metrics(active_NF, labels_N, 6, None, 0.8, min_prompts)
        for key in ("f1_coverage", "f1_mean_best", "latents_per_value"):
            assert float(point[key][0]) == pytest.approx(summary[key], abs=1e-12), key
    assert summary["f1_coverage"] == pytest.approx(1 / 6)  # value 2 only
    assert summary["latents_per_value"] == pytest.approx(2 / 6)  # latents 0 and 1 (union)


def test_values_with_too_few_prompts_do_not_count_in_coverage():
    labels_N = torch.tensor([0] * 12 + [1] * 2)
    active_NF = torch.zeros(14, 2, dtype=torch.bool)
    active_NF[12:, 0] = True  # fires exactly on value 1's two prompts: F1 1 by chance
    point = bootstrap.f1_metrics(active_NF, labels_N, 2, None, 0.8, 10)
    assert float(point["f1_coverage"][0]) == 0.0  # only value 0 (12 prompts) counts
    none = bootstrap.f1_metrics(active_NF, labels_N, 2, None, 0.8, 20)["f1_coverage"]
    assert math.isnan(float(none[0]))  # no value has 20 prompts: not measured


def _planted(rng: np.random.Generator, n: int, p: float) -> dict[str, torch.Tensor]:
    """A dictionary whose k = 1 edit succeeds with probability p, on shared references."""
    base = {
        "clean_ld": torch.ones(n, dtype=torch.float64),
        "clean_correct": torch.ones(n, dtype=torch.float64),
        "meanabl_ld": torch.zeros(n, dtype=torch.float64),
        "noint_correct_x": torch.zeros(n, dtype=torch.float64),
        "sup_edit_correct_x": torch.ones(n, dtype=torch.float64),
        "sup_edit_weight_x": torch.ones(n, dtype=torch.float64),
    }
    correct = torch.from_numpy((rng.random(n) < p).astype(float))
    base["edit_correct_x_k1"] = correct
    base["aware_edit_correct_x_k1"] = correct
    base["edit_weight_x_k1"] = torch.zeros(n, dtype=torch.float64)
    base["aware_edit_weight_x_k1"] = torch.zeros(n, dtype=torch.float64)
    return base


PLANTED_META = {"attributes": {"x": 2}, "ks": [1], "tau": 0.8, "coverage_min_prompts": 10}


def test_a_large_planted_difference_is_significant_and_a_null_one_rarely_is():
    rng = np.random.default_rng(0)
    diffs = compare.compare(
        _planted(rng, 500, 0.7), _planted(rng, 500, 0.5), PLANTED_META, 1000, seed=1
    )
    edit = next(d for d in diffs if d.metric == "edit_accuracy_x_k1")
    assert edit.significant and edit.lo > 0.1 and edit.diff == pytest.approx(0.2, abs=0.07)
    assert not next(d for d in diffs if d.metric == "noint_accuracy_x").significant
    false_positives = 0
    for replicate in range(50):
        rng = np.random.default_rng(100 + replicate)
        diffs = compare.compare(
            _planted(rng, 300, 0.6),
            _planted(rng, 300, 0.6),
            PLANTED_META,
            400,
            seed=replicate,
            metrics=["edit_accuracy_x_k1"],
        )
        false_positives += diffs[0].significant
    assert false_positives <= 5


def test_the_reference_comparisons_use_the_supervised_edit_and_no_intervention():
    outcomes = _planted(np.random.default_rng(3), 200, 0.4)
    against_sup = compare.compare(
        outcomes,
        compare.reference(outcomes, "supervised"),
        PLANTED_META,
        200,
        0,
        metrics=["edit_accuracy_x_k1"],
    )[0]
    assert against_sup.b == 1.0 and against_sup.significant and against_sup.diff < 0
    against_noint = compare.compare(
        outcomes,
        compare.reference(outcomes, "noint"),
        PLANTED_META,
        200,
        0,
        metrics=["edit_accuracy_x_k1"],
    )[0]
    assert against_noint.b == 0.0 and against_noint.significant


SHIPPED = Path(__file__).parents[1] / "baselines/saes/tiny-ioi/L3-resid_post-END"


def test_a_shipped_saes_coverage_does_not_depend_on_the_prompt_count():
    from saebench.discover import load as load_sae
    from saebench.model import load_model, tokenizer_of
    from saebench.node import Node
    from saebench.runner import NodeRunner
    from saebench.task import load_task

    model = load_model("tiny-ioi")
    trained, random = load_sae(str(SHIPPED / "topk-k6-general")), load_sae(str(SHIPPED / "random"))
    task = load_task("ioi", tokenizer=tokenizer_of(model), prepend_bos=trained.meta.prepend_bos)
    node = Node(trained.meta.hook_name, "END", None)
    found = {}
    for n in (300, 1000, 3000):
        prompts = task.prompts("test", n, 0)
        acts_ND = NodeRunner(model, task, node, prompts, 256, False).acts_ND.float()
        for name, sae in (("trained", trained), ("random", random)):
            for attr in ("io", "pos"):
                labels_N = prompts.attributes[attr]
                n_values = len(task.attribute_values(attr))
                args = (sae.active(acts_ND), labels_N, n_values)
                point = float(bootstrap.f1_metrics(*args, None, 0.8, 10)["f1_coverage"][0])
                idx = bootstrap.replicate_indices(n, 300, 7)
                reps = bootstrap.f1_metrics(*args, idx, 0.8, 10)["f1_coverage"]
                found[name, attr, n] = point, bootstrap.interval(reps, point, True)
    # io: 132 names, about 2 prompts each at 300: not measured (before: random 0.14 there,
    # 0.000 at 3000); at 1000 and 3000 the trained SAE agrees within its interval
    assert math.isnan(found["trained", "io", 300][0]) and math.isnan(found["random", "io", 300][0])
    point_1000, (lo, hi) = found["trained", "io", 1000]
    point_3000 = found["trained", "io", 3000][0]
    # 0.034 [0, 0.114] at 1000 prompts (29 names with >= 10 prompts), 0.000 at 3000
    assert lo <= point_3000 <= hi
    for n in (300, 1000, 3000):  # pos: about 500 prompts per value at every count
        assert found["trained", "pos", n][0] == found["trained", "pos", 3000][0]
    # the random dictionary never ranks above the trained one on fewer prompts
    for n in (300, 1000):
        rand = found["random", "io", n][0]
        assert math.isnan(rand) or rand <= found["trained", "io", 3000][1][1]
