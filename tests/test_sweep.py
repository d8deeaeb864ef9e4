"""``saebench sweep``: spec parsing and expansion, the local executor (rows, resuming,
failures) and, when Ray is installed, the Ray executor on a local cluster."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_cli import run_cli, write_sae

import saebench.sweep.execute
from saebench.defaults import DEFAULT_KS
from saebench.leaderboard.schema import IDENTITY_COLUMNS
from saebench.sweep.execute import run_job, sweep
from saebench.sweep.spec import SpecError, expand_spec, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[1]
TINY_IOI_ROWS, TINY_GT_ROWS = 145, 29
"""Rows of the shipped leaderboards: every baseline and the two supervised dictionaries at each
node (tiny-ioi: 5 nodes over the tasks ioi and ioi-order; tiny-gt: 1)."""
RESID = "blocks.1.hook_resid_pre@END"
Z_HEAD = "blocks.0.attn.hook_z[2]@END"
TIME_COLUMNS = ("date", "wall_time_s", "shared_wall_time_s")
"""Provenance cells that differ between two runs of the same SAE."""


def write_spec(tmp_path: Path, saes: Path, name: str = "lb", extra: str = "") -> Path:
    """A spec of six random SAEs on tiny-ioi: four at their own node (the residual stream
    entering block 1) and two at head 2 of block 0's ``hook_z``, with small settings."""
    spec = tmp_path / f"{name}.toml"
    spec.write_text(
        f"""
[sweep]
model = "tiny-ioi"
leaderboard = "{tmp_path / name}.csv"
json_out = "{tmp_path / name}/{{sae}}-{{node}}.json"
n_prompts = 40
n_fit_prompts = 300
ks = [1, 2]
cache_dir = false

[[sae]]
path = "{saes}/resid/*"

[[node]]
hook = "blocks.0.attn.hook_z"
head = 2
saes = ["{saes}/z/z0", "{saes}/z/z1"]
{extra}
"""
    )
    return spec


@pytest.fixture(scope="module")
def saes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("saes")
    for i in range(4):
        write_sae(root / "resid" / f"r{i}", model_name="tiny-ioi", d=64, f=96, seed=i)
    for i in range(2):  # d_head 16; the hook in their config is overridden by the spec
        write_sae(root / "z" / f"z{i}", model_name="tiny-ioi", d=16, f=32, seed=10 + i)
    return root


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """The names of the jobs the local executor ran, in order."""
    names: list[str] = []

    def counted(job, *args, **kwargs):
        names.append(job.name)
        return run_job(job, *args, **kwargs)

    monkeypatch.setattr(saebench.sweep.execute, "run_job", counted)
    return names


def rows(csv: Path) -> pd.DataFrame:
    table = pd.read_csv(csv)
    return table.sort_values(["hook", "sae_name"]).reset_index(drop=True)


def test_spec_parsing_fills_defaults_flattens_node_lists_and_rejects_unknown_keys(tmp_path):
    spec = parse_spec(
        {
            "sweep": {"model": "tiny-ioi", "ks": [4, 1], "leaderboard": False},
            "sae": [{"path": "a/*"}],
            "node": [{"hook": "blocks.0.attn.hook_z", "head": 1, "saes": ["b", "c"]}],
        }
    )
    assert spec.settings["ks"] == (1, 4) and spec.settings["leaderboard"] is None
    assert spec.settings["n_prompts"] == 1000 and spec.settings["task"] == "ioi"
    assert [(e.path, e.hook, e.head) for e in spec.entries] == [
        ("a/*", None, None),
        ("b", "blocks.0.attn.hook_z", 1),
        ("c", "blocks.0.attn.hook_z", 1),
    ]
    for bad in (
        {"sweep": {"n_promts": 40}, "sae": [{"path": "a"}]},
        {"sweep": {}, "sae": [{"path": "a", "layer": 3}]},
        {"sweep": {"ks": [0]}, "sae": [{"path": "a"}]},
        {"sweep": {}, "node": [{"hook": "resid 3", "saes": ["a"]}]},
        {"sweep": {}},
    ):
        with pytest.raises(SpecError):
            parse_spec(bad)
    (tmp_path / "broken.toml").write_text("[sweep\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(tmp_path / "broken.toml")


def test_example_spec_expands_into_one_job_per_node_of_the_shipped_saes(monkeypatch):
    monkeypatch.chdir(REPO)  # the example's paths are relative to the repository
    expansion = expand_spec(load_spec(REPO / "sweeps/example-tiny-ioi.toml"))
    assert expansion.errors == []
    jobs = {job.node: [item.name for item in job.items] for job in expansion.jobs}
    resid, z_head = "blocks.3.hook_resid_post@END", "blocks.0.attn.hook_z[3]@END"
    assert set(jobs) == {resid, z_head}
    assert len(jobs[resid]) == 6 and all(n.startswith("topk-") for n in jobs[resid])
    assert "supervised:mean" in jobs[z_head]
    # workers get absolute paths; the leaderboard's sae_id keeps the spec's relative one
    ids = {i.config.sae_id: i for job in expansion.jobs for i in job.items}
    item = ids["baselines/saes/tiny-ioi/L3-resid_post-END/topk-k6-task"]
    assert Path(item.config.sae).is_absolute()


def test_local_sweep_writes_one_row_per_sae_and_node_and_a_rerun_skips_every_job(
    tmp_path, saes, ran
):
    spec = write_spec(tmp_path, saes)
    result = run_cli(["sweep", str(spec), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "2 jobs (0 failed): 6 scored, 0 skipped, 0 failed" in result.output
    table = rows(tmp_path / "lb.csv")
    assert list(table["sae_name"]) == ["z0", "z1", "r0", "r1", "r2", "r3"]
    assert list(table["hook"]) == ["blocks.0.attn.hook_z"] * 2 + ["blocks.1.hook_resid_pre"] * 4
    assert list(table["head"].fillna(-1)) == [2, 2, -1, -1, -1, -1]
    assert (table["n_prompts"] == 40).all() and (table["ks"] == "1,2").all()
    assert len(list((tmp_path / "lb").glob("*.json"))) == 6
    assert sorted(ran) == sorted([f"tiny-ioi {RESID}", f"tiny-ioi {Z_HEAD}"])

    ran.clear()
    again = run_cli(["sweep", str(spec), "--quiet"])
    assert again.exit_code == 0 and "0 scored, 6 skipped" in again.output
    assert ran == []  # no job ran: nothing was loaded
    assert len(pd.read_csv(tmp_path / "lb.csv")) == 6


def test_interrupted_local_sweep_reruns_only_the_jobs_that_did_not_finish(
    tmp_path, saes, monkeypatch
):
    spec = write_spec(tmp_path, saes)
    calls: list[str] = []

    def interrupted(job, *args, **kwargs):
        calls.append(job.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_job(job, *args, **kwargs)

    monkeypatch.setattr(saebench.sweep.execute, "run_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep(str(spec), progress=False)
    first, second = calls
    assert len(pd.read_csv(tmp_path / "lb.csv")) == (4 if first.endswith(RESID) else 2)

    calls.clear()

    def counted(job, *args, **kwargs):
        calls.append(job.name)
        return run_job(job, *args, **kwargs)

    monkeypatch.setattr(saebench.sweep.execute, "run_job", counted)
    report = sweep(str(spec), progress=False)
    assert calls == [second]  # only the missing job ran
    assert [j.status for j in report.jobs].count("skipped") == 1 and not report.failed
    assert len(pd.read_csv(tmp_path / "lb.csv")) == 6


def test_a_failing_job_is_reported_at_the_end_and_the_other_jobs_complete(tmp_path, saes):
    # tiny-ioi has 3 blocks: the node of the second job does not exist
    extra = f'[[node]]\nhook = "blocks.7.hook_resid_pre"\nsaes = ["{saes}/resid/r0"]\n'
    spec = write_spec(tmp_path, saes, extra=extra)
    result = run_cli(["sweep", str(spec), "--quiet"])
    assert result.exit_code == 1
    assert "3 jobs (1 failed): 6 scored, 0 skipped, 1 failed" in result.output
    assert "failed tiny-ioi blocks.7.hook_resid_pre@END" in result.output
    assert "error: r0: " in result.output and "blocks.7" in result.output
    assert len(pd.read_csv(tmp_path / "lb.csv")) == 6


def test_ray_executor_without_ray_installed_fails_with_one_line(tmp_path, saes, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = run_cli(["sweep", str(write_spec(tmp_path, saes)), "--executor", "ray"])
    assert result.exit_code == 2 and "pip install 'saebench[ray]'" in result.output
    assert not (tmp_path / "lb.csv").exists()


# ------------------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for the module: start-up costs seconds."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def comparable(csv: Path) -> pd.DataFrame:
    table = rows(csv)
    return table.drop(columns=[c for c in TIME_COLUMNS if c in table])


def test_ray_sweep_gives_exactly_the_rows_and_metrics_of_the_local_sweep(
    tmp_path, saes, ray_cluster
):
    local = run_cli(["sweep", str(write_spec(tmp_path, saes, "local")), "--quiet"])
    assert local.exit_code == 0, local.output
    spec = write_spec(tmp_path, saes, "ray")
    result = run_cli(["sweep", str(spec), "--executor", "ray", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "2 jobs (0 failed): 6 scored" in result.output
    pd.testing.assert_frame_equal(
        comparable(tmp_path / "ray.csv"), comparable(tmp_path / "local.csv")
    )
    assert len(list((tmp_path / "ray").glob("*.json"))) == 6
    again = run_cli(["sweep", str(spec), "--executor", "ray", "--quiet"])
    assert again.exit_code == 0 and "0 scored, 6 skipped" in again.output


def test_ray_job_whose_worker_dies_on_its_first_attempt_is_retried_and_rows_land_once(
    tmp_path, saes, ray_cluster
):
    crashed = tmp_path / "crashed"

    def dies_once(job, *args, **kwargs):  # runs in a Ray worker (pickled by value)
        if job.node == Z_HEAD and not crashed.exists():
            crashed.touch()
            os._exit(1)  # the worker process dies: Ray retries the task
        return run_job(job, *args, **kwargs)

    report = sweep(str(write_spec(tmp_path, saes)), executor="ray", progress=False, run=dies_once)
    assert crashed.exists() and not report.failed
    table = pd.read_csv(tmp_path / "lb.csv")
    assert len(table) == 6 and not table.duplicated(list(IDENTITY_COLUMNS)).any()


def test_ray_job_that_raises_is_reported_not_retried_and_the_others_complete(
    tmp_path, saes, ray_cluster
):
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def raises(job, *args, **kwargs):
        if job.node == Z_HEAD:
            (attempts / str(len(list(attempts.iterdir())))).touch()
            raise RuntimeError("boom")
        return run_job(job, *args, **kwargs)

    report = sweep(
        str(write_spec(tmp_path, saes)), executor="ray", progress=False, max_retries=3, run=raises
    )
    assert report.failed and len(list(attempts.iterdir())) == 1
    assert {j.job: j.status for j in report.jobs} == {
        f"tiny-ioi {RESID}": "done",
        f"tiny-ioi {Z_HEAD}": "failed",
    }
    assert any("boom" in line for line in report.failures())
    assert len(pd.read_csv(tmp_path / "lb.csv")) == 4


@pytest.mark.parametrize(
    ("model", "specs", "n_rows"),
    [
        ("tiny-ioi", ["tiny-ioi-leaderboard", "tiny-ioi-order-leaderboard"], TINY_IOI_ROWS),
        ("tiny-gt", ["tiny-gt-leaderboard"], TINY_GT_ROWS),
    ],
)
def test_the_leaderboard_spec_names_exactly_the_shipped_rows_and_settings(
    monkeypatch, model, specs, n_rows
):
    """`make leaderboard` (`make leaderboard-gt`) scores with sweeps/MODEL-*leaderboard.toml:
    their SAEs, tasks, nodes and settings are those of every row of the shipped CSV, so
    re-running them reproduces it."""
    from saebench.leaderboard import read_leaderboard

    monkeypatch.chdir(REPO)
    expansions = [expand_spec(load_spec(REPO / f"sweeps/{s}.toml"), force=True) for s in specs]
    assert [e.errors for e in expansions] == [[]] * len(specs)
    columns = ["task", "hook", "head", "position", "sae_hash", "n_prompts", "n_fit_prompts",
               "seed", "ks", "coverage_prompts"]  # fmt: skip

    def key(values) -> tuple:
        head = values["head"]
        head = None if head is None or pd.isna(head) or head == "" else int(head)
        settings = [int(values[c]) for c in ("n_prompts", "n_fit_prompts", "seed")]
        return (values["task"], values["hook"], head, values["position"], values["sae_hash"],
                *settings, str(values["ks"]), int(values["coverage_prompts"]))  # fmt: skip

    items = [item for e in expansions for job in e.jobs for item in job.items]
    spec_rows = {key(item.identity) for item in items}
    shipped = read_leaderboard(REPO / f"leaderboard/{model}.csv")
    shipped_rows = {key(row) for _, row in shipped[columns].iterrows()}
    assert len(spec_rows) == len(shipped) == n_rows
    assert spec_rows == shipped_rows
    # the specs sweep the default k grid
    assert all(str(item.identity["ks"]) == ",".join(map(str, DEFAULT_KS)) for item in items)
