"""Issue 18 (reliability): one test per numbered failure, each through the CLI (or the API for
API items): the exit code, exactly one ``error:`` line, no traceback, and every pre-existing
file byte-identical. Most are refused before any model is loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_cli import write_sae
from test_cli_failures import SMALL, fails_cleanly, snapshot
from test_leaderboard_store import make_row

from saebench.leaderboard.store import upsert_row


@pytest.fixture(scope="module")
def sae(tmp_path_factory) -> Path:
    return write_sae(tmp_path_factory.mktemp("sae") / "my-sae")


def leaderboard_with_rows(path: Path, n: int = 3) -> Path:
    for i in range(n):
        upsert_row(path, make_row(i))
    return path


def spec_file(path: Path, sweep: str, saes: list[str]) -> Path:
    entries = "".join(f'\n[[sae]]\npath = "{s}"\n' for s in saes)
    path.write_text(f"[sweep]\n{sweep}\n{entries}")
    return path


# 1. Data loss: an output that is another output ------------------------------------------


@pytest.mark.parametrize(
    "json_out",
    ["{root}/lb.csv", "{root}/./lb.csv", "{root}/sub/../lb.csv", "{root}/link.csv",
     "{root}/hard.csv", "{root}/lb.csv.lock", "{root}/lb.csv.lock.holder"],
)
def test_1_a_json_over_the_leaderboard_is_refused_and_no_row_is_lost(sae, tmp_path, json_out):
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    (tmp_path / "sub").mkdir()
    os.symlink(csv, tmp_path / "link.csv")
    os.link(csv, tmp_path / "hard.csv")
    before = snapshot(tmp_path)
    fails_cleanly(
        ["run", "--sae", str(sae), *SMALL, "--leaderboard", str(csv),
         "--json-out", json_out.format(root=tmp_path)],
        "leaderboard",
    )
    assert snapshot(tmp_path) == before


def test_1_a_json_over_a_file_that_is_not_json_or_an_input_is_refused(sae, tmp_path):
    other = leaderboard_with_rows(tmp_path / "other.csv")
    before = snapshot(tmp_path)
    fails_cleanly(
        ["run", "--sae", str(sae), *SMALL, "--no-leaderboard", "--json-out", str(other)],
        "not a JSON record",
    )
    fails_cleanly(
        ["run", "--sae", str(sae), *SMALL, "--no-leaderboard",
         "--json-out", str(sae / "cfg.json")],
        "cfg.json",
    )
    assert snapshot(tmp_path) == before


def test_1_one_sae_json_over_another_saes_leaderboard_is_refused(tmp_path):
    a = write_sae(tmp_path / "saes" / "a", seed=1)
    write_sae(tmp_path / "saes" / "b", seed=2)
    csv = leaderboard_with_rows(tmp_path / "b.csv")
    before = snapshot(tmp_path)
    # a's JSON is tmp/b.csv, which is b's leaderboard (templated with {sae})
    fails_cleanly(
        ["run", "--sae", str(a.parent / "*"), *SMALL, "--leaderboard",
         str(tmp_path / "{sae}.csv"), "--json-out", str(tmp_path / "b.csv")],
        "leaderboard",
    )
    assert snapshot(tmp_path) == before
    assert csv.read_bytes() == before[str(csv)]


def test_1_a_sweep_spec_whose_json_is_its_leaderboard_is_refused(sae, tmp_path):
    csv = leaderboard_with_rows(tmp_path / "lb3.csv")
    spec = spec_file(
        tmp_path / "s.toml",
        f'model = "random-gpt2"\nleaderboard = "{csv}"\njson_out = "{csv}"\nn_prompts = 40\n'
        "n_fit_prompts = 300\nks = [1, 2]\ncache_dir = false",
        [str(sae)],
    )
    before = snapshot(tmp_path)
    fails_cleanly(["sweep", str(spec), "--quiet"], "lb3.csv")
    assert snapshot(tmp_path) == before
