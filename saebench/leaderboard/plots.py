"""The three leaderboard figures, drawn with matplotlib's Agg canvas (no display needed).

1. :func:`plot_l0_vs_fidelity`: L0 against sufficiency and against necessity (metrics.md §4), one
   marker shape per architecture, one colour per data source; the supervised dictionary's
   value at the node (``sup_sufficiency``, ``sup_necessity``) is a horizontal dashed line.
2. :func:`plot_edit_accuracy_vs_magnitude`: per attribute, each SAE's edit accuracy against
   edit magnitude at every k (metrics.md §5), solid for interpretation-agnostic and dashed for
   interpretation-aware edits; the supervised edit is a star, no-intervention agreement a
   dotted line.
3. :func:`plot_interpretability_coverage`: per SAE, grouped bars of ``f1_coverage_{a}`` per
   attribute (metrics.md §6); an occluded attribute shows as a bar at 0, labelled.

Each figure has one row of panels per node (model, task, hook, head, position). Functions
return the :class:`~matplotlib.figure.Figure` so tests can inspect what was drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from saebench.leaderboard.schema import SUPERVISED_ARCHITECTURES, attributes_in, ks_in
from saebench.leaderboard.table import node_groups, not_causal

PLOT_FILES: dict[str, str] = {
    "l0_vs_fidelity": "l0_vs_fidelity.png",
    "edit_accuracy_vs_magnitude": "edit_accuracy_vs_magnitude.png",
    "interpretability_coverage": "interpretability_coverage.png",
}
"""Plot kind -> file name written by :func:`write_plots`."""

SUPERVISED_GID = "supervised_reference"
"""``gid`` of every artist that draws a supervised reference (line or star)."""

DPI = 120

_MARKERS = {
    "standard": "o",
    "topk": "s",
    "gated": "^",
    "jumprelu": "D",
    "batchtopk": "v",
    "pca": "P",
    "random": "X",
    "frozen_decoder": "h",
}
_SPARE_MARKERS = ("<", ">", "p", "d", "H", "8")
_SOURCE_COLOURS = {"task": "tab:blue", "general": "tab:orange", "": "tab:gray"}
_SPARE_COLOURS = ("tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
_SUPERVISED_COLOUR = "black"


def _marker(architecture: str) -> str:
    if architecture in _MARKERS:
        return _MARKERS[architecture]
    return _SPARE_MARKERS[sum(map(ord, architecture)) % len(_SPARE_MARKERS)]


def _source_colour(source: str) -> str:
    if source in _SOURCE_COLOURS:
        return _SOURCE_COLOURS[source]
    return _SPARE_COLOURS[sum(map(ord, source)) % len(_SPARE_COLOURS)]


def _new_figure(n_rows: int, n_cols: int, panel_w: float, panel_h: float) -> tuple[Figure, list]:
    figure = Figure(figsize=(panel_w * n_cols + 2.5, panel_h * n_rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    return figure, [list(row) for row in axes]


def _empty_figure(title: str, reason: str) -> Figure:
    figure, axes = _new_figure(1, 1, 6.0, 3.0)
    axes[0][0].axis("off")
    axes[0][0].text(0.5, 0.5, reason, ha="center", va="center", wrap=True)
    figure.suptitle(title)
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


def _figure_legend(figure: Figure, extra: list[Line2D] | None = None) -> None:
    """One legend for the whole figure, each label once, outside the panels on the right."""
    handles: dict[str, object] = {}
    for axis in figure.axes:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                handles.setdefault(label, handle)
    for handle in extra or []:
        handles.setdefault(str(handle.get_label()), handle)
    if handles:
        figure.legend(
            list(handles.values()), list(handles.keys()), loc="outside right upper", fontsize=8
        )


def _text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as text, or a column of '' when absent."""
    if column not in frame.columns:
        return pd.Series("", index=frame.index, name=column)
    return frame[column].fillna("").astype(str)


def _sae_label(row: pd.Series) -> str:
    name = str(row.get("sae_name", "") or row.get("sae_id", "") or "?")
    return name


def plot_l0_vs_fidelity(frame: pd.DataFrame) -> Figure:
    """L0 (x) against sufficiency and necessity (y), one row of two panels per node.

    Marker shape = architecture, colour = data source; supervised-dictionary rows are black
    stars; the node's ``sup_sufficiency`` / ``sup_necessity`` is a dashed horizontal line
    (``gid`` :data:`SUPERVISED_GID`). L0 goes on a log axis when it spans more than 20x.
    """
    title = "Sparsity vs fidelity (1 = best for both)"
    metrics = [m for m in ("sufficiency", "necessity") if m in frame.columns]
    if "l0" not in frame.columns or not metrics:
        return _empty_figure(title, "no rows with l0 and sufficiency/necessity")
    groups = node_groups(frame)
    figure, axes = _new_figure(len(groups), 2, 4.2, 3.2)
    for row_axes, (node, rows) in zip(axes, groups, strict=True):
        for axis, metric in zip(row_axes, ("sufficiency", "necessity"), strict=True):
            axis.set_title(f"{node}\n{metric}", fontsize=9)
            axis.set_xlabel("L0 (mean active latents)")
            axis.set_ylabel(metric)
            if metric not in rows.columns:
                axis.text(0.5, 0.5, f"no {metric}", ha="center", transform=axis.transAxes)
                continue
            points = rows[rows["l0"].notna() & rows[metric].notna()]
            supervised = _is_supervised(points)
            saes = points[~supervised]
            for (arch, source), group in saes.groupby(
                [_text_column(saes, "architecture"), _text_column(saes, "data_source")], sort=True
            ):
                axis.scatter(
                    group["l0"],
                    group[metric],
                    marker=_marker(str(arch)),
                    color=_source_colour(str(source)),
                    s=40,
                    alpha=0.85,
                    edgecolors="black",
                    linewidths=0.4,
                    label=f"{arch} / {source or 'unknown data'}",
                )
            for arch, group in points[supervised].groupby("architecture", sort=True):
                axis.scatter(
                    group["l0"],
                    group[metric],
                    marker="*",
                    s=160,
                    color=_SUPERVISED_COLOUR,
                    label=f"{arch} (dictionary row)",
                    gid=SUPERVISED_GID,
                )
            reference = f"sup_{metric}"
            if reference in rows.columns:
                for index, value in enumerate(_distinct(rows[reference])):
                    axis.axhline(
                        value,
                        color=_SUPERVISED_COLOUR,
                        linestyle="--",
                        linewidth=1.2,
                        label="supervised dictionary" if index == 0 else "_nolegend_",
                        gid=SUPERVISED_GID,
                    )
            l0 = points["l0"][points["l0"] > 0]
            if len(l0) and l0.max() / l0.min() > 20:
                axis.set_xscale("log")
                axis.xaxis.set_minor_formatter(NullFormatter())  # no crowded minor labels
            axis.grid(alpha=0.3)
    figure.suptitle(title)
    _figure_legend(figure)
    return figure


def plot_edit_accuracy_vs_magnitude(frame: pd.DataFrame) -> Figure:
    """Edit accuracy (y) against edit magnitude (x) at each k, one panel per attribute and node.

    Each SAE is one colour: its points for k = 1, 2, 4, ... are joined in k order, marker
    size grows with k and small ``k=`` labels mark the points when a panel has few SAEs.
    Solid: interpretation-agnostic (``edit_*``); dashed with hollow markers:
    interpretation-aware (``aware_edit_*``). Star: the supervised edit
    (``sup_edit_magnitude_{a}``, ``sup_edit_accuracy_{a}``; gid :data:`SUPERVISED_GID`);
    dotted grey line: no-intervention agreement (``noint_accuracy_{a}``). A panel whose
    attribute is not causal at the node (``noint_accuracy_{a}`` > 0.5, see
    :func:`saebench.leaderboard.table.not_causal`) is greyed and titled so.
    """
    title = "Edit accuracy vs edit magnitude (metrics.md §5)"
    attributes = [
        a for a in attributes_in(frame.columns) if any(f"_{a}_k" in c for c in frame.columns)
    ]
    ks = ks_in(frame.columns)
    if not attributes or not ks:
        return _empty_figure(title, "no rows with edit_accuracy_{a}_k{K} columns")
    groups = node_groups(frame)
    figure, axes = _new_figure(len(groups), len(attributes), 4.0, 3.4)
    names = list(dict.fromkeys(_sae_label(r) for _, r in frame.iterrows()))
    palette = [f"C{i % 10}" for i in range(len(names))]
    colour_of = dict(zip(names, palette, strict=True))
    for row_axes, (node, rows) in zip(axes, groups, strict=True):
        for axis, attribute in zip(row_axes, attributes, strict=True):
            axis.set_title(f"{node}\nattribute {attribute}", fontsize=9)
            if all(not_causal(row, attribute) for _, row in rows.iterrows()):
                # doing nothing already agrees with the ground truth: no edit can be told apart
                axis.set_facecolor("#eeeeee")
                axis.set_title(f"{node}\nattribute {attribute}: NOT CAUSAL here", fontsize=9)
            axis.set_xlabel("edit magnitude (share of reconstruction removed)")
            axis.set_ylabel("edit accuracy")
            axis.set_ylim(-0.03, 1.05)
            annotate = len(rows) <= 4
            for _, row in rows.iterrows():
                for prefix, style, fill in (("", "-", True), ("aware_", "--", False)):
                    acc = [row.get(f"{prefix}edit_accuracy_{attribute}_k{k}") for k in ks]
                    mag = [row.get(f"{prefix}edit_magnitude_{attribute}_k{k}") for k in ks]
                    pts = [
                        (k, float(m), float(a))
                        for k, m, a in zip(ks, mag, acc, strict=True)
                        if a is not None and m is not None and not (pd.isna(a) or pd.isna(m))
                    ]
                    if not pts:
                        continue
                    colour = colour_of[_sae_label(row)]
                    k_arr, x_arr, y_arr = (np.array(v) for v in zip(*pts, strict=True))
                    axis.plot(x_arr, y_arr, linestyle=style, color=colour, linewidth=1.2)
                    axis.scatter(
                        x_arr,
                        y_arr,
                        s=12 + 10 * np.log2(k_arr),
                        color=colour if fill else "white",
                        edgecolors=colour,
                        linewidths=1.0,
                        label=_sae_label(row),
                        zorder=3,
                    )
                    if annotate and fill:
                        for k, x, y in pts:
                            axis.annotate(
                                f"k={k}", (x, y), xytext=(3, 3), textcoords="offset points",
                                fontsize=6, color=colour,
                            )  # fmt: skip
            _draw_supervised_edit(axis, rows, attribute)
            axis.grid(alpha=0.3)
    figure.suptitle(f"{title}; marker size grows with k ({ks[0]} to {ks[-1]})")
    style_keys = [
        Line2D([], [], color="grey", linestyle="-", label="interpretation-agnostic edit"),
        Line2D([], [], color="grey", linestyle="--", marker="o", markerfacecolor="white",
               label="interpretation-aware edit"),
    ]  # fmt: skip
    _figure_legend(figure, style_keys)
    return figure


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
        for index, (mag, acc) in enumerate(sorted(pairs, key=lambda p: (math.isnan(p[0]), p))):
            label = "supervised edit" if index == 0 else "_nolegend_"
            if math.isnan(mag):
                axis.axhline(
                    acc, color=_SUPERVISED_COLOUR, linestyle="--", label=label, gid=SUPERVISED_GID
                )
            else:
                axis.scatter(
                    [mag], [acc], marker="*", s=220, color=_SUPERVISED_COLOUR, label=label,
                    zorder=4, gid=SUPERVISED_GID,
                )  # fmt: skip
    noint_col = f"noint_accuracy_{attribute}"
    if noint_col in rows.columns:
        for index, value in enumerate(_distinct(rows[noint_col])):
            axis.axhline(
                value,
                color="grey",
                linestyle=":",
                label="no intervention" if index == 0 else "_nolegend_",
            )


def plot_interpretability_coverage(frame: pd.DataFrame) -> Figure:
    """Grouped horizontal bars: ``f1_coverage_{a}`` per attribute for every SAE, one panel per
    node; a black tick marks ``f1_mean_best_{a}`` where the CSV has it.

    Coverage = fraction of an attribute's values with a latent at F1 >= tau (metrics.md §6). Every
    bar carries its value, so an occluded attribute reads as a labelled bar at 0.
    """
    title = "Interpretability coverage per attribute (metrics.md §6); tick = mean best F1"
    attributes = [a for a in attributes_in(frame.columns) if f"f1_coverage_{a}" in frame.columns]
    if not attributes:
        return _empty_figure(title, "no rows with f1_coverage_{a} columns")
    groups = node_groups(frame)
    tallest = max(len(rows) for _, rows in groups)
    figure, axes = _new_figure(1, len(groups), 6.0, max(3.0, 0.16 * tallest * len(attributes)))
    height = 0.8 / len(attributes)
    for axis, (node, rows) in zip(axes[0], groups, strict=True):
        rows = rows.sort_values([c for c in ("architecture", "sae_name") if c in rows.columns])
        y = np.arange(len(rows))[::-1]
        for index, attribute in enumerate(attributes):
            values = rows[f"f1_coverage_{attribute}"].to_numpy(dtype=float)
            offsets = y + 0.4 - height * (index + 0.5)
            bars = axis.barh(
                offsets, np.nan_to_num(values), height, label=attribute, color=f"C{index}"
            )
            for bar, value in zip(bars, values, strict=True):
                text = "n/a" if math.isnan(value) else f"{value:.2f}"
                axis.annotate(
                    text, (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    xytext=(2, 0), textcoords="offset points", va="center", fontsize=6,
                )  # fmt: skip
            best = f"f1_mean_best_{attribute}"
            if best in rows.columns:
                axis.scatter(
                    rows[best].to_numpy(dtype=float),
                    offsets,
                    marker="|",
                    s=40,
                    color="black",
                    linewidths=1.2,
                    zorder=3,
                    label="mean best F1" if index == 0 else "_nolegend_",
                )
        axis.set_yticks(y, [_sae_label(r) for _, r in rows.iterrows()], fontsize=7)
        axis.set_xlim(0, 1.15)
        axis.set_xlabel("coverage (fraction of values with a latent at F1 ≥ τ)")
        axis.set_title(node, fontsize=9)
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle(title)
    _figure_legend(figure)
    return figure


PLOTTERS = {
    "l0_vs_fidelity": plot_l0_vs_fidelity,
    "edit_accuracy_vs_magnitude": plot_edit_accuracy_vs_magnitude,
    "interpretability_coverage": plot_interpretability_coverage,
}
"""Plot kind -> function drawing it from a leaderboard DataFrame."""


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
