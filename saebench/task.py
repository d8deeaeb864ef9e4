"""The task plugin interface and the registry that finds plugins through entry points.

A task is a distribution of prompts with discrete attributes, named positions, a scalar
metric per prompt and counterfactuals that change exactly one attribute. The core only ever
talks to this interface; it never names a task. Plugins register under the entry-point group
``saebench.tasks`` (see ``pyproject.toml``) with a class or factory called as
``factory(tokenizer=..., prepend_bos=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

ENTRY_POINT_GROUP = "saebench.tasks"


@dataclass
class PromptSet:
    """A batch of tokenised prompts with their labels.

    Every tensor has the prompt axis first (B). Prompts are right-padded to a common length L,
    so causal attention makes padding invisible at every labelled position.
    """

    tokens_BL: Tensor
    """Token ids, right-padded, BOS included when the model prepends one."""
    positions: dict[str, Tensor]
    """Position label (``END``, ``IO``, ...) -> index into L for each prompt, shape [B]."""
    attributes: dict[str, Tensor]
    """Attribute name -> index of its value in ``Task.attribute_values(name)``, shape [B]."""
    answer_B: Tensor
    """Token id of the correct next token at ``END``."""
    wrong_B: Tensor
    """Token id of the distractor whose logit the metric subtracts (IOI: the S name)."""
    texts: list[str] = field(default_factory=list)
    """The prompts as text, for reports and debugging."""

    def __len__(self) -> int:
        return self.tokens_BL.shape[0]

    def select(self, index: Tensor | slice) -> PromptSet:
        """The sub-batch at ``index`` (a slice or a LongTensor of prompt indices)."""
        texts = self.texts
        if texts:
            idx = range(len(texts))[index] if isinstance(index, slice) else index.tolist()
            texts = [self.texts[i] for i in idx]
        return PromptSet(
            tokens_BL=self.tokens_BL[index],
            positions={k: v[index] for k, v in self.positions.items()},
            attributes={k: v[index] for k, v in self.attributes.items()},
            answer_B=self.answer_B[index],
            wrong_B=self.wrong_B[index],
            texts=texts,
        )

    def to(self, device: torch.device | str) -> PromptSet:
        return PromptSet(
            tokens_BL=self.tokens_BL.to(device),
            positions={k: v.to(device) for k, v in self.positions.items()},
            attributes={k: v.to(device) for k, v in self.attributes.items()},
            answer_B=self.answer_B.to(device),
            wrong_B=self.wrong_B.to(device),
            texts=self.texts,
        )


@runtime_checkable
class Task(Protocol):
    """What a task plugin provides. ``saebench_tasks.ioi.IOITask`` is the reference.

    Optional declarations, class attributes the scorer ignores and the plugin kit
    (:func:`saebench.testing.check_task`) checks when present; not protocol members, so a task
    without them is still a ``Task``:

    - ``value_positions: dict[str, tuple[str, ...]]``: attribute -> the position labels whose
      token is the attribute's value (IOI: ``{"io": ("IO",), "s": ("S1", "S2")}``);
    - ``counterfactual_moves: dict[str, tuple[str, ...]]``: attribute -> the position labels
      its counterfactual may move (IOI: ``{"pos": ("IO", "S1", "S1+1")}``); every other
      position, and always ``END``, stays where it is;
    - ``disjoint_splits: tuple[str, ...]``: attributes whose values never occur in both splits;
    - ``pad_id: int``: the token prompts are right-padded with.
    """

    name: str
    attributes: tuple[str, ...]
    """Attribute names, e.g. ``("io", "s", "pos")``; each has a counterfactual."""
    position_labels: tuple[str, ...]
    """Position labels the task marks in every prompt; must include ``END``."""

    def attribute_values(self, attribute: str) -> list[str]:
        """All values ``attribute`` can take, in the order its labels index."""
        ...

    def prompts(self, split: str, n: int, seed: int) -> PromptSet:
        """``n`` prompts of ``split`` (``train`` or ``test``), deterministic in ``seed``."""
        ...

    def counterfactual(self, prompts: PromptSet, attribute: str, seed: int) -> PromptSet:
        """The same prompts with ``attribute`` changed to another value, all else equal.

        The counterfactual has the same length and the same ``END`` index as the original.
        """
        ...

    def metric(self, logits_BV: Tensor, prompts: PromptSet) -> Tensor:
        """Scalar task metric per prompt from the next-token logits at ``END``, shape [B]."""
        ...


def available_tasks() -> dict[str, str]:
    """Installed task plugins: name -> ``module:object`` of their entry point."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def task_factory(name: str):
    """The class (or factory) registered as ``name``, not yet instantiated: its class
    attributes (``attributes``, ``position_labels``) can be checked before a model is loaded."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise KeyError(f"no task plugin named {name!r} is installed (installed: {known})")
    return found[name].load()


def load_task(name: str, tokenizer, prepend_bos: bool = True, **options) -> Task:
    """Instantiate the plugin registered as ``name`` for a model's tokenizer."""
    factory = task_factory(name)
    return factory(tokenizer=tokenizer, prepend_bos=prepend_bos, **options)


def unknown_token_id(tokenizer) -> int | None:
    """The id a tokenizer gives words it lacks, or None when it has none of its own: no unknown
    token, or one that is also its BOS, EOS or padding token (GPT-2's ``<|endoftext|>``:
    byte-level BPE writes every word)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    specials = {getattr(tokenizer, f"{k}_token_id", None) for k in ("bos", "eos", "pad")}
    return None if unk is None or unk in specials else int(unk)


def check_readable(prompts: PromptSet, tokenizer, task_name: str = "") -> None:
    """Raise ``ValueError`` when ``prompts`` hold the tokenizer's unknown token.

    A word-level tokenizer (the embedded models') writes every word it lacks as ``<|unk|>``,
    which is still one token, so a task whose words a model does not know would otherwise be
    scored on prompts of ``<|unk|>``: numbers about nothing. Tokenizers whose unknown token is
    also their BOS, EOS or padding token (GPT-2's ``<|endoftext|>``) have no unknown words and
    are not checked.
    """
    unk = unknown_token_id(tokenizer)
    if unk is None:
        return
    hit_B = (prompts.tokens_BL == unk).any(1)
    if not hit_B.any():
        return
    first = int(hit_B.nonzero()[0, 0])
    text = prompts.texts[first] if prompts.texts else prompts.tokens_BL[first].tolist()
    name = f"task {task_name!r}" if task_name else "the task"
    raise ValueError(
        f"{int(hit_B.sum())} of {len(hit_B)} prompts of {name} contain the tokenizer's unknown "
        f"token {tokenizer.unk_token!r} (e.g. {text!r}): the model's vocabulary lacks words of "
        f"the task, so it cannot read its prompts; score this task on a model that knows them "
        f"(tiny-ioi does ioi, tiny-gt does greater-than) or pick the model's task"
    )
