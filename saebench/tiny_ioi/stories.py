"""Training text for tiny-ioi: short stories in which IOI is one consistent rule of the world.

A story has a cast of people (names), places and objects. Its sentences are drawn from
families of clause shapes; every slot is one word. The rule IOI asks for holds in all of it:
when two people are together in a scene and one of them gives, says or sends something "to"
someone, the recipient is the *other* one. Everything a shortcut could use varies:

- **Where the names are**: an IOI story is a ``preamble`` (0–3 unrelated sentences about
  other people), an ``intro`` that brings the pair IO, S together (``INTROS``: "[A] and [B]",
  "[A] met [B]", "[A] went to the [PLACE] with [B]", subordinate clauses ...), a ``middle``
  (0–2 sentences about a third person or nobody), and a ``final`` clause whose subject
  is S and which ends at "to" (``FINALS``). So absolute positions say nothing.
- **Counting**: the middle never names IO or S (``MIDDLE_MENTIONS``), only a third person,
  so in training S is named twice and IO once. Counting is not what the model learns: the
  counting-adversarial set (:mod:`saebench.tiny_ioi.evaluate`), where IO is named most,
  measures it (an earlier recipe with counting-balanced middles was less accurate on every
  other set, ``docs/tiny-ioi.md`` §4).
- **Order**: a ``former_fraction`` of IOI stories name S in the final clause by its place in
  the pair ("the former" / "the latter"), which only a model that tracks the pair's order
  answers.
- **Names recur everywhere**: general stories (the non-IOI text, the analogue of
  OpenWebText for "general" SAEs) have casts of one to three people who come back sentence
  after sentence, and transfers in them follow the same rule, so detecting a repeated name
  pays off in all the text, not only at the IOI answer.

Held out of training (``HELD_OUT_INTROS``, ``HELD_OUT_FINALS``, ``HELD_OUT_MIDDLES``,
``HELD_OUT_PREAMBLES``): shapes whose words occur elsewhere in the text; they measure whether
the model learned the rule rather than the shapes.

>>> rng = np.random.default_rng(0)
>>> story = ioi_story(rng, Shapes.train())
>>> story.text.endswith(" to") and story.io != story.s
True
>>> story.text.split().count(story.s) >= 2
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from saebench_tasks.ioi import TEMPLATES, read_word_list

OPENERS: tuple[str, ...] = (
    "", "", "", "Then, ", "Later, ", "Yesterday, ", "In the morning, ", "One day, ",
    "Today, ", "In the evening, ", "After the lunch, ",
)  # fmt: skip
"""Adverbials that may open a sentence (empty three times in eleven)."""

FINAL_OPENERS: tuple[str, ...] = ("", "", "Afterwards, ", "Then, ", "Later, ", "Finally, ")
"""Adverbials that may open the final clause."""

INTROS: tuple[str, ...] = (
    "[A] and [B] went to the [PLACE].",
    "[A] and [B] had a long and really crazy argument.",
    "[A] and [B] had lots of fun at the [PLACE].",
    "[A] and [B] were working at the [PLACE].",
    "[A] and [B] met at the [PLACE].",
    "[A] met [B] at the [PLACE].",
    "[A] went to the [PLACE] with [B].",
    "[A] was at the [PLACE] with [B].",
    "[A] saw [B] at the [PLACE].",
    "[A] and [B] found a [OBJECT] at the [PLACE].",
    "[A] called [B].",
    "[A] visited [B] at the [PLACE].",
    "[A] and [B] talked for a long time.",
    "[A] and [B] were cooking at the [PLACE].",
    "[A] walked to the [PLACE] with [B].",
    "[A] and [B] got a [OBJECT] at the [PLACE].",
    "[A] helped [B] at the [PLACE].",
    "[A] and [B] were thinking about going to the [PLACE].",
    "[A] and [B] played a game at the [PLACE].",
    "[A] waited for [B] at the [PLACE].",
    "[A] and [B] were at the [PLACE] together.",
    "[A] and [B] had a long argument.",
    "[A] ran into [B] at the [PLACE].",
    "Friends [A] and [B] found a [OBJECT] at the [PLACE].",
    "[A] and her friend [B] went to the [PLACE].",
    "[A] and [B] were commuting to the [PLACE].",
    "[A] talked with [B] at the [PLACE].",
    "[A] and [B] spent the day at the [PLACE].",
    "[A] invited [B] to the [PLACE].",
    "[A] and [B] were happy at the [PLACE].",
    "When [A] and [B] got a [OBJECT] at the [PLACE],",
    "While [A] and [B] were commuting to the [PLACE],",
    "After [A] and [B] went to the [PLACE],",
    "When [A] met [B] at the [PLACE],",
    "Because [A] and [B] were at the [PLACE],",
    "Once [A] and [B] had a long argument,",
)
"""Hand-written intros, [A] first (one family of :data:`INTRO_FAMILIES`). One ending in a comma
is a subordinate clause: the final clause follows it in the same sentence (no opener, no
middle)."""

PAIR_SUBJECTS: tuple[str, ...] = (
    "[A] and [B]", "Friends [A] and [B]", "[A] and her friend [B]", "[A] and his friend [B]",
    "Both [A] and [B]",
)  # fmt: skip
"""How a pair can be the subject of a clause."""

PLURAL_PREDICATES: tuple[str, ...] = (
    "went to the [PLACE]", "had a long argument", "had a long and really crazy argument",
    "had lots of fun at the [PLACE]", "were working at the [PLACE]", "met at the [PLACE]",
    "found a [OBJECT] at the [PLACE]", "talked for a long time", "were cooking at the [PLACE]",
    "got a [OBJECT] at the [PLACE]", "were thinking about going to the [PLACE]",
    "played a game at the [PLACE]", "were at the [PLACE] together", "were at the [PLACE]",
    "were commuting to the [PLACE]", "spent the day at the [PLACE]", "were happy at the [PLACE]",
    "were reading a book at the [PLACE]", "looked at the [OBJECT]",
    "bought a [OBJECT] at the [PLACE]", "walked to the [PLACE]", "liked the [PLACE]",
    "came back from the [PLACE]", "were waiting at the [PLACE]", "were tired",
    "went home together", "saw the [PLACE]", "talked about the [OBJECT]",
)  # fmt: skip
"""What a pair does (plural verb), after one of :data:`PAIR_SUBJECTS`."""

TRANSITIVE_VERBS: tuple[str, ...] = (
    "met", "saw", "called", "visited", "helped", "waited for", "ran into", "talked with",
    "played with", "looked for", "worked with", "argued with", "walked with", "found",
    "talked to", "went out with",
)  # fmt: skip
"""``[A] VERB [B]``: verbs that put the pair into one clause, [A] as subject, [B] as object."""

PLACE_SUFFIXES: tuple[str, ...] = (
    "", " at the [PLACE]", " in the [PLACE]", " at the [PLACE] again",
)  # fmt: skip
"""What may follow ``[A] VERB [B]``."""

WITH_PREDICATES: tuple[str, ...] = (
    "went to the [PLACE]", "was at the [PLACE]", "walked to the [PLACE]",
    "had lots of fun at the [PLACE]", "played a game at the [PLACE]",
    "spent the day at the [PLACE]", "was cooking at the [PLACE]", "talked for a long time",
    "had a long argument", "was working at the [PLACE]", "went home", "was reading a book",
    "came back from the [PLACE]",
)  # fmt: skip
"""``[A] PREDICATE with [B]``: singular predicates the pair shares through "with"."""

SUBORDINATORS: tuple[str, ...] = ("When", "While", "After", "Because", "Once", "Before")
"""Conjunctions that make a subordinate intro: ``When [A] met [B] at the [PLACE],``."""

HELD_OUT_INTROS: tuple[str, ...] = (
    "[A] and [B] went for a walk in the [PLACE].",
    "[A] sat with [B] at the [PLACE].",
    "[A] and [B] were eating at the [PLACE] together.",
    "When [A] saw [B] at the [PLACE],",
)
"""Intro shapes never trained on (their words occur in other sentences)."""


def _compose_intros() -> tuple[tuple[str, ...], ...]:
    """The intro families: hand-written, ``PAIR PREDICATE.``, ``[A] VERB [B] SUFFIX.``,
    ``[A] PREDICATE with [B].`` and subordinate versions of the last three; shapes that begin
    with a held-out one removed."""
    pair = tuple(f"{p} {v}." for p in PAIR_SUBJECTS for v in PLURAL_PREDICATES)
    transitive = tuple(f"[A] {v} [B]{x}." for v in TRANSITIVE_VERBS for x in PLACE_SUFFIXES)
    with_ = tuple(f"[A] {v} with [B]." for v in WITH_PREDICATES)
    subordinate = tuple(
        f"{c} {clause[0].lower() + clause[1:] if clause.startswith('Friends') else clause}"[:-1]
        + ","
        for c in SUBORDINATORS
        for clause in pair + transitive + with_
        if not clause.startswith(("Both", "Friends"))
    )
    held_out = tuple(h.rstrip(".,") for h in HELD_OUT_INTROS)
    families = (INTROS, pair, transitive, with_, subordinate)
    return tuple(tuple(x for x in f if not x.startswith(held_out)) for f in families)


INTRO_FAMILIES: tuple[tuple[str, ...], ...] = _compose_intros()
"""Trained intro shapes by family: a story draws a family uniformly, then a shape in it."""

FINALS: tuple[str, ...] = (
    "[C] said to",
    "[C] gave a [OBJECT] to",
    "[C] decided to give a [OBJECT] to",
    "[C] handed a [OBJECT] to",
    "[C] threw a [OBJECT] to",
    "[C] wanted to give a [OBJECT] to",
    "[C] sent a [OBJECT] to",
    "[C] wrote a letter to",
    "[C] passed a [OBJECT] to",
    "[C] sold a [OBJECT] to",
    "[C] brought a [OBJECT] to",
    "[C] offered a [OBJECT] to",
    "[C] read a story to",
    "[C] lent a [OBJECT] to",
    "[C] waved to",
    "[C] gave it to",
    "[C] talked to",
    "[C] tossed a [OBJECT] to",
    "[C] mailed a [OBJECT] to",
    "[C] gave the [OBJECT] to",
    "[C] went back and gave a [OBJECT] to",
    "[C] smiled and said to",
    "[C] was happy and gave a [OBJECT] to",
    "[C] bought a [OBJECT] and gave it to",
    "[C] said goodbye to",
    "[C] gave a [OBJECT] back to",
)
"""Hand-written final clauses: S does something to the answer, ending at "to" (END)."""

GIVE_VERBS: tuple[str, ...] = (
    "gave", "handed", "threw", "sent", "passed", "sold", "brought", "offered", "lent", "tossed",
    "mailed", "returned",
)  # fmt: skip
"""Transfer verbs, past tense: ``[C] VERB THING to``."""

GIVE_BASES: tuple[str, ...] = ("give", "hand", "send", "bring", "pass", "throw", "sell", "lend")
"""Their base forms, after :data:`MODALS`."""

THINGS: tuple[str, ...] = ("a [OBJECT]", "the [OBJECT]", "it", "a letter", "the [OBJECT] back")
"""What is transferred."""

SAY_PHRASES: tuple[str, ...] = (
    "said", "waved", "talked", "said goodbye", "wrote a letter", "read a story", "said hello",
    "smiled", "wrote", "talked about the [PLACE]",
)  # fmt: skip
"""``[C] PHRASE to``: speaking to someone."""

BEFORE_ACTIONS: tuple[str, ...] = (
    "went back and", "smiled and", "was happy and", "came back and", "got a [OBJECT] and",
    "bought a [OBJECT] and", "found a [OBJECT] and", "was tired, but",
)  # fmt: skip
"""Something S does first: ``[C] ACTION gave a [OBJECT] to``."""

MODALS: tuple[str, ...] = ("decided to", "wanted to", "had to", "went back to")
"""``[C] MODAL give a [OBJECT] to``."""

HELD_OUT_FINALS: tuple[str, ...] = (
    "[C] showed a [OBJECT] to",
    "[C] sang a song to",
    "[C] found a [OBJECT] and handed it to",
)
"""Final shapes never trained on."""


def _compose_finals() -> tuple[tuple[str, ...], ...]:
    """The final-clause families: hand-written, ``[C] GAVE THING to``, ``[C] SAID to``,
    ``[C] ACTION GAVE THING to`` / ``[C] ACTION SAID to``, ``[C] MODAL GIVE THING to``;
    shapes that begin with a held-out one removed."""
    give = tuple(f"[C] {v} {t} to" for v in GIVE_VERBS for t in THINGS)
    say = tuple(f"[C] {p} to" for p in SAY_PHRASES)
    before = tuple(f"[C] {b} {x[4:]}" for b in BEFORE_ACTIONS for x in give + say)
    modal = tuple(f"[C] {m} {v} {t} to" for m in MODALS for v in GIVE_BASES for t in THINGS)
    held_out = tuple(h.rstrip(".,") for h in HELD_OUT_FINALS)
    families = (FINALS, give, say, before, modal)
    return tuple(tuple(x for x in f if not x.startswith(held_out)) for f in families)


FINAL_FAMILIES: tuple[tuple[str, ...], ...] = _compose_finals()
"""Trained final shapes by family, drawn like :data:`INTRO_FAMILIES`."""

MIDDLES: tuple[str, ...] = (
    "[X] was happy.",
    "[X] liked the [PLACE].",
    "[X] had a [OBJECT].",
    "Later, [X] saw the [PLACE].",
    "[X] wanted a [OBJECT].",
    "Everyone at the [PLACE] liked [X].",
    "[X] was tired.",
    "[X] bought a [OBJECT].",
    "The [OBJECT] was for [X].",
    "[X] looked at the [OBJECT].",
    "[X] talked about the [PLACE] for a long time.",
)
"""Sentences between the intro and the final clause that mention one person [X]."""

PLAIN_MIDDLES: tuple[str, ...] = (
    "It was a nice day.",
    "The [PLACE] was closed.",
    "The [OBJECT] was new.",
    "It was late.",
)
"""Middle sentences that mention nobody."""

THIRD_PERSON_MIDDLES: tuple[str, ...] = ("Then, [X] went to the [PLACE].", "Later, [X] was happy.")
"""Middle sentences about a third person D. None says D was "there too": that would teach that
a name joining the scene that way is not a candidate, and "[A] went to the [PLACE], and [B]
went there too" is an intro (a probe of it fell to 0.605 while it was one)."""

PREAMBLE_PAIR_SHARE = 0.6
"""Share of preamble sentences about two people: a preamble pair in the intro's own shape
("[X] and [Y] went to the [PLACE].") must not be taken for the IO–S pair (at 0.3, a probe of
it fell to 0.725)."""

HELD_OUT_MIDDLES: tuple[str, ...] = (
    "Then, [X] found a [OBJECT] at the [PLACE].",
    "Later, [X] said that the [PLACE] was closed.",
    "Then, [X] went to the [PLACE] and bought a [OBJECT].",
    "Afterwards, [X] was happy and went home.",
)
"""Middle sentences never used in IOI stories: the counting-adversarial set puts two with
[X] = IO before the final clause (their shapes occur, with other names, in general text)."""

MIDDLE_MENTIONS: dict[str, tuple[int, ...]] = {"IO": (0,), "S": (0,), "D": (0, 0, 1)}
"""Middle sentences per role, each count drawn uniformly from its tuple: IO and S never, a
third person D in a third of the stories."""

GENERAL: tuple[str, ...] = (
    "[X] went to the [PLACE] and bought a [OBJECT].",
    "[X] found a [OBJECT] at the [PLACE].",
    "The [OBJECT] was at the [PLACE], so [X] went there.",
    "[X] said that the [PLACE] was closed.",
    "[X] was happy and went home.",
    "[X] liked the [PLACE].",
    "[X] had a [OBJECT].",
    "[X] was tired.",
    "[X] went to the [PLACE].",
    "[X] bought a [OBJECT].",
    "[X] walked from the [PLACE] to the [PLACE2] with a [OBJECT].",
    "[X] showed everyone the [OBJECT].",
    "When [X] came back from the [PLACE], [X] had a [OBJECT].",
    "The [OBJECT] and the [OBJECT2] were in the [PLACE].",
    "It was a nice day.",
    "[X] went for a walk in the [PLACE].",
    "[X] sat at the [PLACE].",
    "[X] was eating at the [PLACE].",
    "[X] sang a song.",
    "[X] looked at the [OBJECT].",
    "Everyone at the [PLACE] liked [X].",
    "[X] saw the [PLACE].",
)
"""General sentences about one person [X] (or nobody)."""

GENERAL_PAIR: tuple[str, ...] = (
    "[X] and [Y] went to the [PLACE].",
    "[X] and [Y] talked about the [OBJECT] for a long time.",
    "[X] saw [Y] with a [OBJECT].",
    "[X] likes the [PLACE], but [Y] likes the [PLACE2].",
    "[X] and [Y] played a game with a [OBJECT].",
    "[X] and [Y] were cooking at the [PLACE].",
    "[X] gave a [OBJECT] to [Y].",
    "[X] said to [Y] that the [PLACE] was closed.",
    "[X] showed [Y] the [OBJECT].",
    "[X] and [Y] were eating at the [PLACE].",
)
"""General sentences about two people of the cast, [X] and [Y]. In a story of two, [Y] is
the other one; so "[X] gave a [OBJECT] to [Y]" follows the IOI rule in general text too."""

GENERAL_TRIO: tuple[str, ...] = (
    "[X], [Y] and [Z] went to the [PLACE] together.",
    "[X] saw [Y] and [Z] at the [PLACE].",
)
"""General sentences about three people."""

TRAIN_MIDDLES: tuple[str, ...] = MIDDLES + tuple(
    g
    for g in GENERAL
    if g.count("[X]") == 1
    and g not in MIDDLES
    and not any(h.endswith(g[4:]) for h in HELD_OUT_MIDDLES)
)
"""The middle sentences of training stories: :data:`MIDDLES` and the general one-person
sentences, except those that would make a held-out middle."""

HELD_OUT_PREAMBLES: tuple[str, ...] = (
    "[X] was reading a book at the [PLACE].",
    "Everyone liked the [OBJECT] that [X] had.",
    "[X] and [Y] were at the [PLACE] too.",
)
"""Unrelated opening sentences never trained on (preamble evaluation)."""

ALL_INTROS: tuple[str, ...] = tuple(x for family in INTRO_FAMILIES for x in family)
"""Every trained intro shape (the hand-written :data:`INTROS` first)."""

ALL_FINALS: tuple[str, ...] = tuple(x for family in FINAL_FAMILIES for x in family)
"""Every trained final shape (the hand-written :data:`FINALS` first)."""

FORMER_LATTER = ("the former", "the latter")

_SLOT = re.compile(r"\[(A|B|C|X|Y|Z|PLACE2?|OBJECT2?)\]")


@cache
def word_lists() -> dict[str, tuple[str, ...]]:
    """The IOI plugin's ``names``, ``objects`` and ``places`` (all of them)."""
    return {k: tuple(read_word_list(k)) for k in ("names", "objects", "places")}


_ADVERBIAL_STARTS = frozenset(
    {"Then", "Later", "Afterwards", "Yesterday", "When", "While", "After", "Because", "Once",
     "In", "One", "Today", "Finally"}
)  # fmt: skip


@cache
def _names() -> frozenset[str]:
    return frozenset(word_lists()["names"])


@dataclass(frozen=True)
class Shapes:
    """The clause families a story draws from."""

    intros: tuple[tuple[str, ...], ...]
    """Intro shapes by family (a draw picks a family uniformly, then a shape)."""
    finals: tuple[tuple[str, ...], ...]
    """Final-clause shapes by family."""
    middles: tuple[str, ...]
    preambles: tuple[str, ...]
    preamble_pairs: tuple[str, ...] = ()

    @classmethod
    def train(cls) -> Shapes:
        return cls(INTRO_FAMILIES, FINAL_FAMILIES, TRAIN_MIDDLES, GENERAL, GENERAL_PAIR)

    @classmethod
    def held_out(cls) -> Shapes:
        return cls((HELD_OUT_INTROS,), (HELD_OUT_FINALS,), TRAIN_MIDDLES, GENERAL, GENERAL_PAIR)


def _pick(rng: np.random.Generator, families: tuple[tuple[str, ...], ...]) -> str:
    family = families[rng.integers(len(families))]
    return family[rng.integers(len(family))]


@dataclass
class Story:
    """One IOI story: ``text`` ends at END (the word "to"); ``io``, ``s`` the pair's names;
    ``s_first``: S was [A] (``pos`` = BAB); ``former``: S is named "the former/latter"."""

    text: str
    io: str
    s: str
    s_first: bool
    former: bool = False
    parts: dict[str, str] = field(default_factory=dict)


def _draw(rng: np.random.Generator, words: tuple[str, ...], k: int, avoid=()) -> list[str]:
    pool = [w for w in words if w not in avoid] if avoid else words
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


def _fill(template: str, values: dict[str, str], rng: np.random.Generator) -> str:
    lists = word_lists()

    def one(match: re.Match) -> str:
        slot = match.group(1)
        if slot not in values:
            kind = "places" if slot.startswith("PLACE") else "objects"
            values[slot] = _draw(rng, lists[kind], 1, avoid=set(values.values()))[0]
        return values[slot]

    return _SLOT.sub(one, template)


def _sentence(rng: np.random.Generator, body: str, opener: bool = True) -> str:
    """``body`` with an adverbial opener (or none); capitalised."""
    prefix = OPENERS[rng.integers(len(OPENERS))] if opener else ""
    first = body.split(" ", 1)[0].strip(",")
    if first in _ADVERBIAL_STARTS:
        prefix = ""
    if prefix and first not in _names():
        body = body[0].lower() + body[1:]
    text = prefix + body
    return text[0].upper() + text[1:]


def _preamble(rng, shapes: Shapes, others: list[str], n: int) -> list[str]:
    """``n`` unrelated sentences about the people in ``others`` (never the pair)."""
    out = []
    for _ in range(n):
        if shapes.preamble_pairs and rng.random() < PREAMBLE_PAIR_SHARE:
            x, y = _draw(rng, tuple(others), 2)
            template = shapes.preamble_pairs[rng.integers(len(shapes.preamble_pairs))]
            values = {"X": x, "Y": y}
        else:
            template = shapes.preambles[rng.integers(len(shapes.preambles))]
            x, y = _draw(rng, tuple(others), 2)
            values = {"X": x, "Y": y}
        out.append(_sentence(rng, _fill(template, values, rng)))
    return out


def ioi_story(
    rng: np.random.Generator,
    shapes: Shapes,
    n_preamble: int | None = None,
    mentions: tuple[str, ...] | None = None,
    former: bool = False,
    intro: str | None = None,
    final: str | None = None,
) -> Story:
    """One IOI story ending at "to", whose answer is IO.

    Drawn unless given: the intro and final shapes (uniformly from ``shapes``), the number of
    preamble sentences (0–3), the roles of the middle sentences (:func:`random_mentions`),
    the pair's order (a fair coin). ``former`` names S as "the former"/"the latter" (no
    middle: the phrase must refer to the pair).
    """
    names = word_lists()["names"]
    io, s, d, *others = _draw(rng, names, 7)
    s_first = bool(rng.integers(2))
    a, b = (s, io) if s_first else (io, s)
    values = {"A": a, "B": b}
    intro = intro or _pick(rng, shapes.intros)
    final = final or _pick(rng, shapes.finals)
    n_preamble = int(rng.integers(4)) if n_preamble is None else n_preamble
    parts = {"preamble": " ".join(_preamble(rng, shapes, others, n_preamble))}
    subordinate = intro.endswith(",")
    parts["intro"] = _sentence(rng, _fill(intro, values, rng), opener=not subordinate)
    if mentions is None:
        mentions = () if (former or subordinate) else random_mentions(rng)
    middle = []
    role_name = {"IO": io, "S": s, "D": d}
    for role in mentions:
        if role == "plain":
            template, x = PLAIN_MIDDLES[rng.integers(len(PLAIN_MIDDLES))], ""
        elif role == "D":
            template, x = THIRD_PERSON_MIDDLES[rng.integers(len(THIRD_PERSON_MIDDLES))], d
        else:
            template, x = shapes.middles[rng.integers(len(shapes.middles))], role_name[role]
        middle.append(_sentence(rng, _fill(template, {**values, "X": x}, rng)))
    parts["middle"] = " ".join(middle)
    subject = FORMER_LATTER[0 if s_first else 1] if former else s
    body = _fill(final, {**values, "C": subject}, rng)
    if subordinate:
        parts["final"] = body
    else:
        parts["final"] = _sentence(
            rng, FINAL_OPENERS[rng.integers(len(FINAL_OPENERS))] + body, False
        )
    text = " ".join(
        p for p in (parts["preamble"], parts["intro"], parts["middle"], parts["final"]) if p
    )
    return Story(text, io, s, s_first, former, parts)


def random_mentions(rng: np.random.Generator) -> tuple[str, ...]:
    """Roles of an IOI story's middle sentences: counts from ``MIDDLE_MENTIONS`` plus 0–1
    plain sentences, shuffled."""
    roles = [r for r, counts in MIDDLE_MENTIONS.items() for _ in range(rng.choice(counts))]
    roles += ["plain"] * int(rng.random() < 0.3)
    return tuple(roles[i] for i in rng.permutation(len(roles)))


def task_template_story(
    rng: np.random.Generator,
    template: str,
    n_preamble: int = 0,
    shapes: Shapes | None = None,
    mentions: tuple[str, ...] = (),
) -> Story:
    """A story whose intro and final clause are one of the IOI plugin's templates, after
    ``n_preamble`` unrelated sentences, with middle sentences for ``mentions`` (roles ``IO``,
    ``S``) between them; preambles and middles from ``shapes`` (default ``Shapes.train()``)."""
    shapes = shapes or Shapes.train()
    intro, final = template.split(". ", 1)
    intro = intro.removeprefix("Then, ") + "."
    names = word_lists()["names"]
    io, s, *others = _draw(rng, names, 6)
    s_first = bool(rng.integers(2))
    a, b = (s, io) if s_first else (io, s)
    values = {"A": a, "B": b}
    pre = _preamble(rng, shapes, others, n_preamble)
    middle = [
        _sentence(rng, _fill(shapes.middles[i], {**values, "X": io if role == "IO" else s}, rng))
        for role, i in zip(mentions, rng.permutation(len(shapes.middles)), strict=False)
    ]
    parts = ["Then, " + _fill(intro, values, rng), *middle, _fill(final, {**values, "C": s}, rng)]
    return Story(" ".join([*pre, *parts]), io, s, s_first)


def general_story(rng: np.random.Generator, max_sentences: int = 4) -> str:
    """A non-IOI story: a cast of one to three people and 1–``max_sentences`` sentences about
    them; names recur, and a transfer between two people of a two-person cast goes to the
    other one."""
    names = word_lists()["names"]
    cast = _draw(rng, names, int(rng.choice([1, 2, 2, 3])))
    sentences = []
    for _ in range(int(rng.integers(1, max_sentences + 1))):
        if len(cast) >= 3 and rng.random() < 0.2:
            x, y, z = (cast[i] for i in rng.permutation(len(cast))[:3])
            template, values = (
                GENERAL_TRIO[rng.integers(len(GENERAL_TRIO))],
                {"X": x, "Y": y, "Z": z},
            )
        elif len(cast) >= 2 and rng.random() < 0.5:
            x, y = (cast[i] for i in rng.permutation(len(cast))[:2])
            template, values = GENERAL_PAIR[rng.integers(len(GENERAL_PAIR))], {"X": x, "Y": y}
        else:
            template = GENERAL[rng.integers(len(GENERAL))]
            values = {"X": cast[rng.integers(len(cast))]}
        sentences.append(_sentence(rng, _fill(template, values, rng)))
    return " ".join(sentences)


def general_corpus(n: int, seed: int) -> list[str]:
    """``n`` general (non-IOI) stories: tiny-ioi's analogue of OpenWebText for SAEs trained on
    general data."""
    rng = np.random.default_rng([seed, 2])
    return [general_story(rng) for _ in range(n)]


def ioi_corpus(
    n: int,
    seed: int,
    former_fraction: float = 0.2,
    task_template_fraction: float = 0.15,
    plain: bool = False,
) -> list[str]:
    """``n`` IOI stories completed by their answer: ``... to Mary.``

    A ``task_template_fraction`` of them use the IOI plugin's templates (after 0–3 preamble
    sentences), a ``former_fraction`` name S as "the former"/"the latter"; the rest are drawn
    from ``Shapes.train()``. ``plain`` (the curriculum's first stage): no preamble and no
    middle.
    """
    rng = np.random.default_rng([seed, 1])
    shapes = Shapes.train()
    out = []
    for _ in range(n):
        u = rng.random()
        n_pre = 0 if plain else None
        if u < task_template_fraction:
            story = task_template_story(
                rng, TEMPLATES[rng.integers(len(TEMPLATES))], 0 if plain else int(rng.integers(4))
            )
        elif u < task_template_fraction + former_fraction:
            story = ioi_story(rng, shapes, n_preamble=n_pre, former=True)
        else:
            story = ioi_story(rng, shapes, n_preamble=n_pre, mentions=() if plain else None)
        out.append(f"{story.text} {story.io}.")
    return out


def training_mixture(
    n: int, seed: int, ioi_fraction: float = 0.6, former_fraction: float = 0.2, plain: bool = False
) -> tuple[list[str], np.ndarray]:
    """``n`` training texts: each an IOI story with probability ``ioi_fraction``, else a
    general story; and which ones are IOI stories."""
    rng = np.random.default_rng([seed, 3])
    is_ioi_N = rng.random(n) < ioi_fraction
    n_ioi = int(is_ioi_N.sum())
    if plain:  # the curriculum's first stage: mostly the plugin's templates, no "the former"
        corpus = ioi_corpus(
            n_ioi, seed, former_fraction=0.0, task_template_fraction=0.5, plain=True
        )
    else:
        corpus = ioi_corpus(n_ioi, seed, former_fraction=former_fraction)
    ioi = iter(corpus)
    general = iter(general_corpus(n - n_ioi, seed))
    return [next(ioi) if flag else next(general) for flag in is_ioi_N], is_ioi_N


def vocabulary_texts() -> list[str]:
    """Texts covering every word the tokenizer needs: every shape (held-out ones included),
    opener, the task templates, and every name, object and place with a leading space."""
    lists = word_lists()
    words = [" " + w for k in ("names", "objects", "places") for w in lists[k]]
    words += list(lists["names"])  # a story may open with a name
    shapes = (
        ALL_INTROS + HELD_OUT_INTROS + ALL_FINALS + HELD_OUT_FINALS + MIDDLES + PLAIN_MIDDLES
        + THIRD_PERSON_MIDDLES + HELD_OUT_MIDDLES + GENERAL + GENERAL_PAIR + GENERAL_TRIO
        + HELD_OUT_PREAMBLES + tuple(TEMPLATES) + OPENERS + FINAL_OPENERS
        + ("The former said to the latter.",)
    )  # fmt: skip
    variants = []
    for shape in filter(None, shapes):
        capitalised, lower = shape[0].upper() + shape[1:], shape[0].lower() + shape[1:]
        variants += [capitalised, " " + capitalised, " " + lower]
    return [_SLOT.sub("", t) for t in variants] + words
