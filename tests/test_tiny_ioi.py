"""The embedded tiny-ioi model: tokenizer, shipped weights, IOI in general, retraining."""

from __future__ import annotations

import json

import pytest
import torch

from saebench.model import EMBEDDED_MODELS_DIR, load_model
from saebench.tiny_ioi.evaluate import (
    counting_adversarial_stories,
    end_logits,
    held_out_shape_stories,
    ioi_scores,
    preamble_stories,
    story_prompts,
)
from saebench.tiny_ioi.stories import word_lists
from saebench.tiny_ioi.train import (
    TrainConfig,
    attention_prior_loss,
    mention_targets,
    name_index,
    parse_heads,
    train_tiny_ioi,
)
from saebench_tasks.ioi import IOIOrderTask, IOITask

MODEL_DIR = EMBEDDED_MODELS_DIR / "tiny-ioi"
ACCEPTANCE = {  # issue 17: each set's accuracy on 1000 fresh prompts
    "test": 0.95,
    "held_out_shapes": 0.90,
    "preamble": 0.90,
    "counting_adversarial": 0.90,
    "order": 0.90,
}


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


def test_training_json_meets_the_acceptance_bar():
    metrics = json.loads((MODEL_DIR / "training.json").read_text())["metrics"]
    assert metrics["n_prompts"] == 1000
    for name, bar in ACCEPTANCE.items():
        assert metrics[name]["accuracy"] >= bar, (name, metrics[name])
        assert metrics[name]["mean_ld"] > 0, name


def _prompts(model, name: str, n: int, seed: int):
    tok = model.tokenizer
    if name == "test":
        return IOITask(tokenizer=tok, prepend_bos=True).prompts("test", n, seed)
    if name == "order":
        return IOIOrderTask(tokenizer=tok, prepend_bos=True).prompts("test", n, seed)
    make = {
        "held_out_shapes": held_out_shape_stories,
        "preamble": preamble_stories,
        "counting_adversarial": counting_adversarial_stories,
    }[name]
    return story_prompts(tok, make(n, seed))


@pytest.mark.parametrize("name", list(ACCEPTANCE))
def test_shipped_model_does_ioi_on_prompts_training_json_did_not_measure(model, name):
    """Other draws (seed 123, not ``measure``'s seed 1) of every acceptance set."""
    prompts = _prompts(model, name, 500, seed=123)
    scores = ioi_scores(end_logits(model, prompts), prompts)
    assert scores["accuracy"] >= ACCEPTANCE[name], scores
    if name == "test":  # the metric agrees with the plugin's own LD
        task = IOITask(tokenizer=model.tokenizer, prepend_bos=True)
        assert task.metric(end_logits(model, prompts), prompts).mean().item() == pytest.approx(
            scores["mean_ld"], abs=1e-4
        )


def test_retraining_with_the_same_seed_gives_bitwise_the_same_weights():
    cfg = dict(
        steps=40, warmup_steps=5, n_layers=1, d_model=32, n_heads=2, plain_steps=10,
        attention_prior_heads="0.1",
    )  # fmt: skip
    runs = [train_tiny_ioi(TrainConfig(seed=3, **cfg), show_progress=False) for _ in range(2)]
    (model_a, _, _, losses_a), (model_b, _, _, losses_b) = runs
    assert losses_a.tolist() == losses_b.tolist()
    state_b = model_b.state_dict()
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, state_b[name]), name
    # it learns: 40 steps take the loss from ~ln|vocab| well down
    assert losses_a[0] > 6.0 and losses_a[-5:].mean() < 0.75 * losses_a[0]
    # and the seed matters
    other = train_tiny_ioi(TrainConfig(seed=4, **cfg), show_progress=False)[0]
    assert not torch.equal(other.W_E, model_a.W_E)


def test_the_attention_prior_targets_every_mention_of_io_and_s(model):
    """At END ("to"), uniform over IO and both mentions of S; preamble names and the third
    person are not targets; the loss is log(3) for attention that is uniform over them."""
    tok = model.tokenizer
    text = "Mary and John went to the park. Tom was there too. Then, John gave a ball to Mary."
    ids = tok.encode(text, add_special_tokens=False)
    tokens_BL = torch.tensor([[tok.bos_token_id, *ids, tok.eos_token_id, tok.pad_token_id]])
    words = ["<bos>", *tok.convert_ids_to_tokens(ids)]
    end_R, target_RL = mention_targets(
        tokens_BL, torch.tensor([0]), tok.pad_token_id, name_index(tok)
    )
    assert words[end_R[0]] == "Ġto"
    targets = {words[k]: round(float(target_RL[0, k]), 4) for k in target_RL[0].nonzero().flatten()}
    assert targets == {"Mary": 0.3333, "ĠJohn": 0.3333}  # two " John" tokens, one "Mary"
    assert target_RL[0].nonzero().flatten().tolist() == [
        i for i, w in enumerate(words[: end_R[0] + 1]) if w in ("Mary", "ĠJohn")
    ]
    uniform = target_RL[:, None, None, :].expand(1, 2, tokens_BL.shape[1], -1)
    loss = attention_prior_loss({0: uniform}, [(0, 1)], torch.tensor([0]), end_R, target_RL)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), abs=1e-4)
    # a row with no other name: the target is IO's mentions alone, never the other tokens
    ids = tok.encode(
        "Mary went to the park. Then, the man gave a ball to Mary.", add_special_tokens=False
    )
    lone_BL = torch.tensor([[tok.bos_token_id, *ids, tok.eos_token_id]])
    end_R, lone_RL = mention_targets(lone_BL, torch.tensor([0]), tok.pad_token_id, name_index(tok))
    assert lone_RL[0].nonzero().flatten().tolist() == [1]  # "Mary", after <|bos|>
    assert parse_heads("1.0, 2.3", 3, 4) == [(1, 0), (2, 3)]
    for bad in ("3.0", "1.4", "x"):
        with pytest.raises(ValueError):
            parse_heads(bad, 3, 4)


def test_the_shipped_config_is_the_recipe_default():
    """``saebench model train tiny-ioi`` (``TrainConfig()``) is what trained the shipped
    weights: same sizes, positions and schedule."""
    from dataclasses import asdict

    record = json.loads((MODEL_DIR / "training.json").read_text())
    assert record["train_config"] == asdict(TrainConfig())
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["positional_embedding_type"] == "rotary"
    assert config["n_layers"] == TrainConfig.n_layers and config["d_model"] == TrainConfig.d_model
