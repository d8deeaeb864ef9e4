"""Object recall: the smallest task that keeps every saebench task contract.

One template, every slot one token, so all prompts have the same length and positions are exact::

    Then, [NAME] found a [OBJECT]. [NAME] gave the

The answer at ``END`` (the last token, `` the``) is the object; the distractor is the name.
Attributes: ``name`` (a name split 1:1 into train and test halves) and ``object`` (shared by
both splits). Positions: ``NAME`` (its first mention), ``OBJECT`` and ``END``. Metric: the
logit difference logit(object) − logit(name) at END. All words are in the vocabulary of the
embedded ``tiny-ioi`` model and single tokens for GPT-2.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from saebench.task import PromptSet, unknown_token_id

NAMES = "Mary John Alice Bob Tom Anna Sarah David Kate Paul Emma Mark Lisa James Lucy Ryan".split()
OBJECTS = "ball book apple key ring coin cake hat phone pen cup toy".split()
SPLITS = ("train", "test")
# The template as (kind, text): "text" pieces are literal, the others are one-token slots
# (NAME2 is the name's second mention, filled like NAME but not a labelled position).
TEMPLATE = (
    ("text", "Then,"),
    ("NAME", ""),
    ("text", " found a"),
    ("OBJECT", ""),
    ("text", "."),
    ("NAME2", ""),
    ("text", " gave the"),
)


class ObjectRecallTask:
    """Entry point ``object-recall``; built by saebench as ``ObjectRecallTask(tokenizer=...,
    prepend_bos=...)`` with the tokenizer of the model it scores."""

    name = "object-recall"
    version = "1"  # bump when prompts, counterfactuals or the metric change
    attributes: tuple[str, ...] = ("name", "object")
    position_labels: tuple[str, ...] = ("NAME", "OBJECT", "END")
    # Optional declarations, checked by saebench.testing.check_task:
    value_positions: dict[str, tuple[str, ...]] = {"name": ("NAME",), "object": ("OBJECT",)}
    disjoint_splits: tuple[str, ...] = ("name",)  # train and test never share a name

    def __init__(self, tokenizer, prepend_bos: bool = True):
        """``tokenizer``: the model's Hugging Face tokenizer; ``prepend_bos``: whether the
        model's prompts start with BOS."""
        self.tokenizer = tokenizer
        self.pad_id: int = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.name_ids = [self._one_token(" " + w) for w in NAMES]
        self.object_ids = [self._one_token(" " + w) for w in OBJECTS]
        # Names with an even index are train names, odd ones test names.
        self.name_pool = {s: np.arange(i, len(NAMES), 2) for i, s in enumerate(SPLITS)}
        # The fixed tokens of the template, and the index of each slot in them.
        self.row: list[int] = [tokenizer.bos_token_id] if prepend_bos else []
        self.slot: dict[str, int] = {}
        for kind, text in TEMPLATE:
            if kind == "text":
                self.row += tokenizer.encode(text, add_special_tokens=False)
            else:
                self.slot[kind] = len(self.row)
                self.row.append(self.pad_id)  # filled per prompt

    def _one_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens for this tokenizer, not one")
        # a word-level tokenizer writes a word it lacks as its one unknown token
        if ids[0] == unknown_token_id(self.tokenizer):
            raise ValueError(f"{text!r} is not in this tokenizer's vocabulary")
        return ids[0]

    def attribute_values(self, attribute: str) -> list[str]:
        return {"name": list(NAMES), "object": list(OBJECTS)}[attribute]

    def prompts(self, split: str, n: int, seed: int) -> PromptSet:
        """``n`` prompts with names of the ``split`` half; deterministic in ``seed``."""
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        names = rng.choice(self.name_pool[split], size=n)
        objects = rng.integers(len(OBJECTS), size=n)
        return self._build(torch.as_tensor(names), torch.as_tensor(objects))

    def counterfactual(self, prompts: PromptSet, attribute: str, seed: int) -> PromptSet:
        """Another name (from the prompt's own half) or another object; the template, so the
        length, END and every position, stay."""
        rng = np.random.default_rng([seed, 1 + self.attributes.index(attribute)])
        names = prompts.attributes["name"].cpu().clone()
        objects = prompts.attributes["object"].cpu().clone()
        if attribute == "name":  # a name of the same parity (split), never the same one
            shift = 2 * rng.integers(1, len(NAMES) // 2, size=len(names))
            names = (names + torch.as_tensor(shift)) % len(NAMES)
        else:
            objects = objects + torch.as_tensor(rng.integers(1, len(OBJECTS), size=len(names)))
            objects = objects % len(OBJECTS)
        return self._build(names, objects).to(prompts.tokens_BL.device)

    def _build(self, names: Tensor, objects: Tensor) -> PromptSet:
        n = len(names)
        name_tok = torch.tensor(self.name_ids)[names]
        object_tok = torch.tensor(self.object_ids)[objects]
        # One template, so one length: no padding. Prompts of different lengths are right-padded
        # with pad_id, each with its own END (its last token).
        tokens_BL = torch.tensor(self.row).repeat(n, 1)
        tokens_BL[:, self.slot["NAME"]] = name_tok
        tokens_BL[:, self.slot["NAME2"]] = name_tok
        tokens_BL[:, self.slot["OBJECT"]] = object_tok
        index = {"NAME": self.slot["NAME"], "OBJECT": self.slot["OBJECT"], "END": len(self.row) - 1}
        return PromptSet(
            tokens_BL=tokens_BL,
            positions={label: torch.full((n,), i) for label, i in index.items()},
            attributes={"name": names.long(), "object": objects.long()},
            answer_B=object_tok,
            wrong_B=name_tok,
            texts=[
                self.tokenizer.decode(row, skip_special_tokens=True) for row in tokens_BL.tolist()
            ],
        )

    def metric(self, logits_BV: Tensor, prompts: PromptSet) -> Tensor:
        """logit(object) − logit(name) at END, per prompt."""
        rows = torch.arange(logits_BV.shape[0], device=logits_BV.device)
        return logits_BV[rows, prompts.answer_B] - logits_BV[rows, prompts.wrong_B]
