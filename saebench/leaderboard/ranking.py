"""Fair rankings of leaderboard rows (docs/metrics.md §11): which rows may be ranked together
(same evaluation settings), which neighbours in a ranking are distinguishable (tie marks), and
which rows are on the L0-vs-metric Pareto frontier of their node.

**Settings groups.** A metric depends on settings that say nothing about the SAE (the prompt
count changes F1 coverage, the fitting prompts the supervised reference, the seed the prompts,
``coverage_min_prompts`` which values count, the task version or protocol what is measured),
so ``leaderboard show --sort`` ranks each group of :data:`RANKING_SETTINGS` separately, each
under a header naming its settings (:func:`settings_groups`).

**Ties.** In a ranking by metric M, row i is *tied* with the row above it (i − 1) when their
difference is not distinguishable from zero at the 5% level:

- *paired* (:func:`paired_tie`), when both rows' per-prompt outcomes are available (run JSONs
  with their ``.outcomes.npz``, ``--outcomes DIR``) and were computed on the same prompts: the
  paired bootstrap of :mod:`saebench.stats.compare` (one set of replicate indices for both rows;
  tie when the 95% percentile interval of M*_i − M*_{i−1} contains 0);
- otherwise from the two rows' 95% intervals (:func:`interval_tie`): each interval's half
  width h gives a standard error h ÷ 1.96, and the rows tie when
  |M_i − M_{i−1}| < 1.96 · √(se_i² + se_{i−1}²). This ignores the correlation between two
  rows scored on the same prompts (positive for rows at one node, so the paired test is the
  sharper one) and is conservative there: it marks more ties, never fewer, than a paired test
  of equally correlated rows would.

A row without an interval for M (written before intervals) gets no mark either way (``?``).

**Frontier.** At one node, a row is on the L0-vs-M Pareto frontier when no other row of the
node has L0 no larger and M no worse, one of them strictly (:func:`pareto_front`); "worse" is
lower, except for metrics where lower is better (:data:`LOWER_IS_BETTER`) and sufficiency,
best at 1, where it is farther from 1 (:data:`BEST_AT_ONE`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from saebench.leaderboard.schema import SETTINGS_COLUMNS, parse_metric
from saebench.leaderboard.table import NODE_COLUMNS, format_number

Z95 = 1.959963984540054
"""The standard normal's 97.5% quantile: a 95% interval is ± Z95 standard errors."""

RANKING_SETTINGS: tuple[str, ...] = tuple(c for c in SETTINGS_COLUMNS if c != "ks")
"""Settings whose difference makes two rows' metrics incomparable: every settings column
except ``ks`` (the edit sizes run; the value at one k does not depend on the others)."""

TIE = "≈"
"""Mark of a row not distinguishable from the row above it in a ranking."""
UNKNOWN = "?"
"""Mark of a row that cannot be compared with the row above (no interval, no outcomes)."""

LOWER_IS_BETTER: tuple[str, ...] = (
    "l0",
    "fvu",
    "sup_fvu",
    "dead_fraction",
    "edit_distance",
    "aware_edit_distance",
    "edit_magnitude",
    "aware_edit_magnitude",
)
"""Metrics (by name, any attribute and k) where lower is better; higher is better for the rest."""


def lower_is_better(column: str) -> bool:
    """Whether lower values of ``column`` are better (:data:`LOWER_IS_BETTER`).

    >>> lower_is_better("fvu"), lower_is_better("edit_distance_io_k2"), lower_is_better("necessity")
    (True, True, False)
    """
    parsed = parse_metric(column)
    return parsed is not None and parsed[0] in LOWER_IS_BETTER


BEST_AT_ONE: tuple[str, ...] = ("sufficiency", "sup_sufficiency")
"""Metrics best at 1 that can exceed it (a reconstruction that raises the task metric is not
better than the model): the frontier ranks them by closeness to 1, −|M − 1|."""


def on_frontier(l0: Sequence[float], values: Sequence[float], column: str) -> list[bool]:
    """:func:`pareto_front` of ``column``'s values in its own sense of better
    (:data:`LOWER_IS_BETTER`, :data:`BEST_AT_ONE`, else higher).

    >>> on_frontier([1, 2, 3], [0.9, 1.2, 0.95], "sufficiency")  # 1.2 is 0.2 off, 0.95 0.05
    [True, False, True]
    """
    if column in BEST_AT_ONE:
        return pareto_front(l0, [-abs(float(v) - 1.0) for v in values])
    return pareto_front(l0, values, lower_is_better(column))


def _setting_text(value: object) -> str:
    text = format_number(value) if not isinstance(value, str) else value
    return text


def settings_groups(frame: pd.DataFrame) -> list[tuple[dict[str, str], pd.DataFrame]]:
    """The rows of each distinct combination of :data:`RANKING_SETTINGS` (those present),
    largest group first; each with the settings as text (missing: '')."""
    columns = [c for c in RANKING_SETTINGS if c in frame.columns]
    if not columns or frame.empty:
        return [({}, frame)] if not frame.empty else []
    keys = [tuple(_setting_text(v) for v in row) for row in frame[columns].itertuples(index=False)]
    groups: dict[tuple, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key, []).append(position)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(dict(zip(columns, key, strict=True)), frame.iloc[rows]) for key, rows in ordered]


def differing_settings(groups: Sequence[tuple[dict[str, str], pd.DataFrame]]) -> list[str]:
    """The settings columns whose value differs between ``groups``."""
    if not groups:
        return []
    columns = list(groups[0][0])
    return [c for c in columns if len({g[0].get(c, "") for g in groups}) > 1]


def group_header(settings: Mapping[str, str], differing: Sequence[str], n_rows: int) -> str:
    """One line naming a settings group and how to show it alone.

    >>> group_header({"n_prompts": "300", "seed": "0"}, ["n_prompts"], 2)
    '== 2 row(s) with n_prompts=300 (seed=0); only these: --filter "n_prompts == 300" =='
    """
    named = ", ".join(f"{c}={settings[c] or '(empty)'}" for c in differing)
    same = ", ".join(f"{c}={v}" for c, v in settings.items() if c not in differing and v)
    query = " and ".join(_query_term(c, settings[c]) for c in differing)
    return (
        f"== {n_rows} row(s) with {named}" + (f" ({same})" if same else "")
        + f'; only these: --filter "{query}" =='
    )


def _query_term(column: str, value: str) -> str:
    if value == "":
        return f"{column}.isna()"
    try:
        float(value)
    except ValueError:
        return f"{column} == '{value}'"
    return f"{column} == {value}"


def interval_tie(
    a: float, a_lo: float, a_hi: float, b: float, b_lo: float, b_hi: float
) -> bool | None:
    """Whether two values with 95% intervals are not distinguishable (module docstring);
    None when a value or an interval is missing.

    >>> interval_tie(0.60, 0.57, 0.63, 0.55, 0.52, 0.58)   # 0.05 apart, se ≈ 0.015 each
    False
    >>> interval_tie(0.60, 0.57, 0.63, 0.58, 0.55, 0.61)   # 0.02 apart
    True
    """
    values = (a, a_lo, a_hi, b, b_lo, b_hi)
    if any(v is None or pd.isna(v) for v in values):
        return None
    se_a, se_b = (float(a_hi) - float(a_lo)) / (2 * Z95), (float(b_hi) - float(b_lo)) / (2 * Z95)
    se = math.hypot(se_a, se_b)
    diff = abs(float(a) - float(b))
    if se == 0:
        return diff == 0
    return diff < Z95 * se


def paired_tie(outcomes_a, outcomes_b, meta: dict, metric: str, n_bootstrap: int = 500,
               seed: int = 0) -> bool | None:
    """Whether ``metric`` of two runs on the same prompts is not distinguishable by the paired
    bootstrap (:func:`saebench.stats.compare.compare`); None when the metric is undefined."""
    from saebench.stats.compare import compare

    needs_active = metric.startswith(
        ("f1_", "latents_per_value", "dead_fraction")
    )
    if not needs_active:  # the F1 metrics are the costly part; skip them when not asked
        skip = ("active", "cov_active")
        outcomes_a = {k: v for k, v in outcomes_a.items() if k not in skip}
        outcomes_b = {k: v for k, v in outcomes_b.items() if k not in skip}
    diffs = compare(outcomes_a, outcomes_b, meta, n_bootstrap=n_bootstrap, seed=seed,
                    metrics=[metric])
    if not diffs or not math.isfinite(diffs[0].lo):
        return None
    return not diffs[0].significant


def row_key(row: Mapping) -> tuple[str, ...]:
    """A row's identity and ranking settings as text: what links it to a run's outcomes."""
    from saebench.leaderboard.schema import IDENTITY_COLUMNS

    return tuple(_setting_text(row.get(c, "")) for c in (*IDENTITY_COLUMNS, *RANKING_SETTINGS))


def find_outcomes(directory: str | Path) -> dict[tuple[str, ...], Path]:
    """Run JSONs under ``directory`` (recursively) that have an ``.outcomes.npz`` beside them,
    by :func:`row_key` of the row each run wrote."""
    import json

    from saebench.leaderboard.schema import legacy_settings
    from saebench.stats import bootstrap

    found: dict[tuple[str, ...], Path] = {}
    for path in sorted(Path(directory).rglob("*.json")):
        sidecar = bootstrap.sidecar_path(path)
        if not sidecar.exists():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or "identity" not in record:
            continue
        cells = {**record.get("provenance", {}), **record["identity"]}
        cells = {k: "" if v is None else str(v) for k, v in cells.items()}
        cells.update(legacy_settings(cells))
        for column in ("n_prompts", "n_fit_prompts", "seed", "coverage_min_prompts",
                       "coverage_prompts"):
            if cells.get(column):
                cells[column] = str(int(float(cells[column])))
        if cells.get("tau"):
            cells["tau"] = format_number(float(cells["tau"]))
        if cells.get("head"):
            cells["head"] = str(int(float(cells["head"])))
        found[row_key(cells)] = sidecar
    return found


def tie_marks(
    frame: pd.DataFrame,
    column: str,
    outcomes: Mapping[tuple[str, ...], Path] | None = None,
    n_bootstrap: int = 500,
) -> tuple[list[str], int]:
    """Per row of the (already sorted) ``frame``: :data:`TIE` when it is not distinguishable
    from the row above in ``column``, '' when it is, :data:`UNKNOWN` when that cannot be
    said; the first row gets ''. Also the number of pairs decided by the paired test."""
    from saebench.stats import bootstrap
    from saebench.stats.compare import check_paired

    cache: dict[Path, tuple] = {}

    def load(path: Path):
        if path not in cache:
            cache[path] = bootstrap.load(path)
        return cache[path]

    records = [row for _, row in frame.iterrows()]
    marks, n_paired = [""], 0
    for above, row in zip(records, records[1:], strict=False):
        tie = None
        if outcomes:
            path_a, path_b = outcomes.get(row_key(above)), outcomes.get(row_key(row))
            if path_a is not None and path_b is not None:
                (out_a, meta_a), (out_b, meta_b) = load(path_a), load(path_b)
                try:
                    check_paired(meta_a, meta_b)
                    tie = paired_tie(out_a, out_b, meta_a, column, n_bootstrap,
                                     seed=int(meta_a.get("seed") or 0)
                                     + bootstrap.BOOTSTRAP_SEED_OFFSET)
                    n_paired += tie is not None
                except ValueError:
                    tie = None
        if tie is None:
            lo, hi = f"{column}_lo", f"{column}_hi"
            if lo in frame.columns and hi in frame.columns:
                tie = interval_tie(above[column], above[lo], above[hi],
                                   row[column], row[lo], row[hi])
        marks.append(UNKNOWN if tie is None else TIE if tie else "")
    return marks, n_paired


def pareto_front(l0: Sequence[float], values: Sequence[float], lower_better: bool = False
                 ) -> list[bool]:
    """Which points are on the Pareto frontier of low L0 and good value: no other point has
    L0 ≤ and value at least as good, with one strictly better. NaN points are never on it.

    >>> pareto_front([1, 2, 3, 4, 2], [0.5, 0.7, 0.6, 0.9, 0.7])
    [True, True, False, True, True]
    >>> pareto_front([1, 2, 3], [0.4, 0.5, 0.3], lower_better=True)
    [True, False, True]
    """
    sign = -1.0 if lower_better else 1.0
    points = [(float(x), sign * float(y)) for x, y in zip(l0, values, strict=True)]
    out = []
    for i, (x, y) in enumerate(points):
        if math.isnan(x) or math.isnan(y):
            out.append(False)
            continue
        dominated = any(
            j != i and not (math.isnan(x2) or math.isnan(y2))
            and x2 <= x and y2 >= y and (x2 < x or y2 > y)
            for j, (x2, y2) in enumerate(points)
        )
        out.append(not dominated)
    return out


def frontier_rows(frame: pd.DataFrame, column: str, exclude_supervised: bool = True
                  ) -> pd.DataFrame:
    """The rows on the L0-vs-``column`` Pareto frontier of their node (and settings group),
    in the frame's order. Supervised dictionaries (references, not sparse codes) are left out
    unless ``exclude_supervised`` is False."""
    from saebench.leaderboard.schema import SUPERVISED_ARCHITECTURES

    if column not in frame.columns or "l0" not in frame.columns:
        raise KeyError(column if column not in frame.columns else "l0")
    rows = frame
    if exclude_supervised and "architecture" in frame.columns:
        rows = frame[~frame["architecture"].isin(SUPERVISED_ARCHITECTURES)]
    keys = [c for c in (*NODE_COLUMNS, *RANKING_SETTINGS) if c in rows.columns]
    keep = pd.Series(False, index=rows.index)
    for _, group in rows.groupby(keys, dropna=False, sort=False) if keys else [(None, rows)]:
        on = on_frontier(group["l0"].astype(float).tolist(), group[column].astype(float).tolist(),
                         column)
        keep.loc[group.index] = on
    return frame.loc[keep[keep].index]
