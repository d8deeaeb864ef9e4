"""The whole pipeline offline: a SAELens-format SAE on disk, `saebench run`, JSON + CSV."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from saebench.cli import main
from saebench.sae import SAE, SAEMeta
from saebench.sae.formats import save_saelens

REQUIRED = (
    [
        "clean_logit_diff",
        "clean_accuracy",
        "l0",
        "fvu",
        "dead_fraction",
        "sufficiency",
        "necessity",
        "sup_sufficiency",
        "sup_necessity",
    ]
    + [
        f"{m}_{a}"
        for a in ("io", "s", "pos")
        for m in ("sup_edit_accuracy", "noint_accuracy", "f1_coverage")
    ]
    + [
        f"edit_{m}_{a}_k{k}"
        for a in ("io", "s", "pos")
        for m in ("accuracy", "magnitude")
        for k in (1, 2)
    ]
)


def write_sae(path, model_name="random-gpt2", d=64, f=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    W_dec_FD = torch.nn.functional.normalize(torch.randn(f, d, generator=g), dim=1)
    sae = SAE(
        "standard",
        W_dec_FD.T.clone(),
        W_dec_FD,
        torch.full((f,), -0.2),
        torch.zeros(d),
        meta=SAEMeta(model_name=model_name, hook_name="blocks.1.hook_resid_pre"),
    )
    return save_saelens(sae, path)


def run_cli(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory):
    return write_sae(tmp_path_factory.mktemp("sae") / "my-sae")


def test_run_writes_json_and_one_leaderboard_row_per_sae_and_node(sae_dir, tmp_path):
    csv, js = tmp_path / "lb.csv", tmp_path / "run.json"
    args = [
        "run",
        "--sae",
        str(sae_dir),
        "--n-prompts",
        "40",
        "--n-fit-prompts",
        "300",
        "--k",
        "1,2",
        "--leaderboard",
        str(csv),
        "--json-out",
        str(js),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--coverage-min-prompts",  # 40 prompts: no name has the default 10
        "1",
        "--quiet",
    ]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    assert "sufficiency" in result.output and "my-sae on random-gpt2" in result.output
    record = json.loads(js.read_text())
    for name in REQUIRED:
        assert isinstance(record["metrics"][name], float), name
    assert record["identity"]["hook"] == "blocks.1.hook_resid_pre"
    assert record["provenance"]["versions"]["torch"] == torch.__version__
    assert (tmp_path / "cache" / "supervised").is_dir()
    # same SAE, node and settings: skipped by default; rescored, the row is replaced (and the
    # cached dictionaries give equal numbers)
    assert "skipped my-sae" in run_cli(args).output
    assert run_cli([*args, "--no-skip-existing"]).exit_code == 0
    frame = pd.read_csv(csv)
    assert len(frame) == 1
    assert frame.loc[0, "sufficiency"] == pytest.approx(record["metrics"]["sufficiency"])
    # another position is another node: a second row
    assert run_cli(args + ["--position", "S2"]).exit_code == 0
    assert sorted(pd.read_csv(csv)["position"]) == ["END", "S2"]


def test_missing_sae_is_one_error_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["run", "--sae", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "nope" in result.output
    assert "Traceback" not in result.output


def test_unavailable_model_is_one_error_line_and_exit_2(tmp_path):
    sae = write_sae(tmp_path / "gpt2-sae", model_name="gpt2-small", d=768)
    result = CliRunner().invoke(main, ["run", "--sae", str(sae), "--quiet"])
    assert result.exit_code == 2
    assert "gpt2-small" in result.output and "--model tiny-ioi" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_width_mismatch_names_the_node(tmp_path):
    sae = write_sae(tmp_path / "narrow", d=32)
    result = CliRunner().invoke(main, ["run", "--sae", str(sae), "--quiet", "--no-leaderboard"])
    assert result.exit_code == 2 and "width 64" in result.output


def test_tasks_lists_ioi_and_help_documents_every_flag():
    assert "ioi" in run_cli(["tasks"]).output
    help_text = run_cli(["run", "--help"]).output
    for flag in (
        "--sae",
        "--task",
        "--model",
        "--hook",
        "--head",
        "--position",
        "--n-prompts",
        "--k",
        "--device",
        "--batch-size",
        "--leaderboard",
        "--json-out",
        "--threads",
        "--cache-budget",
        "--skip-existing",
        "--force",
        "--checkpoints",
    ):
        assert flag in help_text


def test_a_bad_output_path_template_fails_before_any_work(sae_dir, tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output paths were checked")

    monkeypatch.setattr("saebench.run.load_model", no_model)
    result = CliRunner().invoke(
        main, ["run", "--sae", str(sae_dir), "--json-out", str(tmp_path / "{oops}.json")]
    )
    assert result.exit_code == 2 and "{oops}" in result.output


def test_several_saes_in_one_run_each_score_as_alone(sae_dir, tmp_path):
    other = write_sae(tmp_path / "other-sae", seed=1)
    common = ["--n-prompts", "40", "--n-fit-prompts", "300", "--k", "1,2", "--no-cache"]
    common += ["--quiet", "--threads", "1"]
    csv = tmp_path / "lb.csv"
    both = run_cli(
        ["run", "--sae", str(sae_dir), "--sae", str(other), *common]
        + ["--leaderboard", str(csv), "--json-out", str(tmp_path / "{sae}.json"), "--details"]
    )
    assert both.exit_code == 0, both.output
    assert both.output.count("\nsufficiency ") == 2
    assert "2 SAEs, sorted by" in both.output  # then the comparison
    assert sorted(pd.read_csv(csv)["sae_name"]) == ["my-sae", "other-sae"]
    alone = run_cli(
        ["run", "--sae", str(other), *common, "--no-leaderboard"]
        + ["--json-out", str(tmp_path / "alone.json")]
    )
    assert alone.exit_code == 0, alone.output
    shared = json.loads((tmp_path / "other-sae.json").read_text())["metrics"]
    single = json.loads((tmp_path / "alone.json").read_text())["metrics"]
    assert shared.keys() == single.keys()
    for name, value in single.items():
        assert shared[name] == value or (value != value and shared[name] != shared[name]), name


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--name", "x"], "--name names one SAE"),
        (["--json-out", "one.json"], "would both write one.json"),
    ],
)
def test_several_saes_need_distinct_names_and_json_paths(sae_dir, tmp_path, extra, expected):
    other = write_sae(tmp_path / "other-sae", seed=1)
    result = CliRunner().invoke(
        main, ["run", "--sae", str(sae_dir), "--sae", str(other), "--no-leaderboard", *extra]
    )
    assert result.exit_code == 2 and expected in result.output


def test_run_outputs_are_strict_json_0644_absolute_and_reproducible(sae_dir, tmp_path, monkeypatch):
    """`--sae DIR/cfg.json` is named after DIR; the JSON parses strictly (NaN as null), is
    mode 0644 like the CSV, records the fitting and counterfactual seeds; accuracies are k/N
    exactly; paths are printed absolute; --quiet prints no TransformerLens chatter."""
    from saebench.evaluate import FIT_SEED_OFFSET, counterfactual_seed

    monkeypatch.chdir(tmp_path)
    old_umask = os.umask(0o022)
    try:
        args = ["run", "--sae", str(sae_dir / "cfg.json"), "--n-prompts", "40"]
        args += ["--n-fit-prompts", "300", "--k", "1,2", "--no-cache", "--quiet", "--seed", "3"]
        args += ["--leaderboard", "lb.csv", "--json-out", "runs/{sae}.json"]
        result = run_cli(args)
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    assert "Moving model" not in result.output
    js = tmp_path / "runs" / "my-sae.json"
    assert f"json: {js}" in result.stdout and f"leaderboard: {tmp_path / 'lb.csv'}" in result.stdout

    def reject(constant):
        raise ValueError(f"non-strict JSON constant {constant}")

    record = json.loads(js.read_text(), parse_constant=reject)
    assert record["identity"]["sae_name"] == "my-sae"
    assert record["paths"]["json"] == str(js)
    assert stat.S_IMODE(js.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "lb.csv").stat().st_mode) == 0o644
    provenance = record["provenance"]
    assert provenance["fit_seed"] == 3 + FIT_SEED_OFFSET
    assert provenance["counterfactual_seeds"] == {
        attr: counterfactual_seed(3, i) for i, attr in enumerate(("io", "s", "pos"))
    }
    accuracies = {k: v for k, v in record["metrics"].items() if "accuracy" in k}
    assert accuracies
    # the aware edit at budget 1 is NaN by definition (no exchange fits): null in strict JSON
    assert {k for k, v in accuracies.items() if v is None} == {
        f"aware_edit_accuracy_{attr}_k1" for attr in ("io", "s", "pos")
    }
    accuracies = {k: v for k, v in accuracies.items() if v is not None}
    for name, value in accuracies.items():
        assert value == round(value * 40) / 40, (name, value)  # k/N, no float32 noise


def test_strict_json_writes_nan_and_infinity_as_null():
    from saebench.io_utils import dumps_strict

    text = dumps_strict({"a": float("nan"), "b": [float("inf"), 1.5], "c": torch.tensor(0.25)})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": 0.25}


def test_seeds_repeat_the_run_and_report_the_spread_next_to_the_interval(sae_dir, tmp_path):
    csv, js = tmp_path / "lb.csv", tmp_path / "run.json"
    common = ["run", "--sae", str(sae_dir), "--n-prompts", "40", "--n-fit-prompts", "300",
              "--coverage-prompts", "40", "--coverage-min-prompts", "1", "--k", "2",
              "--bootstrap", "50", "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    result = run_cli([*common, "--seeds", "0,1,2", "--leaderboard", str(csv), "--json-out",
                      str(js)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "spread across seeds 0, 1, 2: my-sae" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("edit_accuracy_io_k2 "))
    values = [float(v) for v in line.split()[1:]]  # three seeds, mean, sd, bootstrap ±
    assert len(values) == 6 and values[3] == pytest.approx(sum(values[:3]) / 3, abs=2e-3)
    spread = json.loads(js.read_text())["seed_spread"]
    assert spread["seeds"] == [0, 1, 2]
    item = spread["metrics"]["edit_accuracy_io_k2"]
    assert item["sd"] == pytest.approx(float(torch.tensor(item["values"]).std()), rel=1e-6)
    assert item["boot_half"] > 0
    # the first seed's run is the row; the other seeds are not written
    frame = pd.read_csv(csv)
    assert len(frame) == 1 and frame.loc[0, "seed"] == 0
    # one run of seed 0 alone gives that row's numbers
    alone = tmp_path / "alone.json"
    assert run_cli([*common, "--no-leaderboard", "--json-out", str(alone)]).exit_code == 0
    metrics = json.loads(alone.read_text())["metrics"]
    assert metrics["edit_accuracy_io_k2"] == pytest.approx(item["values"][0])
    bad = run_cli([*common, "--seeds", "0,1", "--seed", "3", "--no-leaderboard"])
    assert bad.exit_code == 2 and "--seed or --seeds" in bad.output
    assert run_cli([*common, "--seeds", "4", "--no-leaderboard"]).exit_code == 2
