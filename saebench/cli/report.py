"""The terminal table ``saebench run`` prints: the SAE next to the supervised reference.

Row labels are the flat metric names of the run JSON, the CSV and ``docs/metrics.md``, with
``{a}`` (an attribute) and ``{K}`` (an edit size) where a row stands for several metrics:

- approximation (metrics.md §4): one row per metric, the SAE's value beside the supervised mean
  dictionary's (``sup_…``);
- control (§5): per attribute, one row per edit kind (``edit_accuracy_{a}_k{K}``,
  ``aware_edit_accuracy_{a}_k{K}``) with a column per k, after the no-intervention floor
  (``noint_accuracy_{a}``) and the supervised edit (``sup_edit_accuracy_{a}``). Where the
  attribute is not causal at the node (``noint_accuracy_{a}`` > 0.5, the leaderboard's rule,
  :func:`saebench.leaderboard.table.not_causal`) the edit accuracies read ``n/c``;
- interpretability (§6) and occlusion / over-splitting (§7, the run JSON's
  ``details.attributes``): one row per metric, a column per attribute, τ in the rows that use it.

Sections wider than ``width`` columns split their value columns (the k's, the attributes) over
several blocks; a description is shown beside a row only where it fits.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TABLE_WIDTH = 100
"""Columns the table fits in by default."""

NA = ""
"""A cell with no value by definition (the supervised column of a model-only metric)."""

MISSING = "-"
"""A metric that is absent or NaN."""

_APPROXIMATION = (
    # (metric, supervised metric or None, description)
    ("clean_logit_diff", None, "the model's mean LD (task metric), no intervention"),
    ("clean_accuracy", None, "the model's accuracy, no intervention"),
    ("meanabl_logit_diff", None, "mean LD with the node's vector mean-ablated"),
    ("l0", "<n_attributes>", "active latents per prompt"),
    ("fvu", "sup_fvu", "fraction of variance unexplained"),
    ("dead_fraction", None, "latents active on no prompt"),
    ("sufficiency", "sup_sufficiency", "LD(a → â) ÷ clean LD; 1 is best"),
    (
        "logit_diff_recovered_vs_meanabl",
        "sup_logit_diff_recovered_vs_meanabl",
        "share of the mean-ablation LD gap recovered",
    ),
    ("necessity", "sup_necessity", "removing â vs mean ablation; 1 is best"),
)

_INTERPRETABILITY = (
    # (key, uses tau, from the run JSON's details (not the metrics), description)
    ("f1_coverage", True, False, "share of values with a latent at F1 ≥ τ"),
    ("f1_mean_best", False, False, "mean over values of the best latent's F1"),
    ("latents_per_value", True, False, "latents at F1 ≥ τ (unions) per value"),
    ("max_cosine", False, False, "decoder rows' max cosine to sup. features"),
    ("n_latents_f1_0.5", False, True, "occlusion: latents with best F1 > 0.5"),
    ("feature_norm_mean", False, True, "occlusion: mean norm of sup. features"),
    ("split_latents_max", False, True, "splitting: most latents at precision ≥ 0.9"),
    ("split_max_recall_mean", False, True, "splitting: mean best recall of those"),
)

_COUNTS = frozenset({"n_latents_f1_0.5", "split_latents_max"})
"""Detail keys that count latents (printed as integers)."""


def _fmt(value: object, integer: bool = False) -> str:
    """``0.123`` with three decimals, an integer for counts, ``-`` for missing or NaN.

    >>> [_fmt(v) for v in (0.1234, None, float("nan"), 7.4312)], _fmt(12.0, integer=True)
    (['0.123', '-', '-', '7.431'], '12')
    """
    if value is None or isinstance(value, str):
        return MISSING
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        return MISSING
    if integer and number.is_integer():
        return str(int(number))
    return f"{number:.3f}"


def _cell(metrics: Mapping[str, float], name: str) -> str:
    """:func:`_fmt` of ``metrics[name]`` with ± half its 95% interval when ``metrics`` holds
    ``{name}_lo`` and ``{name}_hi`` (docs/metrics.md §11).

    >>> _cell({"l0": 6.0, "l0_lo": 5.5, "l0_hi": 6.5}, "l0"), _cell({"l0": 6.0}, "l0")
    ('6.000±0.500', '6.000')
    """
    text = _fmt(metrics.get(name))
    lo, hi = metrics.get(f"{name}_lo"), metrics.get(f"{name}_hi")
    if text == MISSING or lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return text
    return f"{text}±{(hi - lo) / 2:.3f}"


@dataclass
class _Section:
    """One block of the table: a header row (title, fixed columns, repeated columns), then rows
    of (label, fixed cells, repeated cells, description)."""

    title: str
    fixed: list[str]
    columns: list[str]
    rows: list[tuple[str, list[str], list[str], str]] = field(default_factory=list)


def _render_section(section: _Section, label_width: int, width: int) -> list[str]:
    """The lines of ``section``; value columns beyond ``width`` go to further blocks, each with
    the fixed columns again; descriptions only where they fit."""
    label_width = max(label_width, len(section.title))  # callers align sections: pass the max
    all_cells = [fixed + cells for _, fixed, cells, _ in section.rows]
    names = section.fixed + section.columns
    col_width = [
        max([5, len(name), *(len(cells[i]) for cells in all_cells)]) for i, name in enumerate(names)
    ]
    n_fixed = len(section.fixed)
    fixed_width = sum(w + 2 for w in col_width[:n_fixed])
    blocks: list[list[int]] = [[]]
    used = label_width + fixed_width
    for index in range(n_fixed, len(names)):
        if blocks[-1] and used + col_width[index] + 2 > width:
            blocks.append([])
            used = label_width + fixed_width
        blocks[-1].append(index)
        used += col_width[index] + 2
    lines: list[str] = []
    for number, block in enumerate(blocks):
        shown = list(range(n_fixed)) + block
        used = label_width + sum(col_width[i] + 2 for i in shown)
        describe = max(len(row[3]) for row in section.rows) + 3 + used <= width
        if number:
            lines.append("")
        head = "".join(f"  {names[i]:>{col_width[i]}}" for i in shown)
        lines.append(f"{section.title:<{label_width}}{head}".rstrip())
        for (label, _, _, description), cells in zip(section.rows, all_cells, strict=True):
            text = "".join(f"  {cells[i]:>{col_width[i]}}" for i in shown)
            line = f"{label:<{label_width}}{text}"
            if describe and description:
                line += f"   {description}"
            lines.append(line.rstrip())
    return lines


def _approximation(
    metrics: Mapping[str, float], n_attributes: int, flags: Mapping[str, str]
) -> _Section:
    section = _Section("approximation (§4)", ["SAE", "sup."], [])
    for name, sup, description in _APPROXIMATION:
        if sup == "<n_attributes>":  # the mean dictionary: one feature per attribute is active
            sup_cell = _fmt(float(n_attributes))
        else:
            sup_cell = NA if sup is None else _cell(metrics, sup)
        cell = _cell(metrics, name)
        if name in flags:
            cell += " (!)"
            description = "uninformative here: mean ablation does not lower LD"
        section.rows.append((name, [cell, sup_cell], [], description))
    return section


def _control(
    metrics: Mapping[str, float], attributes: Sequence[str], ks: Sequence[int]
) -> tuple[_Section, list[str]]:
    """The edit-accuracy grid and the attributes that are not causal at the node."""
    from saebench.leaderboard.table import masked_label, not_causal

    section = _Section("control (§5)", ["noint", "sup."], [f"k={k}" for k in ks])
    inert = []
    for attr in attributes:
        masked = not_causal(metrics, attr)
        if masked:
            inert.append(attr)

        def cell(name: str, masked: bool = masked, attr: str = attr) -> str:
            return masked_label(metrics, attr) if masked else _cell(metrics, name)

        floor = [_cell(metrics, f"noint_accuracy_{attr}"), cell(f"sup_edit_accuracy_{attr}")]
        agnostic = [cell(f"edit_accuracy_{attr}_k{k}") for k in ks]
        aware = [cell(f"aware_edit_accuracy_{attr}_k{k}") for k in ks]
        label, aware_label = f"edit_accuracy_{attr}_k{{K}}", f"aware_edit_accuracy_{attr}_k{{K}}"
        section.rows.append((label, floor, agnostic, "agnostic (greedy)"))
        section.rows.append((aware_label, [NA, NA], aware, "aware (K/2 out, K/2 in)"))
    return section, inert


def _interpretability(
    metrics: Mapping[str, float],
    attributes: Sequence[str],
    details: Mapping[str, Mapping[str, float]],
    tau: float | None,
) -> _Section:
    section = _Section("interpretability (§6-7)", [], list(attributes))
    tau_text = MISSING if tau is None else f"{tau:g}"
    for key, uses_tau, detail, description in _INTERPRETABILITY:
        if detail:
            if not any(key in details.get(attr, {}) for attr in attributes):
                continue  # a record without the details (an old JSON): leave the row out
            cells = [_fmt(details.get(attr, {}).get(key), key in _COUNTS) for attr in attributes]
            label = key
        else:
            cells = [_cell(metrics, f"{key}_{attr}") for attr in attributes]
            label = f"{key}_{{a}}"
        if uses_tau:
            label += f" (τ={tau_text})"
        section.rows.append((label, [], cells, description))
    return section


def render(
    metrics: Mapping[str, float],
    attributes: Sequence[str],
    ks: Sequence[int],
    title: str,
    *,
    details: Mapping[str, object] | None = None,
    tau: float | None = None,
    width: int = TABLE_WIDTH,
) -> str:
    """The run table: approximation, control (edit accuracy by k) and interpretability.

    ``details`` is the run's ``details`` (its ``attributes`` give the occlusion and
    over-splitting rows); ``tau`` the F1 threshold of the coverage rows.

    >>> metrics = {"noint_accuracy_pos": 1.0, "edit_accuracy_pos_k1": 1.0}
    >>> lines = render(metrics, ["pos"], [1], "demo").splitlines()
    >>> print(next(line for line in lines if line.startswith("edit_accuracy_pos")))
    edit_accuracy_pos_k{K}           1.000    n/c    n/c   agnostic (greedy)
    """
    from saebench.leaderboard.table import NOT_CAUSAL_NOINT, causal_status

    attributes = list(attributes)
    per_attribute = (details or {}).get("attributes", {})
    flags = (details or {}).get("uninformative", {})
    control, inert = _control(metrics, attributes, ks)
    sections = [
        _approximation(metrics, len(attributes), flags),  # type: ignore[arg-type]
        control,
        _interpretability(metrics, attributes, per_attribute, tau),  # type: ignore[arg-type]
    ]
    sections = [section for section in sections if section.rows]
    label_width = max(len(text) for s in sections for text in (s.title, *(r[0] for r in s.rows)))
    lines = [title]
    for section in sections:
        lines.append("")
        lines += _render_section(section, label_width, width)
    notes = [
        "§N: the section of docs/metrics.md defining the rows",
        "noint = noint_accuracy_{a} (no intervention), sup. = sup_edit_accuracy_{a}",
    ]
    if any(f"{name}_lo" in metrics for name in metrics):
        notes.append("±: half the width of the 95% bootstrap interval over prompts (§11)")
    for attr in inert:
        noint = _cell(metrics, f"noint_accuracy_{attr}")
        if causal_status(metrics, attr) == "borderline":
            notes.append(
                f"b/l: {attr} is borderline here (no-intervention {noint}: its interval "
                f"contains {NOT_CAUSAL_NOINT}): its edit accuracies may say nothing"
            )
        else:
            notes.append(
                f"n/c: {attr} is not causal here (no-intervention {noint} > "
                f"{NOT_CAUSAL_NOINT}): its edit accuracies say nothing"
            )
    for name, why in flags.items():
        if name in metrics:
            notes.append(f"(!) {name}: uninformative, {why}")
    lines.append("")
    for note in notes:
        lines += textwrap.wrap(note, width, subsequent_indent="  ", break_on_hyphens=False)
    return "\n".join(lines)
