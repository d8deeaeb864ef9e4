"""Greater-Than, as in Hanna, Liu & Variengien, *How does GPT-2 compute greater-than?*
(arXiv 2305.00586, NeurIPS 2023).

One template; the model should continue the end year with two digits greater than YY::

    The [NOUN] lasted from the year [XX][YY] to the year [XX]

``[XX]`` is the century token (`` 17``), written twice, ``[YY]`` the start year's last two
digits as one token (``32``); every slot is one token, so every prompt has the same length and
the positions are exact. Attributes: ``yy`` (``"02"`` ... ``"98"``), ``noun`` (the event) and
``century`` (``"11"`` ... ``"17"``). Positions: ``NOUN``, ``XX1`` (the first century token),
``YY`` and ``END`` (the second century token, where the end year's digits are predicted).

Which years, as in the paper (its code, ``get_valid_years``, and its released dataset):

- a year ``XXYY`` is used only where `` XXYY`` is tokenised as [`` XX``, ``YY``], the two
  digits one token; years written otherwise (for GPT-2 e.g. 1302–1309, 1440, 1280, 1190–1199)
  are left out, per century;
- in each century the first and the last such year are dropped (for GPT-2 ``01`` and ``99``
  in most centuries, ``01`` and ``89`` for 11XX; ``XX00`` is never two such tokens): the
  paper's baseline prompts end their start year in ``01``, and after ``99`` no two-digit year
  is greater;
- centuries 11–17, the range of the paper's released dataset;
- YY is drawn uniformly, then the century uniformly among those where that year is valid, as
  the paper's balanced sampler does; a ``yy`` value must be valid in at least two centuries
  (so that the ``century`` counterfactual exists), which for GPT-2 keeps all of 02–98.

The metric is the paper's probability difference at END: with p = softmax of the END logits
over the whole vocabulary and t_y the token of the two digits y (``00`` ... ``99``, the ones
that are single tokens)::

    PD = Σ_{y > YY} p(t_y) − Σ_{y ≤ YY} p(t_y)

in [−1, 1]; 1 when all mass is on years after the start year.

``answer_B`` and ``wrong_B``: the scorer reads ``answer_B`` only for ``clean_accuracy`` (the
END argmax equals it) and the plugin kit checks that logits favouring ``answer_B`` score
above logits favouring ``wrong_B``. No single token is "the" answer, so ``answer_B`` is the
token of YY + 1, the smallest correct end year (the paper's dataset completes ``1651`` with
``1652``), and ``wrong_B`` the token of YY itself, the largest wrong one (the end year equal
to the start). ``clean_accuracy`` is therefore strict: the fraction of prompts whose top token
is exactly YY + 1, not any year greater than YY.

Nouns come from ``data/nouns.txt`` (our own list of things that last), kept where a noun is one
token with a leading space, and split 1:1 into ``train`` and ``test`` halves with a fixed seed,
like IOI's names; ``yy`` and ``century`` take every value in both splits.

Counterfactuals replace tokens, so length and every position stay: ``yy`` puts another valid
YY for the prompt's century at YY; ``noun`` another noun of the prompt's half at NOUN;
``century`` another century in which YY is valid at both XX1 and END.

>>> from saebench.model import gpt2_tokenizer
>>> task = GreaterThanTask(tokenizer=gpt2_tokenizer())
>>> for text in task.prompts("test", n=2, seed=0).texts:
...     print(text)
The depression lasted from the year 1752 to the year 17
The tour lasted from the year 1488 to the year 14
>>> yy = task.attribute_values("yy")
>>> yy[0], yy[-1], len(yy)
('02', '98', 97)
>>> task.attribute_values("century")
['11', '12', '13', '14', '15', '16', '17']
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from saebench.task import PromptSet
from saebench_tasks.ioi import read_word_list, single_token_words, split_halves

SPLITS: tuple[str, ...] = ("train", "test")
CENTURIES: tuple[int, ...] = tuple(range(11, 18))
"""Candidate centuries (XX), the paper's 11–17; kept where `` XX`` is one token."""
PREFIX = "The"
"""Text before the noun; the noun follows with a leading space."""
MIDDLE = " lasted from the year"
"""Text between the noun and the start year."""
AFTER = " to the year"
"""Text between the start year and the end century (END)."""


def year_tokens(tokenizer, century: int, yy: int) -> list[int]:
    """The tokens of `` XXYY`` (with a leading space)."""
    return tokenizer.encode(f" {century}{yy:02d}", add_special_tokens=False)


class GreaterThanTask:
    """The Greater-Than task plugin (entry point ``greater-than``). See the module docstring."""

    name = "greater-than"
    version = "1"
    """Bumped whenever prompts, counterfactuals or the metric change (leaderboard
    ``task_version``)."""
    attributes: tuple[str, ...] = ("yy", "noun", "century")
    position_labels: tuple[str, ...] = ("NOUN", "XX1", "YY", "END")
    # declarations read by the plugin kit (saebench.testing.check_task)
    value_positions: dict[str, tuple[str, ...]] = {
        "yy": ("YY",),
        "noun": ("NOUN",),
        "century": ("XX1", "END"),
    }
    """Where each attribute's value token sits."""
    counterfactual_moves: dict[str, tuple[str, ...]] = {}
    """No counterfactual moves a position: every slot is one token."""
    disjoint_splits: tuple[str, ...] = ("noun",)
    """The noun halves: train and test prompts never share a noun."""

    def __init__(self, tokenizer, prepend_bos: bool = True):
        self.tokenizer = tokenizer
        self.prepend_bos = prepend_bos
        self.nouns, self.noun_ids = single_token_words(read_word_list("nouns"), tokenizer)
        if len(self.nouns) < 4:
            raise ValueError(
                f"the tokenizer keeps only {len(self.nouns)} nouns as single known tokens; "
                f"Greater-Than needs at least 4 (is the model's vocabulary made for another "
                f"task? the embedded model for greater-than is tiny-gt)"
            )
        self.noun_halves = split_halves(len(self.nouns))
        self._noun_split = np.empty(len(self.nouns), dtype=np.int64)
        for i, split in enumerate(SPLITS):
            self._noun_split[self.noun_halves[split]] = i

        # two-digit tokens "00".."99" that are single tokens: the metric's year tokens
        digits = []
        for y in range(100):
            ids = tokenizer.encode(f"{y:02d}", add_special_tokens=False)
            if len(ids) == 1:
                digits.append((y, ids[0]))
        self.digit_values = torch.tensor([y for y, _ in digits])
        self.digit_ids = torch.tensor([t for _, t in digits])
        self._digit_id = dict(digits)

        # valid (century, yy): `` XXYY`` -> [`` XX``, ``YY``]; drop each century's first and last
        valid: dict[int, set[int]] = {}
        century_ids: dict[int, int] = {}
        for c in CENTURIES:
            head = tokenizer.encode(f" {c}", add_special_tokens=False)
            if len(head) != 1:
                continue
            ok = [
                y
                for y in range(100)
                if y in self._digit_id
                and year_tokens(tokenizer, c, y) == [head[0], self._digit_id[y]]
            ]
            if len(ok) > 2:
                valid[c] = set(ok[1:-1])
                century_ids[c] = head[0]
        yys = sorted({y for ys in valid.values() for y in ys})
        # two centuries (for the century counterfactual) and a token for YY + 1 (answer_B)
        yys = [
            y for y in yys if sum(y in ys for ys in valid.values()) >= 2 and y + 1 in self._digit_id
        ]
        if len(valid) < 2 or len(yys) < 2:
            raise ValueError(
                f"the tokenizer writes too few years as [century][two digits]: "
                f"{len(valid)} centuries, {len(yys)} start years valid in two of them"
            )
        self.centuries = sorted(valid)
        self.century_ids = [century_ids[c] for c in self.centuries]
        self.yys = yys
        self.yy_ids = [self._digit_id[y] for y in yys]
        self.valid_CY = torch.tensor([[y in valid[c] for y in yys] for c in self.centuries])
        """valid_CY[c, y]: the start year (century c, yy y), as label indices, is used."""

        bos = [tokenizer.bos_token_id] if prepend_bos else []
        enc = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
        self._prefix = bos + enc(PREFIX)
        self._middle = enc(MIDDLE)
        self._after = enc(AFTER)
        noun = len(self._prefix)
        xx1 = noun + 1 + len(self._middle)
        self._slots = {"NOUN": noun, "XX1": xx1, "YY": xx1 + 1, "END": xx1 + 2 + len(self._after)}
        self.length = self._slots["END"] + 1
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def attribute_values(self, attribute: str) -> list[str]:
        if attribute == "yy":
            return [f"{y:02d}" for y in self.yys]
        if attribute == "noun":
            return list(self.nouns)
        if attribute == "century":
            return [str(c) for c in self.centuries]
        raise KeyError(
            f"Greater-Than has no attribute {attribute!r} (attributes: yy, noun, century)"
        )

    def prompts(self, split: str, n: int, seed: int) -> PromptSet:
        """``n`` prompts with nouns from the ``split`` half; YY uniform, then the century
        uniform among those where that start year is valid."""
        if split not in SPLITS:
            raise ValueError(f"Greater-Than split must be one of {SPLITS}, got {split!r}")
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        yy_N = rng.integers(len(self.yys), size=n)
        valid = self.valid_CY.numpy()
        century_N = np.array(
            [rng.choice(np.flatnonzero(valid[:, y])) for y in yy_N], dtype=np.int64
        )
        noun_N = rng.choice(self.noun_halves[split], size=n)
        return self._build(
            torch.as_tensor(yy_N, dtype=torch.long),
            torch.as_tensor(noun_N, dtype=torch.long),
            torch.as_tensor(century_N, dtype=torch.long),
        )

    def _build(self, yy_N: Tensor, noun_N: Tensor, century_N: Tensor) -> PromptSet:
        n = len(yy_N)
        noun_ids, yy_ids = torch.tensor(self.noun_ids), torch.tensor(self.yy_ids)
        century_ids = torch.tensor(self.century_ids)
        tokens_BL = torch.tensor(
            self._prefix + [0] + self._middle + [0, 0] + self._after + [0], dtype=torch.long
        ).repeat(n, 1)
        s = self._slots
        tokens_BL[:, s["NOUN"]] = noun_ids[noun_N]
        tokens_BL[:, s["XX1"]] = century_ids[century_N]
        tokens_BL[:, s["YY"]] = yy_ids[yy_N]
        tokens_BL[:, s["END"]] = century_ids[century_N]
        yy_value = torch.tensor(self.yys)[yy_N]
        start = 1 if self.prepend_bos else 0
        return PromptSet(
            tokens_BL=tokens_BL,
            positions={k: torch.full((n,), v, dtype=torch.long) for k, v in s.items()},
            attributes={"yy": yy_N, "noun": noun_N, "century": century_N},
            answer_B=torch.tensor([self._digit_id[int(y) + 1] for y in yy_value], dtype=torch.long),
            wrong_B=yy_ids[yy_N],
            texts=[self.tokenizer.decode(row[start:].tolist()) for row in tokens_BL],
        )

    def counterfactual(self, prompts: PromptSet, attribute: str, seed: int) -> PromptSet:
        """``yy``: another start year valid in the prompt's century; ``noun``: another noun of
        the prompt's half; ``century``: another century in which the start year is valid (both
        century tokens change). Everything else, length and positions included, stays."""
        if attribute not in self.attributes:
            raise KeyError(
                f"Greater-Than has no attribute {attribute!r} (attributes: yy, noun, century)"
            )
        rng = np.random.default_rng([seed, 1 + self.attributes.index(attribute)])
        cpu = prompts.to("cpu")
        labels = {a: cpu.attributes[a].clone() for a in self.attributes}
        yy_N, noun_N, century_N = (x.numpy() for x in labels.values())
        valid = self.valid_CY.numpy()
        new = np.empty(len(cpu), dtype=np.int64)
        for p in range(len(cpu)):
            if attribute == "yy":
                pool = np.flatnonzero(valid[century_N[p]])
                pool = pool[pool != yy_N[p]]
            elif attribute == "century":
                pool = np.flatnonzero(valid[:, yy_N[p]])
                pool = pool[pool != century_N[p]]
            else:
                pool = self.noun_halves[SPLITS[self._noun_split[noun_N[p]]]]
                pool = pool[pool != noun_N[p]]
            new[p] = rng.choice(pool)
        labels[attribute] = torch.as_tensor(new, dtype=torch.long)
        out = self._build(labels["yy"], labels["noun"], labels["century"])
        return out.to(prompts.tokens_BL.device)

    def metric(self, logits_BV: Tensor, prompts: PromptSet) -> Tensor:
        """PD = Σ_{y > YY} p(y) − Σ_{y ≤ YY} p(y) at END, p the softmax over the vocabulary."""
        device = logits_BV.device
        probs_BY = torch.softmax(logits_BV.float(), dim=-1)[:, self.digit_ids.to(device)]
        yy_B = torch.tensor(self.yys, device=device)[prompts.attributes["yy"].to(device)]
        greater_BY = self.digit_values.to(device)[None, :] > yy_B[:, None]
        sign_BY = greater_BY.float() * 2 - 1
        return (probs_BY * sign_BY).sum(-1)
