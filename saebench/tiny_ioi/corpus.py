"""Training text for tiny-ioi: IOI-style prompts and a general, non-IOI sentence distribution.

Templates use the slots ``[A]``, ``[B]``, ``[C]`` (names), ``[PLACE]``, ``[PLACE2]``,
``[OBJECT]`` and ``[OBJECT2]``. A slot repeated in a template takes one value; different
slots of a kind take different values.

- IOI-style templates (``[A]``, ``[B]`` the two names, ``[C]`` the repeated one, S): the IOI
  plugin's three templates (imported from it) plus ``EXTRA_IOI_TEMPLATES``; the training text
  is the prompt followed by the IO name and a full stop. ``HELD_OUT_TEMPLATE`` is never
  trained on; it measures whether the model learned the rule rather than the templates.
- Interludes (``INTERLUDES``): sentences inserted before the last clause of an IOI-style
  prompt (after its last full stop before ``[C]``) that mention IO, S or a third name D.
  Their numbers (``EXTRA_MENTIONS``) make how often a name is mentioned uninformative, so
  "the name mentioned once" (counting) is no longer the answer: the model has to find the
  subject of the last clause and the *other* name of the ``[A] and [B]`` pair.
  ``ADVERSARIAL_INTERLUDES`` are never inserted in training; they build the
  counting-adversarial evaluation set.
- General templates (``GENERAL_TEMPLATES``): sentences about people, places and objects
  that are not IOI (``[A]``, ``[B]``, ``[C]`` distinct names, no answer to predict), the
  analogue of OpenWebText for full-distribution SAEs.

Names, objects and places are the IOI plugin's word lists (all of them: the model is the
subject, not the SAE, so it sees both vocabulary halves).

>>> general_corpus(1, seed=0)
['Afterwards, Sandra and Josh played a game with a snack.']
>>> text, io, s = ioi_prompt(TEMPLATES[0], np.random.default_rng(0), mentions=("IO",))
>>> text.split(". ")  # doctest: +NORMALIZE_WHITESPACE
['Then, Max and Dawn had a long and really crazy argument', 'Later, Dawn saw the station',
 'Afterwards, Max said to']
>>> io, s
('Dawn', 'Max')
"""

from __future__ import annotations

import re

import numpy as np

from saebench.tiny_ioi.stories import word_lists
from saebench_tasks.ioi import TEMPLATES

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
    "Then, [A] and [B] went to the [PLACE]. [C] passed a [OBJECT] to",
    "Then, [A] and [B] were at the [PLACE]. Afterwards, [C] offered a [OBJECT] to",
    "Then, [A] and [B] had a long argument. Later, [C] sold a [OBJECT] to",
    "Then, [A] and [B] had lots of fun at the [PLACE]. [C] lent a [OBJECT] to",
    "Then, [A] and [B] talked at the [PLACE]. Afterwards, [C] tossed a [OBJECT] to",
    "Then, [A] and [B] went to the [PLACE]. Later, [C] read a story to",
    "Then, [A] and [B] were working at the [PLACE]. [C] mailed a [OBJECT] to",
    "Then, [A] and [B] had a long argument. Afterwards, [C] waved to",
)
"""IOI-style templates beyond the plugin's three, all trained on."""

HELD_OUT_TEMPLATE = (
    "Later, [A] and [B] went for a walk in the [PLACE]. Then, [C] showed a [OBJECT] to"
)
"""The IOI-style template kept out of training (its words occur in general sentences)."""

TRAIN_IOI_TEMPLATES: tuple[str, ...] = tuple(TEMPLATES) + EXTRA_IOI_TEMPLATES

INTERLUDES: tuple[str, ...] = (
    "[X] was happy.",
    "[X] liked the [PLACE].",
    "[X] had a [OBJECT].",
    "Later, [X] saw the [PLACE].",
    "[X] wanted a [OBJECT].",
    "Everyone at the [PLACE] liked [X].",
    "[X] was tired.",
)
"""Sentences inserted before an IOI prompt's last clause in training, each mentioning one
name ``[X]`` (IO or S) once. Known quirk of the shipped tokenizer: ``vocabulary_texts`` lists
these without a leading space, so the sentence-initial " Everyone" is ``<|unk|>`` (the model
was trained so; changing the list would change every token id)."""

D_INTERLUDES: tuple[str, ...] = (
    "[D] was there too.",
    "Then, [D] went to the [PLACE].",
)
"""Interludes that mention only the third name D."""

ADVERSARIAL_INTERLUDES: tuple[str, ...] = (
    "Then, [X] found a [OBJECT] at the [PLACE].",
    "Later, [X] said that the [PLACE] was closed.",
    "Then, [X] went to the [PLACE] and bought a [OBJECT].",
    "Afterwards, [X] was happy and went home.",
)
"""Interludes never used in training; with ``[X]`` = IO, two of them make IO the most
mentioned name (general-sentence words, every one known to the tokenizer in this place, in
sentences no training text puts before an IOI prompt's last clause)."""

EXTRA_MENTIONS: dict[str, tuple[int, ...]] = {"IO": (0, 1, 2, 3), "S": (0, 1, 2), "D": (0,)}
"""Interludes per role in a training IOI prompt, each count drawn uniformly. Then
Δ = m_S − m_IO is symmetric around −½ (−3…2 with weights 1,2,3,3,2,1), so neither "the name
mentioned least" (count(S) − count(IO) = 1 + Δ) nor "the name mentioned most before the last
clause" (Δ) is right more than 62.5% of the time (ties counted as half)."""

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

_SLOT = re.compile(r"\[(A|B|C|D|X|PLACE2?|OBJECT2?)\]")


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


def insert_interludes(template: str, interludes: list[str]) -> str:
    """``template`` with ``interludes`` placed after its last full stop before ``[C]``
    (unchanged when there is no such full stop)."""
    cut = template.rfind(". ", 0, template.index("[C]"))
    if cut < 0 or not interludes:
        return template
    return template[: cut + 1] + "".join(" " + i for i in interludes) + template[cut + 1 :]


def refer_by_position(template: str, s_first: bool) -> str:
    """``template`` with S's last mention ``[C]`` replaced by "the former" (S was ``[A]``)
    or "the latter" (S was ``[B]``), capitalised at the start of a sentence."""
    word = "the former" if s_first else "the latter"
    before = template[: template.index("[C]")].rstrip()
    if not before or before.endswith("."):
        word = word.capitalize()
    return template.replace("[C]", word, 1)


def ioi_prompt(
    template: str,
    rng: np.random.Generator,
    mentions: tuple[str, ...] = (),
    interludes: tuple[str, ...] = INTERLUDES,
    by_position: bool = False,
) -> tuple[str, str, str]:
    """One IOI prompt from ``template``: (prompt text ending at END, IO name, S name).

    IO and S are distinct names; ``pos`` (ABB or BAB) is a fair coin; ``[C]`` is S (or, with
    ``by_position``, "the former" / "the latter"). Each role in ``mentions`` (``"IO"``,
    ``"S"`` or ``"D"``, a third name) adds one interlude before the last clause, drawn from
    ``interludes`` without replacement with ``[X]`` that name (``D_INTERLUDES`` for ``"D"``).
    """
    values = _random_values(rng)
    io, s, d = values["A"], values["B"], values["C"]
    s_first = bool(rng.integers(2))
    if s_first:
        values["A"], values["B"] = s, io
    values.update(C=s, D=d)
    names = {"IO": io, "S": s, "D": d}
    order = {
        "D": iter(rng.permutation(len(D_INTERLUDES))),
        "X": iter(rng.permutation(len(interludes))),
    }
    chosen = []
    for role in mentions:
        pool, kind = (D_INTERLUDES, "D") if role == "D" else (interludes, "X")
        chosen.append(pool[next(order[kind])].replace("[X]", names[role]))
    template = insert_interludes(template, chosen)
    if by_position:
        template = refer_by_position(template, s_first)
    return _fill(template, values), io, s


def random_mentions(rng: np.random.Generator) -> tuple[str, ...]:
    """Roles of a training prompt's interludes, counts from ``EXTRA_MENTIONS``, shuffled."""
    roles = [r for r, counts in EXTRA_MENTIONS.items() for _ in range(rng.choice(counts))]
    return tuple(roles[i] for i in rng.permutation(len(roles)))


def ioi_style_corpus(
    n: int,
    seed: int,
    templates: tuple[str, ...] = TRAIN_IOI_TEMPLATES,
    reference_fraction: float = 0.0,
    interludes: bool = True,
) -> list[str]:
    """``n`` IOI-style sentences, each a prompt completed by its IO name: ``... to Mary.``

    Templates are drawn uniformly from ``templates``; interludes by :func:`random_mentions`
    (none with ``interludes=False``).
    A ``reference_fraction`` of them (without interludes) name S in the last clause by its
    place in the pair ("the former", "the latter") instead of by name, which only a model
    that tracks where S first stood can answer.
    """
    rng = np.random.default_rng([seed, 1])
    out = []
    for t in rng.integers(len(templates), size=n):
        mentions = random_mentions(rng) if interludes else ()
        by_position = bool(reference_fraction) and rng.random() < reference_fraction
        if by_position:  # no interlude: "the former" must refer to the [A] and [B] pair
            mentions = ()
        prompt, io, _ = ioi_prompt(templates[t], rng, mentions, by_position=by_position)
        out.append(f"{prompt} {io}.")
    return out


def general_corpus(n: int, seed: int) -> list[str]:
    """``n`` non-IOI sentences from ``GENERAL_TEMPLATES`` (drawn uniformly)."""
    rng = np.random.default_rng([seed, 2])
    return [
        _fill(GENERAL_TEMPLATES[t], _random_values(rng))
        for t in rng.integers(len(GENERAL_TEMPLATES), size=n)
    ]


def training_mixture(
    n: int,
    seed: int,
    ioi_fraction: float = 0.8,
    reference_fraction: float = 0.0,
    interludes: bool = True,
) -> tuple[list[str], np.ndarray]:
    """``n`` training texts: each IOI-style with probability ``ioi_fraction``, else general
    (``reference_fraction``, ``interludes``: see :func:`ioi_style_corpus`); and which ones
    are IOI-style."""
    rng = np.random.default_rng([seed, 3])
    is_ioi_N = rng.random(n) < ioi_fraction
    n_ioi = int(is_ioi_N.sum())
    ioi = iter(
        ioi_style_corpus(n_ioi, seed, reference_fraction=reference_fraction, interludes=interludes)
    )
    general = iter(general_corpus(n - n_ioi, seed))
    return [next(ioi) if flag else next(general) for flag in is_ioi_N], is_ioi_N


def vocabulary_texts() -> list[str]:
    """Texts covering every word the tokenizer needs: all templates (held-out included)
    and every name, object and place with a leading space."""
    lists = word_lists()
    words = [" " + w for k in ("names", "objects", "places") for w in lists[k]]
    templates = (
        TRAIN_IOI_TEMPLATES
        + (HELD_OUT_TEMPLATE,)
        + GENERAL_TEMPLATES
        + INTERLUDES
        + D_INTERLUDES
        + ADVERSARIAL_INTERLUDES
        + ("The former the latter",)
    )
    return [_SLOT.sub("", t) for t in templates] + words
