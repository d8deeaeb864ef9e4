"""The IOI plugin: templates, positions, splits and counterfactuals (metrics.md §2)."""

from __future__ import annotations

import torch

from saebench.model import gpt2_tokenizer
from saebench.task import available_tasks, load_task
from saebench_tasks.ioi import TEMPLATES, IOITask


def test_ioi_is_registered_through_entry_points():
    assert available_tasks()["ioi"] == "saebench_tasks.ioi:IOITask"
    task = load_task("ioi", tokenizer=gpt2_tokenizer())
    assert task.attributes == ("io", "s", "pos")


def test_gpt2_keeps_over_100_single_token_names_and_known_ids():
    task = IOITask(tokenizer=gpt2_tokenizer())
    assert len(task.names) >= 100
    assert task.name_ids[task.names.index("Mary")] == 5335


def test_positions_point_at_the_right_tokens(ioi_task):
    batch = ioi_task.prompts("test", 200, seed=3)
    rows = torch.arange(len(batch))
    toks = batch.tokens_BL
    assert torch.equal(toks[rows, batch.positions["IO"]], batch.answer_B)
    assert torch.equal(toks[rows, batch.positions["S1"]], batch.wrong_B)
    assert torch.equal(toks[rows, batch.positions["S2"]], batch.wrong_B)
    assert torch.equal(batch.positions["S1+1"], batch.positions["S1"] + 1)
    to_id = gpt2_tokenizer().encode(" to", add_special_tokens=False)[0]
    assert (toks[rows, batch.positions["END"]] == to_id).all()
    abb = batch.attributes["pos"] == 0
    assert (batch.positions["IO"][abb] < batch.positions["S1"][abb]).all()
    assert (batch.positions["IO"][~abb] > batch.positions["S1"][~abb]).all()
    # IO appears exactly once in the prompt, S exactly twice
    for p in range(len(batch)):
        row = toks[p, : batch.positions["END"][p] + 1]
        assert (row == batch.answer_B[p]).sum() == 1
        assert (row == batch.wrong_B[p]).sum() == 2


def test_token_building_matches_the_tokenizer_on_the_text():
    tok = gpt2_tokenizer()
    task = IOITask(tokenizer=tok)
    batch = task.prompts("train", 30, seed=0)
    for p in range(len(batch)):
        end = int(batch.positions["END"][p])
        assert batch.texts[p].split(" ")[0] == "Then,"
        assert (
            tok.encode(batch.texts[p], add_special_tokens=False)
            == batch.tokens_BL[p, 1 : end + 1].tolist()
        )


def test_train_and_test_vocabularies_are_disjoint_halves(ioi_task):
    halves = ioi_task.name_halves
    assert not set(halves["train"]) & set(halves["test"])
    assert abs(len(halves["train"]) - len(halves["test"])) <= 1
    train = ioi_task.prompts("train", 300, seed=0)
    test = ioi_task.prompts("test", 300, seed=0)
    train_names = set(train.attributes["io"].tolist()) | set(train.attributes["s"].tolist())
    test_names = set(test.attributes["io"].tolist()) | set(test.attributes["s"].tolist())
    assert train_names <= set(halves["train"]) and test_names <= set(halves["test"])
    assert len(set(test.attributes["template"].tolist())) == len(TEMPLATES)


def test_prompts_are_deterministic_in_the_seed(ioi_task):
    a, b = ioi_task.prompts("test", 50, seed=5), ioi_task.prompts("test", 50, seed=5)
    c = ioi_task.prompts("test", 50, seed=6)
    assert torch.equal(a.tokens_BL, b.tokens_BL)
    assert not torch.equal(a.tokens_BL, c.tokens_BL)


def test_counterfactuals_change_exactly_one_attribute(ioi_task):
    batch = ioi_task.prompts("test", 300, seed=1)
    for attr in ioi_task.attributes:
        cf = ioi_task.counterfactual(batch, attr, seed=2)
        assert torch.equal(cf.positions["END"], batch.positions["END"])
        for other in ("io", "s", "pos", "template"):
            same = torch.equal(cf.attributes[other], batch.attributes[other])
            assert same == (other != attr), (attr, other)
        changed = (cf.tokens_BL != batch.tokens_BL).sum(1)
        expected = {"io": 1, "s": 2, "pos": 2}[attr]
        assert (changed == expected).all(), attr
        if attr != "pos":  # new names are disjoint from the prompt's names, same half
            new = cf.attributes[attr]
            assert (new != batch.attributes["io"]).all() and (new != batch.attributes["s"]).all()
            assert set(new.tolist()) <= set(ioi_task.name_halves["test"])
    swapped = ioi_task.counterfactual(batch, "pos", seed=0)
    assert torch.equal(swapped.positions["IO"], batch.positions["S1"])
    assert torch.equal(swapped.answer_B, batch.answer_B)


def test_metric_is_logit_of_io_minus_logit_of_s(ioi_task):
    batch = ioi_task.prompts("test", 4, seed=0)
    logits_BV = torch.zeros(4, 50257)
    logits_BV[torch.arange(4), batch.answer_B] = 3.0
    logits_BV[torch.arange(4), batch.wrong_B] = 1.0
    assert torch.allclose(ioi_task.metric(logits_BV, batch), torch.full((4,), 2.0))
