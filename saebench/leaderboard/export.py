"""Markdown export: the tables (one per node) and the ``leaderboard/README.md`` they feed.

Each node gets a table of the compact columns (:func:`~saebench.leaderboard.table.compact_columns`
without the node columns, which are in the heading) and a collapsed provenance table saying
where every row came from: SAE id and weight hash, saebench version, git commit, date, seed
and prompt counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from saebench.leaderboard.plots import PLOT_FILES
from saebench.leaderboard.schema import PROVENANCE_COLUMNS
from saebench.leaderboard.store import read_leaderboard
from saebench.leaderboard.table import (
    UNINFORMATIVE_NOTE,
    any_uninformative,
    column_label,
    compact_columns,
    formatted_cells,
    node_groups,
    sort_rows,
)

METRICS_NOTE = (
    "Metric definitions are in docs/metrics.md (approximation §4, control §5, "
    "interpretability §6). "
    "`(sup)` columns are the supervised dictionary at the same node; `edit a k2` is the edit "
    "accuracy for attribute a with k = 2 latents; `cov a` is interpretability coverage. "
    "`n` is the number of evaluation prompts; `±h` is half the width of a value's 95% "
    "bootstrap interval over prompts (§11). "
    "`n/c`: attribute a is not causal at this node (the interval of `noint a` lies above 0.5: "
    "patching the counterfactual activation rarely changes the answer), so an edit accuracy "
    "there cannot tell a dictionary from doing nothing and is not shown; `b/l` (borderline): "
    "that interval contains 0.5, masked likewise. "
    "`(!)`: sufficiency is uninformative at this node (mean ablation does not lower the task "
    "metric, so any reconstruction scores near or above 1; it is no fidelity score there)."
)

_PLOT_CAPTIONS = {
    "edit_accuracy_vs_k": (
        "Edit accuracy against k per node, edit kind and attribute, one line per SAE family, "
        "next to the supervised edit (skyline) and no intervention (floor)"
    ),
    "edit_magnitude_vs_k": "Edit magnitude against k, laid out as the edit-accuracy figure",
    "l0_vs_fidelity": "Sparsity vs fidelity: L0 against sufficiency, necessity and FVU",
    "edit_accuracy_vs_magnitude": "Edit accuracy vs edit magnitude per attribute and k",
    "interpretability_coverage": (
        "Interpretability per attribute: coverage at tau (bars) and mean best F1 (dots)"
    ),
    "pareto_fidelity": (
        "Sparsity-matched fidelity: L0 against sufficiency and necessity, Pareto frontier per node"
    ),
    "pareto_edit_accuracy": (
        "Sparsity-matched editing: L0 against edit accuracy at k = 2, 4, 6 (those scored), "
        "Pareto frontier per node"
    ),
}


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """A GitHub Markdown table of ``columns`` with short headers and formatted numbers.

    >>> print(markdown_table(pd.DataFrame({"sae_name": ["a|b"], "l0": [3.14159]}),
    ...                      ["sae_name", "l0"]), end="")
    | SAE | L0 |
    | :-- | --: |
    | a\\|b | 3.142 |
    """
    headers = [_escape(column_label(c)) for c in columns]
    align = ["--:" if pd.api.types.is_numeric_dtype(frame[c]) else ":--" for c in columns]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    for row in formatted_cells(frame, columns):
        lines.append("| " + " | ".join(_escape(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def _provenance_columns(frame: pd.DataFrame) -> list[str]:
    wanted = ["sae_name", "sae_id", "sae_hash", "model_processing", *PROVENANCE_COLUMNS]
    return [c for c in wanted if c in frame.columns]


def export_markdown(frame: pd.DataFrame, heading_level: int = 2) -> str:
    """Markdown text: a note pointing to docs/metrics.md, then per node a heading, the compact
    table and a collapsed provenance table. Rows are sorted by SAE name within a node."""
    hashes = "#" * heading_level
    parts = [METRICS_NOTE + "\n"]
    if frame.empty:
        parts.append("\n_The leaderboard has no rows yet._\n")
    for node, rows in node_groups(frame):
        rows = sort_rows(rows, None)
        parts.append(f"\n{hashes} {_escape(node)}\n\n")
        columns = compact_columns(rows, with_node=False)
        parts.append(markdown_table(rows, columns))
        if any_uninformative(rows, columns):
            parts.append(f"\n{UNINFORMATIVE_NOTE}\n")
        parts.append("\n<details><summary>Provenance</summary>\n\n")
        parts.append(markdown_table(rows, _provenance_columns(rows)))
        parts.append("\n</details>\n")
    return "".join(parts)


def export_markdown_file(csv_path: str | Path, markdown_path: str | Path | None = None) -> str:
    """Export the leaderboard at ``csv_path`` as Markdown; also write it when a path is given."""
    text = export_markdown(read_leaderboard(csv_path))
    if markdown_path is not None:
        Path(markdown_path).write_text(text, encoding="utf-8")
    return text


def render_leaderboard_readme(
    csv: str | Path, plots_dir: str | Path, readme_dir: str | Path | None = None
) -> str:
    """The text of ``leaderboard/README.md``: title, plots, then the per-node tables.

    Image links are relative to ``readme_dir`` (default: the CSV's directory, normally
    ``leaderboard/``). A plot file that does not exist yet is named with the command that
    draws it instead of a broken link.
    """
    csv = Path(csv)
    readme_dir = Path(readme_dir) if readme_dir is not None else csv.parent
    frame = read_leaderboard(csv)
    lines = [
        "# saebench leaderboard\n",
        "\n<!-- Generated by `saebench leaderboard export --readme`; do not edit by hand. -->\n",
        f"\nSource: `{csv.name}` ({len(frame)} rows). Every row names the SAE weights by "
        "content hash and records saebench version, git commit, date, seed and prompt counts.\n",
        "\n## Plots\n",
    ]
    for kind, file_name in PLOT_FILES.items():
        path = Path(plots_dir) / file_name
        caption = _PLOT_CAPTIONS[kind]
        if path.exists():
            link = Path(os.path.relpath(path.resolve(), readme_dir.resolve())).as_posix()
            lines.append(f"\n![{caption}]({link})\n")
        else:
            lines.append(
                f"\n_{caption}: not drawn yet (`saebench leaderboard plot {csv} "
                f"--out {plots_dir}`)._\n"
            )
    lines.append("\n## Results\n\n")
    lines.append(export_markdown(frame, heading_level=3))
    return "".join(lines)
