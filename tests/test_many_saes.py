"""Many SAEs per `saebench run`: folders and globs, skip-existing, --force, failures, names."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cli import run_cli, write_sae

import saebench.run
from saebench import evaluate
from saebench.discover import expand, load
from saebench.sae.formats import load_sae

FAST = ["--n-prompts", "40", "--n-fit-prompts", "300", "--k", "1,2", "--no-cache", "--quiet"]
FAST += ["--threads", "1"]


def outputs(tmp_path: Path) -> list[str]:
    return [
        "--leaderboard",
        str(tmp_path / "lb.csv"),
        "--json-out",
        str(tmp_path / "runs/{sae}.json"),
    ]


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """How often the scorer's shared preparation and per-SAE scoring ran."""
    counts = {"prepare": 0, "score": 0}
    for name in counts:
        original = getattr(evaluate, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(evaluate, name, counted)
    return counts


def write_dl_trainer(path: Path, seed: int, step: int | None = None) -> Path:
    """A dictionary_learning ``AutoEncoder`` at the residual stream entering block 1 of
    random-gpt2 (``trainSAE`` layout: ``ae.pt`` + ``config.json``, checkpoint at ``step``)."""
    g = torch.Generator().manual_seed(seed)
    d, f = 64, 96
    W_dec_DF = torch.nn.functional.normalize(torch.randn(d, f, generator=g), dim=0)
    state = {
        "encoder.weight": W_dec_DF.T.clone(),
        "encoder.bias": torch.full((f,), -0.2),
        "decoder.weight": W_dec_DF,
        "bias": torch.zeros(d),
    }
    path.mkdir(parents=True)
    torch.save(state, path / "ae.pt")
    trainer = {
        "dict_class": "AutoEncoder",
        "activation_dim": d,
        "dict_size": f,
        "l1_penalty": 0.04 * (seed + 1),
        "steps": 100,
        "layer": 1,
        "lm_name": "random-gpt2",
        "submodule_name": "resid_post_layer_1",
    }
    config = {"trainer": trainer, "buffer": {"io": "in", "out_batch_size": 32}}
    (path / "config.json").write_text(json.dumps(config))
    if step is not None:
        (path / "checkpoints").mkdir()
        torch.save({k: v * 0.5 for k, v in state.items()}, path / "checkpoints" / f"ae_{step}.pt")
    return path


def test_a_folder_of_four_saes_gives_four_rows_then_skips_all_then_force_recomputes(
    tmp_path, calls, monkeypatch
):
    folder = tmp_path / "sweep"
    for seed, name in enumerate(("a", "b", "c", "d")):
        write_sae(folder / name, seed=seed)
    first = run_cli(["run", "--sae", str(folder), *FAST, *outputs(tmp_path)])
    assert first.exit_code == 0, first.output
    assert calls == {"prepare": 1, "score": 4}  # one shared preparation at the node
    frame = pd.read_csv(tmp_path / "lb.csv")
    assert sorted(frame["sae_name"]) == ["sweep/a", "sweep/b", "sweep/c", "sweep/d"]
    assert sorted(p.name for p in (tmp_path / "runs" / "sweep").glob("*.json")) == [
        "a.json", "b.json", "c.json", "d.json"
    ]  # fmt: skip
    assert (frame["wall_time_s"] > 0).all() and (frame["shared_wall_time_s"] > 0).all()
    assert set(frame["ks"]) == {"1,2"} and set(frame["n_prompts"]) == {40}
    before = (tmp_path / "lb.csv").read_text()

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every SAE had its row")

    load_model = saebench.run.load_model
    monkeypatch.setattr(saebench.run, "load_model", no_model)
    again = run_cli(["run", "--sae", str(folder), *FAST, *outputs(tmp_path)])
    assert again.exit_code == 0, again.output
    assert calls == {"prepare": 1, "score": 4}  # nothing recomputed
    assert "4 skipped: their rows" in again.output and "0 scored, 4 skipped" in again.output
    assert all(f"sweep/{name} " in again.output for name in "abcd")  # their stored numbers
    assert (tmp_path / "lb.csv").read_text() == before

    monkeypatch.setattr(saebench.run, "load_model", load_model)
    calls.update(prepare=0, score=0)
    forced = run_cli(["run", "--sae", str(folder), "--force", *FAST, *outputs(tmp_path)])
    assert forced.exit_code == 0, forced.output
    assert calls == {"prepare": 1, "score": 4} and "4 scored" in forced.output
    refreshed = pd.read_csv(tmp_path / "lb.csv")
    assert len(refreshed) == 4
    assert list(refreshed["l0"]) == pytest.approx(list(frame["l0"]))


def test_a_trainsae_folder_scores_each_trainer_and_checkpoint_with_its_own_name_and_json(
    tmp_path,
):
    sweep = tmp_path / "trainSAE-dir"
    write_dl_trainer(sweep / "trainer_0", seed=0, step=50)
    write_dl_trainer(sweep / "trainer_1", seed=1)
    result = run_cli(["run", "--sae", str(sweep), "--checkpoints", *FAST, *outputs(tmp_path)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "lb.csv").set_index("sae_name")
    names = ["trainSAE-dir/trainer_0", "trainSAE-dir/trainer_0/ae_50", "trainSAE-dir/trainer_1"]
    assert sorted(frame.index) == names
    assert frame["sae_hash"].nunique() == 3
    jsons = {name: json.loads((tmp_path / "runs" / f"{name}.json").read_text()) for name in names}
    assert len({j["identity"]["sae_hash"] for j in jsons.values()}) == 3
    # from config.json: L1 penalty, steps × activation batch (a checkpoint: its own step)
    assert frame.loc["trainSAE-dir/trainer_1", "l1_coefficient"] == pytest.approx(0.08)
    assert frame.loc["trainSAE-dir/trainer_0", "training_tokens"] == 100 * 32
    assert frame.loc["trainSAE-dir/trainer_0/ae_50", "training_tokens"] == 50 * 32
    hyper = jsons["trainSAE-dir/trainer_1"]["hyperparameters"]
    assert hyper["d_in"] == 64 and hyper["d_sae"] == 96 and hyper["architecture"] == "standard"
    # a trainer given on its own keeps its trainSAE folder in its name
    alone = expand([str(sweep / "trainer_1")])
    assert [f.name for f in alone] == ["trainSAE-dir/trainer_1"]
    # without --checkpoints a folder gives the finished SAEs only
    assert [f.name for f in expand([str(sweep)])] == names[::2]


def test_globs_expand_and_same_named_saes_get_distinct_names(tmp_path):
    for group in ("x", "y"):
        for name in ("sae-1", "sae-2"):
            write_sae(tmp_path / group / name, seed=len(group + name))
    found = expand([str(tmp_path / "*" / "sae-1"), str(tmp_path / "x" / "sae-2")])
    assert [f.name for f in found] == ["x/sae-1", "y/sae-1", "sae-2"]
    assert all(f.error is None for f in found)
    missing = expand([str(tmp_path / "nothing-*")])
    assert len(missing) == 1 and "no SAE matches" in missing[0].error


def test_one_broken_sae_is_reported_and_the_others_finish_with_exit_code_1(tmp_path):
    folder = tmp_path / "mixed"
    write_sae(folder / "good-1", seed=1)
    write_sae(folder / "good-2", seed=2)
    write_sae(folder / "narrow", d=32, seed=3)  # width 32 at a width-64 node
    corrupt = write_sae(folder / "corrupt", seed=4)
    (corrupt / "sae_weights.safetensors").write_bytes(b"not a safetensors file")
    result = run_cli(["run", "--sae", str(folder), *FAST, *outputs(tmp_path)])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert any(
        line.startswith("error: mixed/corrupt: ") and "safetensors" in line for line in errors
    )
    assert any(line.startswith("error: mixed/narrow: ") and "width 64" in line for line in errors)
    assert sorted(pd.read_csv(tmp_path / "lb.csv")["sae_name"]) == ["mixed/good-1", "mixed/good-2"]
    assert "2 scored, 0 skipped, 2 failed" in result.output


def test_checkpoint_file_loads_with_its_trainer_config(tmp_path):
    trainer = write_dl_trainer(tmp_path / "run" / "trainer_0", seed=0, step=7)
    sae = load_sae(trainer)
    checkpoint = load(str(trainer / "checkpoints" / "ae_7.pt"))
    assert checkpoint.meta.training_step == 7
    assert checkpoint.meta.hook_name == sae.meta.hook_name == "blocks.1.hook_resid_pre"
    assert torch.allclose(checkpoint.W_dec_FD, 0.5 * sae.W_dec_FD)
