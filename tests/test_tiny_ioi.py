"""The embedded tiny-ioi model: tokenizer, shipped weights, IOI performance, retraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saebench.model import EMBEDDED_MODELS_DIR, load_model
from saebench.tiny_ioi.corpus import (
    HELD_OUT_TEMPLATE,
    TRAIN_IOI_TEMPLATES,
    general_corpus,
    ioi_prompt,
    ioi_style_corpus,
    word_lists,
)
from saebench.tiny_ioi.evaluate import end_logits, ioi_scores, mean_ablation_curve
from saebench.tiny_ioi.train import TrainConfig, train_tiny_ioi
from saebench_tasks.ioi import TEMPLATES, IOITask

MODEL_DIR = EMBEDDED_MODELS_DIR / "tiny-ioi"


@pytest.fixture(scope="module")
def model():
    return load_model("tiny-ioi")


def test_shipped_files_exist_and_total_under_10_mb():
    names = ["config.json", "model.safetensors", "tokenizer.json", "training.json"]
    sizes = [(MODEL_DIR / name).stat().st_size for name in names]
    assert sum(sizes) <= 10 * 2**20


def test_every_name_object_and_place_is_one_known_token(model):
    tok = model.tokenizer
    for kind, words in word_lists().items():
        for word in words:
            ids = tok.encode(" " + word, add_special_tokens=False)
            assert len(ids) == 1 and ids[0] != tok.unk_token_id, (kind, word)


def test_every_template_word_is_known_to_the_tokenizer(model):
    tok = model.tokenizer
    texts = ioi_style_corpus(50, seed=0) + general_corpus(50, seed=0)
    texts.append(ioi_prompt(HELD_OUT_TEMPLATE, np.random.default_rng(0))[0])
    for text in texts:
        assert tok.unk_token_id not in tok.encode(text, add_special_tokens=False), text


def test_to_tokens_prepends_one_bos_and_str_tokens_keep_spaces(model):
    tokens = model.to_tokens("Then, Mary and John")
    assert tokens[0, 0] == model.tokenizer.bos_token_id
    assert (tokens == model.tokenizer.bos_token_id).sum() == 1
    assert model.to_str_tokens("Then, Mary and John") == [
        "<|bos|>",
        "Then",
        ",",
        " Mary",
        " and",
        " John",
    ]


def test_ioi_plugin_keeps_every_name_object_and_place(model):
    task = IOITask(tokenizer=model.tokenizer, prepend_bos=True)
    lists = word_lists()
    assert len(task.names) == len(set(lists["names"]))
    assert len(task.objects) == len(set(lists["objects"]))
    assert len(task.places) == len(set(lists["places"]))


def test_held_out_template_is_not_trained_on_and_spec_templates_are():
    assert HELD_OUT_TEMPLATE not in TRAIN_IOI_TEMPLATES
    assert set(TEMPLATES) <= set(TRAIN_IOI_TEMPLATES)


def test_shipped_model_does_ioi_on_the_test_split(model):
    task = IOITask(tokenizer=model.tokenizer, prepend_bos=True)
    prompts = task.prompts("test", 500, seed=123)
    scores = ioi_scores(end_logits(model, prompts), prompts)
    assert scores["accuracy"] >= 0.90
    assert scores["mean_ld"] >= 3.0
    # the metric agrees with the plugin's own LD
    assert task.metric(end_logits(model, prompts), prompts).mean().item() == pytest.approx(
        scores["mean_ld"], abs=1e-4
    )


def test_shipped_model_does_ioi_on_a_template_it_never_saw(model):
    task = IOITask(tokenizer=model.tokenizer, prepend_bos=True, templates=(HELD_OUT_TEMPLATE,))
    prompts = task.prompts("test", 500, seed=123)
    assert ioi_scores(end_logits(model, prompts), prompts)["accuracy"] >= 0.90


def test_retraining_with_the_same_seed_gives_bitwise_the_same_weights():
    runs = [train_tiny_ioi(TrainConfig(seed=3, steps=40), show_progress=False) for _ in range(2)]
    (model_a, _, _, losses_a), (model_b, _, _, losses_b) = runs
    assert losses_a.tolist() == losses_b.tolist()
    state_b = model_b.state_dict()
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, state_b[name]), name
    # it learns: 40 steps take the loss from ~ln|vocab| = 6.4 well down
    assert losses_a[0] > 6.0 and losses_a[-5:].mean() < 5.0
    # and the seed matters
    other = train_tiny_ioi(TrainConfig(seed=4, steps=40), show_progress=False)[0]
    assert not torch.equal(other.W_E, model_a.W_E)


def test_a_500_step_schedule_already_does_ioi_far_above_chance():
    model, _, _, losses = train_tiny_ioi(TrainConfig(steps=500, warmup_steps=50), False)
    task = IOITask(tokenizer=model.tokenizer, prepend_bos=True)
    prompts = task.prompts("test", 500, seed=0)
    scores = ioi_scores(end_logits(model, prompts), prompts)
    # chance is 1/|vocab| < 0.002; a model that only knew "a name comes next" gets ~1/264
    assert scores["accuracy"] > 0.1
    assert losses[-20:].mean() < 0.3 * losses[:20].mean()


def test_mean_ablating_the_middle_residual_at_end_removes_over_half_the_logit_diff(model):
    task = IOITask(tokenizer=model.tokenizer, prepend_bos=True)
    prompts = task.prompts("test", 300, seed=7)
    clean = ioi_scores(end_logits(model, prompts), prompts)["mean_ld"]
    middle = f"blocks.{model.cfg.n_layers // 2}.hook_resid_pre"
    assert mean_ablation_curve(model, prompts)[middle] < 0.5 * clean
