"""Sparsity-matched views: L0 against a metric with the Pareto frontier drawn (metrics.md §11).

SAEs are scored at whatever L0 they have, and most metrics improve with L0, so a ranking by a
metric alone mostly ranks by density. These figures put each dictionary at its L0 and draw the
node's L0-vs-metric Pareto frontier (:func:`saebench.leaderboard.ranking.pareto_front`): the
dictionaries no other beats at equal or lower L0.

1. :func:`plot_pareto_fidelity`: one row per node, L0 against sufficiency and necessity.
2. :func:`plot_pareto_edit_accuracy`: one row per node and k ∈ :data:`PARETO_KS` (those the
   rows have), one panel per attribute, L0 against the interpretation-agnostic edit accuracy
   at that k, with the supervised edit (dashed) and no intervention (dotted) as in the
   edit-vs-k figure.

Frontier points are drawn large with a black edge and joined by a black staircase
(``gid`` :data:`FRONTIER_GID`), other dictionaries small and faded; error bars are the 95%
intervals. Supervised dictionaries are references (dashed lines), not on the frontier.
Panels where the attribute is not (surely) causal are grey (hatched when borderline) and draw
no frontier, nor does a sufficiency panel where mean ablation does not lower the task metric.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from saebench.leaderboard.plots import (
    _SUPERVISED_COLOUR,
    SUPERVISED_GID,
    _bounds,
    _distinct,
    _empty_figure,
    _error_bars,
    _families,
    _family_handles,
    _grey_if_not_causal,
    _is_supervised,
    _legend,
    _new_figure,
    _suptitle,
    arch_colour,
    log_l0_axis,
    node_width,
    source_style,
    uninformative_sufficiency,
)
from saebench.leaderboard.ranking import on_frontier
from saebench.leaderboard.schema import attributes_in, ks_in
from saebench.leaderboard.table import node_groups, not_causal

PARETO_KS: tuple[int, ...] = (2, 4, 6)
"""The paper's small edit budgets; the figure uses those the rows have."""
FRONTIER_GID = "pareto_frontier"
"""``gid`` of the frontier staircase and of the frontier points."""


def _draw_pareto(axis, rows: pd.DataFrame, metric: str, frontier: bool = True) -> list[int]:
    """Every non-supervised row of one node at (L0, ``metric``), the frontier highlighted and
    joined; returns the frame indices of the frontier rows."""
    points = rows[~_is_supervised(rows) & rows["l0"].notna() & rows[metric].notna()]
    on = (
        on_frontier(points["l0"].tolist(), points[metric].tolist(), metric)
        if frontier and len(points)
        else [False] * len(points)
    )
    on_index = [index for index, flag in zip(points.index, on, strict=True) if flag]
    for (arch, source), group in _families(points):
        marker, _ = source_style(source)
        colour = arch_colour(arch)
        front = group[group.index.isin(on_index)]
        rest = group[~group.index.isin(on_index)]
        axis.scatter(
            rest["l0"], rest[metric], marker=marker, color=colour, s=22, alpha=0.45,
            linewidths=0, zorder=3,
        )  # fmt: skip
        if len(front):
            _error_bars(axis, front["l0"], front[metric], None, _bounds(front, metric), colour)
            axis.scatter(
                front["l0"], front[metric], marker=marker, color=colour, s=60,
                edgecolors="black", linewidths=1.0, zorder=4, gid=FRONTIER_GID,
            )  # fmt: skip
    if len(on_index) > 1:
        front = points.loc[on_index].sort_values("l0", kind="stable")
        axis.plot(
            front["l0"], front[metric], color="black", linewidth=1.0, drawstyle="steps-post",
            alpha=0.8, zorder=3, gid=FRONTIER_GID,
        )  # fmt: skip
    log_l0_axis(axis, points["l0"])
    axis.set_xlabel("L0 (mean active latents)", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.grid(alpha=0.3)
    return on_index


def _reference(axis, rows: pd.DataFrame, column: str, colour: str, style: str) -> None:
    if column in rows.columns:
        for value in _distinct(rows[column]):
            axis.axhline(value, color=colour, linestyle=style, linewidth=1.3, gid=SUPERVISED_GID)


def _handles(frame: pd.DataFrame, extra: list) -> list:
    handles = _family_handles(frame, lines=False)
    handles.append(
        Line2D([], [], color="black", marker="o", markerfacecolor="white", linewidth=1.0,
               label="Pareto frontier (large, black edge;\nbars: 95% intervals)")
    )  # fmt: skip
    return handles + extra


def plot_pareto_fidelity(frame: pd.DataFrame) -> Figure:
    """L0 against sufficiency and necessity per node, with the Pareto frontier."""
    title = "Sparsity-matched fidelity: L0 vs sufficiency and necessity, Pareto frontier per node"
    metrics = [m for m in ("sufficiency", "necessity") if m in frame.columns]
    if "l0" not in frame.columns or not metrics:
        return _empty_figure(title, "no rows with l0 and sufficiency/necessity")
    groups = node_groups(frame)
    figure, axes = _new_figure(len(groups), len(metrics), 3.9, 3.0)
    for row_axes, (node, rows) in zip(axes, groups, strict=True):
        uninformative = uninformative_sufficiency(rows)
        for axis, metric in zip(row_axes, metrics, strict=True):
            skip = metric == "sufficiency" and uninformative
            heading = (
                "sufficiency: UNINFORMATIVE here, no frontier\n(mean ablation does not lower "
                "the metric)" if skip else f"{metric} (1 = best" + (
                    "; frontier by |1 − sufficiency|)" if metric == "sufficiency" else ")"
                )
            )
            axis.set_title(f"{node}\n{heading}", fontsize=8)
            axis.set_ylabel(metric, fontsize=8)
            _draw_pareto(axis, rows, metric, frontier=not skip)
            _reference(axis, rows, f"sup_{metric}", _SUPERVISED_COLOUR, "--")
    _suptitle(figure, title)
    extra = [Line2D([], [], color=_SUPERVISED_COLOUR, linestyle="--",
                    label="supervised dictionary")]  # fmt: skip
    _legend(figure, _handles(frame, extra), "architecture / data source")
    return figure


def plot_pareto_edit_accuracy(frame: pd.DataFrame) -> Figure:
    """L0 against the interpretation-agnostic edit accuracy at k ∈ :data:`PARETO_KS`, one row
    per node and k, one panel per attribute, with the Pareto frontier."""
    title = "Sparsity-matched editing: L0 vs edit accuracy at small k, Pareto frontier per node"
    ks = [k for k in PARETO_KS if k in ks_in(frame.columns)]
    attributes = [
        a for a in attributes_in(frame.columns)
        if any(f"edit_accuracy_{a}_k{k}" in frame.columns for k in ks)
    ]  # fmt: skip
    if "l0" not in frame.columns or not ks or not attributes:
        return _empty_figure(title, f"no rows with l0 and edit accuracy at k in {PARETO_KS}")
    groups = node_groups(frame)
    figure, axes = _new_figure(len(groups) * len(ks), len(attributes), 3.6, 2.7)
    row = 0
    for node, rows in groups:
        width = node_width(rows)
        for k in ks:
            for axis, attribute in zip(axes[row], attributes, strict=True):
                column = f"edit_accuracy_{attribute}_k{k}"
                sparse = "" if width is None or k < width / 4 else f", NOT sparse (D = {width})"
                axis.set_title(f"{node}\nattribute {attribute}, k = {k}{sparse}", fontsize=8)
                axis.set_ylabel(f"edit accuracy k={k}", fontsize=8)
                if column not in rows.columns:
                    continue
                masked = all(not_causal(r, attribute) for _, r in rows.iterrows())
                _draw_pareto(axis, rows, column, frontier=not masked)
                _reference(axis, rows, f"sup_edit_accuracy_{attribute}", _SUPERVISED_COLOUR, "--")
                _reference(axis, rows, f"noint_accuracy_{attribute}", "dimgrey", ":")
                axis.set_ylim(-0.03, 1.05)
                _grey_if_not_causal(axis, rows, attribute)
            row += 1
    missing = sorted(set(PARETO_KS) - set(ks))
    note = f" (k = {', '.join(map(str, missing))} not in these rows' ks)" if missing else ""
    _suptitle(figure, title + note)
    extra = [
        Line2D([], [], color=_SUPERVISED_COLOUR, linestyle="--", label="supervised edit"),
        Line2D([], [], color="dimgrey", linestyle=":", label="no intervention"),
    ]
    _legend(figure, _handles(frame, extra), "architecture / data source")
    return figure


def frontier_points(rows: pd.DataFrame, metric: str) -> np.ndarray:
    """(L0, metric) of the non-supervised rows on the frontier, sorted by L0 (for tests)."""
    points = rows[~_is_supervised(rows) & rows["l0"].notna() & rows[metric].notna()]
    on = on_frontier(points["l0"].tolist(), points[metric].tolist(), metric)
    front = points[on].sort_values("l0")
    return front[["l0", metric]].to_numpy(dtype=float)
