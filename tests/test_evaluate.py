"""End-to-end identities of the scorer on a random-init model (metrics.md §4–5).
These hold for any model, so a random one (no download) pins the formulas: an exact
reconstruction scores sufficiency = necessity = 1; a reconstruction that is always the mean
activation scores necessity 0 and sufficiency LD_meanabl ÷ LD_clean; a supervised dictionary
scored through the SAE path matches the supervised reference.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from saebench.evaluate import EvalSettings, evaluate, fit_supervised
from saebench.node import Node
from saebench.runner import NodeRunner
from saebench.sae import SAE

SETTINGS = EvalSettings(n_prompts=120, n_fit_prompts=400, ks=(1, 2, 4), progress=False)
NODE = Node("blocks.1.hook_resid_pre", "END")


def identity_sae(d: int) -> SAE:
    """f = relu([x, −x]), x̂ = f [I; −I] = x: an exact ReLU SAE with 2d latents."""
    eye = torch.eye(d)
    return SAE(
        "standard",
        torch.cat([eye, -eye], 1),
        torch.cat([eye, -eye], 0),
        torch.zeros(2 * d),
        torch.zeros(d),
    )


@pytest.fixture(scope="module")
def fitted(random_model, ioi_task):
    prompts = ioi_task.prompts("test", SETTINGS.n_prompts, SETTINGS.seed)
    runner = NodeRunner(random_model, ioi_task, NODE, prompts, progress=False)
    return fit_supervised(runner, ioi_task, SETTINGS, "random-gpt2")


def test_exact_reconstruction_scores_sufficiency_and_necessity_one(random_model, ioi_task):
    m = evaluate(random_model, ioi_task, NODE, identity_sae(64), SETTINGS).metrics
    assert m["fvu"] < 1e-10
    assert m["sufficiency"] == pytest.approx(1.0, abs=1e-4)
    assert m["logit_diff_recovered_vs_meanabl"] == pytest.approx(1.0, abs=1e-4)
    assert m["necessity"] == pytest.approx(1.0, abs=1e-3)
    # an exact SAE's greedy edit with enough steps is the counterfactual patch itself
    for attr in ("io", "s", "pos"):
        assert m[f"edit_accuracy_{attr}_k4"] >= m[f"noint_accuracy_{attr}"] - 1e-9


def test_mean_reconstruction_scores_necessity_zero(random_model, ioi_task, fitted):
    mean_D = fitted["mean"].bias_D
    d, f = mean_D.shape[0], 8
    mean_sae = SAE("standard", torch.zeros(d, f), torch.zeros(f, d), torch.zeros(f), mean_D)
    m = evaluate(random_model, ioi_task, NODE, mean_sae, SETTINGS).metrics
    assert m["necessity"] == pytest.approx(0.0, abs=1e-3)
    expected = m["meanabl_logit_diff"] / m["clean_logit_diff"]
    assert m["sufficiency"] == pytest.approx(expected, rel=1e-4)
    # â = ā recovers none of the mean-ablation gap
    assert m["logit_diff_recovered_vs_meanabl"] == pytest.approx(0.0, abs=1e-4)
    assert m["l0"] == 0 and m["dead_fraction"] == 1


def test_supervised_dictionary_through_the_sae_path_scores_like_the_reference(
    random_model, ioi_task
):
    # every value counts (coverage_min_prompts 1): at 120 prompts no name has 10
    settings = dataclasses.replace(SETTINGS, coverage_min_prompts=1)
    m = evaluate(random_model, ioi_task, NODE, "supervised:mean", settings).metrics
    n = SETTINGS.n_prompts
    assert m["l0"] == 3
    assert m["sufficiency"] == pytest.approx(m["sup_sufficiency"], abs=1e-5)
    assert m["logit_diff_recovered_vs_meanabl"] == pytest.approx(
        m["sup_logit_diff_recovered_vs_meanabl"], abs=1e-5
    )
    assert m["necessity"] == pytest.approx(m["sup_necessity"], abs=1e-4)
    assert m["fvu"] == pytest.approx(m["sup_fvu"], abs=1e-6)
    for attr in ("io", "s", "pos"):
        sup = m[f"sup_edit_accuracy_{attr}"]
        # the aware edit at budget k = 2 turns u_v off and u_v' on: the supervised edit itself
        # (one prompt of float slack); the greedy edit may stop early where u_v' − u_v does
        # not point towards a_cf − a, which a random model allows
        assert m[f"aware_edit_accuracy_{attr}_k2"] == pytest.approx(sup, abs=1 / n + 1e-9)
        assert m[f"aware_edit_magnitude_{attr}_k2"] == pytest.approx(
            m[f"sup_edit_magnitude_{attr}"], abs=1e-4
        )
        # budget 1 allows no exchange
        assert math.isnan(m[f"aware_edit_accuracy_{attr}_k1"])
        assert m[f"f1_coverage_{attr}"] == 1.0


def test_width_mismatch_is_a_clear_error(random_model, ioi_task):
    with pytest.raises(ValueError, match="16-dim vectors but node .* has width 64"):
        evaluate(random_model, ioi_task, NODE, identity_sae(16), SETTINGS)


def test_on_tiny_ioi_the_supervised_edit_is_reached_by_greedy_edits_through_the_sae_path():
    """On a model that does IOI, the last residual stream at END carries the IO name: swapping
    u_io,v for u_io,v' flips the prediction to the new name; through the SAE path, the
    interpretation-aware edit at budget k = 2 (the top-F1 latent of v off, of v' on) is exactly that
    swap, and the greedy edit, which targets the true a_cf − a (the swap plus context), comes
    within a few prompts of it with two latents."""
    from saebench.model import load_model
    from saebench.task import load_task

    model = load_model("tiny-ioi")
    task = load_task("ioi", tokenizer=model.tokenizer)
    node = Node("blocks.3.hook_resid_post", "END")
    settings = EvalSettings(n_prompts=200, n_fit_prompts=8000, ks=(1, 2), progress=False)
    m = evaluate(model, task, node, "supervised:mean", settings).metrics
    assert m["clean_accuracy"] > 0.9 and m["clean_logit_diff"] > 3
    assert m["noint_accuracy_io"] < 0.1  # the counterfactual patch changes the answer
    assert m["sup_edit_accuracy_io"] > 0.9
    assert m["aware_edit_accuracy_io_k2"] == m["sup_edit_accuracy_io"]
    assert m["edit_accuracy_io_k2"] >= m["sup_edit_accuracy_io"] - 0.05
    assert m["edit_accuracy_io_k1"] < 0.5  # one latent is not enough: u_v off or u_v' on
    # the supervised fit needs many prompts per name: necessity is 0.50 / 0.86 / 0.90 / 0.93 with
    # 1000 / 4000 / 8000 / 16000 fit prompts here
    assert m["sufficiency"] > 0.9 and m["necessity"] > 0.85


@pytest.mark.parametrize(
    ("hook", "head", "position", "width"),
    [
        ("blocks.1.attn.hook_z", None, "END", 64),  # all heads concatenated (SAELens hook_z)
        ("blocks.1.attn.hook_z", 2, "END", 16),  # one head
        ("blocks.0.hook_resid_post", None, "S2", 64),  # another position
    ],
)
def test_exact_reconstruction_is_exact_at_every_kind_of_node(
    random_model, ioi_task, hook, head, position, width
):
    node = Node(hook, position, head)
    assert node.width(random_model) == width
    settings = EvalSettings(n_prompts=60, n_fit_prompts=300, ks=(1,), progress=False)
    m = evaluate(random_model, ioi_task, node, identity_sae(width), settings).metrics
    assert m["sufficiency"] == pytest.approx(1.0, abs=1e-4)
    assert m["necessity"] == pytest.approx(1.0, abs=1e-3)
