"""Training text for tiny-gt: year ranges (Greater-Than) and sentences with a single year.

- Year ranges (``RANGE_TEMPLATES``): an event that lasted from a start year ``[XX][YY]`` to
  an end year ``[XX][ZZ]`` of the same century, ZZ > YY. The first template is the
  Greater-Than plugin's own prompt with its answer. The span d = ZZ − YY is drawn from a
  truncated geometric distribution, P(d) ∝ ``SPAN_DECAY`` ** (d − 1) for 1 ≤ d ≤ 99 − YY, as
  events in text tend to be short: the most likely end year is YY + 1, every one ≤ YY has
  probability 0, so a model that learns the text puts its mass on the years after YY.
  ``HELD_OUT_TEMPLATE`` is never trained on: it measures whether the model learned the rule
  rather than the templates.
- Single years (``GENERAL_TEMPLATES``): sentences that mention one or two years in no order,
  the analogue of OpenWebText for full-distribution SAEs.

Nouns are the Greater-Than plugin's list (both halves: the model is the subject, not the SAE);
centuries are 11–17, the start year's YY is uniform on 00–98.

>>> year_range_corpus(2, seed=0)
['Historians date the blockade from 1622 to 1623.', 'From 1123 to 1126, the crusade went on.']
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

SPAN_DECAY = 0.5
"""P(end − start = d) ∝ SPAN_DECAY ** (d − 1): a short span is more likely than a long one."""


@cache
def nouns() -> tuple[str, ...]:
    """The Greater-Than plugin's nouns."""
    return tuple(read_word_list("nouns"))


def _fill(template: str, noun: str, century: int, yy: int, zz: int) -> str:
    return (
        template.replace("[NOUN]", noun)
        .replace("[XX]", str(century))
        .replace("[YY]", f"{yy:02d}")
        .replace("[ZZ]", f"{zz:02d}")
    )


def span(rng: np.random.Generator, yy: int) -> int:
    """An end-year offset d in 1 … 99 − yy with P(d) ∝ ``SPAN_DECAY`` ** (d − 1)."""
    d_D = np.arange(1, 100 - yy)
    p_D = SPAN_DECAY ** (d_D - 1.0)
    return int(rng.choice(d_D, p=p_D / p_D.sum()))


def year_range_text(template: str, rng: np.random.Generator) -> str:
    """One year-range text from ``template``: YY uniform on 00–98, ZZ = YY + ``span``."""
    noun = nouns()[rng.integers(len(nouns()))]
    century = int(rng.choice(CENTURIES))
    yy = int(rng.integers(99))
    return _fill(template, noun, century, yy, yy + span(rng, yy))


def year_range_corpus(n: int, seed: int) -> list[str]:
    """``n`` texts from ``RANGE_TEMPLATES``: ``TASK_TEMPLATE`` with probability
    ``TASK_TEMPLATE_FRACTION``, the others uniformly."""
    rng = np.random.default_rng([seed, 1])
    others = (1 - TASK_TEMPLATE_FRACTION) / (len(RANGE_TEMPLATES) - 1)
    p_T = [TASK_TEMPLATE_FRACTION] + [others] * (len(RANGE_TEMPLATES) - 1)
    templates = rng.choice(len(RANGE_TEMPLATES), size=n, p=p_T)
    return [year_range_text(RANGE_TEMPLATES[t], rng) for t in templates]


def general_corpus(n: int, seed: int) -> list[str]:
    """``n`` sentences from ``GENERAL_TEMPLATES``: years uniform, in no order."""
    rng = np.random.default_rng([seed, 2])
    texts = []
    for t in rng.integers(len(GENERAL_TEMPLATES), size=n):
        noun = nouns()[rng.integers(len(nouns()))]
        century = int(rng.choice(CENTURIES))
        yy, zz = (int(v) for v in rng.integers(100, size=2))
        texts.append(_fill(GENERAL_TEMPLATES[t], noun, century, yy, zz))
    return texts


def training_mixture(n: int, seed: int, range_fraction: float) -> tuple[list[str], np.ndarray]:
    """``n`` texts: year ranges with probability ``range_fraction``, else general sentences.

    Returns the texts and a boolean array marking the year-range ones.
    """
    rng = np.random.default_rng([seed, 3])
    is_range_N = rng.random(n) < range_fraction
    ranges = iter(year_range_corpus(int(is_range_N.sum()), seed))
    general = iter(general_corpus(int((~is_range_N).sum()), seed))
    return [next(ranges) if r else next(general) for r in is_range_N], is_range_N


def vocabulary_texts() -> list[str]:
    """Texts whose pre-tokens are tiny-gt's whole vocabulary: every template with every noun,
    every century and every two-digit number."""
    texts = [
        _fill(template, noun, CENTURIES[0], 0, 0)
        for template in (*RANGE_TEMPLATES, HELD_OUT_TEMPLATE, *GENERAL_TEMPLATES)
        for noun in nouns()
    ]
    texts += [f" {c}{y:02d}" for c in CENTURIES for y in range(100)]
    return texts
