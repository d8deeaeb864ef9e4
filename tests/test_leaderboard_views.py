"""Leaderboard views: the terminal table, the plots, the Markdown export and the CLI (the plots'
visual code is tested in detail in test_leaderboard_plots.py)."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from saebench.cli.leaderboard import leaderboard
from saebench.leaderboard import read_leaderboard, upsert_row
from saebench.leaderboard.export import export_markdown, render_leaderboard_readme
from saebench.leaderboard.plots import (
    PLOT_FILES,
    SUPERVISED_GID,
    plot_edit_accuracy_vs_magnitude,
    plot_interpretability_coverage,
    plot_l0_vs_fidelity,
    write_plots,
)
from saebench.leaderboard.table import (
    TableError,
    compact_columns,
    filter_rows,
    formatted_cells,
    render_plain,
    render_rich,
    resolve_columns,
    sort_rows,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOOKS = ("blocks.3.hook_resid_pre", "blocks.10.hook_resid_pre")
SUP_SUFFICIENCY = {HOOKS[0]: 0.93, HOOKS[1]: 0.87}


def sample_rows() -> list[dict[str, object]]:
    """Two nodes x (three SAEs + one supervised dictionary row); the gated SAE at the first
    node leaves attribute ``s`` uncovered (occlusion)."""
    rng = np.random.default_rng(0)
    rows = []
    saes = [("topk", "task", 6.0), ("gated", "general", 30.0), ("standard", "task", 120.0)]
    for hook in HOOKS:
        for index, (arch, source, l0) in enumerate([*saes, ("supervised_mean", "", 3.0)]):
            row: dict[str, object] = {
                "model": "tiny-ioi", "model_processing": "{}", "task": "ioi", "hook": hook,
                "head": None, "position": "END", "sae_id": f"runs/{arch}_{hook}",
                "sae_hash": f"{index:04x}{HOOKS.index(hook):012x}", "sae_name": f"{arch}-{index}",
                "architecture": arch, "data_source": source, "d_sae": 256,
                "saebench_version": "0.1.0", "git_commit": "abc1234",
                "date": "2025-01-01T00:00:00Z", "seed": 0, "n_prompts": 100, "n_fit_prompts": 400,
                "l0": l0, "fvu": 0.1 * (index + 1), "sufficiency": 0.5 + 0.1 * index,
                "necessity": 0.4 + 0.1 * index, "sup_sufficiency": SUP_SUFFICIENCY[hook],
                "sup_necessity": 0.81,
            }  # fmt: skip
            for attribute in ("io", "s", "pos"):
                row[f"sup_edit_accuracy_{attribute}"] = 0.9
                row[f"sup_edit_magnitude_{attribute}"] = 0.3
                row[f"noint_accuracy_{attribute}"] = 0.1
                coverage = 0.0 if (arch == "gated" and attribute == "s") else rng.uniform(0.4, 1)
                row[f"f1_coverage_{attribute}"] = coverage
                for k in (1, 2, 4):
                    row[f"edit_accuracy_{attribute}_k{k}"] = min(1.0, 0.2 * k + 0.05 * index)
                    row[f"edit_magnitude_{attribute}_k{k}"] = 0.1 * k
                    row[f"aware_edit_accuracy_{attribute}_k{k}"] = 0.15 * k
                    row[f"aware_edit_magnitude_{attribute}_k{k}"] = 0.12 * k
            rows.append(row)
    return rows


@pytest.fixture()
def csv_path(tmp_path: Path) -> Path:
    path = tmp_path / "leaderboard" / "leaderboard.csv"
    for row in sample_rows():
        upsert_row(path, row)
    return path


@pytest.fixture()
def frame(csv_path: Path) -> pd.DataFrame:
    return read_leaderboard(csv_path)


@pytest.fixture(scope="module")
def plotted(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A leaderboard CSV and its plots (drawn once per module: drawing takes seconds)."""
    path = tmp_path_factory.mktemp("plotted") / "leaderboard" / "leaderboard.csv"
    for row in sample_rows():
        upsert_row(path, row)
    return path, write_plots(read_leaderboard(path), path.parent / "plots")


def test_compact_columns_put_supervised_reference_beside_each_metric(frame) -> None:
    columns = compact_columns(frame)
    assert "head" not in columns  # no row has a head
    for sae_col, sup_col in [
        ("sufficiency", "sup_sufficiency"),
        ("necessity", "sup_necessity"),
        ("edit_accuracy_io_k2", "sup_edit_accuracy_io"),
        ("edit_accuracy_pos_k2", "sup_edit_accuracy_pos"),
    ]:
        assert columns.index(sup_col) == columns.index(sae_col) + 1
    assert columns[-3:] == ["f1_coverage_io", "f1_coverage_s", "f1_coverage_pos"]


def test_filter_and_sort_select_and_order_rows(frame) -> None:
    picked = filter_rows(frame, "l0 < 100 and data_source == 'task'")
    assert list(picked["sae_name"]) == ["topk-0", "topk-0"]
    assert len(filter_rows(frame, "sufficiency > 0.65")) == 4  # indices 2, 3 at both nodes
    ordered = sort_rows(frame, "l0", descending=True)
    assert list(ordered["l0"]) == [120.0, 120.0, 30.0, 30.0, 6.0, 6.0, 3.0, 3.0]
    default = sort_rows(frame, None)
    assert list(default["hook"])[:4] == [HOOKS[0]] * 4  # blocks.3 before blocks.10


def test_bad_filter_sort_or_column_raise_table_error_naming_columns(frame) -> None:
    with pytest.raises(TableError, match="bad --filter"):
        filter_rows(frame, "l0 <<< 3")
    with pytest.raises(TableError, match="unknown sort column 'nope'.*sae_name"):
        sort_rows(frame, "nope")
    with pytest.raises(TableError, match=r"no column matches 'edit_\*_k64'; columns are: model, "):
        resolve_columns(frame, ["edit_*_k64"])
    assert resolve_columns(frame, ["sae_name,edit_accuracy_*_k4"]) == [
        "sae_name", "edit_accuracy_io_k4", "edit_accuracy_s_k4", "edit_accuracy_pos_k4"
    ]  # fmt: skip


def test_plain_and_rich_tables_show_values_and_short_headers(frame) -> None:
    columns = ["sae_name", "l0", "sufficiency", "sup_sufficiency", "edit_accuracy_io_k2"]
    plain = render_plain(frame, columns).splitlines()
    assert re.split(r"\s{2,}", plain[0]) == ["SAE", "L0", "suff", "suff (sup)", "edit io k2"]
    assert len(plain) == 2 + len(frame)
    topk_line = next(line for line in plain if line.startswith("topk-0"))
    assert topk_line.split() == ["topk-0", "6.000", "0.500", "0.930", "0.400"]
    rich_text = render_rich(frame, columns, width=150)
    assert "suff (sup)" in rich_text and "0.930" in rich_text and "0.870" in rich_text
    assert "supervised_mean-3" in render_rich(frame, compact_columns(frame))  # never cropped


def rich_parts(text: str) -> list[list[list[str]]]:
    """The data rows (as cell lists) of each table ``render_rich`` printed, part by part."""
    parts: list[list[list[str]]] = []
    rows = None
    for line in text.splitlines():
        if line.strip().startswith("─"):
            rows = []
            parts.append(rows)
        elif not line.strip():
            rows = None
        elif rows is not None:
            rows.append(line.split())
    return parts


@pytest.mark.parametrize("width", [50, 80, 120])
def test_rich_table_folds_to_a_narrow_width_and_never_drops_a_column(frame, width) -> None:
    columns = compact_columns(frame)  # 23 columns, 200 characters wide
    text = render_rich(frame, columns, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    parts = rich_parts(text)
    assert len(parts) > 1 and all(len(part) == len(frame) for part in parts)
    assert f"{len(columns)} columns folded into {len(parts)} parts" in " ".join(text.split())
    assert "--plain" in text
    for index, expected in enumerate(formatted_cells(frame, columns)):
        shown = Counter(cell for part in parts for cell in part[index])
        missing = Counter(cell for cell in expected if cell) - shown
        assert not missing, (index, missing)  # every cell of the row, rows in the same order
        assert all(part[index][0] == expected[0] for part in parts)  # each part names the SAE
    assert "folded" not in render_rich(frame, columns, width=400)


def test_cli_show_in_a_narrow_terminal_folds_the_table(csv_path: Path, monkeypatch) -> None:
    import saebench.cli.leaderboard as cli_leaderboard

    terminal = SimpleNamespace(stdout=SimpleNamespace(isatty=lambda: True))
    monkeypatch.setattr(cli_leaderboard, "sys", terminal)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *_: os.terminal_size((80, 24)))
    result = CliRunner().invoke(leaderboard, ["show", str(csv_path)])
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "columns folded into" in result.output and "cov pos" in result.output


def test_l0_vs_fidelity_draws_supervised_reference_line_per_node(frame) -> None:
    figure = plot_l0_vs_fidelity(frame)
    axes = figure.axes
    assert len(axes) == 6  # two nodes x (sufficiency, necessity, FVU)
    titles = [axis.get_title() for axis in axes]
    assert HOOKS[0] in titles[0] and "sufficiency" in titles[0] and HOOKS[1] in titles[3]
    assert "FVU" in titles[2]
    for axis, expected in ((axes[0], 0.93), (axes[1], 0.81), (axes[3], 0.87)):
        lines = [line for line in axis.lines if line.get_gid() == SUPERVISED_GID]
        assert len(lines) == 1
        assert np.allclose(lines[0].get_ydata(), expected)
    marker_labels = axes[0].get_legend_handles_labels()[1]
    assert "topk / task" in marker_labels and "gated / general" in marker_labels
    assert "supervised_mean (dictionary row)" in marker_labels
    assert axes[0].get_xscale() == "log"  # L0 spans 3..120


def test_edit_plot_marks_supervised_edit_and_every_k(frame) -> None:
    figure = plot_edit_accuracy_vs_magnitude(frame)
    assert len(figure.axes) == 6  # two nodes x three attributes
    axis = figure.axes[0]
    stars = [c for c in axis.collections if c.get_gid() == SUPERVISED_GID]
    assert len(stars) == 1 and np.allclose(stars[0].get_offsets(), [[0.3, 0.9]])
    agnostic = [line for line in axis.lines if line.get_linestyle() == "-"]
    assert len(agnostic) == 4  # one per row at the node
    assert np.allclose(agnostic[0].get_xdata(), [0.1, 0.2, 0.4])
    assert np.allclose(agnostic[0].get_ydata(), [0.2, 0.4, 0.8])
    assert any(line.get_linestyle() == "--" for line in axis.lines)  # interpretation-aware
    assert any(line.get_linestyle() == ":" for line in axis.lines)  # no intervention


def test_coverage_plot_shows_occluded_attribute_as_zero_bar(frame) -> None:
    figure = plot_interpretability_coverage(frame)
    assert len(figure.axes) == 6  # two nodes x three attributes
    labels = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    axis = figure.axes[1]  # first node, attribute s
    assert axis.get_title().endswith("attribute s")
    widths = dict(zip(labels, [bar.get_width() for bar in axis.containers[0]], strict=True))
    assert widths["gated-1"] == 0.0 and widths["topk-0"] > 0.3
    assert "0.00" in [text.get_text() for text in axis.texts]


def test_write_plots_renders_every_plot_kind(plotted) -> None:
    _, written = plotted
    names = sorted(path.name for path in written.values())
    assert names == sorted(PLOT_FILES.values()) and "edit_accuracy_vs_k.png" in names
    for path in written.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_plots_of_a_leaderboard_without_those_metrics_still_render(tmp_path: Path) -> None:
    row = {k: v for k, v in sample_rows()[0].items() if "edit" not in k and "f1" not in k}
    path = tmp_path / "lb.csv"
    upsert_row(path, row)
    written = write_plots(read_leaderboard(path), tmp_path / "plots")
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in written.values())


def test_markdown_export_has_one_table_per_node_and_provenance(frame) -> None:
    text = export_markdown(frame)
    assert "docs/metrics.md" in text.splitlines()[0]
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [f"## tiny-ioi ioi {HOOKS[0]} @ END", f"## tiny-ioi ioi {HOOKS[1]} @ END"]
    first_table = text.split("## ")[1]
    assert "| SAE | arch | data | n | L0 | FVU | suff | suff (sup) |" in first_table
    assert "| gated-1 | gated | general | 100 | 30.0 | 0.200 | 0.600 | 0.930 |" in first_table
    assert "abc1234" in first_table and "0001000000000000" in first_table


def test_readme_links_plots_relative_to_readme_only_when_drawn(csv_path, plotted) -> None:
    text = render_leaderboard_readme(csv_path, csv_path.parent / "plots")
    assert text.count("not drawn yet") == len(PLOT_FILES) and "](" not in text
    plotted_csv, written = plotted
    text = render_leaderboard_readme(plotted_csv, written["l0_vs_fidelity"].parent)
    assert "](plots/l0_vs_fidelity.png)" in text
    assert "](plots/interpretability_coverage.png)" in text
    assert "](plots/edit_accuracy_vs_magnitude.png)" in text
    assert "](plots/edit_accuracy_vs_k.png)" in text and "](plots/edit_magnitude_vs_k.png)" in text
    assert text.index("edit_accuracy_vs_k.png") < text.index("l0_vs_fidelity.png")  # main first
    assert f"### tiny-ioi ioi {HOOKS[0]} @ END" in text
    assert "8 rows" in text


def test_cli_show_default_filter_sort_and_errors(csv_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(leaderboard, ["show", str(csv_path)])
    assert result.exit_code == 0, result.output
    assert "suff (sup)" in result.output and "topk-0" in result.output
    result = runner.invoke(
        leaderboard,
        ["show", str(csv_path), "--filter", "architecture == 'gated'", "--sort", "sufficiency",
         "--columns", "sae_name,hook", "--columns", "sufficiency"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # two gated rows, the sort column's tie mark beside it, and a note saying what ≈ means
    assert lines[0].split() == ["SAE", "hook", "suff", "tie"] and len(lines) == 5
    assert lines[4].startswith("tie: ≈ = not distinguishable from the row above in sufficiency")
    result = runner.invoke(leaderboard, ["show", str(csv_path), "--sort", "nope"])
    assert result.exit_code == 2 and "unknown sort column 'nope'" in result.output
    result = runner.invoke(leaderboard, ["show", str(csv_path), "--filter", "l0 >>> 1"])
    assert result.exit_code == 2 and "bad --filter" in result.output
    assert "Traceback" not in result.output


def test_cli_show_reports_corrupt_csv_with_line(csv_path: Path) -> None:
    csv_path.write_bytes(csv_path.read_bytes() + b"one,two\n")
    result = CliRunner().invoke(leaderboard, ["show", str(csv_path)])
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert str(csv_path) in result.output and "line 10" in result.output


def test_cli_plot_writes_pngs(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    upsert_row(csv, sample_rows()[0])
    result = CliRunner().invoke(leaderboard, ["plot", str(csv), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    for name in PLOT_FILES.values():
        assert (tmp_path / "p" / name).read_bytes().startswith(PNG_MAGIC)
        assert name in result.output


def test_cli_export_writes_markdown_and_readme(plotted, tmp_path: Path) -> None:
    csv_path, written = plotted
    runner = CliRunner()
    markdown = tmp_path / "tables.md"
    result = runner.invoke(leaderboard, ["export", str(csv_path), "--markdown", str(markdown)])
    assert result.exit_code == 0, result.output
    assert markdown.read_text() == export_markdown(read_leaderboard(csv_path))
    result = runner.invoke(leaderboard, ["export", str(csv_path)])
    assert result.output == markdown.read_text()
    readme = tmp_path / "README.md"
    plots_dir = written["l0_vs_fidelity"].parent
    result = runner.invoke(
        leaderboard, ["export", str(csv_path), "--readme", str(readme), "--plots", str(plots_dir)]
    )
    assert result.exit_code == 0, result.output
    link = Path(os.path.relpath(plots_dir, tmp_path)).as_posix()
    assert f"]({link}/edit_accuracy_vs_magnitude.png)" in readme.read_text()


def test_show_names_the_task_when_a_leaderboard_holds_several():
    """tiny-ioi's shipped leaderboard has nodes of ``ioi`` and ``ioi-order`` at the same hook and
    position: the default columns must tell them apart, and only then carry the task."""
    from saebench.leaderboard.table import compact_columns

    frame = pd.DataFrame(
        {"sae_name": ["a", "b"], "task": ["ioi", "ioi-order"], "hook": ["h", "h"],
         "head": [np.nan, np.nan], "position": ["S2", "S2"], "n_prompts": [10, 10]}
    )  # fmt: skip
    assert compact_columns(frame)[:3] == ["sae_name", "task", "hook"]
    assert "task" not in compact_columns(frame.assign(task="ioi"))
    assert "task" not in compact_columns(frame, with_node=False)
