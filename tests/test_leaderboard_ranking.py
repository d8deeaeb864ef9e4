"""Fair rankings (saebench.leaderboard.ranking, docs/metrics.md §11): tie marks from intervals and
from paired outcomes, settings groups in ``leaderboard show --sort``, the Pareto frontier."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import torch
from click.testing import CliRunner

from saebench.cli.leaderboard import leaderboard
from saebench.leaderboard import read_leaderboard, upsert_row
from saebench.leaderboard.ranking import (
    TIE,
    UNKNOWN,
    find_outcomes,
    frontier_rows,
    interval_tie,
    pareto_front,
    settings_groups,
    tie_marks,
)
from saebench.stats import bootstrap


def _rows(values, half=0.03):
    """Sorted rows of one metric with symmetric 95% intervals of half width ``half``."""
    return pd.DataFrame(
        {
            "m": values,
            "m_lo": [v - half for v in values],
            "m_hi": [v + half for v in values],
        }
    )


def test_tie_marks_on_planted_rows_follow_the_interval_rule():
    # se = 0.03 / 1.96 per row, so two rows tie below 1.96 * sqrt(2) * se = 0.0424 apart
    frame = _rows([0.80, 0.76, 0.70, 0.6999, 0.60])
    marks, paired = tie_marks(frame, "m")
    assert marks == ["", TIE, "", TIE, ""] and paired == 0
    assert interval_tie(0.5, 0.47, 0.53, 0.4576, 0.4276, 0.4876) is True  # 0.0424 − ε
    assert interval_tie(0.5, 0.47, 0.53, 0.4574, 0.4274, 0.4874) is False  # 0.0426
    frame.loc[2, ["m_lo", "m_hi"]] = math.nan  # no interval: cannot tell either neighbour
    assert tie_marks(frame, "m")[0] == ["", TIE, UNKNOWN, UNKNOWN, ""]


def _outcomes(correct: np.ndarray) -> dict[str, torch.Tensor]:
    n = len(correct)
    ones, zeros = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    return {
        "clean_ld": ones, "clean_correct": ones, "meanabl_ld": zeros,
        "noint_correct_x": zeros, "sup_edit_correct_x": ones, "sup_edit_weight_x": ones,
        "edit_correct_x_k1": torch.from_numpy(correct.astype(float)),
        "edit_weight_x_k1": zeros,
    }


META = {"attributes": {"x": 2}, "ks": [1], "tau": 0.8, "coverage_min_prompts": 10,
        "n_latents": 4, "seed": 0}


def _write_run(directory, name, sae_hash, outcomes, ids):
    identity = {"model": "m", "model_processing": "{}", "task": "t", "hook": "h", "head": None,
                "position": "END", "sae_hash": sae_hash}
    provenance = {"seed": 0, "n_prompts": len(ids), "n_fit_prompts": 100, "tau": 0.8,
                  "task_version": "1", "coverage_min_prompts": 10, "coverage_prompts": len(ids)}
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"identity": identity, "provenance": provenance}))
    bootstrap.save(bootstrap.sidecar_path(path), outcomes, {**META, "prompt_ids": ids})
    return {**identity, **provenance, "sae_id": name, "sae_name": name, "architecture": "topk"}


def test_a_paired_test_separates_correlated_rows_the_intervals_call_tied(tmp_path):
    # B fails on 40 of A's 600 correct prompts out of 1000: 0.60 against 0.56. Each row's own
    # interval is about ±0.031, so the unpaired rule ties them (0.04 < 0.043); paired, the
    # difference's standard error is about sqrt(0.04 / 1000) = 0.006 and they are distinct.
    rng = np.random.default_rng(0)
    a = np.zeros(1000, dtype=bool)
    a[rng.choice(1000, 600, replace=False)] = True
    b = a.copy()
    b[rng.choice(np.flatnonzero(a), 40, replace=False)] = False
    ids = list(range(1000))
    rows = [
        _write_run(tmp_path, "a", "a" * 16, _outcomes(a), ids),
        _write_run(tmp_path, "b", "b" * 16, _outcomes(b), ids),
    ]
    frame = pd.DataFrame(rows)
    column = "edit_accuracy_x_k1"
    for row, hits in zip(rows, (a, b), strict=True):
        lo, hi = bootstrap.percentile_interval(
            torch.from_numpy(hits[rng.integers(0, 1000, (500, 1000))].mean(1))
        )
        row.update({column: hits.mean(), f"{column}_lo": lo, f"{column}_hi": hi})
    frame = pd.DataFrame(rows)
    assert tie_marks(frame, column)[0] == ["", TIE]
    marks, paired = tie_marks(frame, column, find_outcomes(tmp_path))
    assert marks == ["", ""] and paired == 1
    # the same rows on different prompts cannot be paired: back to the intervals
    (tmp_path / "b.json").unlink()
    _write_run(tmp_path, "b", "b" * 16, _outcomes(b), [i + 1 for i in ids])
    assert tie_marks(frame, column, find_outcomes(tmp_path)) == (["", TIE], 0)


def test_pareto_frontier_of_hand_made_rows():
    #        L0:  2     4     4     8     8     16    1 (supervised)
    values = [0.50, 0.70, 0.60, 0.70, 0.90, 0.85, 1.00]
    frame = pd.DataFrame(
        {
            "model": "m", "task": "t", "hook": "h", "head": None, "position": "END",
            "n_prompts": 1000,
            "sae_name": list("abcdefs"),
            "architecture": ["topk"] * 6 + ["supervised_mean"],
            "l0": [2, 4, 4, 8, 8, 16, 1],
            "necessity": values,
            "fvu": [0.5, 0.3, 0.2, 0.3, 0.1, 0.1, 0.0],
        }
    )
    assert frontier_rows(frame, "necessity")["sae_name"].tolist() == ["a", "b", "e"]
    # lower is better for FVU: c (L0 4, 0.2) dominates b; e and f tie on FVU, e is sparser
    assert frontier_rows(frame, "fvu")["sae_name"].tolist() == ["a", "c", "e"]
    assert "s" in frontier_rows(frame, "necessity", exclude_supervised=False)["sae_name"].tolist()
    # per node: the same values at a second node form their own frontier
    other = frame.assign(hook="h2", necessity=[0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    both = frontier_rows(pd.concat([frame, other], ignore_index=True), "necessity")
    assert both[both.hook == "h2"]["sae_name"].tolist() == ["a"]
    assert pareto_front([1, math.nan, 3], [0.1, 0.9, 0.2]) == [True, False, True]


def _csv_row(name, index, n_prompts, value, half, coverage_prompts=3000):
    return {
        "model": "tiny-ioi", "model_processing": "{}", "task": "ioi",
        "hook": "blocks.1.hook_resid_pre", "head": None, "position": "END",
        "sae_id": name, "sae_hash": f"{index:016x}", "sae_name": name, "architecture": "topk",
        "seed": 0, "n_prompts": n_prompts, "n_fit_prompts": 1000, "ks": "2", "tau": 0.8,
        "task_version": "1", "coverage_min_prompts": 10, "l0": 3.0 + index,
        "coverage_prompts": coverage_prompts,
        "necessity": value, "necessity_lo": value - half, "necessity_hi": value + half,
    }


def test_show_sort_ranks_settings_groups_apart_and_marks_ties(tmp_path):
    csv = tmp_path / "lb.csv"
    for row in (
        _csv_row("big-a", 0, 1000, 0.80, 0.02),
        _csv_row("big-b", 1, 1000, 0.79, 0.02),  # tied with big-a
        _csv_row("big-c", 2, 1000, 0.60, 0.02),
        _csv_row("small", 3, 300, 0.95, 0.05),  # "best", but on 300 prompts
    ):
        upsert_row(csv, row)
    result = CliRunner().invoke(
        leaderboard, ["show", str(csv), "--sort", "necessity", "--desc", "--plain"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    first = next(i for i, line in enumerate(lines) if "n_prompts=1000" in line)
    second = next(i for i, line in enumerate(lines) if "n_prompts=300" in line)
    assert first < second  # the larger group first; "small" is not ranked above it
    assert '--filter "n_prompts == 300"' in lines[second]
    body = {line.split()[0]: line for line in lines[first:second] if line.startswith("big")}
    assert body["big-b"].rstrip().endswith(TIE) or f" {TIE} " in body["big-b"]
    assert TIE not in body["big-a"] and TIE not in body["big-c"]
    assert "ranked separately" in result.output and "n_prompts" in lines[0]
    assert len(settings_groups(pd.read_csv(csv))) == 2


def test_rows_with_other_coverage_prompts_are_ranked_apart_and_old_rows_assume_n_prompts(
    tmp_path,
):
    csv = tmp_path / "lb.csv"
    upsert_row(csv, _csv_row("default", 0, 1000, 0.80, 0.02))
    upsert_row(csv, _csv_row("few", 1, 1000, 0.90, 0.02, coverage_prompts=300))
    header = csv.read_text().splitlines()[0].split(",")
    old = {**_csv_row("old", 2, 1000, 0.85, 0.02)}
    del old["coverage_prompts"]  # a row written before the setting
    with csv.open("a") as handle:
        handle.write(",".join(str(old.get(c, "")) if old.get(c) is not None else ""
                              for c in header) + "\n")  # fmt: skip
    frame = read_leaderboard(csv)
    coverage = dict(zip(frame["sae_name"], frame["coverage_prompts"], strict=True))
    # the old row computed coverage on its 1000 evaluation prompts
    assert coverage == {"default": 3000, "few": 300, "old": 1000}
    assert len(settings_groups(frame)) == 3
    result = CliRunner().invoke(
        leaderboard, ["show", str(csv), "--sort", "necessity", "--desc", "--plain"]
    )
    assert result.exit_code == 0, result.output
    groups = [line for line in result.output.splitlines() if line.startswith("== ")]
    assert len(groups) == 3 and all("coverage_prompts=" in line for line in groups)


def test_show_prints_n_prompts_and_intervals_by_default(tmp_path):
    csv = tmp_path / "lb.csv"
    upsert_row(csv, _csv_row("a", 0, 1000, 0.80, 0.02))
    result = CliRunner().invoke(leaderboard, ["show", str(csv), "--plain"])
    header, _, row = result.output.splitlines()[:3]
    assert header.split()[:6] == ["SAE", "arch", "hook", "position", "n", "L0"]
    assert "1000" in row.split() and "0.800±0.020" in row.split()
    frontier = CliRunner().invoke(leaderboard, ["show", str(csv), "--plain", "--frontier"])
    assert frontier.exit_code == 0 and "0.800±0.020" in frontier.output


def test_show_frontier_lists_each_nodes_frontier_by_l0(tmp_path):
    csv = tmp_path / "lb.csv"
    # L0 3, 4, 5, 6: b (L0 4, 0.40) is dominated by a (L0 3, 0.50), d by c
    for index, (name, value) in enumerate([("a", 0.5), ("b", 0.4), ("c", 0.8), ("d", 0.7)]):
        upsert_row(csv, _csv_row(name, index, 1000, value, 0.02))
    result = CliRunner().invoke(leaderboard, ["show", str(csv), "--plain", "--frontier",
                                              "--sort", "necessity", "--desc"])  # fmt: skip
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines()[2:] if line[:1] in "abcd"]
    assert names == ["a", "c"]  # by L0, not by necessity
