"""Training text for tiny-ioi: IOI-style prompts and a general, non-IOI sentence distribution.

Templates use the slots ``[A]``, ``[B]``, ``[C]`` (names), ``[PLACE]``, ``[PLACE2]``,
``[OBJECT]`` and ``[OBJECT2]``. A slot repeated in a template takes one value; different
slots of a kind take different values.

- IOI-style templates (``[A]``, ``[B]`` the two names, ``[C]`` the repeated one, S): the three
  SPEC templates (imported from the IOI plugin) plus ``EXTRA_IOI_TEMPLATES``; the training text
  is the prompt followed by the IO name and a full stop. ``HELD_OUT_TEMPLATE`` is never
  trained on; it measures whether the model learned the rule rather than the templates.
- General templates (``GENERAL_TEMPLATES``): sentences about people, places and objects
  that are not IOI (``[A]``, ``[B]``, ``[C]`` distinct names, no answer to predict), the
  analogue of OpenWebText for full-distribution SAEs.

Names, objects and places are the IOI plugin's word lists (all of them: the model is the
subject, not the SAE, so it sees both vocabulary halves).

>>> general_corpus(1, seed=0)
['Afterwards, Sandra and Josh played a game with a snack.']
>>> ioi_style_corpus(1, seed=0)
['Then, Tina and Gina had a long argument. Afterwards, Gina said to Tina.']
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

from saebench_tasks.ioi import TEMPLATES as SPEC_TEMPLATES
from saebench_tasks.ioi import read_word_list

EXTRA_IOI_TEMPLATES: tuple[str, ...] = (
    "Then, [A] and [B] went to the [PLACE]. [C] gave a [OBJECT] to",
    "When [A] and [B] got a [OBJECT] at the [PLACE], [C] decided to give it to",
    "After the lunch, [A] and [B] went to the [PLACE]. [C] gave a [OBJECT] to",
    "Then, [A] and [B] were thinking about going to the [PLACE]. [C] wanted to give a [OBJECT] to",
    "While [A] and [B] were commuting to the [PLACE], [C] gave a [OBJECT] to",
    "Friends [A] and [B] found a [OBJECT] at the [PLACE]. [C] gave it to",
    "Then, [A] and [B] had a long argument. Afterwards, [C] said to",
    "The [PLACE] [A] and [B] went to had a [OBJECT]. [C] gave it to",
    "Afterwards, [A] and [B] went to the [PLACE]. [C] handed a [OBJECT] to",
    "Then, [A] and [B] had a lot of fun at the [PLACE]. [C] threw a [OBJECT] to",
    "In the morning, [A] and [B] met at the [PLACE]. Later, [C] sent a [OBJECT] to",
    "Then, [A] and [B] talked for a long time. Afterwards, [C] wrote a letter to",
    "At the [PLACE], [A] and [B] found a [OBJECT]. Then, [C] gave the [OBJECT] to",
    "Yesterday, [A] and [B] were at the [PLACE] together, and [C] brought a [OBJECT] to",
    "Then, [A] met [B] at the [PLACE]. [C] gave a [OBJECT] to",
)
"""IOI-style templates beyond SPEC's three, all trained on."""

HELD_OUT_TEMPLATE = (
    "Later, [A] and [B] went for a walk in the [PLACE]. Then, [C] showed a [OBJECT] to"
)
"""The IOI-style template kept out of training (its words occur in general sentences)."""

TRAIN_IOI_TEMPLATES: tuple[str, ...] = tuple(SPEC_TEMPLATES) + EXTRA_IOI_TEMPLATES

GENERAL_TEMPLATES: tuple[str, ...] = (
    "Yesterday, [A] went to the [PLACE] and bought a [OBJECT].",
    "In the morning, [A] found a [OBJECT] at the [PLACE].",
    "Later, [A] and [B] went for a walk in the [PLACE].",
    "The [OBJECT] was at the [PLACE], so [A] went there.",
    "Then, [A] gave a [OBJECT] to [B].",
    "At the [PLACE], [A] saw [B] with a [OBJECT].",
    "Later, [A] said that the [PLACE] was closed.",
    "Then, [A] and [B] talked about the [OBJECT] for a long time.",
    "Then, [A] went to the [PLACE]. Afterwards, [A] bought a [OBJECT].",
    "Then, [A], [B] and [C] went to the [PLACE] together.",
    "The [OBJECT] and the [OBJECT2] were in the [PLACE].",
    "Today, [A] likes the [PLACE], but [B] likes the [PLACE2].",
    "After the [PLACE], [A] was happy and went home.",
    "Then, [A] and [B] were cooking at the [PLACE].",
    "When [A] came back from the [PLACE], [A] had a [OBJECT].",
    "Then, [A] showed the [OBJECT] to everyone at the [PLACE].",
    "In the evening, [A] walked from the [PLACE] to the [PLACE2] with a [OBJECT].",
    "Afterwards, [A] and [B] played a game with a [OBJECT].",
)
"""Non-IOI sentence families with names, places and objects."""

_SLOT = re.compile(r"\[(A|B|C|PLACE2?|OBJECT2?)\]")


@cache
def word_lists() -> dict[str, tuple[str, ...]]:
    """The IOI plugin's ``names``, ``objects`` and ``places`` (all of them)."""
    return {k: tuple(read_word_list(k)) for k in ("names", "objects", "places")}


def _fill(template: str, values: dict[str, str]) -> str:
    return _SLOT.sub(lambda m: values[m.group(1)], template)


def _draw(rng: np.random.Generator, words: tuple[str, ...], k: int) -> list[str]:
    return [words[i] for i in rng.choice(len(words), size=k, replace=False)]


def _random_values(rng: np.random.Generator) -> dict[str, str]:
    lists = word_lists()
    a, b, c = _draw(rng, lists["names"], 3)
    place, place2 = _draw(rng, lists["places"], 2)
    obj, obj2 = _draw(rng, lists["objects"], 2)
    return {"A": a, "B": b, "C": c, "PLACE": place, "PLACE2": place2, "OBJECT": obj,
            "OBJECT2": obj2}  # fmt: skip


def ioi_prompt(template: str, rng: np.random.Generator) -> tuple[str, str, str]:
    """One IOI prompt from ``template``: (prompt text ending at END, IO name, S name).

    IO and S are distinct names; ``pos`` (ABB or BAB) is a fair coin; ``[C]`` is S.
    """
    values = _random_values(rng)
    io, s = values["A"], values["B"]
    if rng.integers(2):
        values["A"], values["B"] = s, io
    values["C"] = s
    return _fill(template, values), io, s


def ioi_style_corpus(
    n: int, seed: int, templates: tuple[str, ...] = TRAIN_IOI_TEMPLATES
) -> list[str]:
    """``n`` IOI-style sentences, each a prompt completed by its IO name: ``... to Mary.``

    Templates are drawn uniformly from ``templates``.
    """
    rng = np.random.default_rng([seed, 1])
    out = []
    for t in rng.integers(len(templates), size=n):
        prompt, io, _ = ioi_prompt(templates[t], rng)
        out.append(f"{prompt} {io}.")
    return out


def general_corpus(n: int, seed: int) -> list[str]:
    """``n`` non-IOI sentences from ``GENERAL_TEMPLATES`` (drawn uniformly)."""
    rng = np.random.default_rng([seed, 2])
    return [
        _fill(GENERAL_TEMPLATES[t], _random_values(rng))
        for t in rng.integers(len(GENERAL_TEMPLATES), size=n)
    ]


def training_mixture(n: int, seed: int, ioi_fraction: float = 0.8) -> list[str]:
    """``n`` training texts: each IOI-style with probability ``ioi_fraction``, else general."""
    rng = np.random.default_rng([seed, 3])
    is_ioi_N = rng.random(n) < ioi_fraction
    n_ioi = int(is_ioi_N.sum())
    ioi = iter(ioi_style_corpus(n_ioi, seed))
    general = iter(general_corpus(n - n_ioi, seed))
    return [next(ioi) if flag else next(general) for flag in is_ioi_N]


def vocabulary_texts() -> list[str]:
    """Texts covering every word the tokenizer needs: all templates (held-out included)
    and every name, object and place with a leading space."""
    lists = word_lists()
    words = [" " + w for k in ("names", "objects", "places") for w in lists[k]]
    templates = TRAIN_IOI_TEMPLATES + (HELD_OUT_TEMPLATE,) + GENERAL_TEMPLATES
    return [_SLOT.sub("", t) for t in templates] + words
