"""The comparison table a run of several SAEs ends with: one line per SAE, node by node.

Each node's block starts with its two reference lines: the supervised (mean) dictionary at
that node and "no intervention" (the edit columns then hold ``noint_accuracy_{a}``, the floor
an edit must beat). Then one line per SAE, sorted by its mean edit accuracy at the largest
shown k over the attributes causal at the node (ties: sufficiency). Columns: L0, FVU,
sufficiency, necessity, edit accuracy of each causal attribute at k = 2 and 4 (where scored),
and interpretability coverage (``f1_coverage``, mean over those attributes). An attribute is
causal where ``noint_accuracy_{a}`` ≤ 0.5 (:func:`saebench.leaderboard.table.not_causal`);
where none is, every attribute is shown. Rows are flat metric dicts: a run record's metrics
with its identity, or a leaderboard CSV row (text cells are read as numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

COMPARE_KS: tuple[int, ...] = (2, 4)
"""The edit sizes the comparison shows (task SAEs edit well at 2-6 latents)."""

NOT_CAUSAL_NOINT = 0.5
"""Above this no-intervention accuracy an attribute is not causal at the node."""

NAME_WIDTH = 28
"""At most this many characters of an SAE's name (longer names keep their end)."""


def _number(value: object) -> float:
    """A cell as a float (NaN when empty or missing)."""
    if value is None or value == "":
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: float, decimals: int = 3) -> str:
    """``0.123``; ``-`` for NaN.

    >>> _fmt(0.12345), _fmt(float("nan")), _fmt(21.34)
    ('0.123', '-', '21.340')
    """
    return "-" if math.isnan(value) else f"{value:.{decimals}f}"


def node_of(row: Mapping[str, object]) -> str:
    """``model / task  hook[head]@position`` of a row.

    >>> node_of({"model": "tiny-ioi", "task": "ioi", "hook": "blocks.1.hook_resid_pre",
    ...          "head": "", "position": "END"})
    'tiny-ioi / ioi  blocks.1.hook_resid_pre@END'
    """
    head = row.get("head")
    head_text = "" if head in (None, "") or _isnan(head) else f"[{int(float(head))}]"
    return (
        f"{row.get('model', '?')} / {row.get('task', '?')}  "
        f"{row.get('hook', '?')}{head_text}@{row.get('position', '?')}"
    )


def _isnan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def attributes_of(row: Mapping[str, object]) -> list[str]:
    """The task's attributes, from the row's ``noint_accuracy_{a}`` keys (in order)."""
    return [
        k.removeprefix("noint_accuracy_")
        for k in row
        if k.startswith("noint_accuracy_") and not k.endswith(("_lo", "_hi"))  # not intervals
    ]


def causal_attributes(row: Mapping[str, object]) -> list[str]:
    """The attributes causal at the row's node; all of them when none is.

    >>> causal_attributes({"noint_accuracy_io": 0.0, "noint_accuracy_pos": 0.99})
    ['io']
    """
    attributes = attributes_of(row)
    causal = [
        a
        for a in attributes
        if not _number(row.get(f"noint_accuracy_{a}")) > NOT_CAUSAL_NOINT  # NaN counts
    ]
    return causal or attributes


def _short(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else "…" + name[-(NAME_WIDTH - 1) :]


def _sae_line(row: Mapping[str, object], attributes: Sequence[str], ks: Sequence[int]):
    cells = [
        _fmt(_number(row.get("l0")), 1),
        _fmt(_number(row.get("fvu"))),
        _fmt(_number(row.get("sufficiency"))),
        _fmt(_number(row.get("necessity"))),
    ]
    edits = []
    for a in attributes:
        for k in ks:
            value = _number(row.get(f"edit_accuracy_{a}_k{k}"))
            edits.append(value)
            cells.append(_fmt(value))
    coverage = [_number(row.get(f"f1_coverage_{a}")) for a in attributes]
    coverage = [c for c in coverage if not math.isnan(c)]
    cells.append(_fmt(sum(coverage) / len(coverage)) if coverage else "-")
    last_k = [_number(row.get(f"edit_accuracy_{a}_k{ks[-1]}")) for a in attributes] if ks else []
    last_k = [v for v in last_k if not math.isnan(v)]
    key = (
        sum(last_k) / len(last_k) if last_k else -math.inf,
        _number(row.get("sufficiency"))
        if not math.isnan(_number(row.get("sufficiency")))
        else -math.inf,
    )
    return cells, key


def _reference_lines(row: Mapping[str, object], attributes: Sequence[str], ks: Sequence[int]):
    n_attributes = len(attributes_of(row))
    sup = [
        f"{n_attributes:.1f}" if n_attributes else "-",
        _fmt(_number(row.get("sup_fvu"))),
        _fmt(_number(row.get("sup_sufficiency"))),
        _fmt(_number(row.get("sup_necessity"))),
    ]
    noint = ["-", "-", "-", "-"]
    for a in attributes:
        for _ in ks:
            sup.append(_fmt(_number(row.get(f"sup_edit_accuracy_{a}"))))
            noint.append(_fmt(_number(row.get(f"noint_accuracy_{a}"))))
    sup.append("-")
    noint.append("-")
    return [("supervised (reference)", sup), ("no intervention", noint)]


def comparison_table(
    rows: Sequence[Mapping[str, object]],
    ks: Sequence[int] = COMPARE_KS,
    name_key: str = "sae_name",
) -> str:
    """The comparison of ``rows`` (flat metric dicts with the node columns and ``sae_name``),
    one block per node; see the module docstring.

    >>> row = {"model": "m", "task": "t", "hook": "h", "position": "END", "sae_name": "a",
    ...        "l0": 3.0, "fvu": 0.2, "sufficiency": 0.9, "necessity": 0.8,
    ...        "noint_accuracy_x": 0.1, "edit_accuracy_x_k2": 0.5, "edit_accuracy_x_k4": 0.7,
    ...        "sup_edit_accuracy_x": 0.95, "f1_coverage_x": 0.5}
    >>> print(comparison_table([row, {**row, "sae_name": "b", "edit_accuracy_x_k4": 0.9}]))
    m / t  h@END: 2 SAEs, sorted by mean edit accuracy at k=4 (attributes causal here: x)
    SAE                        L0    FVU   suff    nec   x k2   x k4    cov
    supervised (reference)    1.0      -      -      -  0.950  0.950      -
    no intervention             -      -      -      -  0.100  0.100      -
    b                         3.0  0.200  0.900  0.800  0.500  0.900  0.500
    a                         3.0  0.200  0.900  0.800  0.500  0.700  0.500
    """
    by_node: dict[str, list[Mapping[str, object]]] = {}
    for row in rows:
        by_node.setdefault(node_of(row), []).append(row)
    blocks = []
    for node, members in by_node.items():
        first = members[0]
        attributes = causal_attributes(first)
        shown_ks = [k for k in ks if any(f"edit_accuracy_{a}_k{k}" in first for a in attributes)]
        header = ["L0", "FVU", "suff", "nec"]
        header += [f"{a} k{k}" for a in attributes for k in shown_ks]
        header.append("cov")
        lines = _reference_lines(first, attributes, shown_ks)
        scored = []
        for row in members:
            cells, key = _sae_line(row, attributes, shown_ks)
            scored.append((key, _short(str(row.get(name_key) or row.get("sae_id") or "?")), cells))
        scored.sort(key=lambda item: item[0], reverse=True)
        lines += [(name, cells) for _, name, cells in scored]
        widths = [max(5, len(h), *(len(c[i]) for _, c in lines)) for i, h in enumerate(header)]
        label = max(len("SAE"), *(len(n) for n, _ in lines))
        sort_note = f"sorted by mean edit accuracy at k={shown_ks[-1]}" if shown_ks else "unsorted"
        causal = ", ".join(attributes) if attributes else "none"
        count = f"{len(members)} SAE{'s' if len(members) != 1 else ''}"
        text = [f"{node}: {count}, {sort_note} (attributes causal here: {causal})"]
        for name, cells in [("SAE", header), *lines]:
            text.append(
                f"{name:<{label}}"
                + "".join(f"  {c:>{w}}" for c, w in zip(cells, widths, strict=True))
            )
        blocks.append("\n".join(line.rstrip() for line in text))
    return "\n\n".join(blocks)
