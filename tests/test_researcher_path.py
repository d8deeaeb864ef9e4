"""Issue 20, the researcher's path: results in the user's folder, skipped SAEs shown, one
comparison table after a folder, and the node taken from the SAE's own record."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from saebench.cli import main

REPO = Path(__file__).resolve().parents[1]
SAES = REPO / "baselines" / "saes"
FAST = ["--n-prompts", "30", "--n-fit-prompts", "200", "--k", "2,4", "--quiet", "--threads", "1",
        "--coverage-prompts", "30"]


def run_cli(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_a_default_run_writes_to_the_results_folder_never_the_shipped_leaderboard(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAEBENCH_RESULTS", raising=False)
    sae = SAES / "tiny-ioi" / "L3-resid_post-END" / "topk-k6-task"
    result = run_cli(["run", "--sae", str(sae), *FAST])
    assert result.exit_code == 0, result.output
    csv = tmp_path / "saebench-results" / "tiny-ioi.csv"
    assert f"leaderboard: {csv}" in result.output
    assert len(pd.read_csv(csv)) == 1
    assert list((tmp_path / "saebench-results" / "runs" / "tiny-ioi").glob("*.json"))
    assert not (tmp_path / "leaderboard").exists()
    # $SAEBENCH_RESULTS moves it; the checkout ignores the default folder
    monkeypatch.setenv("SAEBENCH_RESULTS", str(tmp_path / "mine"))
    again = run_cli(["run", "--sae", str(sae), *FAST])
    assert again.exit_code == 0 and (tmp_path / "mine" / "tiny-ioi.csv").exists()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "saebench-results/tiny-ioi.csv"], cwd=REPO, check=False
    )
    assert ignored.returncode == 0


def test_a_skipped_sae_shows_its_stored_numbers_and_other_settings_say_which(tmp_path, monkeypatch):
    monkeypatch.setenv("SAEBENCH_RESULTS", str(tmp_path))
    sae = SAES / "tiny-ioi" / "L3-resid_post-END" / "topk-k6-task"
    assert run_cli(["run", "--sae", str(sae), *FAST]).exit_code == 0
    skipped = run_cli(["run", "--sae", str(sae), *FAST])
    assert skipped.exit_code == 0
    assert "skipped topk-k6-task" in skipped.output and "its stored numbers" in skipped.output
    line = next(li for li in skipped.output.splitlines() if li.startswith("topk-k6-task "))
    assert any(c.isdigit() for c in line)  # L0, FVU, ... from the row
    assert "supervised (reference)" in skipped.output
    other = CliRunner().invoke(main, ["run", "--sae", str(sae), *FAST[2:], "--n-prompts", "40"])
    assert other.exit_code == 2
    assert "n_prompts=30 (this run: 40)" in other.output and "--no-leaderboard" in other.output


def test_a_folder_ends_with_one_comparison_table_of_at_most_40_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("SAEBENCH_RESULTS", str(tmp_path))
    folder = SAES / "tiny-ioi" / "L1-resid_pre-END"
    n_saes = sum(1 for p in folder.iterdir() if (p / "cfg.json").exists())
    assert n_saes > 20
    result = run_cli(["run", "--sae", str(folder), *FAST, "--no-cache"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, li in enumerate(lines) if f"{n_saes} SAEs, sorted by" in li)
    table = lines[start : lines.index("", start)]
    assert len(table) <= 40
    assert table[2].startswith("supervised (reference)")
    assert table[3].startswith("no intervention")
    assert len(table) == 4 + n_saes
    assert len(lines) <= 50  # no per-SAE tables without --details
    assert lines[-1] == f"{n_saes} scored, 0 skipped, 0 failed"


def test_a_tiny_gt_sae_scores_on_its_own_task_and_position(tmp_path, monkeypatch):
    monkeypatch.setenv("SAEBENCH_RESULTS", str(tmp_path))
    sae = SAES / "tiny-gt" / "L0-z-h0-END" / "topk-k6-task"
    result = run_cli(["run", "--sae", str(sae), *FAST])
    assert result.exit_code == 0, result.output
    assert "greater-than at blocks.0.attn.hook_z[0]@END" in result.output
    assert "task, hook, position from the SAE's own record" in result.output
    row = pd.read_csv(tmp_path / "tiny-gt.csv").iloc[0]
    assert (row["task"], row["position"], row["head"]) == ("greater-than", "END", 0)
    # flags override
    other = run_cli(["run", "--sae", str(sae), *FAST, "--position", "YY", "--no-leaderboard"])
    assert other.exit_code == 0 and "@YY" in other.output


def test_nodes_lists_hooks_widths_positions_and_causal_nodes():
    result = run_cli(["nodes", "--model", "tiny-ioi"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    resid = next(li for li in lines if li.split()[:1] == ["blocks.1.hook_resid_pre"])
    assert resid.split()[1].isdigit()  # its width
    assert any("blocks.0.attn.hook_z" in li and "heads" in li for li in lines)
    assert "task ioi: positions" in result.output and "END" in result.output
    assert "causal:" in result.output  # the shipped causal map


def test_a_wrong_hook_suggests_the_closest_names():
    sae = SAES / "tiny-ioi" / "L3-resid_post-END" / "topk-k6-task"
    syntax = CliRunner().invoke(main, ["run", "--sae", str(sae), "--hook", "blocks.1.resid_pre"])
    assert syntax.exit_code == 2 and "did you mean blocks.1.hook_resid_pre?" in syntax.output
    args = ["run", "--sae", str(sae), "--hook", "blocks.1.hook_resid_pr", "--no-leaderboard"]
    typo = CliRunner().invoke(main, [*args, *FAST])
    assert typo.exit_code == 2 and "did you mean blocks.1.hook_resid_pre" in typo.output
    assert len(typo.output.strip().splitlines()) == 1


def test_an_offline_release_fails_in_one_line_within_two_seconds(tmp_path):
    import os
    import sys
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    env["SAEBENCH_RESULTS"] = str(tmp_path / "results")
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "saebench",
            "run",
            "--sae",
            "gpt2-small-res-jb/blocks.8.hook_resid_pre",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 2, result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "not in the local Hugging Face cache" in lines[0] and "offline" in lines[0]
    assert elapsed <= 2.0, f"{elapsed:.1f} s"
    # a model, too (the SAE is local; its model is not cached)
    sae = SAES / "tiny-ioi" / "L3-resid_post-END" / "topk-k6-task"
    model = subprocess.run(
        [sys.executable, "-m", "saebench", "run", "--sae", str(sae), "--model", "gpt2-small"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert model.returncode == 2
    lines = (model.stdout + model.stderr).strip().splitlines()
    assert len(lines) == 1 and "cannot load model 'gpt2-small'" in lines[0], lines


def test_evaluate_sae_accepts_a_checkpoint_path_as_the_cli_does(tmp_path):
    from test_many_saes import write_dl_trainer  # tests/ is on sys.path (rootdir conftest)

    from saebench.api import _load_path
    from saebench.discover import load

    trainer = write_dl_trainer(tmp_path / "trainer_0", seed=0, step=50)
    checkpoint = trainer / "checkpoints" / "ae_50.pt"
    ours = _load_path(checkpoint)
    assert ours.meta.training_step == 50
    assert ours.content_hash() == load(str(checkpoint)).content_hash()


def test_the_readme_quickstart_fits_the_first_60_lines_and_its_python_runs(tmp_path, monkeypatch):
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = "\n".join(readme.splitlines()[:60])
    for needed in ("make demo", "make test", "saebench run --sae", "evaluate_sae", "Reading"):
        assert needed in first, needed
    code = re.search(r"```python\n(.*?)```", first, re.S).group(1)
    assert len(code.strip().splitlines()) <= 5
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("SAEBENCH_CACHE", str(tmp_path / "cache"))
    namespace: dict = {}
    exec(compile(code, "README.md#quickstart", "exec"), namespace)
    assert namespace["result"].metrics["sufficiency"] == namespace["result"].metrics["sufficiency"]
