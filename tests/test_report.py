"""The table `saebench run` prints (saebench/cli/report.py), from hand-made metrics: no model."""

from __future__ import annotations

import re
from pathlib import Path

from saebench import defaults
from saebench.cli.report import render

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KS = list(defaults.DEFAULT_KS)
ATTRIBUTES = ["io", "s", "pos"]


def hand_made_metrics(ks: list[int]) -> dict[str, float]:
    """io causal (noint 0), pos not causal (noint 1, every edit trivially 1.000)."""
    metrics = {
        "clean_logit_diff": 7.25,
        "clean_accuracy": 1.0,
        "meanabl_logit_diff": 0.5,
        "l0": 6.0,
        "fvu": 0.25,
        "sup_fvu": 0.05,
        "dead_fraction": 0.125,
        "sufficiency": 0.9,
        "sup_sufficiency": 1.0,
        "necessity": 0.4,
        "sup_necessity": 0.875,
        "noint_accuracy_io": 0.0,
        "sup_edit_accuracy_io": 0.95,
        "noint_accuracy_pos": 1.0,
        "sup_edit_accuracy_pos": 1.0,
    }
    for index, k in enumerate(ks):
        metrics[f"edit_accuracy_io_k{k}"] = 0.1 * (index + 1)
        metrics[f"aware_edit_accuracy_io_k{k}"] = 0.05 * (index + 1)
        metrics[f"edit_accuracy_pos_k{k}"] = 1.0
        metrics[f"aware_edit_accuracy_pos_k{k}"] = 1.0
    for attr, coverage in (("io", 0.25), ("pos", 0.5)):
        metrics |= {
            f"f1_coverage_{attr}": coverage,
            f"f1_mean_best_{attr}": 0.5,
            f"latents_per_value_{attr}": 0.75,
            f"max_cosine_{attr}": 0.375,
        }
    return metrics


DETAILS = {
    "attributes": {
        "io": {
            "n_latents_f1_0.5": 40.0,
            "feature_norm_mean": 22.375,
            "split_latents_max": 3.0,
            "split_max_recall_mean": 0.0625,
        },
        "pos": {
            "n_latents_f1_0.5": 1.0,
            "feature_norm_mean": 0.25,
            "split_latents_max": 26.0,
            "split_max_recall_mean": 0.0,
        },
    }
}


def section(table: str, title: str) -> list[str]:
    """The lines of the section whose header starts with ``title``, up to the blank line."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = lines.index("", start)
    return lines[start:end]


def test_hand_made_metrics_render_the_expected_compact_edit_grid() -> None:
    table = render(hand_made_metrics([1, 2, 4]), ["io", "pos"], [1, 2, 4], "demo", tau=0.8)
    assert section(table, "control") == [
        "control (§5)                     noint   sup.    k=1    k=2    k=4",
        "edit_accuracy_io_k{K}            0.000  0.950  0.100  0.200  0.300   agnostic (greedy)",
        "aware_edit_accuracy_io_k{K}                    0.050  0.100  0.150   aware (K/2 out, K/2 in)",  # noqa: E501
        "edit_accuracy_pos_k{K}           1.000    n/c    n/c    n/c    n/c   agnostic (greedy)",
        "aware_edit_accuracy_pos_k{K}                     n/c    n/c    n/c   aware (K/2 out, K/2 in)",  # noqa: E501
    ]


def test_edit_accuracies_of_a_non_causal_attribute_read_nc_not_a_vacuous_one() -> None:
    table = render(hand_made_metrics(DEFAULT_KS), ATTRIBUTES[::2], DEFAULT_KS, "demo")
    pos_rows = [
        line for line in table.splitlines() if re.match(r"(aware_)?edit_accuracy_pos", line)
    ]
    assert len(pos_rows) == 2
    for row in pos_rows:
        cells = row.split()[1:]
        assert cells.count("n/c") >= len(DEFAULT_KS)
        assert "1.000" not in cells[1:]  # only the no-intervention floor itself is shown
    assert "n/c: pos is not causal here (no-intervention 1.000 > 0.5)" in table
    io_row = next(line for line in table.splitlines() if line.startswith("edit_accuracy_io"))
    assert "n/c" not in io_row and "not causal here (no-intervention 0.000" not in table


def test_default_k_list_fits_100_columns_in_few_rows() -> None:
    metrics = hand_made_metrics(DEFAULT_KS)
    table = render(metrics, ATTRIBUTES, DEFAULT_KS, "demo", details=DETAILS, tau=0.8)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert len(lines) <= 35  # was 58 rows with the default k list
    header = section(table, "control")[0].split()
    assert header[-len(DEFAULT_KS):] == [f"k={k}" for k in DEFAULT_KS]
    # a narrow terminal splits the k columns into blocks instead of overflowing
    narrow = render(metrics, ATTRIBUTES, DEFAULT_KS, "demo", details=DETAILS, tau=0.8, width=60)
    assert max(len(line) for line in narrow.splitlines()) <= 60
    assert all(f"k={k}" in narrow for k in DEFAULT_KS)


def test_row_labels_are_the_documented_metric_names_and_coverage_shows_tau() -> None:
    table = render(hand_made_metrics(DEFAULT_KS), ATTRIBUTES, DEFAULT_KS, "demo", tau=0.7)
    docs = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    titles = ("demo", "approximation", "control", "interpretability", "§N:", "noint =", "n/c:")
    labels = [
        line.split()[0] for line in table.splitlines() if line and not line.startswith(titles)
    ]
    assert "sufficiency" in labels and "edit_accuracy_io_k{K}" in labels
    for label in labels:
        generic = re.sub(r"_(io|s|pos)(?=_k\{K\}$|$)", "_{a}", label)
        assert f"`{generic}`" in docs, label
    coverage = next(line for line in table.splitlines() if line.startswith("f1_coverage_{a}"))
    assert "(τ=0.7)" in coverage


def test_occlusion_and_splitting_details_get_one_row_each_per_attribute() -> None:
    table = render(hand_made_metrics([1]), ["io", "pos"], [1], "demo", details=DETAILS, tau=0.8)
    rows = {line.split()[0]: line.split()[1:3] for line in section(table, "interpretability")}
    assert rows["n_latents_f1_0.5"] == ["40", "1"]
    assert rows["feature_norm_mean"] == ["22.375", "0.250"]
    assert rows["split_latents_max"] == ["3", "26"]
    assert rows["split_max_recall_mean"] == ["0.062", "0.000"]
    # a record without details (an old JSON) leaves those rows out rather than printing dashes
    assert "split_latents_max" not in render(hand_made_metrics([1]), ["io"], [1], "demo")


def test_readme_sample_table_has_the_rows_the_table_prints() -> None:
    readme = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")  # moved from the README
    sample = readme.split("### The table a run prints", 1)[1].split("```text\n", 1)[1]
    sample = sample.split("```", 1)[0]
    details = {"attributes": {a: DETAILS["attributes"]["io"] for a in ATTRIBUTES}}
    table = render(hand_made_metrics(DEFAULT_KS), ATTRIBUTES, DEFAULT_KS, "t", details=details)

    def labels(text: str) -> list[str]:
        return [line.split()[0] for line in text.splitlines()[1:] if line.strip()]

    assert labels(sample) == labels(table)
