"""The plugin kit: ``check_task`` passes on IOI and catches each broken contract."""

from __future__ import annotations

import pytest
import torch

from saebench.model import EMBEDDED_MODELS_DIR, gpt2_tokenizer
from saebench.testing import CONTRACTS, TaskContractError, check_task
from saebench.tiny_ioi.tokenizer import hf_tokenizer
from saebench_tasks.ioi import IOITask


@pytest.fixture(scope="module")
def gpt2_tok():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def tiny_tok():
    return hf_tokenizer(str(EMBEDDED_MODELS_DIR / "tiny-ioi" / "tokenizer.json"))


class UndeclaredIOI(IOITask):
    """IOI without the declarations a plugin adds beyond the protocol."""

    value_positions = None
    counterfactual_moves = None
    disjoint_splits = None


def test_ioi_keeps_every_contract_with_gpt2_tokenizer(gpt2_tok):
    # GPT-2 has no unknown token of its own (it is <|endoftext|>): nothing for known-tokens
    checked = check_task(IOITask(tokenizer=gpt2_tok), n=48, seed=0)
    assert checked == [c for c in CONTRACTS if c != "known-tokens"]


def test_ioi_keeps_every_contract_with_tiny_ioi_tokenizer(tiny_tok):
    assert check_task(IOITask(tokenizer=tiny_tok), n=48, seed=3) == list(CONTRACTS)


def test_without_declarations_a_counterfactual_that_moves_positions_is_caught(tiny_tok):
    """By default every position but the declared ones stays: IOI's ``pos`` swaps IO and S1."""
    with pytest.raises(TaskContractError, match=r"position 'IO' moves .*counterfactual_moves"):
        check_task(UndeclaredIOI(tokenizer=tiny_tok), n=16)


# --- one broken contract each ----------------------------------------------------------------


class PromptsWithAnUnknownWord(IOITask):
    """Its template's first word is one the tokenizer lacks (written as <|unk|>)."""

    def prompts(self, split, n, seed):
        prompts = super().prompts(split, n, seed)
        prompts.tokens_BL[:, 1] = self.tokenizer.unk_token_id
        return prompts


def test_a_word_the_tokenizer_lacks_is_caught_in_the_prompts(tiny_tok):
    with pytest.raises(TaskContractError, match=r"index 1 is the tokenizer's unknown token") as e:
        check_task(PromptsWithAnUnknownWord(tokenizer=tiny_tok), n=16)
    assert e.value.contract == "known-tokens"


class UnknownName(IOITask):
    """A name list with a name the tokenizer lacks, kept as if it were a token."""

    def __init__(self, tokenizer, prepend_bos=True):
        super().__init__(tokenizer, prepend_bos)
        self.names[0] = "Zebulon"


def test_a_value_that_is_the_unknown_token_is_not_a_single_token(tiny_tok):
    assert tiny_tok.encode(" Zebulon", add_special_tokens=False) == [tiny_tok.unk_token_id]
    with pytest.raises(TaskContractError, match=r"'Zebulon', is the tokenizer's unknown") as e:
        check_task(UnknownName(tokenizer=tiny_tok), n=16)
    assert e.value.contract == "single-token"


class CounterfactualChangesTwoAttributes(IOITask):
    def counterfactual(self, prompts, attribute, seed):
        cf = super().counterfactual(prompts, attribute, seed)
        return super().counterfactual(cf, "s", seed) if attribute == "io" else cf


class CounterfactualAddsAToken(IOITask):
    def counterfactual(self, prompts, attribute, seed):
        cf = super().counterfactual(prompts, attribute, seed)
        pad = torch.full((len(cf), 1), self.pad_id, dtype=torch.long)
        cf.tokens_BL = torch.cat([cf.tokens_BL, pad], dim=1)
        rows = torch.arange(len(cf))
        cf.tokens_BL[rows, cf.positions["END"] + 1] = cf.tokens_BL[rows, cf.positions["END"]]
        cf.positions["END"] = cf.positions["END"] + 1
        return cf


class CounterfactualMovesEnd(IOITask):
    def counterfactual(self, prompts, attribute, seed):
        cf = super().counterfactual(prompts, attribute, seed)
        cf.positions["END"] = cf.positions["END"] - 1
        return cf


class CounterfactualMovesAPosition(IOITask):
    def counterfactual(self, prompts, attribute, seed):
        cf = super().counterfactual(prompts, attribute, seed)
        if attribute == "s":
            cf.positions["S2"] = cf.positions["S2"] - 1
        return cf


class CounterfactualChangesOnlyLabels(IOITask):
    def counterfactual(self, prompts, attribute, seed):
        cf = super().counterfactual(prompts, attribute, seed)
        cf.tokens_BL = prompts.tokens_BL.clone()
        return cf


class CounterfactualEditsItsInput(IOITask):
    def counterfactual(self, prompts, attribute, seed):
        cf = super().counterfactual(prompts, attribute, seed)
        prompts.attributes[attribute].copy_(cf.attributes[attribute])
        return cf


class MultiTokenValue(IOITask):
    """A name kept with the first token of its tokenisation (no single-token filter)."""

    def __init__(self, tokenizer, **kwargs):
        super().__init__(tokenizer, **kwargs)
        self.names[0] = "Bartholomewsonfield"


class PositionOffByOne(IOITask):
    def prompts(self, split, n, seed):
        batch = super().prompts(split, n, seed)
        batch.positions["IO"] = batch.positions["IO"] + 1
        return batch


class EndBeforeTheLastToken(IOITask):
    def prompts(self, split, n, seed):
        batch = super().prompts(split, n, seed)
        batch.positions["END"] = batch.positions["END"] - 1
        return batch


class PositionOutOfRange(IOITask):
    def prompts(self, split, n, seed):
        batch = super().prompts(split, n, seed)
        batch.positions["S2"] = batch.positions["S2"] + batch.tokens_BL.shape[1]
        return batch


class SeedNotRespected(IOITask):
    calls = 0

    def prompts(self, split, n, seed):
        self.calls += 1
        return super().prompts(split, n, seed + self.calls)


class SeedIgnored(IOITask):
    def prompts(self, split, n, seed):
        return super().prompts(split, n, 0)


class MetricKeepsADimension(IOITask):
    def metric(self, logits_BV, prompts):
        return super().metric(logits_BV, prompts)[:, None]


class MetricAveragesTheBatch(IOITask):
    def metric(self, logits_BV, prompts):
        return super().metric(logits_BV, prompts).mean()


class MetricNaN(IOITask):
    def metric(self, logits_BV, prompts):
        return torch.log(super().metric(logits_BV, prompts))  # NaN where LD < 0


class MetricReversed(IOITask):
    def metric(self, logits_BV, prompts):
        return -super().metric(logits_BV, prompts)


class MetricCentredOnTheBatch(IOITask):
    def metric(self, logits_BV, prompts):
        ld = super().metric(logits_BV, prompts)
        return ld - ld.mean()


class TestSplitUsesTrainNames(IOITask):
    __test__ = False

    def __init__(self, tokenizer, **kwargs):
        super().__init__(tokenizer, **kwargs)
        self.name_halves["test"] = torch.arange(len(self.names)).numpy()


BROKEN = [
    (CounterfactualChangesTwoAttributes, "counterfactual", r"'io'.*also changes attribute 's'"),
    (CounterfactualAddsAToken, "counterfactual", r"token length must stay the same"),
    (CounterfactualMovesEnd, "counterfactual", r"prompt 0: END moves from \d+ to \d+"),
    (CounterfactualMovesAPosition, "counterfactual", r"'s'.*position 'S2' moves"),
    (CounterfactualChangesOnlyLabels, "counterfactual", r"changes no token"),
    (CounterfactualEditsItsInput, "counterfactual", r"modified the prompts it was given"),
    (MultiTokenValue, "single-token", r"'Bartholomewsonfield', is \d+ tokens"),
    (PositionOffByOne, "values", r"prompt 0: the token at IO .* not the value"),
    (EndBeforeTheLastToken, "padding", r"longest prompt ends at END"),
    (PositionOutOfRange, "structure", r"prompt 0: position 'S2' is \d+, outside"),
    (SeedNotRespected, "determinism", r"differs between two calls"),
    (SeedIgnored, "determinism", r"seed=1 give identical prompts"),
    (MetricKeepsADimension, "metric", r"shape \(16, 1\), not \[B\]"),
    (MetricAveragesTheBatch, "metric", r"shape \(\), not \[B\]"),
    (MetricNaN, "metric", r"prompt \d+: the metric is nan, not finite"),
    (MetricReversed, "metric", r"prompt 0: .*must be larger for the answer"),
    (MetricCentredOnTheBatch, "metric", r"sub-batch .* does not give the same"),
    (TestSplitUsesTrainNames, "splits", r"'io' is declared disjoint.*occurs in both"),
]


@pytest.mark.parametrize(
    ("broken", "contract", "message"), BROKEN, ids=[cls.__name__ for cls, _, _ in BROKEN]
)
def test_each_broken_contract_is_caught_with_a_message_naming_it(
    gpt2_tok, broken, contract, message
):
    with pytest.raises(TaskContractError, match=message) as caught:
        check_task(broken(tokenizer=gpt2_tok), n=16, seed=0)
    assert caught.value.contract == contract
    assert str(caught.value).startswith(f"[{contract}]")
