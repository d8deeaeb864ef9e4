"""The plugin's own tests, as a plugin author writes them: the kit checks every contract the
scorer relies on, with the tokenizer of each model the task is meant for. Run with
``pytest examples/minimal-task-plugin/tests`` once the plugin is installed."""

import pytest
import torch
from saebench_example_task import ObjectRecallTask

from saebench.model import gpt2_tokenizer, load_model
from saebench.task import Task
from saebench.testing import check_task


@pytest.fixture(scope="module")
def tiny_ioi_tokenizer():
    """The closed word-level vocabulary of the embedded model (shipped with saebench)."""
    return load_model("tiny-ioi").tokenizer


def test_object_recall_keeps_the_task_contracts(tiny_ioi_tokenizer):
    task = ObjectRecallTask(tokenizer=tiny_ioi_tokenizer)
    assert isinstance(task, Task)
    checked = check_task(task, n=64, seed=0)
    # value_positions is declared, so the value-token checks ran too, and tiny-ioi's
    # tokenizer has an unknown token, so no prompt may hold it
    assert {"values", "single-token", "known-tokens", "splits"} <= set(checked)


def test_object_recall_keeps_the_contracts_without_bos_and_for_gpt2():
    check_task(ObjectRecallTask(tokenizer=gpt2_tokenizer(), prepend_bos=False), n=32, seed=1)


def test_the_prompts_read_as_intended(tiny_ioi_tokenizer):
    task = ObjectRecallTask(tokenizer=tiny_ioi_tokenizer)
    batch = task.prompts("test", n=3, seed=0)
    for text, name, obj in zip(
        batch.texts, batch.attributes["name"], batch.attributes["object"], strict=True
    ):
        name, obj = task.attribute_values("name")[name], task.attribute_values("object")[obj]
        assert text == f"Then, {name} found a {obj}. {name} gave the"
    # the answer is the object's token, the distractor the name's
    rows = torch.arange(len(batch))
    assert torch.equal(batch.answer_B, batch.tokens_BL[rows, batch.positions["OBJECT"]])
    assert torch.equal(batch.wrong_B, batch.tokens_BL[rows, batch.positions["NAME"]])


def test_a_tokenizer_without_the_words_is_refused():
    """tiny-gt's vocabulary has years, not names: each name would be its one <|unk|> token."""
    with pytest.raises(ValueError, match="not in this tokenizer's vocabulary"):
        ObjectRecallTask(tokenizer=load_model("tiny-gt").tokenizer)
