"""Indirect object identification (IOI), as in Wang et al. and Makelov et al. (metrics.md §2).

Prompts follow three templates; IO is the name that appears once, S the repeated name::

    Then, [A] and [B] had a long and really crazy argument. Afterwards, [C] said to

``pos`` is ``ABB`` (IO first) or ``BAB`` (IO second); [C] is always S. The metric is the
logit difference LD = logit(IO) − logit(S) at END.

Names, objects and places come from ``data/*.txt``, filtered to words that are a single
token (with a leading space) for the model's tokenizer, and split 1:1 into a ``train`` and a
``test`` half with a fixed seed, so an SAE trained on ``train`` prompts is evaluated on names
it never saw. Prompts are built token by token from the templates (every slot is one token),
so positions are exact; counterfactuals replace tokens, so they keep the length and ``END``.

>>> from saebench.model import gpt2_tokenizer
>>> task = IOITask(tokenizer=gpt2_tokenizer())
>>> batch = task.prompts("test", n=4, seed=0)
>>> batch.tokens_BL.shape[0], sorted(batch.positions)
(4, ['END', 'IO', 'S1', 'S1+1', 'S2'])
>>> len(task.attribute_values("io")) >= 200
True
"""

from __future__ import annotations

import re
from importlib.resources import files

import numpy as np
import torch
from torch import Tensor

from saebench.task import PromptSet, unknown_token_id

TEMPLATES: tuple[str, ...] = (
    "Then, [A] and [B] had a long and really crazy argument. Afterwards, [C] said to",
    "Then, [A] and [B] had lots of fun at the [PLACE]. Afterwards, [C] gave a [OBJECT] to",
    "Then, [A] and [B] were working at the [PLACE]. [C] decided to give a [OBJECT] to",
)
ORDER_TEMPLATES: tuple[str, ...] = (
    "Then, [A] and [B] had a long and really crazy argument. Afterwards, the [R] said to",
    "Then, [A] and [B] had lots of fun at the [PLACE]. Afterwards, the [R] gave a [OBJECT] to",
    "Then, [A] and [B] were working at the [PLACE]. The [R] decided to give a [OBJECT] to",
)
"""The templates of the order-dependent variant (``ioi-order``): S is named by its place in
the pair, [R] = "former" (S was [A]) or "latter" (S was [B])."""
SPLITS: tuple[str, ...] = ("train", "test")
ALL_SPLIT = "all"
"""The prompts split over both vocabulary halves (the paper protocol fits on it)."""
COUNTERFACTUAL_NAMES: tuple[str, ...] = ("same_half", "other_half")
"""Where a counterfactual's new name comes from: the prompt's own vocabulary half (default)
or the other half (the paper's code: counterfactual names disjoint from the evaluation
names)."""
POS_VALUES: tuple[str, ...] = ("ABB", "BAB")
ORDER_WORDS: tuple[str, ...] = ("latter", "former")
"""The word at S2 of ``ioi-order`` for ``pos`` = ABB (S second) and BAB (S first)."""
VOCAB_SPLIT_SEED = 0
_SLOT = re.compile(r" \[(A|B|C|R|PLACE|OBJECT)\]")


def read_word_list(name: str) -> list[str]:
    """A vocabulary list shipped with the plugin (``names``, ``objects``, ``places``)."""
    text = (files("saebench_tasks") / "data" / f"{name}.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def single_token_words(words: list[str], tokenizer) -> tuple[list[str], list[int]]:
    """The words that are one known token with a leading space (not the tokenizer's unknown
    token, which a word-level tokenizer gives every word it lacks), and those token ids."""
    unk = unknown_token_id(tokenizer)
    kept, ids = [], []
    for word in words:
        tok = tokenizer.encode(" " + word, add_special_tokens=False)
        if len(tok) == 1 and tok[0] != unk and word not in kept:
            kept.append(word)
            ids.append(tok[0])
    return kept, ids


def split_halves(n: int, seed: int = VOCAB_SPLIT_SEED) -> dict[str, np.ndarray]:
    """A fixed 1:1 split of ``range(n)`` into ``train`` and ``test`` index arrays."""
    order = np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(order[: n // 2]), "test": np.sort(order[n // 2 :])}


class IOITask:
    """The IOI task plugin (entry point ``ioi``). See the module docstring."""

    name = "ioi"
    version = "1"
    """Bumped whenever prompts, counterfactuals or the metric change: leaderboard rows carry
    it (``task_version``), so numbers from another version are never taken for these."""
    attributes: tuple[str, ...] = ("io", "s", "pos")
    position_labels: tuple[str, ...] = ("IO", "S1", "S1+1", "S2", "END")
    # declarations read by the plugin kit (saebench.testing.check_task)
    value_positions: dict[str, tuple[str, ...]] = {"io": ("IO",), "s": ("S1", "S2")}
    """Where each name attribute's value token sits."""
    counterfactual_moves: dict[str, tuple[str, ...]] = {"pos": ("IO", "S1", "S1+1")}
    """Positions a counterfactual may move: swapping the names' order swaps IO and S1."""
    disjoint_splits: tuple[str, ...] = ("io", "s")
    """Attributes whose values the train and test splits never share (the name halves)."""

    def __init__(
        self,
        tokenizer,
        prepend_bos: bool = True,
        templates: tuple[str, ...] = TEMPLATES,
        counterfactual_names: str = "same_half",
    ):
        if counterfactual_names not in COUNTERFACTUAL_NAMES:
            raise ValueError(
                f"counterfactual_names must be one of {COUNTERFACTUAL_NAMES}, "
                f"got {counterfactual_names!r}"
            )
        self.counterfactual_names = counterfactual_names
        if counterfactual_names == "other_half":
            # a test prompt's counterfactual takes train names: the halves are no longer disjoint
            self.disjoint_splits = ()
        self.tokenizer = tokenizer
        self.prepend_bos = prepend_bos
        self.names, self.name_ids = single_token_words(read_word_list("names"), tokenizer)
        self.objects, self.object_ids = single_token_words(read_word_list("objects"), tokenizer)
        self.places, self.place_ids = single_token_words(read_word_list("places"), tokenizer)
        if len(self.names) < 8 or not self.objects or not self.places:
            raise ValueError(
                f"the tokenizer keeps only {len(self.names)} names, {len(self.objects)} objects "
                f"and {len(self.places)} places as single known tokens; IOI needs at least 8 "
                f"names, one object and one place (is the model's vocabulary made for another "
                f"task? the embedded model for ioi is tiny-ioi)"
            )
        self.name_halves = split_halves(len(self.names))
        self.object_halves = split_halves(len(self.objects))
        self.place_halves = split_halves(len(self.places))
        self._name_split = np.empty(len(self.names), dtype=np.int64)
        for i, split in enumerate(SPLITS):
            self._name_split[self.name_halves[split]] = i
        self.templates = [self._parse_template(t) for t in templates]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _parse_template(self, template: str) -> list[int | str]:
        """Template -> a token sequence where slots are kept as their names (``"A"``, ...)."""
        pieces: list[int | str] = []
        if self.prepend_bos:
            pieces.append(self.tokenizer.bos_token_id)
        start = 0
        for match in _SLOT.finditer(template):
            literal = template[start : match.start()]
            pieces.extend(self.tokenizer.encode(literal, add_special_tokens=False))
            pieces.append(match.group(1))
            start = match.end()
        pieces.extend(self.tokenizer.encode(template[start:], add_special_tokens=False))
        return pieces

    def attribute_values(self, attribute: str) -> list[str]:
        if attribute in ("io", "s"):
            return list(self.names)
        if attribute == "pos":
            return list(POS_VALUES)
        raise KeyError(f"IOI has no attribute {attribute!r} (attributes: io, s, pos)")

    def prompts(self, split: str, n: int, seed: int) -> PromptSet:
        """``n`` prompts with names, places and objects from the ``split`` half (``"all"``:
        from both halves)."""
        if split not in (*SPLITS, ALL_SPLIT):
            raise ValueError(f"IOI split must be one of {(*SPLITS, ALL_SPLIT)}, got {split!r}")
        rng = np.random.default_rng([seed, (*SPLITS, ALL_SPLIT).index(split)])

        def pool(halves: dict[str, np.ndarray]) -> np.ndarray:
            if split == ALL_SPLIT:
                return np.sort(np.concatenate([halves[h] for h in SPLITS]))
            return halves[split]

        names = pool(self.name_halves)
        pair = np.stack([rng.choice(names, size=2, replace=False) for _ in range(n)])
        return self._build(
            template_N=rng.integers(len(self.templates), size=n),
            io_N=pair[:, 0],
            s_N=pair[:, 1],
            pos_N=rng.integers(2, size=n),
            place_N=rng.choice(pool(self.place_halves), size=n),
            object_N=rng.choice(pool(self.object_halves), size=n),
        )

    def _build(self, template_N, io_N, s_N, pos_N, place_N, object_N) -> PromptSet:
        n = len(template_N)
        rows, slots = [], {k: np.zeros(n, dtype=np.int64) for k in ("A", "B", "C")}
        s2_ids = self._s2_ids(torch.as_tensor(s_N), torch.as_tensor(pos_N)).tolist()
        for p in range(n):
            a, b = (io_N[p], s_N[p]) if pos_N[p] == 0 else (s_N[p], io_N[p])
            fill = {
                "A": self.name_ids[a],
                "B": self.name_ids[b],
                "C": s2_ids[p],
                "R": s2_ids[p],
                "PLACE": self.place_ids[place_N[p]],
                "OBJECT": self.object_ids[object_N[p]],
            }
            row = []
            for i, piece in enumerate(self.templates[template_N[p]]):
                if isinstance(piece, str):
                    if piece in ("A", "B", "C", "R"):
                        slots["C" if piece == "R" else piece][p] = i
                    row.append(fill[piece])
                else:
                    row.append(piece)
            rows.append(row)
        length = max(len(r) for r in rows)
        tokens_BL = torch.full((n, length), self.pad_id, dtype=torch.long)
        for p, row in enumerate(rows):
            tokens_BL[p, : len(row)] = torch.tensor(row)
        pos_t = torch.as_tensor(pos_N)
        a_t, b_t = torch.as_tensor(slots["A"]), torch.as_tensor(slots["B"])
        io_pos = torch.where(pos_t == 0, a_t, b_t)
        s1_pos = torch.where(pos_t == 0, b_t, a_t)
        return PromptSet(
            tokens_BL=tokens_BL,
            positions={
                "IO": io_pos,
                "S1": s1_pos,
                "S1+1": s1_pos + 1,
                "S2": torch.as_tensor(slots["C"]),
                "END": torch.tensor([len(r) - 1 for r in rows]),
            },
            attributes={
                "io": torch.as_tensor(io_N, dtype=torch.long),
                "s": torch.as_tensor(s_N, dtype=torch.long),
                "pos": pos_t.long(),
                "template": torch.as_tensor(template_N, dtype=torch.long),
            },
            answer_B=torch.tensor([self.name_ids[i] for i in io_N]),
            wrong_B=torch.tensor([self.name_ids[i] for i in s_N]),
            texts=[self.tokenizer.decode(r[1:] if self.prepend_bos else r) for r in rows],
        )

    def _fresh_names(self, prompts: PromptSet, rng: np.random.Generator) -> np.ndarray:
        """For each prompt, a name that is neither IO nor S, from the vocabulary half of its IO
        name (with ``counterfactual_names="other_half"``: from the other half)."""
        io_N, s_N = prompts.attributes["io"].numpy(), prompts.attributes["s"].numpy()
        out = np.empty(len(io_N), dtype=np.int64)
        flip = int(self.counterfactual_names == "other_half")
        for p in range(len(io_N)):
            pool = self.name_halves[SPLITS[self._name_split[io_N[p]] ^ flip]]
            pool = pool[(pool != io_N[p]) & (pool != s_N[p])]
            out[p] = rng.choice(pool)
        return out

    def counterfactual(self, prompts: PromptSet, attribute: str, seed: int) -> PromptSet:
        """``pos``: swap the two names' order; ``s``: a new S name in both places; ``io``: a
        new IO name. New names come from the prompt's own vocabulary half (the other half with
        ``counterfactual_names="other_half"``), disjoint from its names. Template, place and
        object are unchanged, so length and ``END`` are too."""
        rng = np.random.default_rng([seed, 1 + self.attributes.index(attribute)])
        cpu = prompts.to("cpu")
        io_N, s_N = cpu.attributes["io"].clone(), cpu.attributes["s"].clone()
        pos_N = cpu.attributes["pos"].clone()
        if attribute == "io":
            io_N = torch.as_tensor(self._fresh_names(cpu, rng))
        elif attribute == "s":
            s_N = torch.as_tensor(self._fresh_names(cpu, rng))
        elif attribute == "pos":
            pos_N = 1 - pos_N
        else:
            raise KeyError(f"IOI has no attribute {attribute!r} (attributes: io, s, pos)")
        name_ids = torch.tensor(self.name_ids)
        tokens_BL = cpu.tokens_BL.clone()
        rows = torch.arange(len(cpu))
        io_pos, s1_pos = cpu.positions["IO"], cpu.positions["S1"]
        if attribute == "pos":
            io_pos, s1_pos = s1_pos, io_pos
        tokens_BL[rows, io_pos] = name_ids[io_N]
        tokens_BL[rows, s1_pos] = name_ids[s_N]
        tokens_BL[rows, cpu.positions["S2"]] = self._s2_ids(s_N, pos_N)
        positions = dict(cpu.positions, IO=io_pos, S1=s1_pos)
        positions["S1+1"] = s1_pos + 1
        start = 1 if self.prepend_bos else 0
        ends = cpu.positions["END"]
        return PromptSet(
            tokens_BL=tokens_BL,
            positions=positions,
            attributes=dict(cpu.attributes, io=io_N, s=s_N, pos=pos_N),
            answer_B=name_ids[io_N],
            wrong_B=name_ids[s_N],
            texts=[
                self.tokenizer.decode(tokens_BL[p, start : int(ends[p]) + 1].tolist())
                for p in range(len(cpu))
            ],
        ).to(prompts.tokens_BL.device)

    def _s2_ids(self, s_N: Tensor, pos_N: Tensor) -> Tensor:
        """The token at S2 for each prompt: the S name."""
        return torch.tensor(self.name_ids)[s_N]

    def metric(self, logits_BV: Tensor, prompts: PromptSet) -> Tensor:
        """LD = logit(IO) − logit(S) at END, per prompt."""
        rows = torch.arange(logits_BV.shape[0], device=logits_BV.device)
        return logits_BV[rows, prompts.answer_B] - logits_BV[rows, prompts.wrong_B]


class IOIOrderTask(IOITask):
    """IOI where the last clause names S by its place in the pair (entry point ``ioi-order``)::

        Then, [A] and [B] had a long and really crazy argument. Afterwards, the former said to

    "the former" is S when S was [A] (``pos`` = BAB), "the latter" when S was [B] (ABB); the
    answer is still IO, the other name. S2 is the position of "former"/"latter". Only a model
    that tracks which name came first answers it, so here ``pos`` is what tells the model
    which name to inhibit. Counterfactuals as in IOI: ``pos`` swaps the names' order *and*
    "former"/"latter" (the same S and IO, in the other order), ``s`` replaces S at S1, ``io``
    replaces IO.
    """

    name = "ioi-order"
    version = "1"
    value_positions: dict[str, tuple[str, ...]] = {"io": ("IO",), "s": ("S1",)}

    def __init__(
        self, tokenizer, prepend_bos: bool = True, templates: tuple[str, ...] = ORDER_TEMPLATES
    ):
        words, ids = single_token_words(list(ORDER_WORDS), tokenizer)
        if words != list(ORDER_WORDS):
            raise ValueError(
                f"ioi-order needs {ORDER_WORDS} as single known tokens (with a leading space); "
                f"the tokenizer keeps only {words}"
            )
        self.order_ids = ids
        super().__init__(tokenizer, prepend_bos, templates)

    def _s2_ids(self, s_N: Tensor, pos_N: Tensor) -> Tensor:
        """The token at S2: "latter" for ``pos`` = ABB, "former" for BAB."""
        return torch.tensor(self.order_ids)[torch.as_tensor(pos_N)]
