"""``saebench leaderboard site``: a static, self-contained web page of one or more leaderboards.

:func:`build_site` writes ``index.html`` (page, styles, its small script and all the data), a
copy of the ``plotly.min.js`` that ships inside the ``plotly`` wheel, one JSON file per row
(the row itself and its SAEBench eval-results record) and, when found, ``docs/metrics.md``.
Opening ``index.html`` from disk needs no server and no network.

The data is embedded as JSON in a ``<script type="application/json">`` element with ``<``,
``>`` and ``&`` written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (:func:`embed_json`), so no
text from a CSV can close the element; the page's script renders every cell with
``textContent`` and escapes text handed to plotly, so no markup from a cell is ever
interpreted.

>>> print(embed_json({"name": "</script>", "q": "a&b"}))
{"name": "\\u003c/script\\u003e", "q": "a\\u0026b"}
"""

from __future__ import annotations

import json
import math
import numbers
import shutil
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from saebench.leaderboard.schema import (
    ATTRIBUTE_METRICS_TAIL,
    CORE_METRICS,
    DESCRIPTIVE_COLUMNS,
    KEY_COLUMNS,
    PROVENANCE_COLUMNS,
    attributes_in,
    interval_of,
    ks_in,
    parse_metric,
)
from saebench.leaderboard.table import (
    NODE_COLUMNS,
    _natural_key,
    causal_status,
    column_label,
    format_number,
    node_label,
)

ASSETS = "site_assets"
"""Package folder (under ``saebench.leaderboard``) holding the page template, script, styles."""

MASKED_METRICS: tuple[str, ...] = (
    "edit_accuracy",
    "aware_edit_accuracy",
    "edit_score",
    "sup_edit_accuracy",
)
"""Edit outcomes shown as ``n/c`` / ``b/l`` where their attribute is not (surely) causal at the
row's node, as in the terminal table (:func:`saebench.leaderboard.table.formatted_cells`)."""

GROUPS: tuple[str, ...] = ("approximation", "control", "interpretability")
"""Metric column groups the page lets one show or hide (docs/metrics.md §4, §5, §6)."""

METRICS_DOC_SECTIONS = {
    "approximation": "4-approximation",
    "control": "5-control-editing",
    "interpretability": "6-interpretability",
    "uncertainty": "11-uncertainty-intervals-paired-comparisons",
}
"""Anchors of docs/metrics.md sections (GitHub's heading slugs)."""


class SiteError(ValueError):
    """The site cannot be built (no rows, missing plotly); the message says why."""


def embed_json(data: Any) -> str:
    """``data`` as JSON safe inside an HTML ``<script>`` element: ``<``, ``>``, ``&`` escaped as
    JSON unicode escapes (and every non-ASCII character, which also covers U+2028/U+2029)."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _cell(value: object) -> object:
    """A CSV cell as JSON: numbers (None for NaN/inf/missing), text ('' becomes None)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    text = str(value)
    return text if text != "" else None


def column_group(column: str) -> str | None:
    """``approximation``, ``control`` or ``interpretability`` for a metric column shown in the
    table (None for ``l0``, which is always shown, interval bounds and other columns).

    >>> [column_group(c) for c in ("fvu", "sup_necessity", "edit_accuracy_io_k2",
    ...  "noint_accuracy_s", "f1_coverage_io", "l0", "l0_lo", "sae_name", "clean_accuracy")]
    ['approximation', 'approximation', 'control', 'control', 'interpretability', None, None, \
None, None]
    """
    parsed = parse_metric(column)
    if parsed is None or column in ("l0", "clean_logit_diff", "clean_accuracy"):
        return None
    name, attribute, _ = parsed
    if attribute is None:
        return "approximation" if name in CORE_METRICS else None
    return "interpretability" if name in ATTRIBUTE_METRICS_TAIL else "control"


def _map_view(map_csv: Path) -> dict[str, Any] | None:
    """The causal map's cells (one per node and attribute) for the heatmap, or None."""
    try:
        frame = pd.read_csv(map_csv, dtype={"hook": str, "position": str, "attribute": str})
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    needed = {"hook", "position", "attribute", "noint_accuracy"}
    if not needed <= set(frame.columns):
        return None
    cells = []
    for _, row in frame.iterrows():
        cells.append(
            {
                "hook": _cell(row["hook"]),
                "head": None if pd.isna(row.get("head")) else int(row.get("head")),
                "position": _cell(row["position"]),
                "attribute": _cell(row["attribute"]),
                "noint_accuracy": _cell(row["noint_accuracy"]),
                "sup_edit_accuracy": _cell(row.get("sup_edit_accuracy")),
                "causal": _cell(row.get("causal")),
                "editable": _cell(row.get("editable")),
            }
        )
    return {"source": str(map_csv), "cells": cells}


def _find_map(csv_paths: Sequence[Path], model: str, task: str) -> Path | None:
    """``map/<model>-<task>/map.csv`` next to one of the CSVs (the shipped layout)."""
    for csv in csv_paths:
        candidate = csv.parent / "map" / f"{model}-{task}" / "map.csv"
        if candidate.is_file():
            return candidate
    return None


def _metrics_doc() -> Path | None:
    """docs/metrics.md of this checkout, when saebench runs from one."""
    candidate = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
    return candidate if candidate.is_file() else None


def _node_key(row: Mapping[str, object]) -> str:
    head = format_number(row.get("head"))
    return f"{row.get('hook', '')}|{head}|{row.get('position', '')}"


def _view(
    frame: pd.DataFrame, view_index: int, map_csv: Path | None, out: Path
) -> dict[str, Any]:
    """One (model, task) view: its rows, nodes, column metadata and causal map; writes each
    row's JSON files under ``out/json/v{view_index}/``."""
    from saebench.leaderboard.saebench_format import dumps, row_to_saebench

    frame = frame.reset_index(drop=True)
    model, task = str(frame["model"].iloc[0]), str(frame["task"].iloc[0])
    present = [c for c in frame.columns if frame[c].map(_cell).notna().any()]
    attributes = attributes_in(present)
    ks = ks_in(present)

    nodes: dict[str, dict[str, Any]] = {}
    for _, row in frame.iterrows():
        key = _node_key(row)
        if key not in nodes:
            nodes[key] = {
                "key": key,
                "label": node_label(*(row.get(c, "") for c in NODE_COLUMNS)),
                "hook": _cell(row.get("hook")),
                "head": _cell(row.get("head")),
                "position": _cell(row.get("position")),
            }
    ordered_nodes = sorted(nodes.values(), key=lambda n: _natural_key(n["label"]))

    json_dir = out / "json" / f"v{view_index}"
    json_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, row in frame.iterrows():
        values = {c: _cell(row[c]) for c in present}
        values = {c: v for c, v in values.items() if v is not None}
        row_json = json_dir / f"row{index}.json"
        row_json.write_text(json.dumps(values, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        saebench_json = json_dir / f"row{index}.saebench.json"
        try:
            saebench_json.write_text(dumps(row_to_saebench(row.to_dict())), encoding="utf-8")
            saebench_link = saebench_json.relative_to(out).as_posix()
        except (ValueError, TypeError, KeyError):  # a row SAEBench's format cannot hold
            saebench_link = None
        rows.append(
            {
                "node": _node_key(row),
                "values": values,
                "causal": {a: causal_status(row, a) for a in attributes},
                "json": row_json.relative_to(out).as_posix(),
                "saebench_json": saebench_link,
            }
        )

    meta = {}
    for column in present:
        parsed = parse_metric(column)
        entry: dict[str, Any] = {"label": column_label(column)}
        if parsed is not None:
            name, attribute, k = parsed
            entry.update(
                metric=name,
                attribute=attribute,
                k=k,
                group=column_group(column),
                masked=name in MASKED_METRICS and attribute is not None,
                interval=f"{column}_lo" in present and f"{column}_hi" in present,
            )
        elif interval_of(column) is not None:
            entry["bound"] = True
        meta[column] = entry

    detail = {
        "identity": [c for c in KEY_COLUMNS if c in present],
        "hyperparameters": [c for c in DESCRIPTIVE_COLUMNS if c in present],
        "settings and provenance": [c for c in PROVENANCE_COLUMNS if c in present],
    }
    known = {c for group in detail.values() for c in group}
    detail["other"] = [
        c for c in present if c not in known and parse_metric(c) is None and interval_of(c) is None
    ]
    return {
        "model": model,
        "task": task,
        "label": f"{model} · {task}",
        "attributes": attributes,
        "ks": ks,
        "nodes": ordered_nodes,
        "rows": rows,
        "columns": present,
        "meta": meta,
        "detail": detail,
        "map": _map_view(map_csv) if map_csv is not None else None,
    }


def site_data(
    frames: Sequence[pd.DataFrame],
    out_dir: Path,
    csv_paths: Sequence[Path] = (),
    map_csvs: Mapping[tuple[str, str], Path] | None = None,
    docs_link: str | None = None,
) -> dict[str, Any]:
    """The page's data: one view per (model, task) over all ``frames``."""
    frame = pd.concat([f for f in frames if not f.empty], ignore_index=True, sort=False)
    if frame.empty:
        raise SiteError("no rows to show: every leaderboard given is empty")
    views = []
    for (model, task), rows in frame.groupby(["model", "task"], sort=False, dropna=False):
        map_csv = (map_csvs or {}).get((str(model), str(task)))
        if map_csv is None:
            map_csv = _find_map(csv_paths, str(model), str(task))
        views.append(_view(rows, len(views), map_csv, out_dir))
    return {
        "sources": [p.name for p in csv_paths],
        "docs": docs_link,
        "doc_sections": METRICS_DOC_SECTIONS,
        "groups": list(GROUPS),
        "views": views,
    }


def _asset(name: str) -> str:
    return resources.files("saebench.leaderboard").joinpath(ASSETS, name).read_text("utf-8")


def plotly_js_path() -> Path:
    """``plotly.min.js`` inside the installed ``plotly`` package."""
    try:
        import plotly
    except ImportError as err:  # pragma: no cover - plotly is a dependency
        raise SiteError("the site needs plotly: pip install plotly") from err
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise SiteError(f"plotly.min.js not found at {path}")
    return path


def build_site(
    csvs: Iterable[str | Path | pd.DataFrame],
    out_dir: str | Path,
    map_csvs: Mapping[tuple[str, str], str | Path] | None = None,
    title: str = "saebench leaderboard",
) -> Path:
    """Write the site for the leaderboards ``csvs`` (paths or frames) into ``out_dir``;
    return the path of its ``index.html``.

    Causal maps are taken from ``map_csvs`` ((model, task) -> map.csv) or found at
    ``map/<model>-<task>/map.csv`` next to a CSV.
    """
    from saebench.leaderboard.store import read_leaderboard

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "json").is_dir():
        shutil.rmtree(out / "json")
    frames, paths = [], []
    for source in csvs:
        if isinstance(source, pd.DataFrame):
            frames.append(source)
        else:
            paths.append(Path(source))
            frames.append(read_leaderboard(source))
    if not frames:
        raise SiteError("no leaderboard given")
    doc = _metrics_doc()
    docs_link = None
    if doc is not None:
        (out / "docs").mkdir(exist_ok=True)
        shutil.copyfile(doc, out / "docs" / "metrics.md")
        docs_link = "docs/metrics.md"
    maps = {k: Path(v) for k, v in (map_csvs or {}).items()}
    data = site_data(frames, out, paths, maps, docs_link)
    shutil.copyfile(plotly_js_path(), out / "plotly.min.js")
    page = (
        _asset("index.html")
        .replace("/*STYLE*/", _asset("site.css"))
        .replace("/*SCRIPT*/", _asset("site.js"))
        .replace("__TITLE__", _html_text(title))
        .replace("__DATA__", embed_json(data))
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _html_text(text: str) -> str:
    """``text`` escaped for HTML element content and attribute values."""
    import html

    return html.escape(text, quote=True)
