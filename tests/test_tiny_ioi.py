"""The embedded tiny-ioi model: tokenizer, shipped weights, IOI performance, retraining."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from saebench.model import EMBEDDED_MODELS_DIR, load_model
from saebench.tiny_ioi.corpus import (
    ADVERSARIAL_INTERLUDES,
    D_INTERLUDES,
    HELD_OUT_TEMPLATE,
    INTERLUDES,
    TRAIN_IOI_TEMPLATES,
    general_corpus,
    ioi_prompt,
    ioi_style_corpus,
    word_lists,
)
from saebench.tiny_ioi.evaluate import counting_adversarial_prompts, end_logits, ioi_scores
from saebench.tiny_ioi.train import TrainConfig, train_tiny_ioi
from saebench_tasks.ioi import TEMPLATES, IOITask

MODEL_DIR = EMBEDDED_MODELS_DIR / "tiny-ioi"
NAMES = set(word_lists()["names"])


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
    texts += counting_adversarial_prompts(model.tokenizer, 50, seed=0).texts
    for text in texts:
        # the one known gap (see INTERLUDES): " Everyone" opening an interlude
        if " Everyone " in text:
            continue
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
    assert scores["mean_ld"] >= 2.0
    # the metric agrees with the plugin's own LD
    assert task.metric(end_logits(model, prompts), prompts).mean().item() == pytest.approx(
        scores["mean_ld"], abs=1e-4
    )


def test_shipped_model_does_ioi_on_a_template_it_never_saw(model):
    task = IOITask(tokenizer=model.tokenizer, prepend_bos=True, templates=(HELD_OUT_TEMPLATE,))
    prompts = task.prompts("test", 500, seed=123)
    assert ioi_scores(end_logits(model, prompts), prompts)["accuracy"] >= 0.90


def test_counting_adversarial_set_mentions_io_most_and_is_never_trained_on():
    assert set(ADVERSARIAL_INTERLUDES).isdisjoint(INTERLUDES + D_INTERLUDES)
    prompts = counting_adversarial_prompts(load_model("tiny-ioi").tokenizer, 100, seed=0)
    for tokens_L, io_id, s_id in zip(
        prompts.tokens_BL, prompts.answer_B, prompts.wrong_B, strict=True
    ):
        assert (tokens_L == io_id).sum() >= 3 and (tokens_L == s_id).sum() == 2
    training = " ".join(ioi_style_corpus(2000, seed=0))
    for sentence in ADVERSARIAL_INTERLUDES:  # slots filled by any one word
        pattern = re.sub(r"\\\[[A-Z]+\\\]", r"\\w+", re.escape(sentence))
        assert re.search(pattern, training) is None, sentence


def test_in_training_text_mention_counts_do_not_give_the_answer_away():
    """Without interludes the IO is the name mentioned least; the training text's interludes
    make "least mentioned" and "most mentioned before the last clause" near coin flips."""
    least = most_before_last = 0.0
    texts = ioi_style_corpus(4000, seed=1)
    for text in texts:
        prompt, answer = text[: text.rindex(" ")], text[text.rindex(" ") + 1 : -1]
        names = [w.strip(".,") for w in prompt.split() if w.strip(".,") in NAMES]
        pair = [n for n in dict.fromkeys(names)][:2]
        s = next(n for n in pair if n != answer)
        diff = names.count(s) - names.count(answer)
        least += 1.0 if diff > 0 else 0.5 if diff == 0 else 0.0
        diff_before = names[:-1].count(answer) - names[:-1].count(s)
        most_before_last += 1.0 if diff_before > 0 else 0.5 if diff_before == 0 else 0.0
    assert 0.5 <= least / len(texts) <= 0.7
    assert 0.5 <= most_before_last / len(texts) <= 0.7


def test_shipped_model_follows_the_rule_when_counting_gives_the_wrong_answer(model):
    prompts = counting_adversarial_prompts(model.tokenizer, 500, seed=123)
    scores = ioi_scores(end_logits(model, prompts), prompts)
    assert scores["accuracy"] >= 0.80
    assert scores["mean_ld"] > 0


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


def test_mean_ablating_the_last_clause_subject_removes_over_half_the_logit_diff(model):
    """The answer depends on S2, the subject of the last clause: with the middle layer's
    residual stream at S2 replaced by its mean, the mean LD falls below half its clean value."""
    task = IOITask(tokenizer=model.tokenizer, prepend_bos=True)
    prompts = task.prompts("test", 300, seed=7)
    clean = ioi_scores(end_logits(model, prompts), prompts)["mean_ld"]
    middle = f"blocks.{model.cfg.n_layers // 2}.hook_resid_pre"
    rows, s2_B = torch.arange(len(prompts)), prompts.positions["S2"]
    with torch.no_grad():
        _, cache = model.run_with_cache(prompts.tokens_BL, names_filter=middle)
    mean_D = cache[middle][rows, s2_B].mean(0)

    def ablate(resid_BLD, hook):
        resid_BLD = resid_BLD.clone()
        resid_BLD[rows, s2_B] = mean_D
        return resid_BLD

    ablated = ioi_scores(end_logits(model, prompts, [(middle, ablate)]), prompts)["mean_ld"]
    assert ablated < 0.5 * clean
