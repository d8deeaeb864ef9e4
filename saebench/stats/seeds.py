"""Spread across seeds (``saebench run --seeds 0,1,2``; docs/metrics.md §11).

A run's seed draws its evaluation prompts, their counterfactuals, the coverage prompts and the
bootstrap replicates. Scoring one SAE with S seeds gives S estimates θ_s of every metric; their
spread, the sample standard deviation

    sd = √( Σ_s (θ_s − θ̄)² ÷ (S − 1) ),   θ̄ = Σ_s θ_s ÷ S,

is printed next to the bootstrap half-width h = mean_s (hi_s − lo_s) ÷ 2 of the seeds' 95%
intervals. With both measuring prompt-sampling noise, sd ≈ h ÷ 1.96 is expected; an sd well
above that says the metric moves with the draw more than one run's interval shows (e.g. the
causal cut of a borderline ``noint_accuracy``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from saebench.leaderboard.schema import parse_metric

SPREAD_METRICS: tuple[str, ...] = (
    "l0",
    "fvu",
    "sufficiency",
    "necessity",
    "noint_accuracy",
    "sup_edit_accuracy",
    "edit_accuracy",
    "aware_edit_accuracy",
    "f1_coverage",
    "f1_mean_best",
)
"""Metrics (by name, any attribute) the spread table shows."""
SPREAD_KS: tuple[int, ...] = (2, 4, 6)
"""Edit sizes of the per-k metrics it shows (the paper's small k), where the run has them."""


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2): at least two distinct seeds, each ≥ 0.

    >>> parse_seeds("0, 1,2")
    (0, 1, 2)
    >>> parse_seeds("3")
    Traceback (most recent call last):
    ...
    ValueError: --seeds needs at least two distinct seeds (got 3)
    """
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--seeds takes integers separated by commas (got {text!r})") from None
    if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs at least two distinct seeds (got {text})")
    if min(seeds) < 0:
        raise ValueError(f"--seeds must be 0 or more (got {text})")
    return seeds


@dataclass
class Spread:
    """One metric over the seeds."""

    values: list[float]
    """θ_s, in the order of the seeds."""
    mean: float
    sd: float
    """Sample standard deviation across seeds (NaN with fewer than two finite values)."""
    boot_half: float
    """Mean half-width of the seeds' bootstrap intervals (NaN without intervals)."""


def shown(metric: str) -> bool:
    """Whether ``metric`` is in the spread table (:data:`SPREAD_METRICS`, :data:`SPREAD_KS`).

    >>> shown("edit_accuracy_io_k2"), shown("edit_accuracy_io_k32"), shown("necessity")
    (True, False, True)
    """
    parsed = parse_metric(metric)
    if parsed is None or parsed[0] not in SPREAD_METRICS:
        return False
    return parsed[2] is None or parsed[2] in SPREAD_KS


def spread(
    metrics: Sequence[dict[str, float]], intervals: Sequence[dict[str, Sequence[float]]]
) -> dict[str, Spread]:
    """Metric -> its :class:`Spread` over the seeds' ``metrics`` and ``intervals`` (one dict per
    seed, as in a run record), for the metrics every seed has and :func:`shown` keeps.

    >>> s = spread([{"l0": 2.0}, {"l0": 4.0}], [{"l0": [1.5, 2.5]}, {"l0": [3.0, 5.0]}])
    >>> s["l0"].mean, round(s["l0"].sd, 4), s["l0"].boot_half
    (3.0, 1.4142, 0.75)
    """
    out = {}
    for metric in metrics[0]:
        if not shown(metric) or not all(metric in m for m in metrics):
            continue
        values = [float(m[metric]) for m in metrics]
        finite = [v for v in values if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        sd = (
            math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
            if len(finite) > 1
            else math.nan
        )
        halves = [
            (float(i[metric][1]) - float(i[metric][0])) / 2
            for i in intervals
            if metric in i and all(math.isfinite(float(x)) for x in i[metric])
        ]
        boot_half = sum(halves) / len(halves) if halves else math.nan
        out[metric] = Spread(values, mean, sd, boot_half)
    return out


def render(name: str, seeds: Sequence[int], spreads: dict[str, Spread]) -> str:
    """The spread table of one SAE: per metric the value at each seed, the mean, the sd across
    seeds and the bootstrap ± (half-width), in the order the run reports them."""
    width = max([len(m) for m in spreads] + [6])
    head = f"{'metric':<{width}}" + "".join(f"{f'seed {s}':>10}" for s in seeds)
    head += f"{'mean':>10}{'sd seeds':>10}{'boot ±':>10}"
    lines = [f"spread across seeds {', '.join(map(str, seeds))}: {name}", head]
    for metric, item in spreads.items():
        cells = "".join(f"{v:>10.3f}" for v in item.values)
        lines.append(
            f"{metric:<{width}}{cells}{item.mean:>10.3f}{item.sd:>10.3f}{item.boot_half:>10.3f}"
        )
    lines.append(
        "sd seeds: standard deviation across seeds (each seed draws new prompts, counterfactuals"
        "\nand coverage prompts); boot ±: mean half-width of the seeds' 95% bootstrap intervals"
        "\n(≈ 1.96 sd when one run's interval tells the whole story)"
    )
    return "\n".join(lines)
