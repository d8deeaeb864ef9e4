"""A leaderboard row is one SAE at one node under one set of evaluation settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_cli import run_cli, write_sae

from saebench.leaderboard import SettingsConflict, read_leaderboard, upsert_row
from saebench.leaderboard.store import read_rows
from saebench.sae.formats import hyperparameters, load_sae

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CSV = ROOT / "leaderboard" / "tiny-ioi.csv"
FAST = ["--n-fit-prompts", "300", "--k", "1,2", "--no-cache", "--quiet", "--threads", "1"]


def test_a_smaller_run_does_not_silently_replace_a_larger_runs_row(tmp_path):
    sae = write_sae(tmp_path / "my-sae")
    csv = tmp_path / "lb.csv"
    out = ["--leaderboard", str(csv), "--json-out", str(tmp_path / "{sae}-{node}.json")]
    big = run_cli(["run", "--sae", str(sae), "--n-prompts", "60", *FAST, *out])
    assert big.exit_code == 0, big.output
    row = pd.read_csv(csv).iloc[0]
    assert row["n_prompts"] == 60 and row["tau"] == 0.8 and str(row["task_version"]) == "1"

    small = run_cli(["run", "--sae", str(sae), "--n-prompts", "40", *FAST, *out])
    assert small.exit_code == 2
    assert "n_prompts=60 (this run: 40)" in small.output and "--force" in small.output
    kept = pd.read_csv(csv)
    assert len(kept) == 1 and kept.iloc[0]["n_prompts"] == 60
    assert kept.iloc[0]["sufficiency"] == row["sufficiency"]

    forced = run_cli(["run", "--sae", str(sae), "--n-prompts", "40", "--force", *FAST, *out])
    assert forced.exit_code == 0, forced.output
    replaced = pd.read_csv(csv)
    assert len(replaced) == 1 and replaced.iloc[0]["n_prompts"] == 40


def test_store_refuses_other_settings_unless_told_and_replaces_equal_ones(tmp_path):
    csv = tmp_path / "lb.csv"
    row = {
        "model": "m", "model_processing": "{}", "task": "ioi", "hook": "h", "head": None,
        "position": "END", "sae_id": "x", "sae_hash": "0" * 16, "sae_name": "x",
        "architecture": "topk", "n_prompts": 1000, "n_fit_prompts": 2000, "seed": 0,
        "ks": "1,2", "tau": 0.8, "task_version": "1", "f1_coverage_io": 0.706,
    }  # fmt: skip
    upsert_row(csv, row)
    for change in ({"n_prompts": 100}, {"ks": "1"}, {"tau": 0.5}, {"task_version": "2"}):
        with pytest.raises(SettingsConflict, match=next(iter(change))):
            upsert_row(csv, {**row, **change, "f1_coverage_io": 0.136})
    assert read_leaderboard(csv)["f1_coverage_io"].tolist() == [0.706]
    upsert_row(csv, {**row, "n_prompts": 1000.0, "ks": "2,1", "f1_coverage_io": 0.7})
    assert read_leaderboard(csv)["f1_coverage_io"].tolist() == [0.7]  # same settings
    upsert_row(csv, {**row, "n_prompts": 100, "f1_coverage_io": 0.136}, replace_settings=True)
    frame = read_leaderboard(csv)
    assert frame["n_prompts"].tolist() == [100] and frame["f1_coverage_io"].tolist() == [0.136]


def test_a_csv_written_before_settings_were_recorded_loads_and_is_migrated(tmp_path):
    old = tmp_path / "old.csv"
    shutil.copy(SHIPPED_CSV, old)  # read-only use of the shipped file
    header = old.read_text().splitlines()[0].split(",")
    legacy = "ks" not in header
    frame = read_leaderboard(old)
    assert len(frame) > 0 and {"ks", "tau", "task_version"} <= set(frame.columns)
    if legacy:
        assert set(frame["ks"]) == {"1,2,4,8,16,32"} and set(frame["tau"]) == {0.8}
    _, rows = read_rows(old)
    first = dict(rows[0])
    with pytest.raises(SettingsConflict, match="n_prompts"):
        upsert_row(old, {**first, "n_prompts": int(first["n_prompts"]) // 10})
    upsert_row(old, {**first, "l0": "1.5"})  # the same settings replace the row in place
    again = read_leaderboard(old)
    assert len(again) == len(frame) and again.loc[0, "l0"] == 1.5


def test_hyperparameters_come_from_every_config_format(tmp_path):
    shipped = load_sae(ROOT / "baselines/saes/tiny-ioi/L3-resid_post-END/topk-k6-general")
    hyper = hyperparameters(shipped)
    assert hyper["architecture"] == "topk" and hyper["k"] == 6
    assert (hyper["d_in"], hyper["d_sae"]) == (64, 512)
    assert hyper["training_tokens"] == 3000 * 512 and hyper["l1_coefficient"] is None

    sae_dir = write_sae(tmp_path / "saelens")
    runner = {"training_tokens": 123_456, "sae": {"architecture": "standard", "l1_coefficient": 5}}
    (sae_dir / "runner_cfg.json").write_text(json.dumps(runner))
    hyper = hyperparameters(load_sae(sae_dir))
    assert hyper["training_tokens"] == 123_456 and hyper["l1_coefficient"] == 5.0
    assert hyper["sae_lens_release"] is None and hyper["k"] is None


def test_run_row_and_json_carry_hyperparameters_and_settings(tmp_path):
    sae = write_sae(tmp_path / "my-sae")
    js = tmp_path / "run.json"
    out = ["--leaderboard", str(tmp_path / "lb.csv"), "--json-out", str(js)]
    result = run_cli(["run", "--sae", str(sae), "--n-prompts", "40", "--tau", "0.7", *FAST, *out])
    assert result.exit_code == 0, result.output
    record = json.loads(js.read_text())
    assert record["hyperparameters"]["d_in"] == 64 and record["hyperparameters"]["d_sae"] == 128
    assert record["identity"]["ks"] == "1,2" and record["identity"]["tau"] == 0.7
    assert record["provenance"]["wall_time_s"] > 0
    row = pd.read_csv(tmp_path / "lb.csv").iloc[0]
    assert row["d_in"] == 64 and row["tau"] == 0.7 and row["wall_time_s"] > 0
