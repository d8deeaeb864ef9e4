"""``--protocol paper`` (docs/metrics.md §10) and the GPT-2 Small sweep spec of the paper's
setting, checked offline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cli import run_cli

from saebench.defaults import PAPER_PROTOCOL
from saebench.sae import SAE, SAEMeta
from saebench.sweep.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "baselines/saes/tiny-ioi/L3-resid_post-END/topk-k6-general"


def fake_release_sae(spec: str, device: str = "cpu") -> SAE:
    """A stand-in for a SAELens release SAE (no network): gpt2-small-hook-z-kk reads a
    layer's attn.hook_z, all 12 heads concatenated (768 wide)."""
    release, sae_id = spec.split("/", 1)
    assert release == "gpt2-small-hook-z-kk", spec
    layer = int(sae_id.split(".")[1])
    g = torch.Generator().manual_seed(layer)
    w_enc = torch.randn(768, 16, generator=g)
    sae = SAE("standard", w_enc, w_enc.T.clone(), torch.zeros(16), torch.zeros(768))
    sae.meta = SAEMeta(
        model_name="gpt2-small",
        hook_name=f"blocks.{layer}.attn.hook_z",
        source=spec,
        sae_lens_release=release,
        sae_lens_id=sae_id,
    )
    return sae


def test_gpt2_small_paper_spec_dry_run_lists_the_circuit_layers_offline(monkeypatch):
    import saebench.run

    monkeypatch.setattr(saebench.run, "load_sae", fake_release_sae)
    monkeypatch.chdir(ROOT)
    result = run_cli(["sweep", "sweeps/gpt2-small-paper.toml", "--dry-run"])
    assert result.exit_code == 0, result.output
    jobs = [line for line in result.output.splitlines() if not line.startswith(" ")]
    expected = {
        0: "S2", 2: "S1+1", 3: "S2", 4: "S1+1", 5: "S2", 6: "S2",
        7: "END", 8: "END", 9: "END", 10: "END", 11: "END",
    }  # fmt: skip
    assert len(jobs) == len(expected)
    for layer, position in expected.items():
        name = f"gpt2-small blocks.{layer}.attn.hook_z@{position}: 3 SAE(s)"
        assert any(name in line for line in jobs), (name, jobs)
    assert "gpt2-small-hook-z-kk/blocks.9.hook_z" in result.output
    assert "supervised:lstsq" in result.output


def test_gpt2_small_paper_spec_sets_the_paper_protocol():
    import tomllib

    raw = tomllib.loads((ROOT / "sweeps/gpt2-small-paper.toml").read_text())
    spec = parse_spec(raw)
    assert spec.settings["protocol"] == "paper"
    assert spec.settings["n_prompts"] == 5000 and spec.settings["n_fit_prompts"] == 20_000
    assert spec.settings["ks"] == (2,)


def test_a_spec_keeps_its_own_settings_under_the_paper_protocol():
    spec = parse_spec({"sweep": {"protocol": "paper", "n_prompts": 300}, "sae": [{"path": "a"}]})
    assert spec.settings["n_prompts"] == 300
    assert spec.settings["n_fit_prompts"] == PAPER_PROTOCOL["n_fit_prompts"]
    with pytest.raises(SpecError, match="protocol must be one of saebench, paper"):
        parse_spec({"sweep": {"protocol": "papers"}, "sae": [{"path": "a"}]})


def test_ioi_counterfactual_names_from_the_other_half_and_fitting_over_all_names():
    from saebench.model import gpt2_tokenizer
    from saebench.testing import check_task
    from saebench_tasks.ioi import IOITask

    tok = gpt2_tokenizer()
    task = IOITask(tokenizer=tok, counterfactual_names="other_half")
    halves = {k: set(v.tolist()) for k, v in task.name_halves.items()}
    prompts = task.prompts("test", 300, 0)
    assert set(prompts.attributes["io"].tolist()) <= halves["test"]
    for attr in ("io", "s"):
        cf = task.counterfactual(prompts, attr, 5)
        assert set(cf.attributes[attr].tolist()) <= halves["train"], attr
    fit = task.prompts("all", 2000, 1)
    used = set(fit.attributes["io"].tolist()) | set(fit.attributes["s"].tolist())
    assert used & halves["train"] and used & halves["test"]
    # the plugin contract holds in both modes (with other_half, names no longer keep to a
    # split, and the task says so)
    assert "splits" in check_task(task, tokenizer=tok)
    assert "splits" in check_task(IOITask(tokenizer=tok), tokenizer=tok)
    with pytest.raises(ValueError, match="counterfactual_names must be one of"):
        IOITask(tokenizer=tok, counterfactual_names="other")


def test_run_with_the_paper_protocol_on_tiny_ioi(tmp_path):
    csv, js = tmp_path / "lb.csv", tmp_path / "run.json"
    args = ["run", "--sae", str(SHIPPED), "--protocol", "paper", "--n-prompts", "200"]
    args += ["--n-fit-prompts", "2000", "--leaderboard", str(csv), "--json-out", str(js)]
    args += ["--cache-dir", str(tmp_path / "cache"), "--quiet"]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    record = json.loads(js.read_text())
    assert record["config"]["protocol"] == "paper"
    assert record["config"]["n_prompts"] == 200  # given explicitly: kept
    assert list(record["config"]["ks"]) == [2]  # not given: the preset's
    row = pd.read_csv(csv).iloc[0]
    assert row["task_version"] == "1+paper" and str(row["ks"]) == "2"
    metrics = record["metrics"]
    assert not any(key.endswith("_k1") for key in metrics)
    for attr in ("io", "s", "pos"):
        score = metrics[f"edit_score_{attr}_k2"]
        assert score is None or 0.0 <= score <= 2.0  # None: NaN in the JSON
    # a counterfactual name from the other half is new to the model's IO slot as well: the
    # supervised edit (fitted over all names) still reaches the ground truth on IO
    assert metrics["sup_edit_accuracy_io"] > 0.8


def test_the_paper_protocol_is_refused_for_another_task():
    result = run_cli(
        ["run", "--sae", str(SHIPPED), "--task", "greater-than", "--protocol", "paper"]
    )
    assert result.exit_code == 2
    assert "--protocol paper is defined for the task(s) ioi" in result.output
