"""The Greater-Than plugin: prompts, years, metric, counterfactuals and scoring."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from saebench.cli import main
from saebench.evaluate import EvalSettings, evaluate
from saebench.model import gpt2_tokenizer, random_gpt2
from saebench.node import Node
from saebench.task import available_tasks, load_task
from saebench.testing import check_task
from saebench_tasks.greater_than import GreaterThanTask


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def task(tokenizer):
    return GreaterThanTask(tokenizer=tokenizer)


def _one_hot_logits(task, batch, digits: int | None, vocab: int = 50257) -> torch.Tensor:
    """Logits putting (numerically) all mass on the token of ``digits`` (None: on a token
    that is no year)."""
    logits = torch.full((len(batch), vocab), -1e4)
    tok = task.tokenizer.encode(f"{digits:02d}" if digits is not None else " the")[-1]
    logits[:, tok] = 0.0
    return logits


def test_greater_than_keeps_every_task_contract(task):
    checked = check_task(task, n=64, seed=0)
    assert checked[-1] == "splits" and "values" in checked and "single-token" in checked


def test_greater_than_is_registered_and_listed_by_the_cli(tokenizer):
    assert available_tasks()["greater-than"] == "saebench_tasks.greater_than:GreaterThanTask"
    loaded = load_task("greater-than", tokenizer=tokenizer)
    assert isinstance(loaded, GreaterThanTask) and loaded.version == "1"
    listing = CliRunner().invoke(main, ["tasks"]).output
    assert "greater-than" in listing and "ioi" in listing


def test_prompts_decode_to_the_template_and_match_the_tokenizer(task, tokenizer):
    batch = task.prompts("test", 40, seed=1)
    yys, nouns, cents = (task.attribute_values(a) for a in ("yy", "noun", "century"))
    for p in range(len(batch)):
        yy = yys[int(batch.attributes["yy"][p])]
        noun = nouns[int(batch.attributes["noun"][p])]
        xx = cents[int(batch.attributes["century"][p])]
        text = f"The {noun} lasted from the year {xx}{yy} to the year {xx}"
        assert batch.texts[p] == text
        assert tokenizer.decode(batch.tokens_BL[p, 1:].tolist()) == text
        assert tokenizer.encode(text, add_special_tokens=False) == batch.tokens_BL[p, 1:].tolist()
        row = batch.tokens_BL[p]
        assert tokenizer.decode([int(row[batch.positions["YY"][p]])]) == yy
        assert tokenizer.decode([int(row[batch.positions["NOUN"][p]])]) == " " + noun
        assert tokenizer.decode([int(row[batch.positions["END"][p]])]) == " " + xx
    assert (batch.positions["END"] == batch.tokens_BL.shape[1] - 1).all()
    assert (batch.tokens_BL[:, 0] == tokenizer.bos_token_id).all()


def test_years_are_restricted_as_in_the_paper(task, tokenizer):
    # GPT-2: every start year 02..98, centuries 11..17; 00, 01 and 99 never (first and last
    # valid year of each century dropped), and years GPT-2 does not write [XX][YY] never.
    assert task.attribute_values("yy") == [f"{y:02d}" for y in range(2, 99)]
    assert task.attribute_values("century") == [str(c) for c in range(11, 18)]
    used = {
        (int(c), int(y))
        for c in task.attribute_values("century")
        for y in task.attribute_values("yy")
        if task.valid_CY[task.centuries.index(int(c)), task.yys.index(int(y))]
    }
    assert (13, 5) not in used and (12, 80) not in used and (17, 32) in used
    for c, y in used:
        ids = tokenizer.encode(f" {c}{y:02d}", add_special_tokens=False)
        assert [tokenizer.decode([i]) for i in ids] == [f" {c}", f"{y:02d}"]
    batch = task.prompts("train", 500, seed=0)
    rows_valid = task.valid_CY[batch.attributes["century"], batch.attributes["yy"]]
    assert rows_valid.all()


def test_answer_is_the_next_year_and_wrong_the_start_year(task, tokenizer):
    batch = task.prompts("test", 50, seed=2)
    for p in range(len(batch)):
        yy = task.yys[int(batch.attributes["yy"][p])]
        assert tokenizer.decode([int(batch.answer_B[p])]) == f"{yy + 1:02d}"
        assert tokenizer.decode([int(batch.wrong_B[p])]) == f"{yy:02d}"


def test_metric_is_the_probability_difference_by_hand(task):
    batch = task.prompts("test", 30, seed=3)
    yy_B = torch.tensor([task.yys[i] for i in batch.attributes["yy"].tolist()])
    # all mass on "99": +1 (every YY < 99); on "00" or on YY itself: -1; on a non-year: 0
    assert torch.allclose(task.metric(_one_hot_logits(task, batch, 99), batch), torch.ones(30))
    assert torch.allclose(task.metric(_one_hot_logits(task, batch, 0), batch), -torch.ones(30))
    assert torch.allclose(task.metric(_one_hot_logits(task, batch, None), batch), torch.zeros(30))
    logits = torch.full((30, 50257), -1e4)
    logits[torch.arange(30), batch.wrong_B] = 0.0
    assert torch.allclose(task.metric(logits, batch), -torch.ones(30))
    # uniform over the 100 year tokens: (#{y > YY} - #{y <= YY}) / 100 = (98 - 2 YY) / 100
    logits = torch.full((30, 50257), -1e4)
    logits[:, task.digit_ids] = 0.0
    assert len(task.digit_ids) == 100
    expected = ((99 - yy_B) - (yy_B + 1)).float() / 100
    assert torch.allclose(task.metric(logits, batch), expected, atol=1e-6)
    # uniform over the whole vocabulary: the same count over V
    flat = task.metric(torch.zeros(30, 50257), batch)
    assert torch.allclose(flat, expected * 100 / 50257, atol=1e-7)
    # half the mass on YY + 1, half on YY: 0
    logits = torch.full((30, 50257), -1e4)
    logits[torch.arange(30), batch.answer_B] = 0.0
    logits[torch.arange(30), batch.wrong_B] = 0.0
    assert torch.allclose(task.metric(logits, batch), torch.zeros(30), atol=1e-6)


@pytest.mark.parametrize(
    ("attribute", "slots"),
    [("yy", ("YY",)), ("noun", ("NOUN",)), ("century", ("XX1", "END"))],
)
def test_counterfactual_changes_only_its_tokens(task, attribute, slots):
    batch = task.prompts("test", 64, seed=4)
    cf = task.counterfactual(batch, attribute, seed=9)
    changed_BL = cf.tokens_BL != batch.tokens_BL
    where = sorted({int(batch.positions[s][0]) for s in slots})
    assert changed_BL[:, where].all()
    others = [i for i in range(batch.tokens_BL.shape[1]) if i not in where]
    assert not changed_BL[:, others].any()
    for a in task.attributes:
        same = torch.equal(cf.attributes[a], batch.attributes[a])
        assert same == (a != attribute)
    assert task.valid_CY[cf.attributes["century"], cf.attributes["yy"]].all()
    if attribute == "yy":
        new_yy = torch.tensor(task.yys)[cf.attributes["yy"]]
        assert torch.equal(cf.answer_B, torch.tensor([task._digit_id[int(y) + 1] for y in new_yy]))
    else:
        assert torch.equal(cf.answer_B, batch.answer_B)


def test_train_and_test_never_share_a_noun(task):
    halves = task.noun_halves
    assert not set(halves["train"]) & set(halves["test"])
    assert abs(len(halves["train"]) - len(halves["test"])) <= 1
    train = set(task.prompts("train", 300, seed=0).attributes["noun"].tolist())
    test = set(task.prompts("test", 300, seed=0).attributes["noun"].tolist())
    assert train <= set(halves["train"]) and test <= set(halves["test"])


def test_greater_than_scores_end_to_end_on_a_random_gpt2():
    model = random_gpt2(seed=0, n_layers=2)
    task = GreaterThanTask(tokenizer=model.tokenizer)
    settings = EvalSettings(n_prompts=60, n_fit_prompts=300, ks=(1,), progress=False)
    node = Node("blocks.1.hook_resid_pre", "END")
    result = evaluate(model, task, node, "supervised:mean", settings)
    assert math.isfinite(result.metrics["sufficiency"])
    assert math.isfinite(result.metrics["clean_logit_diff"])
    assert 0.0 <= result.metrics["clean_accuracy"] <= 1.0
    assert {"edit_accuracy_yy_k1", "sup_edit_accuracy_century"} <= set(result.metrics)
