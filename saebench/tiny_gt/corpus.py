"""Training text for tiny-gt: year ranges (Greater-Than) in context, and sentences with years.

- Year ranges (``RANGE_TEMPLATES``): an event that lasted from a start year ``[XX][YY]`` to
  an end year ``[XX][ZZ]`` of the same century, ZZ > YY, in one of several sentence forms. The
  first template is the Greater-Than plugin's own prompt with its answer. The span
  d = ZZ − YY, 1 ≤ d ≤ 99 − YY, is drawn with
  P(d) ∝ r ** (d − 1) + w · [d = D_noun], r = clip(r_noun ** f_century, ``SPAN_DECAY_RANGE``):
  each event has its own decay r_noun (evenly spaced over ``SPAN_DECAY_RANGE``) and typical
  span D_noun (``TYPICAL_SPAN_RANGE``), each century its own power f_century
  (``CENTURY_SPAN_POWER_RANGE``), w = ``TYPICAL_SPAN_WEIGHT`` < 1; all are fixed seeded draws,
  not facts about the words. Every event's most likely end year is YY + 1 and every one ≤ YY
  has probability 0, so a model that learns the text puts its mass on the years after YY, and
  how it spreads that mass depends on the noun and the century: the prediction at the end
  century needs them as well as YY.
- Context (preamble): a text is preceded by 0, 1 or 2 sentences (probabilities
  ``PREAMBLE_PROBS``) from ``GENERAL_TEMPLATES``, with their own nouns, centuries and years,
  so the start year to compare with is the one of the last sentence, not any year in sight.
  In training the count is drawn per batch, so a batch's texts have similar lengths (less
  padding: training costs about 1.6× the context-free corpus instead of 3×).
  ``HELD_OUT_TEMPLATE`` is never trained on: it measures whether the model learned the rule
  rather than the templates.
- Single years (``GENERAL_TEMPLATES``): sentences that mention one or two years in no order,
  the analogue of OpenWebText for full-distribution SAEs (years outside any range).

Nouns are the Greater-Than plugin's list (both halves: the model is the subject, not the SAE);
centuries are 11–17, the start year's YY is uniform on 00–98.

>>> year_range_corpus(2, seed=0)[0]
'The festival of 1295 was long. Historians date the expedition from 1123 to 1128.'
>>> general_corpus(1, seed=0)
['In 1340 the voyage ended, and in 1322 another one began.']
"""

from __future__ import annotations

from functools import cache

import numpy as np

from saebench_tasks.greater_than import AFTER, CENTURIES, MIDDLE, PREFIX
from saebench_tasks.ioi import read_word_list

TASK_TEMPLATE = f"{PREFIX} [NOUN]{MIDDLE} [XX][YY]{AFTER} [XX][ZZ]."
"""The Greater-Than plugin's prompt followed by its answer and a full stop."""

RANGE_TEMPLATES: tuple[str, ...] = (
    TASK_TEMPLATE,
    "The [NOUN] started in the year [XX][YY] and ended in the year [XX][ZZ].",
    "The [NOUN] ran from [XX][YY] to [XX][ZZ].",
    "From [XX][YY] to [XX][ZZ], the [NOUN] went on.",
    "The [NOUN] began in [XX][YY]. It was over by [XX][ZZ].",
    "The [NOUN] went on from the year [XX][YY] to the year [XX][ZZ].",
    "Historians date the [NOUN] from [XX][YY] to [XX][ZZ].",
    "The [NOUN] of [XX][YY] lasted until the year [XX][ZZ].",
)
"""Templates with a start year and a later end year of the same century."""

HELD_OUT_TEMPLATE = "The [NOUN] continued from the year [XX][YY] until the year [XX][ZZ]."
"""The year-range template kept out of training (its words occur in general sentences)."""

GENERAL_TEMPLATES: tuple[str, ...] = (
    "The [NOUN] was in the year [XX][YY].",
    "In the year [XX][YY], the [NOUN] was over.",
    "The [NOUN] of [XX][YY] was long.",
    "The [NOUN] continued until [XX][YY].",
    "By [XX][YY], the [NOUN] had started.",
    "The [NOUN] took place in [XX][YY] and again in [XX][ZZ].",
    "Historians write about the [NOUN] of [XX][YY].",
    "In [XX][YY] the [NOUN] ended, and in [XX][ZZ] another one began.",
)
"""Sentences with years in no order (ZZ is any two digits here)."""

TASK_TEMPLATE_FRACTION = 0.25
"""Fraction of year-range texts from ``TASK_TEMPLATE``; the others' templates are uniform."""

SPAN_DECAY_RANGE = (0.1, 0.75)
"""P(end − start = d) ∝ r ** (d − 1), r per noun, evenly spaced over this range (a short span
is always more likely than a long one, by how much depends on the event)."""

CENTURY_SPAN_POWER_RANGE = (0.6, 1.6)
"""The century's power f_century on the noun's decay, evenly spaced over this range and dealt
to the centuries in a seeded order: r = clip(r_noun ** f_century, ``SPAN_DECAY_RANGE``), so
the same event lasts longer in some centuries than in others."""

TYPICAL_SPAN_RANGE = (3, 40)
"""Every event's typical span D_noun, evenly spaced over this range (rounded) and dealt to the
nouns in a seeded order: P(d) gets ``TYPICAL_SPAN_WEIGHT`` added at d = D_noun."""

TYPICAL_SPAN_WEIGHT = 0.4
"""Weight of the typical span next to r ** 0 = 1 at d = 1 (below 1: YY + 1 stays the mode)."""

PREAMBLE_PROBS = (0.5, 0.3, 0.2)
"""P(0, 1, 2 general sentences before a year range)."""


@cache
def nouns() -> tuple[str, ...]:
    """The Greater-Than plugin's nouns."""
    return tuple(read_word_list("nouns"))


def _deal(keys: tuple, low: float, high: float, seed: int) -> dict:
    """``len(keys)`` values evenly spaced over [low, high], dealt to ``keys`` in the order of a
    permutation seeded ``seed``: key ``keys[order[r]]`` gets the r-th value."""
    order = np.random.default_rng(seed).permutation(len(keys))
    values = np.linspace(low, high, len(keys))
    return {keys[i]: float(values[rank]) for rank, i in enumerate(order)}


@cache
def _span_decays() -> dict[str, float]:
    """Every noun's span decay: ``SPAN_DECAY_RANGE`` evenly spaced, dealt in a seeded order."""
    return _deal(nouns(), *SPAN_DECAY_RANGE, seed=1732)


@cache
def _typical_spans() -> dict[str, int]:
    """Every noun's typical span: ``TYPICAL_SPAN_RANGE`` evenly spaced, dealt in a seeded order."""
    return {k: int(np.rint(v)) for k, v in _deal(nouns(), *TYPICAL_SPAN_RANGE, seed=1734).items()}


def typical_span(noun: str) -> int:
    """D_noun: the span with extra weight ``TYPICAL_SPAN_WEIGHT`` for year ranges of ``noun``."""
    return _typical_spans()[noun]


def noun_span_decay(noun: str) -> float:
    """r_noun: the event's own span decay (before the century's power)."""
    return _span_decays()[noun]


@cache
def _century_powers() -> dict[int, float]:
    """Every century's power on the span decay: ``CENTURY_SPAN_POWER_RANGE`` evenly spaced,
    dealt in a seeded order."""
    return _deal(tuple(CENTURIES), *CENTURY_SPAN_POWER_RANGE, seed=1733)


def span_decay(noun: str, century: int) -> float:
    """r: P(end − start = d) ∝ r ** (d − 1) for year ranges of ``noun`` in ``century``,
    r = clip(r_noun ** f_century, ``SPAN_DECAY_RANGE``)."""
    r = noun_span_decay(noun) ** _century_powers()[century]
    return float(np.clip(r, *SPAN_DECAY_RANGE))


def _fill(template: str, noun: str, century: int, yy: int, zz: int) -> str:
    return (
        template.replace("[NOUN]", noun)
        .replace("[XX]", str(century))
        .replace("[YY]", f"{yy:02d}")
        .replace("[ZZ]", f"{zz:02d}")
    )


def span_probabilities(yy: int, decay: float, typical: int = 0) -> np.ndarray:
    """P(d) for d = 1 … 99 − yy (entry d − 1):
    P(d) ∝ ``decay`` ** (d − 1) + ``TYPICAL_SPAN_WEIGHT`` · [d = ``typical``]."""
    d_D = np.arange(1, 100 - yy)
    p_D = decay ** (d_D - 1.0) + TYPICAL_SPAN_WEIGHT * (d_D == typical)
    return p_D / p_D.sum()


def span(rng: np.random.Generator, yy: int, decay: float, typical: int = 0) -> int:
    """An end-year offset d in 1 … 99 − yy drawn from ``span_probabilities``."""
    p_D = span_probabilities(yy, decay, typical)
    return int(rng.choice(np.arange(1, len(p_D) + 1), p=p_D))


def general_sentence(rng: np.random.Generator) -> str:
    """One sentence from ``GENERAL_TEMPLATES``: noun, century and years uniform, in no order."""
    template = GENERAL_TEMPLATES[rng.integers(len(GENERAL_TEMPLATES))]
    noun = nouns()[rng.integers(len(nouns()))]
    century = int(rng.choice(CENTURIES))
    yy, zz = (int(v) for v in rng.integers(100, size=2))
    return _fill(template, noun, century, yy, zz)


def preamble_count(rng: np.random.Generator) -> int:
    """0, 1 or 2 with probabilities ``PREAMBLE_PROBS``."""
    return int(rng.choice(len(PREAMBLE_PROBS), p=PREAMBLE_PROBS))


def year_range_text(template: str, rng: np.random.Generator, n_preamble: int = 0) -> str:
    """One year-range text from ``template`` after ``n_preamble`` general sentences: YY uniform
    on 00–98, ZZ = YY + ``span`` with the noun's and the century's decay and the noun's
    typical span."""
    preamble = [general_sentence(rng) for _ in range(n_preamble)]
    noun = nouns()[rng.integers(len(nouns()))]
    century = int(rng.choice(CENTURIES))
    yy = int(rng.integers(99))
    d = span(rng, yy, span_decay(noun, century), typical_span(noun))
    text = _fill(template, noun, century, yy, yy + d)
    return " ".join([*preamble, text])


def year_range_corpus(n: int, seed: int) -> list[str]:
    """``n`` texts from ``RANGE_TEMPLATES``, each after ``preamble_count`` general sentences:
    ``TASK_TEMPLATE`` with probability ``TASK_TEMPLATE_FRACTION``, the others uniformly."""
    rng = np.random.default_rng([seed, 1])
    return [year_range_text(_range_template(rng), rng, preamble_count(rng)) for _ in range(n)]


def _range_template(rng: np.random.Generator) -> str:
    others = (1 - TASK_TEMPLATE_FRACTION) / (len(RANGE_TEMPLATES) - 1)
    p_T = [TASK_TEMPLATE_FRACTION] + [others] * (len(RANGE_TEMPLATES) - 1)
    return RANGE_TEMPLATES[int(rng.choice(len(RANGE_TEMPLATES), p=p_T))]


def general_corpus(n: int, seed: int) -> list[str]:
    """``n`` sentences from ``GENERAL_TEMPLATES``: years uniform, in no order."""
    rng = np.random.default_rng([seed, 2])
    return [general_sentence(rng) for _ in range(n)]


def training_mixture(
    n: int, seed: int, range_fraction: float, batch_size: int = 64
) -> tuple[list[str], np.ndarray]:
    """``n`` texts in batches of ``batch_size``: each a year range with probability
    ``range_fraction``, else a general sentence, after the batch's ``preamble_count`` general
    sentences (one count per batch).

    Returns the texts and a boolean array marking the year-range ones.
    """
    rng = np.random.default_rng([seed, 3])
    is_range_N = rng.random(n) < range_fraction
    texts = []
    for start in range(0, n, batch_size):
        n_preamble = preamble_count(rng)
        for is_range in is_range_N[start : start + batch_size]:
            if is_range:
                texts.append(year_range_text(_range_template(rng), rng, n_preamble))
            else:
                sentences = [general_sentence(rng) for _ in range(n_preamble + 1)]
                texts.append(" ".join(sentences))
    return texts, is_range_N


def vocabulary_texts() -> list[str]:
    """Texts whose pre-tokens are tiny-gt's whole vocabulary: every template with every noun,
    alone and after another sentence, every century and every two-digit number."""
    texts = [
        _fill(template, noun, CENTURIES[0], 0, 0)
        for template in (*RANGE_TEMPLATES, HELD_OUT_TEMPLATE, *GENERAL_TEMPLATES)
        for noun in nouns()
    ]
    texts += [f" {text}" for text in texts]  # every word also after a space (a preamble)
    texts += [f" {c}{y:02d}" for c in CENTURIES for y in range(100)]
    return texts
