"""The compact leaderboard table: column choice, labels, number format, filter, sort, render.

The default (compact) columns put each SAE metric next to its supervised reference at the
same node: ``sufficiency`` | ``sup_sufficiency``, ``necessity`` | ``sup_necessity`` and, per
attribute a, ``edit_accuracy_{a}_k2`` | ``sup_edit_accuracy_{a}``, then ``f1_coverage_{a}``.
"""

from __future__ import annotations

import fnmatch
import io
import math
import numbers
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from saebench.leaderboard.schema import attributes_in, is_metric, parse_metric

COMPACT_K = 2
"""The k whose edit accuracy the compact table shows (task SAEs edit well at 2-6 latents)."""

NODE_COLUMNS: tuple[str, ...] = ("model", "task", "hook", "head", "position")
"""Columns that name the node a row was evaluated at (plus model and task)."""

_LABELS = {
    "sae_name": "SAE",
    "architecture": "arch",
    "data_source": "data",
    "l0": "L0",
    "fvu": "FVU",
    "sufficiency": "suff",
    "sup_sufficiency": "suff (sup)",
    "logit_diff_recovered_vs_meanabl": "rec/abl",
    "sup_logit_diff_recovered_vs_meanabl": "rec/abl (sup)",
    "necessity": "nec",
    "sup_necessity": "nec (sup)",
    "sup_fvu": "FVU (sup)",
    "dead_fraction": "dead",
    "n_prompts": "n",
    "tie": "tie",
}

_METRIC_LABELS = {
    "edit_accuracy": "edit",
    "aware_edit_accuracy": "aware",
    "edit_magnitude": "mag",
    "aware_edit_magnitude": "aware mag",
    "edit_score": "score",
    "edit_distance": "dist",
    "aware_edit_distance": "aware dist",
    "sup_edit_accuracy": "edit",
    "sup_edit_magnitude": "mag",
    "noint_accuracy": "noint",
    "f1_coverage": "cov",
    "f1_mean_best": "F1",
    "latents_per_value": "lat/val",
    "max_cosine": "maxcos",
}


class TableError(ValueError):
    """A bad column name, sort key or filter expression; the message says what is valid."""


def compact_columns(frame: pd.DataFrame, with_node: bool = True) -> list[str]:
    """The default columns present in ``frame``, each SAE metric beside its supervised value.

    ``with_node`` adds the task (only when the rows are of several tasks), hook, head (only
    when some row has one) and position.
    """
    wanted = ["sae_name", "architecture", "data_source"]
    if with_node:
        if "task" in frame.columns and frame["task"].nunique(dropna=False) > 1:
            wanted += ["task"]
        wanted += ["hook", "head", "position"]
    wanted += ["n_prompts"]  # rows with different prompt counts are not comparable (§6, §11)
    wanted += ["l0", "fvu", "sufficiency", "sup_sufficiency", "necessity", "sup_necessity"]
    attributes = attributes_in(frame.columns)
    for attribute in attributes:
        wanted += [
            f"noint_accuracy_{attribute}",  # the floor an edit must beat to mean anything
            f"edit_accuracy_{attribute}_k{COMPACT_K}",
            f"sup_edit_accuracy_{attribute}",
        ]
    wanted += [f"f1_coverage_{attribute}" for attribute in attributes]
    columns = [c for c in wanted if c in frame.columns]
    if "head" in columns and frame["head"].isna().all():
        columns.remove("head")
    return columns


def column_label(column: str) -> str:
    """A short header for ``column``: ``edit_accuracy_io_k2`` -> ``edit io k2``,
    ``sup_edit_accuracy_io`` -> ``edit io (sup)``.

    >>> [column_label(c) for c in ("l0", "sup_sufficiency", "edit_accuracy_io_k2",
    ...                            "sup_edit_accuracy_io", "f1_coverage_pos", "hook")]
    ['L0', 'suff (sup)', 'edit io k2', 'edit io (sup)', 'cov pos', 'hook']
    """
    if column in _LABELS:
        return _LABELS[column]
    parsed = parse_metric(column)
    if parsed is None or parsed[1] is None:
        return column
    name, attribute, k = parsed
    label = f"{_METRIC_LABELS.get(name, name)} {attribute}"
    if k is not None:
        label += f" k{k}"
    if name.startswith("sup_"):
        label += " (sup)"
    return label


def format_number(value: object) -> str:
    """Numbers with three significant-ish digits; '' for missing.

    >>> [format_number(v) for v in (0.91234, 12.345, 1234.5, float("nan"), 7, None, "END")]
    ['0.912', '12.3', '1234', '', '7', '', 'END']
    """
    if value is None or value is pd.NA or isinstance(value, str):
        return "" if value is None or value is pd.NA else str(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    number = float(value)
    if math.isnan(number):
        return ""
    if abs(number) >= 100:
        return f"{number:.0f}"
    if abs(number) >= 10:
        return f"{number:.1f}"
    return f"{number:.3f}"


def resolve_columns(frame: pd.DataFrame, patterns: Sequence[str]) -> list[str]:
    """Expand column names and shell-style patterns (``edit_accuracy_*_k4``) in given order.

    Comma-separated entries are split. Raises :class:`TableError` listing the columns when a
    name or pattern matches nothing.
    """
    columns: list[str] = []
    for entry in patterns:
        for pattern in (p.strip() for p in entry.split(",")):
            if not pattern:
                continue
            matched = [c for c in frame.columns if fnmatch.fnmatchcase(c, pattern)]
            if not matched:
                raise TableError(
                    f"no column matches {pattern!r}; columns are: {', '.join(frame.columns)}"
                )
            columns += [c for c in matched if c not in columns]
    return columns


def filter_rows(frame: pd.DataFrame, expression: str | None) -> pd.DataFrame:
    """Rows matching a pandas ``query`` expression (``"l0 < 10 and architecture == 'topk'"``).

    Raises :class:`TableError` with a one-line reason when the expression is invalid.
    """
    if not expression:
        return frame
    try:
        result = frame.query(expression, engine="python")
    except Exception as err:  # pandas raises many kinds here; one clean message for all
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TableError(f"bad --filter expression {expression!r}: {reason}") from err
    if not isinstance(result, pd.DataFrame):
        raise TableError(f"--filter expression {expression!r} does not select rows")
    return result


def sort_rows(frame: pd.DataFrame, column: str | None, descending: bool = False) -> pd.DataFrame:
    """Rows sorted by ``column`` (missing values last); when None, by node then SAE name in
    natural order (``blocks.9`` before ``blocks.10``)."""
    if column is None:
        keys = [c for c in (*NODE_COLUMNS, "sae_name") if c in frame.columns]
        records = list(frame[keys].itertuples(index=False))

        def row_key(index: int) -> tuple:
            return tuple(_natural_key(format_number(value)) for value in records[index])

        return frame.iloc[sorted(range(len(frame)), key=row_key)]
    if column not in frame.columns:
        raise TableError(f"unknown sort column {column!r}; columns are: {', '.join(frame.columns)}")
    return frame.sort_values(column, ascending=not descending, kind="stable", na_position="last")


NOT_CAUSAL_NOINT = 0.5
"""An attribute is not causal at a row's node when ``noint_accuracy_{a}`` exceeds this: patching
the counterfactual activation leaves the answer unchanged on most prompts, so doing nothing
already scores that high on every edit of a."""

NOT_CAUSAL = "n/c"
"""What an edit-accuracy cell shows when its attribute is not causal at the row's node."""

_EDIT_OUTCOMES = ("edit_accuracy", "aware_edit_accuracy", "edit_score", "sup_edit_accuracy")


BORDERLINE = "b/l"
"""What an edit-accuracy cell shows when the interval of ``noint_accuracy_{a}`` contains 0.5."""


def causal_status(row: pd.Series | Mapping, attribute: str) -> str:
    """``causal``, ``borderline``, ``n/c`` or ``""`` (no ``noint_accuracy_{a}``) for
    ``attribute`` at ``row``'s node (metrics.md §5, §11): causal only when the 95% interval of
    ``noint_accuracy_{a}`` lies below 0.5, not causal when it lies above, borderline when it
    contains 0.5. A row without the interval (written before intervals) uses the point.

    >>> row = {"noint_accuracy_s": 0.464, "noint_accuracy_s_lo": 0.434,
    ...        "noint_accuracy_s_hi": 0.493, "noint_accuracy_pos": 0.97,
    ...        "noint_accuracy_io": 0.48, "noint_accuracy_io_lo": 0.45,
    ...        "noint_accuracy_io_hi": 0.51}
    >>> [causal_status(row, a) for a in ("s", "pos", "io", "x")]
    ['causal', 'n/c', 'borderline', '']
    """
    value = row.get(f"noint_accuracy_{attribute}")
    if value is None or pd.isna(value):
        return ""
    lo, hi = row.get(f"noint_accuracy_{attribute}_lo"), row.get(f"noint_accuracy_{attribute}_hi")
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        lo = hi = float(value)
    if float(hi) < NOT_CAUSAL_NOINT or (float(hi) == float(lo) == NOT_CAUSAL_NOINT):
        return "causal"
    if float(lo) > NOT_CAUSAL_NOINT:
        return "n/c"
    return "borderline" if float(lo) < float(hi) else "causal"


def not_causal(row: pd.Series | Mapping, attribute: str) -> bool:
    """Whether ``attribute`` is not (or not surely) causal at ``row``'s node:
    :func:`causal_status` is ``n/c`` or ``borderline``.

    >>> row = {"noint_accuracy_pos": 0.97, "noint_accuracy_io": 0.0}
    >>> not_causal(row, "pos"), not_causal(row, "io")
    (True, False)
    """
    return causal_status(row, attribute) in ("n/c", "borderline")


def masked_label(row: pd.Series | Mapping, attribute: str) -> str:
    """``n/c`` or ``b/l`` for a masked edit cell (:func:`causal_status`)."""
    return BORDERLINE if causal_status(row, attribute) == "borderline" else NOT_CAUSAL


def with_interval(value: object, lo: object, hi: object) -> str:
    """``0.214±0.025`` (± half the 95% interval's width) or the number alone.

    >>> with_interval(0.214, 0.189, 0.239), with_interval(0.5, float("nan"), None)
    ('0.214±0.025', '0.500')
    """
    text = format_number(value)
    if text == "" or lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return text
    return f"{text}±{format_number((float(hi) - float(lo)) / 2)}"


UNINFORMATIVE_WHEN_FLAGGED = ("sufficiency", "sup_sufficiency")
"""Cells printed as ``value (!)``, without interval, where the row's
``sufficiency_uninformative`` is 1: mean ablation does not lower the task metric at the node,
so the value is no fidelity score ("1 = best" does not hold; metrics.md §11)."""

UNINFORMATIVE_NOTE = (
    "(!) sufficiency uninformative at this node: mean ablation does not lower the task metric, "
    "so any reconstruction scores near or above 1 (docs/metrics.md §11)"
)


def _flagged(row: pd.Series | Mapping) -> bool:
    flag = row.get("sufficiency_uninformative")
    return flag is not None and not pd.isna(flag) and int(flag) == 1


def any_uninformative(frame: pd.DataFrame, columns: Sequence[str]) -> bool:
    """Whether some shown sufficiency cell is flagged uninformative."""
    return (
        any(c in UNINFORMATIVE_WHEN_FLAGGED for c in columns)
        and "sufficiency_uninformative" in frame.columns
        and bool((frame["sufficiency_uninformative"].fillna(0) == 1).any())
    )


def formatted_cells(
    frame: pd.DataFrame, columns: Sequence[str], intervals: bool = True
) -> list[list[str]]:
    """The text of each selected cell, row by row, with ± half its 95% interval where the row
    has one (``intervals``). Edit accuracies and scores of an attribute that is not causal at
    the row's node (:func:`not_causal`) show ``n/c`` (``b/l`` when borderline): there, any
    dictionary and doing nothing may score alike, so the number would say nothing."""
    out = []
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            parsed = parse_metric(column)
            masked = (
                parsed is not None
                and parsed[0] in _EDIT_OUTCOMES
                and parsed[1] is not None
                and not_causal(row, parsed[1])
            )
            if masked:
                cells.append(masked_label(row, parsed[1]))
            elif column in UNINFORMATIVE_WHEN_FLAGGED and _flagged(row):
                text = format_number(row[column])
                cells.append(f"{text} (!)" if text else text)
            elif intervals and parsed is not None and f"{column}_lo" in row.index:
                cells.append(with_interval(row[column], row[f"{column}_lo"], row[f"{column}_hi"]))
            else:
                cells.append(format_number(row[column]))
        out.append(cells)
    return out


def render_plain(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """A plain aligned text table: numbers right-aligned, text left-aligned, short headers."""
    headers = [column_label(c) for c in columns]
    cells = formatted_cells(frame, columns)
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    numeric = [is_metric(c) or c in ("head", "d_sae", "seed", "n_prompts", "tie") for c in columns]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out) + "\n"


def render_rich(frame: pd.DataFrame, columns: Sequence[str], width: int | None = None) -> str:
    """The table drawn by ``rich`` (supervised columns dimmed), as text.

    Cells never wrap or truncate; headers wrap at spaces where that saves room. With ``width``
    None the table takes its natural width. With a ``width`` no column is ever dropped: when
    the columns do not fit, the table is folded into parts printed one under another, each
    repeating the columns that name a row (SAE name and node, or only the SAE name when those
    leave no room), and a last line says so. A single column wider than ``width`` is printed
    whole, never cropped.
    """
    import textwrap

    from rich import box
    from rich.console import Console
    from rich.table import Table

    cells = formatted_cells(frame, columns)
    labels = [column_label(column) for column in columns]
    widest = [max([len(row[i]) for row in cells] or [1]) for i in range(len(columns))]
    natural = [max(widest[i], len(labels[i])) for i in range(len(columns))]
    narrow = [max([widest[i], *map(len, labels[i].split())]) for i in range(len(columns))]

    def overhead(n: int) -> int:  # SIMPLE_HEAD, no edge padding: two edges, 3 per column gap
        return 3 * n - 1

    def fits(indices: Sequence[int]) -> bool:
        return width is None or sum(narrow[i] for i in indices) + overhead(len(indices)) <= width

    def widths_for(indices: Sequence[int]) -> dict[int, int]:
        """Natural widths where they fit, else wrapped headers, unwrapping the cheapest first."""
        chosen = {i: natural[i] for i in indices}
        if width is None or sum(chosen.values()) + overhead(len(indices)) <= width:
            return chosen
        chosen = {i: narrow[i] for i in indices}
        room = width - sum(chosen.values()) - overhead(len(indices))  # < 0: nothing unwraps
        for i in sorted(indices, key=lambda i: natural[i] - narrow[i]):
            if 0 < natural[i] - narrow[i] <= room:
                room -= natural[i] - narrow[i]
                chosen[i] = natural[i]
        return chosen

    everything = list(range(len(columns)))
    parts = [everything]
    if not fits(everything):
        others = [i for i in everything if columns[i] not in ("sae_name", *NODE_COLUMNS)]
        keys = [i for i in everything if i not in others]
        widest_other = max(others, key=lambda i: narrow[i], default=None)
        if widest_other is not None and not fits([*keys, widest_other]):
            keys = [i for i in keys if columns[i] == "sae_name"]  # the parts keep the row order
            others = [i for i in everything if i not in keys]
        parts = [[]]
        for index in others:
            if parts[-1] and not fits([*keys, *parts[-1], index]):
                parts.append([])
            parts[-1].append(index)
        parts = [sorted([*keys, *part]) for part in parts]

    buffer = io.StringIO()
    for part in parts:
        chosen = widths_for(part)
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        for index in part:
            column = columns[index]
            table.add_column(
                labels[index],
                justify="right" if is_metric(column) or column == "head" else "left",
                style="dim" if column.startswith("sup_") else None,
                width=chosen[index],
            )
        for row in cells:
            table.add_row(*(row[index] for index in part))
        needed = sum(chosen.values()) + overhead(len(part))
        console = Console(file=buffer, width=max(width or 0, needed), color_system=None)
        console.print(table)
    if len(parts) > 1:
        note = (
            f"{len(columns)} columns folded into {len(parts)} parts to fit {width} columns; "
            "--plain prints them in one table, --columns picks some"
        )
        buffer.write("\n".join(textwrap.wrap(note, max(width or 0, 40))) + "\n")
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def _natural_key(text: str) -> tuple:
    """Sort key treating digit runs as numbers (``blocks.9`` before ``blocks.10``)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def node_label(model: str, task: str, hook: str, head: object, position: str) -> str:
    """A node's display name: ``gpt2-small ioi blocks.9.attn.hook_z head 6 @ END``.

    >>> node_label("gpt2-small", "ioi", "blocks.3.hook_resid_pre", None, "END")
    'gpt2-small ioi blocks.3.hook_resid_pre @ END'
    """
    head_text = format_number(head)
    head_part = f" head {head_text}" if head_text else ""
    return f"{model} {task} {hook}{head_part} @ {position}".strip()


def node_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of each node (model, task, hook, head, position), nodes in natural order."""
    keys = [c for c in NODE_COLUMNS if c in frame.columns]
    if frame.empty or not keys:
        return [("all rows", frame)] if not frame.empty else []
    groups = []
    for values, rows in frame.groupby(keys, dropna=False, sort=False):
        named = dict(zip(keys, values, strict=True))
        label = node_label(*(named.get(c, "") for c in NODE_COLUMNS))
        groups.append((label, rows))
    return sorted(groups, key=lambda item: _natural_key(item[0]))
