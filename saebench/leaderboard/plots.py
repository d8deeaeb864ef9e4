"""The leaderboard figures, drawn with matplotlib's Agg canvas (no display needed).

1. :func:`plot_l0_vs_fidelity`: L0 against sufficiency, necessity and FVU (metrics.md §4);
   the supervised dictionary's value at the node (``sup_sufficiency``, ``sup_necessity``,
   ``sup_fvu``) is a dashed horizontal line.
2. :func:`plot_edit_accuracy_vs_k` and :func:`plot_edit_magnitude_vs_k`: the paper's main
   figure kind (metrics.md §5). Edit accuracy (edit magnitude) against k, one line per SAE
   family, for the interpretation-agnostic and the interpretation-aware edit, next to the
   supervised edit (the skyline) and no intervention (the floor).
3. :func:`plot_edit_accuracy_vs_magnitude`: per attribute, each SAE's edit accuracy against
   edit magnitude at every k, solid for interpretation-agnostic and dashed for
   interpretation-aware edits; the supervised edit is a star, no intervention a dotted line.
4. :func:`plot_interpretability_coverage`: per node and attribute, each SAE's
   ``f1_coverage_{a}`` (bars), its ``f1_mean_best_{a}`` (dots) and τ (metrics.md §6).
5. The sparsity-matched Pareto views (:mod:`saebench.leaderboard.pareto`).

Uncertainty (metrics.md §11): points get error bars and the bold line of each family, the
skyline and the floor of the edit-vs-k figures get bands from the CSV's ``{metric}_lo`` /
``{metric}_hi`` columns (``gid`` :data:`INTERVAL_GID`); edit-vs-k panels shade k ≥ D/4, D the
node's width (``d_in``), as "not sparse" (:data:`NOT_SPARSE_GID`); where the node's
``sufficiency_uninformative`` is 1 the sufficiency panel says so and draws hollow points.

One visual code runs through all of them. An SAE **family** is an (architecture, data source)
pair, the SAEs of one sweep over L1 or k: its colour is the architecture's, its marker and line
style the data source's (task: circles, solid; general: squares, dashed; none: diamonds,
dash-dotted; dotted is kept for no intervention), and lines join a sweep's points. The
supervised dictionaries are black, each with its own marker (mean: star, least squares: X).
Panels where an attribute is not causal at the node (the interval of ``noint_accuracy_{a}``
above 0.5, :func:`saebench.leaderboard.table.not_causal`) are grey and say "not causal here":
there no edit can be told apart from doing nothing; borderline ones (the interval contains
0.5) are grey and hatched.

Figures have one row of panels per node (model, task, hook, head, position) unless said
otherwise. Functions return the :class:`~matplotlib.figure.Figure` so tests can inspect what
was drawn; artists that tests look for carry a ``gid`` (:data:`SUPERVISED_GID`,
:data:`NO_INTERVENTION_GID`, :func:`family_gid`, :data:`SWEEP_MEMBER_GID`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter, NullLocator

from saebench.leaderboard.schema import (
    ARCHITECTURES,
    LEGACY_TAU,
    SUPERVISED_ARCHITECTURES,
    attributes_in,
    ks_in,
)
from saebench.leaderboard.table import causal_status, node_groups, not_causal

PLOT_FILES: dict[str, str] = {
    "edit_accuracy_vs_k": "edit_accuracy_vs_k.png",
    "edit_magnitude_vs_k": "edit_magnitude_vs_k.png",
    "l0_vs_fidelity": "l0_vs_fidelity.png",
    "edit_accuracy_vs_magnitude": "edit_accuracy_vs_magnitude.png",
    "interpretability_coverage": "interpretability_coverage.png",
    "pareto_fidelity": "pareto_fidelity.png",
    "pareto_edit_accuracy": "pareto_edit_accuracy.png",
}
"""Plot kind -> file name written by :func:`write_plots` (the README embeds them in this
order)."""

SUPERVISED_GID = "supervised_reference"
"""``gid`` of every artist that draws a supervised reference (line or star): the skyline."""
NO_INTERVENTION_GID = "no_intervention"
"""``gid`` of the no-intervention line (``noint_accuracy_{a}``): the floor."""
SWEEP_MEMBER_GID = "sweep_member"
"""``gid`` of the thin line of an SAE that is not its family's highlighted one."""
SWEEP_LINE_GID = "sweep_line"
"""``gid`` of the line joining one family's points in :func:`plot_l0_vs_fidelity`."""

DPI = 120

_ARCH_COLOURS = {
    "standard": "tab:blue",
    "topk": "tab:orange",
    "gated": "tab:green",
    "batchtopk": "tab:red",
    "jumprelu": "tab:purple",
    "frozen_decoder": "tab:brown",
    "pca": "tab:pink",
    "random": "tab:gray",
}
_SPARE_COLOURS = ("tab:olive", "tab:cyan", "#393b79", "#8c6d31", "#d6616b", "#7b4173")
_SOURCE_STYLES: dict[str, tuple[str, str]] = {
    "task": ("o", "-"),
    "general": ("s", "--"),
    "": ("D", "-."),
}
_SPARE_SOURCE_STYLES: tuple[tuple[str, object], ...] = (
    ("^", (0, (3, 1, 1, 1, 1, 1))),
    ("v", (0, (5, 1, 1, 1, 1, 1))),
    ("P", (0, (8, 2))),
)
_SUPERVISED_MARKERS = {"supervised_mean": "*", "supervised_lstsq": "X"}
_SUPERVISED_COLOUR = "black"
_NOT_CAUSAL_FACE = "#e6e6e6"


def _spare(name: str, options: tuple):
    return options[sum(map(ord, name)) % len(options)]


def arch_colour(architecture: str) -> str:
    """The colour of an architecture (black for a supervised dictionary).

    >>> arch_colour("topk"), arch_colour("supervised_mean")
    ('tab:orange', 'black')
    """
    if architecture in SUPERVISED_ARCHITECTURES:
        return _SUPERVISED_COLOUR
    return _ARCH_COLOURS.get(architecture) or _spare(architecture, _SPARE_COLOURS)


def source_style(source: str) -> tuple[str, object]:
    """(marker, line style) of a data source: task circles and solid lines, general squares
    and dashed lines, no data source diamonds and dash-dotted lines.

    >>> source_style("task"), source_style("general")
    (('o', '-'), ('s', '--'))
    """
    return _SOURCE_STYLES.get(source) or _spare(source, _SPARE_SOURCE_STYLES)


def supervised_marker(architecture: str) -> str:
    """Marker of a supervised dictionary's own row: mean a star, least squares an X."""
    return _SUPERVISED_MARKERS.get(architecture, "P")


def family_gid(architecture: str, source: str) -> str:
    """``gid`` of the line drawn for an SAE family (architecture, data source)."""
    return f"family:{architecture}/{source}"


def _family_label(architecture: str, source: str) -> str:
    return f"{architecture} / {source or 'no data source'}"


def _new_figure(n_rows: int, n_cols: int, panel_w: float, panel_h: float) -> tuple[Figure, list]:
    figure = Figure(figsize=(panel_w * n_cols + 2.5, panel_h * n_rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    return figure, [list(row) for row in axes]


def log_l0_axis(axis, l0: pd.Series) -> None:
    """A log L0 axis with plain tick labels where the positive L0s span more than 20×."""
    l0 = l0[l0 > 0]
    if len(l0) and l0.max() / l0.min() > 20:
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(NullFormatter())  # no crowded minor labels


def _suptitle(figure: Figure, text: str) -> None:
    """The figure's title, left-aligned so that it never runs into the legend on the right."""
    figure.suptitle(text, x=0.02, ha="left", fontsize=11)


def _empty_figure(title: str, reason: str) -> Figure:
    figure, axes = _new_figure(1, 1, 6.0, 3.0)
    axes[0][0].axis("off")
    axes[0][0].text(0.5, 0.5, reason, ha="center", va="center", wrap=True)
    _suptitle(figure, title)
    return figure


def _distinct(values: pd.Series) -> list[float]:
    """Distinct finite values (rounded to 1e-9) in order of first appearance."""
    seen: dict[float, float] = {}
    for value in pd.to_numeric(values, errors="coerce").dropna():
        seen.setdefault(round(float(value), 9), float(value))
    return list(seen.values())


def _is_supervised(frame: pd.DataFrame) -> pd.Series:
    if "architecture" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["architecture"].isin(SUPERVISED_ARCHITECTURES)


def _text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as text, or a column of '' when absent."""
    if column not in frame.columns:
        return pd.Series("", index=frame.index, name=column)
    return frame[column].fillna("").astype(str)


def _sae_label(row: pd.Series) -> str:
    return str(row.get("sae_name", "") or row.get("sae_id", "") or "?")


def _arch_order(architecture: str) -> tuple[int, str]:
    if architecture in SUPERVISED_ARCHITECTURES:  # the references go last
        return 100 + SUPERVISED_ARCHITECTURES.index(architecture), architecture
    known = ARCHITECTURES.index(architecture) if architecture in ARCHITECTURES else 99
    return known, architecture


def _families(rows: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """The SAE families among ``rows`` (supervised rows left out): ((architecture, data
    source), their rows sorted by name), architectures in schema order."""
    saes = rows[~_is_supervised(rows)]
    keys = pd.DataFrame(
        {"a": _text_column(saes, "architecture"), "s": _text_column(saes, "data_source")}
    )
    found = []
    for (arch, source), group in saes.groupby([keys["a"], keys["s"]], sort=False):
        if "sae_name" in group.columns:
            group = group.sort_values("sae_name", kind="stable")
        found.append(((str(arch), str(source)), group))
    return sorted(found, key=lambda item: (_arch_order(item[0][0]), item[0][1]))


def _supervised_rows(rows: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    picked = rows[_is_supervised(rows)]
    return sorted(
        ((str(row["architecture"]), row) for _, row in picked.iterrows()), key=lambda p: p[0]
    )


def _family_handles(frame: pd.DataFrame, *, lines: bool) -> list[Line2D]:
    """Legend entries: one per SAE family, then one per supervised dictionary."""
    handles = []
    for (arch, source), _ in _families(frame):
        marker, style = source_style(source)
        handles.append(
            Line2D(
                [], [], color=arch_colour(arch), marker=marker, markersize=6,
                linestyle=style if lines else "none", linewidth=1.6,
                markeredgecolor="black" if not lines else arch_colour(arch),
                label=_family_label(arch, source),
            )
        )  # fmt: skip
    for arch in sorted(set(_text_column(frame, "architecture")) & set(SUPERVISED_ARCHITECTURES)):
        handles.append(
            Line2D(
                [], [], color=_SUPERVISED_COLOUR, marker=supervised_marker(arch), markersize=9,
                linestyle="-" if lines else "none", linewidth=1.0, label=f"{arch} (its own row)",
            )
        )  # fmt: skip
    return handles


def _legend(figure: Figure, handles: list, title: str | None = None) -> None:
    if handles:
        figure.legend(
            handles=handles, loc="outside right upper", fontsize=8, title=title,
            title_fontsize=8,
        )  # fmt: skip


def _grey_if_not_causal(axis, rows: pd.DataFrame, attribute: str) -> bool:
    """Grey ``axis`` and say "not causal here" when ``attribute`` is not causal at the node
    for every row (:func:`~saebench.leaderboard.table.not_causal`); whether it did. Where
    the cut is borderline (the interval of ``noint_accuracy_{a}`` contains 0.5) the panel is
    also hatched (``gid`` :data:`BORDERLINE_GID`) and says "borderline"."""
    from matplotlib.patches import Rectangle

    if rows.empty or not all(not_causal(row, attribute) for _, row in rows.iterrows()):
        return False
    axis.set_facecolor(_NOT_CAUSAL_FACE)
    for artist in [*axis.lines, *axis.collections]:  # fade the data: it says nothing here
        artist.set_alpha(0.25 * (artist.get_alpha() or 1.0))
    noint = _distinct(rows[f"noint_accuracy_{attribute}"])
    borderline = any(causal_status(row, attribute) == "borderline" for _, row in rows.iterrows())
    if borderline:
        first = rows.iloc[0]
        lo, hi = first.get(f"noint_accuracy_{attribute}_lo"), first.get(
            f"noint_accuracy_{attribute}_hi"
        )
        text = (
            f"borderline: no-intervention accuracy\n{noint[0]:.2f} [{lo:.2f}, {hi:.2f}] "
            "contains 0.5"
        )
        axis.add_patch(
            Rectangle((0, 0), 1, 1, transform=axis.transAxes, fill=False, hatch="//",
                      edgecolor="#b0b0b0", linewidth=0, gid=BORDERLINE_GID, zorder=0)
        )  # fmt: skip
    else:
        text = f"not causal here\n(no-intervention accuracy {noint[0]:.2f})"
    axis.text(
        0.5, 0.5, text,
        transform=axis.transAxes, ha="center", va="center", fontsize=8 if borderline else 9,
        color="#444444", bbox={"facecolor": "white", "edgecolor": "#999999", "alpha": 0.85},
        zorder=10,
    )  # fmt: skip
    return True


BORDERLINE_GID = "borderline"
"""``gid`` of the hatching of a panel whose causal cut is borderline."""
NOT_SPARSE_GID = "not_sparse"
"""``gid`` of the shaded k ≥ width/4 region of an edit-vs-k panel."""
INTERVAL_GID = "interval"
"""``gid`` of error bars and bands drawn from the CSV's ``_lo``/``_hi`` columns."""


def _bounds(rows: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``{column}_lo`` and ``{column}_hi`` of ``rows`` as float arrays, or None."""
    lo, hi = f"{column}_lo", f"{column}_hi"
    if lo not in rows.columns or hi not in rows.columns:
        return None
    return (
        pd.to_numeric(rows[lo], errors="coerce").to_numpy(dtype=float),
        pd.to_numeric(rows[hi], errors="coerce").to_numpy(dtype=float),
    )


def _error_bars(axis, x, y, x_bounds, y_bounds, colour) -> None:
    """Error bars (95% intervals) around points; NaN bounds draw nothing."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def err(values, bounds):
        if bounds is None:
            return None
        lo, hi = bounds
        out = np.vstack([values - lo, hi - values])
        out[~np.isfinite(out)] = 0.0
        return np.clip(out, 0.0, None)

    xerr, yerr = err(x, x_bounds), err(y, y_bounds)
    if xerr is None and yerr is None:
        return
    axis.errorbar(
        x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, elinewidth=0.8, capsize=1.5,
        alpha=0.7, zorder=2, gid=INTERVAL_GID,
    )  # fmt: skip


def node_width(rows: pd.DataFrame) -> int | None:
    """The activation width D of the rows' node: the dictionaries' input width ``d_in`` (the
    supervised rows leave it empty), None when no row records it."""
    if "d_in" not in rows.columns:
        return None
    widths = pd.to_numeric(rows["d_in"], errors="coerce").dropna()
    return int(widths.max()) if len(widths) else None


def uninformative_sufficiency(rows: pd.DataFrame) -> bool:
    """Whether the rows' node flags sufficiency as uninformative (``sufficiency_uninformative``
    = 1: mean ablation does not lower the task metric there)."""
    if "sufficiency_uninformative" not in rows.columns:
        return False
    return bool((pd.to_numeric(rows["sufficiency_uninformative"], errors="coerce") == 1).any())


_METRIC_TITLES = {
    "sufficiency": "sufficiency (1 = best)",
    "necessity": "necessity (1 = best)",
    "fvu": "FVU (0 = best)",
}


def plot_l0_vs_fidelity(frame: pd.DataFrame) -> Figure:
    """L0 (x) against sufficiency, necessity and FVU (y), one row of three panels per node.

    Colour = architecture, marker = data source; a thin line joins each family's points in L0
    order (``gid`` :data:`SWEEP_LINE_GID`), so a sweep over L1 or k reads as one trade-off
    curve. Supervised-dictionary rows are black, mean a star and least squares an X; the
    node's ``sup_sufficiency`` / ``sup_necessity`` / ``sup_fvu`` (mean dictionary) is a dashed
    horizontal line (``gid`` :data:`SUPERVISED_GID`). Sufficiency and necessity are best at
    1, FVU at 0. L0 goes on a log axis when it spans more than 20x.
    """
    title = (
        "Sparsity vs fidelity (metrics.md §4): sufficiency (where informative) and necessity "
        "best at 1, FVU at 0; bars: 95% intervals (§11)"
    )
    metrics = ("sufficiency", "necessity", "fvu")
    if "l0" not in frame.columns or not any(m in frame.columns for m in metrics):
        return _empty_figure(title, "no rows with l0 and sufficiency/necessity/fvu")
    groups = node_groups(frame)
    figure, axes = _new_figure(len(groups), len(metrics), 3.8, 3.1)
    for row_axes, (node, rows) in zip(axes, groups, strict=True):
        uninformative = uninformative_sufficiency(rows)
        for axis, metric in zip(row_axes, metrics, strict=True):
            heading = _METRIC_TITLES[metric]
            if metric == "sufficiency" and uninformative:
                heading = (
                    "sufficiency: UNINFORMATIVE here\n(mean ablation does not lower the metric)"
                )
            axis.set_title(f"{node}\n{heading}", fontsize=9)
            axis.set_xlabel("L0 (mean active latents)")
            axis.set_ylabel(metric.upper() if metric == "fvu" else metric)
            if metric not in rows.columns:
                axis.text(0.5, 0.5, f"no {metric}", ha="center", transform=axis.transAxes)
                continue
            points = rows[rows["l0"].notna() & rows[metric].notna()]
            for (arch, source), group in _families(points):
                marker, style = source_style(source)
                colour = arch_colour(arch)
                group = group.sort_values("l0", kind="stable")
                if len(group) > 1:
                    axis.plot(
                        group["l0"], group[metric], color=colour, linestyle=style,
                        linewidth=0.9, alpha=0.7, gid=SWEEP_LINE_GID,
                    )  # fmt: skip
                _error_bars(axis, group["l0"], group[metric], _bounds(group, "l0"),
                            _bounds(group, metric), colour)
                hollow = metric == "sufficiency" and uninformative
                axis.scatter(
                    group["l0"], group[metric], marker=marker,
                    color="white" if hollow else colour, s=36, alpha=0.9,
                    edgecolors=colour if hollow else "black", linewidths=1.0 if hollow else 0.4,
                    label=_family_label(arch, source), zorder=3,
                )  # fmt: skip
            for arch, row in _supervised_rows(points):
                axis.scatter(
                    [row["l0"]], [row[metric]], marker=supervised_marker(arch),
                    s=150 if supervised_marker(arch) == "*" else 70, color=_SUPERVISED_COLOUR,
                    label=f"{arch} (dictionary row)", gid=SUPERVISED_GID, zorder=4,
                )  # fmt: skip
            reference = f"sup_{metric}"
            if reference in rows.columns:
                for index, value in enumerate(_distinct(rows[reference])):
                    axis.axhline(
                        value, color=_SUPERVISED_COLOUR, linestyle="--", linewidth=1.2,
                        label="supervised dictionary" if index == 0 else "_nolegend_",
                        gid=SUPERVISED_GID,
                    )  # fmt: skip
            log_l0_axis(axis, points["l0"])
            axis.grid(alpha=0.3)
    _suptitle(figure, title)
    handles = _family_handles(frame, lines=False)
    handles.append(
        Line2D([], [], color=_SUPERVISED_COLOUR, linestyle="--", label="supervised dictionary")
    )
    handles.append(Line2D([], [], color="grey", linewidth=0.9, label="line: one sweep, by L0"))
    _legend(figure, handles, "architecture / data source")
    return figure


def _series(row: pd.Series, column: str, ks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(k, value) of ``column`` (a template with ``{k}``) where the value is finite."""
    pairs = []
    for k in ks:
        value = pd.to_numeric(row.get(column.format(k=k)), errors="coerce")
        if value is not None and not pd.isna(value):
            pairs.append((k, float(value)))
    if not pairs:
        return np.array([]), np.array([])
    k_arr, y_arr = zip(*pairs, strict=True)
    return np.array(k_arr, dtype=float), np.array(y_arr, dtype=float)


def _at_ks(row: pd.Series, column: str, k_arr: np.ndarray) -> np.ndarray | None:
    """``column`` (a template with ``{k}``) of ``row`` at each k of ``k_arr`` (NaN where
    missing), or None when the row has no such column at all (an old CSV's interval)."""
    if not any(column.format(k=int(k)) in row.index for k in k_arr):
        return None
    return np.array(
        [pd.to_numeric(row.get(column.format(k=int(k))), errors="coerce") for k in k_arr],
        dtype=float,
    )


def _best_member(group: pd.DataFrame, column: str, ks: list[int]):
    """Index of the row of ``group`` with the highest mean of ``column`` over k (first by
    name on ties), or None when no row has a value."""
    best, best_score = None, -math.inf
    for index, row in group.iterrows():
        _, values = _series(row, column, ks)
        if len(values) and float(values.mean()) > best_score:
            best, best_score = index, float(values.mean())
    return best


_EDIT_KINDS = (
    ("", "interpretation-agnostic (greedy) edit"),
    ("aware_", "interpretation-aware edit"),
)


def _plot_edit_vs_k(frame: pd.DataFrame, quantity: str) -> Figure:
    """The body of :func:`plot_edit_accuracy_vs_k` (``quantity`` "accuracy") and
    :func:`plot_edit_magnitude_vs_k` ("magnitude")."""
    title = f"Edit {quantity} vs k (metrics.md §5)"
    ks = ks_in(frame.columns)
    attributes = [
        a
        for a in attributes_in(frame.columns)
        if any(f"{p}edit_{quantity}_{a}_k{k}" in frame.columns for p, _ in _EDIT_KINDS for k in ks)
    ]
    if not attributes or not ks:
        return _empty_figure(title, f"no rows with edit_{quantity}_{{a}}_k{{K}} columns")
    groups = node_groups(frame)
    figure, axes = _new_figure(2 * len(groups), len(attributes), 3.7, 2.75)
    for node_index, (node, rows) in enumerate(groups):
        for kind_index, (prefix, kind) in enumerate(_EDIT_KINDS):
            row_axes = axes[2 * node_index + kind_index]
            for axis, attribute in zip(row_axes, attributes, strict=True):
                axis.set_title(f"{node}\n{kind}, attribute {attribute}", fontsize=8)
                _draw_edit_vs_k(axis, rows, attribute, prefix, quantity, ks)
    subtitle = {
        "accuracy": "skyline: the supervised edit; floor: no intervention",
        "magnitude": "share of the reconstruction the edit removes (lower: more surgical)",
    }[quantity]
    _suptitle(figure, f"{title}\n{subtitle}")
    handles = _family_handles(frame, lines=True)
    handles.append(
        Line2D([], [], color="grey", linewidth=0.7, alpha=0.6, label="other SAEs of a sweep")
    )
    handles.append(
        Line2D([], [], color=_SUPERVISED_COLOUR, linestyle="--", linewidth=1.4,
               label=f"supervised edit (sup_edit_{quantity})")
    )  # fmt: skip
    if quantity == "accuracy":
        handles.append(
            Line2D([], [], color="dimgrey", linestyle=":", linewidth=1.8,
                   label="no intervention (noint_accuracy)")
        )  # fmt: skip
        handles.append(
            Patch(facecolor="grey", alpha=0.25, label="band: 95% interval (bold line,\n"
                  "skyline, floor; metrics.md §11)")
        )  # fmt: skip
    handles.append(
        Patch(facecolor="#f4d9a6", alpha=0.6,
              label="k ≥ D/4: not sparse at the\nnode (D its width)")
    )  # fmt: skip
    _legend(
        figure,
        handles,
        "architecture / data source\nbold: the family's SAE with the\n"
        "highest mean edit accuracy over k",
    )
    return figure


def _draw_edit_vs_k(
    axis, rows: pd.DataFrame, attribute: str, prefix: str, quantity: str, ks: list[int]
) -> None:
    """One panel of the edit-vs-k figures: families, supervised rows, skyline and floor."""
    column = f"{prefix}edit_{quantity}_{attribute}_k{{k}}"
    ranking = f"{prefix}edit_accuracy_{attribute}_k{{k}}"
    for (arch, source), group in _families(rows):
        marker, style = source_style(source)
        colour = arch_colour(arch)
        best = _best_member(group, ranking, ks)
        for index, row in group.iterrows():
            k_arr, y_arr = _series(row, column, ks)
            if index == best or not len(k_arr):
                continue
            axis.plot(
                k_arr, y_arr, color=colour, linestyle=style, linewidth=0.7, alpha=0.35,
                gid=SWEEP_MEMBER_GID,
            )  # fmt: skip
        if best is not None:
            k_arr, y_arr = _series(group.loc[best], column, ks)
            _, lo_arr = _series(group.loc[best], column + "_lo", ks)
            _, hi_arr = _series(group.loc[best], column + "_hi", ks)
            if len(lo_arr) == len(k_arr) == len(hi_arr) and len(k_arr):
                axis.fill_between(
                    k_arr, lo_arr, hi_arr, color=colour, alpha=0.15, linewidth=0,
                    gid=INTERVAL_GID, zorder=1,
                )  # fmt: skip
            axis.plot(
                k_arr, y_arr, color=colour, linestyle=style, marker=marker, markersize=3.5,
                linewidth=1.7, gid=family_gid(arch, source), zorder=3,
            )  # fmt: skip
    for arch, row in _supervised_rows(rows):
        k_arr, y_arr = _series(row, column, ks)
        if len(k_arr):
            axis.plot(
                k_arr, y_arr, color=_SUPERVISED_COLOUR, linewidth=0.9,
                marker=supervised_marker(arch), markersize=7 if arch == "supervised_mean" else 5,
                gid=f"supervised_row:{arch}", zorder=4,
            )  # fmt: skip
    skyline = f"sup_edit_{quantity}_{attribute}"
    if skyline in rows.columns:
        for value in _distinct(rows[skyline]):
            axis.axhline(
                value, color=_SUPERVISED_COLOUR, linestyle="--", linewidth=1.4,
                gid=SUPERVISED_GID, zorder=2,
            )  # fmt: skip
        _band(axis, rows, skyline, _SUPERVISED_COLOUR)
    floor = f"noint_accuracy_{attribute}"
    if quantity == "accuracy" and floor in rows.columns:
        for value in _distinct(rows[floor]):
            axis.axhline(
                value, color="dimgrey", linestyle=":", linewidth=1.8, gid=NO_INTERVENTION_GID,
                zorder=2,
            )  # fmt: skip
        _band(axis, rows, floor, "dimgrey")
    _shade_not_sparse(axis, rows, ks)
    _grey_if_not_causal(axis, rows, attribute)
    axis.set_xscale("log", base=2)
    axis.set_xlim(min(ks) / 1.3, max(ks) * 1.3)
    axis.set_xticks(ks, [str(k) for k in ks])
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel("k (latents edited)", fontsize=8)
    axis.set_ylabel(f"edit {quantity}", fontsize=8)
    axis.tick_params(labelsize=7)
    if quantity == "accuracy":
        axis.set_ylim(-0.03, 1.05)
    else:
        low, high = axis.get_ylim()
        axis.set_ylim(min(low, 0.0), max(high, 0.05))
    axis.grid(alpha=0.3)


def _band(axis, rows: pd.DataFrame, column: str, colour: str) -> None:
    """A horizontal band over the 95% interval of a node-level reference (one distinct
    interval; none when the rows disagree or have none)."""
    bounds = _bounds(rows, column)
    if bounds is None:
        return
    pairs = {
        (lo, hi) for lo, hi in zip(*bounds, strict=True) if np.isfinite(lo) and np.isfinite(hi)
    }
    if len(pairs) == 1:
        lo, hi = pairs.pop()
        axis.axhspan(lo, hi, color=colour, alpha=0.12, linewidth=0, gid=INTERVAL_GID, zorder=1)


def _shade_not_sparse(axis, rows: pd.DataFrame, ks: list[int]) -> None:
    """Shade k ≥ D/4 (D the node's width, :func:`node_width`): an edit of that many latents is
    not sparse relative to the activation (a full basis rewrites anything; metrics.md §11)."""
    width = node_width(rows)
    if width is None or not ks or width / 4 > max(ks):
        return
    start = max(width / 4, min(ks) / 1.3)
    axis.axvspan(
        start, max(ks) * 1.3, color="#f4d9a6", alpha=0.45, linewidth=0, gid=NOT_SPARSE_GID,
        zorder=0,
    )  # fmt: skip
    axis.text(
        start, 0.02, f" not sparse\n k ≥ {width / 4:g}", transform=axis.get_xaxis_transform(),
        ha="left", va="bottom", fontsize=6, color="#8a5a00",
    )  # fmt: skip


def plot_edit_accuracy_vs_k(frame: pd.DataFrame) -> Figure:
    """The paper's main figure kind: edit accuracy (y) against k (x, log2), per node two rows
    of panels, the interpretation-agnostic (``edit_accuracy_{a}_k{K}``) and the
    interpretation-aware edit (``aware_edit_accuracy_{a}_k{K}``), one panel per attribute.

    With sweeps of several SAEs per family (architecture, data source) a line per SAE is a
    tangle, and a per-k maximum over the sweep would mix SAEs. So each family gets one bold
    line (``gid`` :func:`family_gid`): the curve of its SAE with the highest mean edit
    accuracy over k in that panel; its other SAEs are thin faint lines of the same colour and
    style (``gid`` :data:`SWEEP_MEMBER_GID`). Colour = architecture, line style and marker =
    data source. The supervised dictionaries' own rows are black lines (mean: stars, least
    squares: X). The supervised edit ``sup_edit_accuracy_{a}`` is the skyline, a dashed black
    horizontal line (``gid`` :data:`SUPERVISED_GID`), and no intervention
    ``noint_accuracy_{a}`` the floor, a dotted grey one (``gid`` :data:`NO_INTERVENTION_GID`).
    A panel whose attribute is not causal at the node is grey and says so.
    """
    return _plot_edit_vs_k(frame, "accuracy")


def plot_edit_magnitude_vs_k(frame: pd.DataFrame) -> Figure:
    """Edit magnitude (``edit_magnitude_{a}_k{K}``, ``aware_edit_magnitude_{a}_k{K}``) against
    k, laid out and coded as :func:`plot_edit_accuracy_vs_k`, with the same SAE of each family
    in bold (chosen by edit accuracy, so the two figures read together); the skyline is the
    supervised edit's magnitude ``sup_edit_magnitude_{a}``. No floor: doing nothing removes
    nothing.
    """
    return _plot_edit_vs_k(frame, "magnitude")


def plot_edit_accuracy_vs_magnitude(frame: pd.DataFrame) -> Figure:
    """Edit accuracy (y) against edit magnitude (x) at each k, one panel per attribute and node.

    Each SAE's points for k = 1, 2, 4, ... are joined in k order; colour = architecture,
    marker = data source, marker size grows with k and small ``k=`` labels mark the points
    when a panel has few SAEs. Solid lines and filled markers: interpretation-agnostic
    (``edit_*``); dashed lines and hollow markers: interpretation-aware (``aware_edit_*``).
    Supervised dictionaries' own rows are black. Star: the supervised edit
    (``sup_edit_magnitude_{a}``, ``sup_edit_accuracy_{a}``, with its accuracy's interval;
    gid :data:`SUPERVISED_GID`);
    dotted grey line: no-intervention agreement (``noint_accuracy_{a}``). A panel whose
    attribute is not causal at the node (``noint_accuracy_{a}`` > 0.5, see
    :func:`saebench.leaderboard.table.not_causal`) is greyed and says so. Error bars: the
    95% interval of each point's edit accuracy (``…_lo`` / ``…_hi``, metrics.md §11), and of
    its magnitude where the CSV has one (the leaderboard keeps magnitudes' intervals in the
    run JSON only, :data:`saebench.leaderboard.schema.INTERVAL_METRICS`).
    """
    title = "Edit accuracy vs edit magnitude (metrics.md §5); bars: 95% intervals (§11)"
    attributes = [
        a for a in attributes_in(frame.columns) if any(f"_{a}_k" in c for c in frame.columns)
    ]
    ks = ks_in(frame.columns)
    if not attributes or not ks:
        return _empty_figure(title, "no rows with edit_accuracy_{a}_k{K} columns")
    groups = node_groups(frame)
    figure, axes = _new_figure(len(groups), len(attributes), 4.0, 3.4)
    for row_axes, (node, rows) in zip(axes, groups, strict=True):
        for axis, attribute in zip(row_axes, attributes, strict=True):
            axis.set_title(f"{node}\nattribute {attribute}", fontsize=9)
            axis.set_xlabel("edit magnitude (share of reconstruction removed)")
            axis.set_ylabel("edit accuracy")
            axis.set_ylim(-0.03, 1.05)
            annotate = len(rows) <= 4
            for _, row in rows.iterrows():
                arch = str(row.get("architecture", "") or "")
                source = "" if pd.isna(row.get("data_source")) else str(row.get("data_source"))
                colour = arch_colour(arch)
                supervised = arch in SUPERVISED_ARCHITECTURES
                marker = supervised_marker(arch) if supervised else source_style(source)[0]
                for prefix, style, fill in (("", "-", True), ("aware_", "--", False)):
                    k_arr, y_arr = _series(row, f"{prefix}edit_accuracy_{attribute}_k{{k}}", ks)
                    k_mag, x_arr = _series(row, f"{prefix}edit_magnitude_{attribute}_k{{k}}", ks)
                    if not len(k_arr) or len(k_arr) != len(k_mag):
                        continue
                    axis.plot(x_arr, y_arr, linestyle=style, color=colour, linewidth=0.9, alpha=0.8)
                    _error_bars(
                        axis, x_arr, y_arr,
                        _k_bounds(row, f"{prefix}edit_magnitude_{attribute}_k{{k}}", k_arr),
                        _k_bounds(row, f"{prefix}edit_accuracy_{attribute}_k{{k}}", k_arr),
                        colour,
                    )  # fmt: skip
                    axis.scatter(
                        x_arr, y_arr, s=10 + 8 * np.log2(k_arr), marker=marker,
                        color=colour if fill else "white", edgecolors=colour, linewidths=0.9,
                        zorder=3,
                    )  # fmt: skip
                    if annotate and fill:
                        for k, x, y in zip(k_arr, x_arr, y_arr, strict=True):
                            axis.annotate(
                                f"k={int(k)}", (x, y), xytext=(3, 3), textcoords="offset points",
                                fontsize=6, color=colour,
                            )  # fmt: skip
            _draw_supervised_edit(axis, rows, attribute)
            _grey_if_not_causal(axis, rows, attribute)
            axis.grid(alpha=0.3)
    _suptitle(figure, f"{title}; marker size grows with k ({ks[0]} to {ks[-1]})")
    handles = _family_handles(frame, lines=False)
    handles += [
        Line2D([], [], color="grey", linestyle="-", marker="o",
               label="interpretation-agnostic edit"),
        Line2D([], [], color="grey", linestyle="--", marker="o", markerfacecolor="white",
               label="interpretation-aware edit"),
        Line2D([], [], color=_SUPERVISED_COLOUR, marker="*", markersize=12, linestyle="none",
               label="supervised edit"),
        Line2D([], [], color="grey", linestyle=":", label="no intervention"),
    ]  # fmt: skip
    _legend(figure, handles, "architecture / data source")
    return figure


def _k_bounds(
    row: pd.Series, column: str, k_arr: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The interval ``({column}_lo, {column}_hi)`` of ``row`` at each k of ``k_arr`` (``column``
    a template with ``{k}``), or None when the row has no such interval columns."""
    lo, hi = _at_ks(row, column + "_lo", k_arr), _at_ks(row, column + "_hi", k_arr)
    return None if lo is None or hi is None else (lo, hi)


def _draw_supervised_edit(axis, rows: pd.DataFrame, attribute: str) -> None:
    """Supervised edit stars (or a dashed line when magnitude is missing), no-int. line."""
    acc_col, mag_col = f"sup_edit_accuracy_{attribute}", f"sup_edit_magnitude_{attribute}"
    if acc_col in rows.columns:
        mags = rows[mag_col] if mag_col in rows.columns else pd.Series(np.nan, index=rows.index)
        pairs = {
            (round(float(m), 9), round(float(a), 9))
            for m, a in zip(mags, rows[acc_col], strict=True)
            if not pd.isna(a)
        }
        bounds = _bounds(rows, acc_col)
        for mag, acc in sorted(pairs, key=lambda p: (math.isnan(p[0]), p)):
            if math.isnan(mag):
                axis.axhline(acc, color=_SUPERVISED_COLOUR, linestyle="--", gid=SUPERVISED_GID)
            else:
                if bounds is not None:  # the star's accuracy interval, from a row that has it
                    at = np.flatnonzero(np.isclose(pd.to_numeric(rows[acc_col], errors="coerce"),
                                                   acc) & np.isfinite(bounds[0]))  # fmt: skip
                    if len(at):
                        lo, hi = bounds[0][at[:1]], bounds[1][at[:1]]
                        _error_bars(axis, [mag], [acc], None, (lo, hi), _SUPERVISED_COLOUR)
                axis.scatter(
                    [mag], [acc], marker="*", s=220, color=_SUPERVISED_COLOUR, zorder=4,
                    edgecolors="white", linewidths=0.6, gid=SUPERVISED_GID,
                )  # fmt: skip
    noint_col = f"noint_accuracy_{attribute}"
    if noint_col in rows.columns:
        for value in _distinct(rows[noint_col]):
            axis.axhline(value, color="grey", linestyle=":", gid=NO_INTERVENTION_GID)


def _taus(frame: pd.DataFrame) -> list[float]:
    if "tau" not in frame.columns:
        return [LEGACY_TAU]
    return _distinct(frame["tau"]) or [LEGACY_TAU]


def plot_interpretability_coverage(frame: pd.DataFrame) -> Figure:
    """Per node (rows) and attribute (columns), one horizontal bar per SAE: its
    ``f1_coverage_{a}``, the share of the attribute's values with a latent at F1 ≥ τ; a black
    dot marks its ``f1_mean_best_{a}`` (mean over values of the best latent's F1) and a dotted
    red line τ (metrics.md §6). Bars take the architecture's colour; the supervised
    dictionaries are black. Every value is printed in a column at the panel's right edge, so
    an occluded attribute reads as "0.00" and no label overlaps another.

    A curve of coverage against τ would say more, but it needs each value's best F1, which
    the leaderboard CSV does not keep (only coverage at the run's τ and the mean best F1): the
    dots show how far below τ an SAE's best latents sit.

    Error bars: the 95% intervals of coverage (on the bar's end) and of the mean best F1 (on
    the dot), from ``f1_coverage_{a}_lo`` / ``_hi`` and ``f1_mean_best_{a}_lo`` / ``_hi``
    (metrics.md §11); a row without them gets none.
    """
    title = (
        "Interpretability (metrics.md §6): bars = coverage (share of values with a latent at "
        "F1 ≥ τ), dots = mean best F1; error bars: 95% intervals (§11)"
    )
    attributes = [a for a in attributes_in(frame.columns) if f"f1_coverage_{a}" in frame.columns]
    if not attributes:
        return _empty_figure(title, "no rows with f1_coverage_{a} columns")
    groups = node_groups(frame)
    tallest = max(len(rows) for _, rows in groups)
    figure, axes = _new_figure(len(groups), len(attributes), 3.3, max(2.5, 0.15 * tallest + 0.9))
    taus = _taus(frame)
    for row_axes, (node, rows) in zip(axes, groups, strict=True):
        names = [_sae_label(r) for _, r in rows.iterrows()]
        keys = [
            (_arch_order(arch), source, name)
            for arch, source, name in zip(
                _text_column(rows, "architecture"),
                _text_column(rows, "data_source"),
                names,
                strict=True,
            )
        ]
        order = sorted(range(len(rows)), key=keys.__getitem__)
        rows, names = rows.iloc[order], [names[i] for i in order]
        y = np.arange(len(rows))[::-1]
        colours = [arch_colour(a) for a in _text_column(rows, "architecture")]
        for column_index, (axis, attribute) in enumerate(zip(row_axes, attributes, strict=True)):
            values = pd.to_numeric(rows[f"f1_coverage_{attribute}"], errors="coerce")
            values = values.to_numpy(dtype=float)
            axis.barh(y, np.nan_to_num(values), 0.75, color=colours, label=attribute)
            _error_bars(axis, values, y, _bounds(rows, f"f1_coverage_{attribute}"), None, "black")
            for y_pos, value in zip(y, values, strict=True):
                text = "n/a" if math.isnan(value) else f"{value:.2f}"
                axis.text(
                    1.03, y_pos, text, va="center", fontsize=6,
                    color="#999999" if value == 0 else "black",
                )  # fmt: skip
            best = f"f1_mean_best_{attribute}"
            if best in rows.columns:
                best_values = pd.to_numeric(rows[best], errors="coerce").to_numpy(dtype=float)
                _error_bars(axis, best_values, y, _bounds(rows, best), None, "#555555")
                axis.scatter(best_values, y, marker="o", s=10, color="black", zorder=3)
            for tau in taus:
                axis.axvline(tau, color="tab:red", linestyle=":", linewidth=1.0)
            axis.set_yticks(y, names if column_index == 0 else [""] * len(y), fontsize=7)
            axis.set_ylim(-0.7, len(rows) - 0.3)
            axis.set_xlim(0, 1.2)  # values printed right of 1
            axis.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
            axis.axvline(1.0, color="#bbbbbb", linewidth=0.8)
            axis.set_xlabel("coverage at τ, mean best F1", fontsize=8)
            axis.set_title(f"{node}\nattribute {attribute}", fontsize=8)
            axis.tick_params(axis="x", labelsize=7)
            axis.grid(axis="x", alpha=0.3)
    _suptitle(figure, title)
    present = set(_text_column(frame, "architecture"))
    handles = [
        Line2D([], [], color=arch_colour(a), linewidth=6, label=a)
        for a in sorted(present - set(SUPERVISED_ARCHITECTURES), key=_arch_order)
    ]
    if present & set(SUPERVISED_ARCHITECTURES):
        handles.append(
            Line2D([], [], color=_SUPERVISED_COLOUR, linewidth=6, label="supervised dictionaries")
        )
    handles += [
        Line2D([], [], color="black", marker="o", markersize=4, linestyle="none",
               label="mean best F1"),
        Line2D([], [], color="tab:red", linestyle=":",
               label="τ = " + ", ".join(f"{t:g}" for t in taus)),
    ]  # fmt: skip
    _legend(figure, handles, "architecture")
    return figure


PLOTTERS = {
    "edit_accuracy_vs_k": plot_edit_accuracy_vs_k,
    "edit_magnitude_vs_k": plot_edit_magnitude_vs_k,
    "l0_vs_fidelity": plot_l0_vs_fidelity,
    "edit_accuracy_vs_magnitude": plot_edit_accuracy_vs_magnitude,
    "interpretability_coverage": plot_interpretability_coverage,
    "pareto_fidelity": lambda frame: _pareto().plot_pareto_fidelity(frame),
    "pareto_edit_accuracy": lambda frame: _pareto().plot_pareto_edit_accuracy(frame),
}
"""Plot kind -> function drawing it from a leaderboard DataFrame."""


def _pareto():
    """:mod:`saebench.leaderboard.pareto` (imported late: it builds on this module)."""
    from saebench.leaderboard import pareto

    return pareto


def write_plots(frame: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Draw every plot kind from ``frame`` and save it as PNG in ``out_dir``; kind -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, plotter in PLOTTERS.items():
        path = out_dir / PLOT_FILES[kind]
        plotter(frame).savefig(path, dpi=DPI)
        written[kind] = path
    return written
