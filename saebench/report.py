"""The compact terminal table ``saebench run`` prints: the SAE next to the supervised reference."""

from __future__ import annotations

import math


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"


def summary_rows(metrics: dict[str, float], attributes: list[str], ks: list[int]) -> list[tuple]:
    """(label, SAE value, supervised value) rows for the run table."""
    m = metrics.get
    rows: list[tuple] = [
        ("clean logit difference (model)", m("clean_logit_diff"), None),
        ("clean accuracy (model)", m("clean_accuracy"), None),
        ("mean-ablation logit difference", m("meanabl_logit_diff"), None),
        ("L0 (SAE | sup.)", m("l0"), float(len(attributes))),
        ("FVU", m("fvu"), m("sup_fvu")),
        ("dead fraction", m("dead_fraction"), None),
        ("sufficiency", m("sufficiency"), m("sup_sufficiency")),
        ("necessity", m("necessity"), m("sup_necessity")),
    ]
    for attr in attributes:
        rows.append((f"[{attr}] no-intervention agreement", m(f"noint_accuracy_{attr}"), None))
        for k in ks:
            rows.append(
                (
                    f"[{attr}] edit accuracy k={k} (agnostic | sup.)",
                    m(f"edit_accuracy_{attr}_k{k}"),
                    m(f"sup_edit_accuracy_{attr}"),
                )
            )
            rows.append(
                (
                    f"[{attr}] edit accuracy k={k} (aware)",
                    m(f"aware_edit_accuracy_{attr}_k{k}"),
                    None,
                )
            )
        rows.append((f"[{attr}] F1 coverage (tau)", m(f"f1_coverage_{attr}"), None))
    return rows


def render(metrics: dict[str, float], attributes: list[str], ks: list[int], title: str) -> str:
    rows = summary_rows(metrics, attributes, ks)
    width = max(len(r[0]) for r in rows)
    lines = [title, f"{'metric':<{width}}  {'SAE':>8}  {'sup.':>8}", "-" * (width + 20)]
    lines += [f"{label:<{width}}  {_fmt(a):>8}  {_fmt(b):>8}" for label, a, b in rows]
    return "\n".join(lines)
