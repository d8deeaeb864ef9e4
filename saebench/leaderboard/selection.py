"""The paper's per-k selection of one SAE per family (``saebench leaderboard show --best-per-k``).

Makelov et al. summarise a sweep of SAEs (a family: one architecture trained on one data source,
over sparsity penalties and epochs) by one SAE per (node, attribute, k, edit kind): the one whose
edit lands closest in L2 to the counterfactual activation, i.e. the smallest mean
‖a_edit − a_cf‖₂ (``amakelov/sae`` ``analysis.ipynb``: ``groupby([... 'num_exchange',
'dist_method'])['dist'].idxmin()``; docs/metrics.md §5, §9). Here the distance is the row's
``edit_distance_{a}_k{K}`` (greedy edit) or ``aware_edit_distance_{a}_k{K}`` (aware edit), and a
family is (``architecture``, ``data_source``). Supervised dictionaries are the reference, not a
family; their edit accuracy is shown beside each selection.
"""

from __future__ import annotations

import pandas as pd

from saebench.leaderboard.schema import SUPERVISED_ARCHITECTURES, _attribute_rank, parse_metric

EDIT_KINDS: dict[str, str] = {"greedy": "", "aware": "aware_"}
"""Edit kind -> the prefix of its ``edit_distance`` / ``edit_accuracy`` columns."""

NODE_KEYS: tuple[str, ...] = ("model", "task", "hook", "head", "position")

SELECTION_COLUMNS: tuple[str, ...] = (
    "hook",
    "head",
    "position",
    "attribute",
    "k",
    "edit",
    "architecture",
    "data_source",
    "sae_name",
    "distance",
    "accuracy",
    "noint_accuracy",
    "sup_edit_accuracy",
    "n_candidates",
)
"""Columns of :func:`best_per_k`, one row per (node, attribute, k, edit, family)."""


def best_per_k(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (node, attribute, k, edit kind, family), the row with the smallest mean L2 distance
    of its edit to a_cf (ties: the first row in the CSV); rows without that distance are not
    candidates. ``accuracy`` is that edit's accuracy, ``n_candidates`` how many SAEs of the
    family had a distance.

    >>> frame = pd.DataFrame({
    ...     "model": "m", "task": "ioi", "hook": "h", "head": None, "position": "END",
    ...     "architecture": ["topk", "topk", "supervised_mean"], "data_source": "task",
    ...     "sae_name": ["a", "b", "sup"], "edit_distance_io_k2": [3.0, 1.0, 0.5],
    ...     "edit_accuracy_io_k2": [0.2, 0.7, 0.9], "noint_accuracy_io": 0.0,
    ...     "sup_edit_accuracy_io": 0.95})
    >>> best_per_k(frame)[["sae_name", "distance", "accuracy", "n_candidates"]].values.tolist()
    [['b', 1.0, 0.7, 2]]
    """
    frame = frame[~frame["architecture"].isin(SUPERVISED_ARCHITECTURES)]
    out = []
    for column in frame.columns:
        parsed = parse_metric(column)
        if parsed is None or parsed[0] not in ("edit_distance", "aware_edit_distance"):
            continue
        name, attribute, k = parsed
        edit = "aware" if name.startswith("aware_") else "greedy"
        accuracy = f"{EDIT_KINDS[edit]}edit_accuracy_{attribute}_k{k}"
        candidates = frame[frame[column].notna()]
        keys = [c for c in (*NODE_KEYS, "architecture", "data_source") if c in frame.columns]
        for _, rows in candidates.groupby(keys, dropna=False, sort=False):
            best = rows.loc[rows[column].idxmin()]
            out.append(
                {
                    **{c: best.get(c) for c in NODE_KEYS},
                    "attribute": attribute,
                    "k": k,
                    "edit": edit,
                    "architecture": best["architecture"],
                    "data_source": best.get("data_source"),
                    "sae_name": best.get("sae_name"),
                    "distance": float(best[column]),
                    "accuracy": best.get(accuracy),
                    "noint_accuracy": best.get(f"noint_accuracy_{attribute}"),
                    "sup_edit_accuracy": best.get(f"sup_edit_accuracy_{attribute}"),
                    "n_candidates": len(rows),
                }
            )
    result = pd.DataFrame(out, columns=[*NODE_KEYS, *SELECTION_COLUMNS[3:]])
    if result.empty:
        return result
    result["_rank"] = [_attribute_rank(a) for a in result["attribute"]]
    order = ["model", "task", "hook", "head", "position", "_rank", "k", "edit"]
    result = result.sort_values(order + ["architecture", "data_source"], kind="stable")
    return result.drop(columns="_rank").reset_index(drop=True)


def render_selection(selection: pd.DataFrame) -> str:
    """Plain aligned text of :func:`best_per_k`, one block per node; edit accuracies of an
    attribute that is not causal at the node (``noint_accuracy`` > 0.5) read ``n/c``."""
    from saebench.leaderboard.table import NOT_CAUSAL_NOINT, format_number, node_label

    shown = SELECTION_COLUMNS[3:]
    lines: list[str] = []
    for _, rows in selection.groupby(list(NODE_KEYS), dropna=False, sort=False):
        first = rows.iloc[0]
        lines.append(node_label(*(first.get(c, "") for c in NODE_KEYS)))
        cells = []
        for _, row in rows.iterrows():
            masked = pd.notna(row["noint_accuracy"]) and row["noint_accuracy"] > NOT_CAUSAL_NOINT
            cells.append(
                [
                    "n/c"
                    if masked and c in ("accuracy", "sup_edit_accuracy")
                    else format_number(row[c])
                    for c in shown
                ]
            )
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(shown)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)).rstrip())
        for r in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        lines.append("")
    return "\n".join(lines)
