"""F1 coverage on its own prompts (docs/metrics.md §6): the interpretability metrics of a run
are computed on ``coverage_prompts`` prompts of the test split whatever ``n_prompts`` is, and
their interval resamples those prompts. On a shipped SAE through the whole scorer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from saebench import evaluate
from saebench.defaults import DEFAULT_COVERAGE_PROMPTS
from saebench.stats import bootstrap

SHIPPED = Path(__file__).parents[1] / "baselines/saes/tiny-ioi/L3-resid_post-END"
ATTRIBUTES = ("io", "s", "pos")


@pytest.fixture(scope="module")
def scored():
    """(n_prompts, coverage_prompts) -> {"trained": EvalResult, "random": EvalResult}; small
    supervised fit and one k: only the interpretability metrics are looked at."""
    from saebench.discover import load as load_sae
    from saebench.model import load_model, tokenizer_of
    from saebench.node import Node
    from saebench.task import load_task

    model = load_model("tiny-ioi")
    trained = load_sae(str(SHIPPED / "topk-k6-general"))
    random = load_sae(str(SHIPPED / "random"))
    task = load_task("ioi", tokenizer=tokenizer_of(model), prepend_bos=trained.meta.prepend_bos)
    node = Node(trained.meta.hook_name, "END", None)
    out = {}
    for n_prompts, coverage in ((300, DEFAULT_COVERAGE_PROMPTS), (3000, DEFAULT_COVERAGE_PROMPTS),
                                (1000, 1000)):  # fmt: skip
        settings = evaluate.EvalSettings(
            n_prompts=n_prompts, n_fit_prompts=500, ks=(2,), progress=False, n_bootstrap=200,
            coverage_prompts=coverage,
        )  # fmt: skip
        context = evaluate.prepare(model, task, node, settings, "tiny-ioi")
        out[n_prompts, coverage] = {
            "trained": evaluate.score(context, trained),
            "random": evaluate.score(context, random),
        }
    return out


def test_the_same_sae_gets_the_same_coverage_at_300_and_3000_prompts(scored) -> None:
    few, many = scored[300, 3000]["trained"], scored[3000, 3000]["trained"]
    for attr in ATTRIBUTES:
        for metric in (f"f1_coverage_{attr}", f"f1_mean_best_{attr}"):
            # the same 3000 coverage prompts: the same point estimate, each inside the
            # other's interval
            assert few.metrics[metric] == pytest.approx(many.metrics[metric]), metric
            for this, other in ((few, many), (many, few)):
                lo, hi = other.intervals[metric]
                assert lo - 1e-12 <= this.metrics[metric] <= hi + 1e-12, metric
    # every name has >= 10 of the 3000 prompts: io coverage is measured, not NaN
    assert not math.isnan(few.metrics["f1_coverage_io"])
    # the evaluation metrics themselves still use the 300 evaluation prompts
    assert few.outcomes["clean_ld"].shape[0] == 300
    assert few.outcomes[bootstrap.COVERAGE_PREFIX + "active"].shape[0] == 3000
    assert bootstrap.COVERAGE_PREFIX + "active" not in many.outcomes  # they are one set
    assert few.outcomes_meta["coverage_prompt_hash"] == many.outcomes_meta["coverage_prompt_hash"]


def test_the_interval_resamples_the_coverage_prompts_not_the_evaluation_prompts(scored) -> None:
    width = {
        key: (lambda lo, hi: hi - lo)(*runs["trained"].intervals["f1_mean_best_io"])
        for key, runs in scored.items()
    }
    # 300 evaluation prompts but 3000 coverage prompts: as narrow as a run on 3000 prompts
    # (0.016 both), far narrower than on 1000 evaluation prompts as before (0.072; at 300
    # the point is NaN: no name has 10 prompts)
    assert 0.7 < width[300, 3000] / width[3000, 3000] < 1.4
    assert width[1000, 1000] > 2 * width[300, 3000]


def test_a_random_dictionary_does_not_outscore_a_trained_one_on_few_prompts(scored) -> None:
    runs = scored[300, DEFAULT_COVERAGE_PROMPTS]
    for attr in ATTRIBUTES:
        metric = f"f1_coverage_{attr}"
        assert runs["random"].metrics[metric] <= runs["trained"].metrics[metric], metric
