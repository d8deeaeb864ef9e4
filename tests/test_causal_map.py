"""The causal map (``saebench map``) against direct full forward passes and the scorer.

On a random-init model (no download) every number of a map cell can be recomputed by hand:
the counterfactual patch with ``model.run_with_hooks`` on the whole prompt, the mean ablation
with the mean activation of the fitting prompts. The map resumes the forward pass at the node's
block from a clean run shared by all nodes of the layer, so these tests pin that sharing, the
batching and the resumption (including at the final block's ``hook_resid_post``).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from saebench.causal_map import causal_and_editable, causal_map
from saebench.cli import main
from saebench.evaluate import FIT_SEED_OFFSET, EvalSettings, evaluate
from saebench.node import Node

SETTINGS = EvalSettings(
    n_prompts=64, n_fit_prompts=128, ks=(1,), batch_size=24, progress=False, cache_dir=None
)
"""64 prompts in batches of 24, 24 and 16: the shared clean run is used batch by batch."""
POSITIONS = ("END", "S2")
ATTRIBUTES = ("io", "s", "pos")


@pytest.fixture(scope="module")
def cmap(random_model, ioi_task) -> pd.DataFrame:
    return causal_map(
        random_model, ioi_task, POSITIONS, ("resid", "z"), SETTINGS, model_name="random-gpt2"
    )


def cell(frame: pd.DataFrame, node: Node, attribute: str) -> pd.Series:
    rows = frame[(frame["node"] == str(node)) & (frame["attribute"] == attribute)]
    assert len(rows) == 1
    return rows.iloc[0]


def end_logits(model, prompts, fwd_hooks=()) -> torch.Tensor:
    """Full forward pass of the whole padded prompts, logits at END [N, V]."""
    logits_BLV = model.run_with_hooks(prompts.tokens_BL, fwd_hooks=list(fwd_hooks))
    return logits_BLV[torch.arange(len(prompts)), prompts.positions["END"]]


def write_at(node: Node, prompts, new_ND: torch.Tensor):
    """A hook writing ``new_ND`` at the node's head and position of each prompt."""
    rows = torch.arange(len(prompts))
    pos = prompts.positions[node.position]

    def hook(acts, hook=None):
        acts = acts.clone()
        if node.head is None:
            acts[rows, pos] = new_ND
        else:
            acts[rows, pos, node.head] = new_ND
        return acts

    return hook


def read_at(model, node: Node, prompts) -> torch.Tensor:
    _, cache = model.run_with_cache(prompts.tokens_BL, names_filter=node.hook_name)
    at_pos = cache[node.hook_name][torch.arange(len(prompts)), prompts.positions[node.position]]
    return at_pos if node.head is None else at_pos[:, node.head]


def test_the_map_has_one_row_per_node_position_and_attribute(random_model, cmap):
    cfg = random_model.cfg
    # resid_pre of every block, the last block's resid_post, every head of hook_z
    n_places = cfg.n_layers + 1 + cfg.n_layers * cfg.n_heads
    assert len(cmap) == n_places * len(POSITIONS) * len(ATTRIBUTES)
    assert not cmap.duplicated(["hook", "head", "position", "attribute"]).any()
    assert f"blocks.{cfg.n_layers - 1}.hook_resid_post@END" in set(cmap["node"])
    assert cmap["head"].isna().sum() == (cfg.n_layers + 1) * len(POSITIONS) * len(ATTRIBUTES)
    for column in ("noint_accuracy", "sup_edit_accuracy", "clean_accuracy"):
        assert cmap[column].between(0, 1).all()
    # causal only when the whole 95% interval of noint lies below 0.5 (metrics.md §5, §11)
    assert (cmap["causal"] == (cmap["noint_accuracy_hi"] < 0.5)).all()
    assert (cmap["status"] == "n/c").eq(cmap["noint_accuracy_lo"] > 0.5).all()
    assert (cmap["noint_accuracy_lo"] <= cmap["noint_accuracy"]).all()
    assert (cmap["noint_accuracy"] <= cmap["noint_accuracy_hi"]).all()
    assert (cmap["editable"] == (cmap["sup_edit_accuracy"] >= 0.8)).all()
    assert cmap["clean_logit_diff"].nunique() == 1  # one clean run, whichever layer shares it


def test_noint_accuracy_is_the_direct_counterfactual_patch(random_model, ioi_task, cmap):
    node = Node("blocks.1.attn.hook_z", "END", 0)
    prompts = ioi_task.prompts("test", SETTINGS.n_prompts, SETTINGS.seed)
    cf = ioi_task.counterfactual(prompts, "io", SETTINGS.seed + 7919 * 1)  # io: attribute 0
    cf_ND = read_at(random_model, node, cf)
    with torch.no_grad():
        clean_N = end_logits(random_model, prompts).argmax(-1)
        target_N = end_logits(
            random_model, prompts, [(node.hook_name, write_at(node, prompts, cf_ND))]
        ).argmax(-1)
    expected = (clean_N == target_N).float().mean().item()
    assert expected < 1  # the patch changes some answers: the comparison is not vacuous
    assert cell(cmap, node, "io")["noint_accuracy"] == expected


@pytest.mark.parametrize(
    "node",
    [Node("blocks.0.attn.hook_z", "S2", 2), Node("blocks.1.hook_resid_post", "END")],
    ids=str,
)
def test_mean_ablation_is_the_direct_full_forward(random_model, ioi_task, cmap, node):
    fit = ioi_task.prompts("test", SETTINGS.n_fit_prompts, SETTINGS.seed + FIT_SEED_OFFSET)
    mean_D = read_at(random_model, node, fit).double().mean(0).float()
    prompts = ioi_task.prompts("test", SETTINGS.n_prompts, SETTINGS.seed)
    new_ND = mean_D.expand(len(prompts), -1)
    with torch.no_grad():
        logits_NV = end_logits(
            random_model, prompts, [(node.hook_name, write_at(node, prompts, new_ND))]
        )
    rows = torch.arange(len(prompts))
    ld_N = logits_NV[rows, prompts.answer_B] - logits_NV[rows, prompts.wrong_B]
    row = cell(cmap, node, "io")
    assert row["meanabl_logit_diff"] == pytest.approx(ld_N.mean().item(), abs=1e-4)
    assert abs(row["meanabl_logit_diff"] - row["clean_logit_diff"]) > 1e-3  # it does something


def test_the_map_reports_the_scorers_numbers(random_model, ioi_task, cmap):
    node = Node("blocks.1.hook_resid_pre", "S2")
    result = evaluate(random_model, ioi_task, node, "supervised:mean", SETTINGS, "random-gpt2")
    m = result.metrics
    for attr in ATTRIBUTES:
        row = cell(cmap, node, attr)
        for column in ("clean_logit_diff", "clean_accuracy", "meanabl_logit_diff"):
            assert row[column] == m[column]
        assert row["noint_accuracy"] == m[f"noint_accuracy_{attr}"]
        assert row["sup_edit_accuracy"] == m[f"sup_edit_accuracy_{attr}"]
        # the same replicates as the scorer: the same intervals, so the same causal cut
        for metric in ("noint_accuracy", "sup_edit_accuracy"):
            lo, hi = result.intervals[f"{metric}_{attr}"]
            assert row[f"{metric}_lo"] == pytest.approx(lo, abs=1e-12)
            assert row[f"{metric}_hi"] == pytest.approx(hi, abs=1e-12)


def _planted_map(noint_hits: dict[str, int], n: int = 1000) -> pd.DataFrame:
    """A map of one node whose noint outcomes are planted: ``hits`` of ``n`` prompts agree."""
    from saebench.causal_map import COLUMNS, _intervals_of, with_status
    from saebench.stats import bootstrap

    weights = bootstrap.index_weights(bootstrap.replicate_indices(n, 500, 1), n)
    rows = []
    for attr, hits in noint_hits.items():
        correct = torch.zeros(n)
        correct[:hits] = 1
        lo, hi = _intervals_of(correct, weights)
        rows.append({
            "model": "m", "task": "ioi", "hook": "blocks.1.hook_resid_pre", "head": None,
            "position": "END", "node": "blocks.1.hook_resid_pre@END", "attribute": attr,
            "n_prompts": n, "n_fit_prompts": 100, "seed": 0, "clean_logit_diff": 7.0,
            "clean_accuracy": 1.0, "meanabl_logit_diff": 1.0, "noint_accuracy": hits / n,
            "noint_accuracy_lo": lo, "noint_accuracy_hi": hi, "sup_edit_accuracy": 0.95,
            "sup_edit_accuracy_lo": 0.93, "sup_edit_accuracy_hi": 0.96, "editable": True,
        })
    frame = with_status(pd.DataFrame(rows))
    return frame[list(COLUMNS)]


def test_borderline_in_the_map_on_planted_noint_outcomes(tmp_path):
    from matplotlib.patches import Rectangle

    from saebench.causal_map import format_summary, plot_causal_map

    # binomial se at 0.48 on 1000 prompts is 0.016: 0.48 ± 0.031 contains 0.5, 0.44 does not
    frame = _planted_map({"io": 440, "s": 480, "pos": 520, "x": 600})
    status = dict(zip(frame["attribute"], frame["status"], strict=True))
    assert status == {"io": "causal", "s": "borderline", "pos": "borderline", "x": "n/c"}
    s_row = frame[frame["attribute"] == "s"].iloc[0]
    assert s_row["noint_accuracy_lo"] == pytest.approx(0.449, abs=0.008)
    assert s_row["noint_accuracy_hi"] == pytest.approx(0.511, abs=0.008)
    assert frame["causal"].tolist() == [True, False, False, False]
    # the summary lists causal nodes and, marked b/l, borderline ones; never the n/c one
    summary = format_summary(frame)
    assert "io: 1 node\n" in summary and "s: 0 nodes (+1 borderline)" in summary
    assert "x: none" in summary
    s_line = summary.split("s: 0 nodes")[1].splitlines()[2]
    assert s_line.endswith("b/l") and "0.480 [0.4" in s_line
    # the heatmap hatches exactly the two borderline cells; a map without intervals still draws
    fig = plot_causal_map(frame, tmp_path / "heatmap.png")
    hatched = [p for ax in fig.axes for p in ax.patches
               if isinstance(p, Rectangle) and p.get_gid() == "borderline"]
    assert len(hatched) == 2
    old = frame.drop(columns=["noint_accuracy_lo", "noint_accuracy_hi", "status"])
    fig = plot_causal_map(old, tmp_path / "old.png")
    assert not [p for ax in fig.axes for p in ax.patches if p.get_gid() == "borderline"]


def run_map(args: list[str]):
    return CliRunner().invoke(main, ["map", *args], catch_exceptions=False)


def test_cli_writes_the_map_and_lists_causal_editable_nodes(tmp_path):
    from saebench.model import load_model

    out = tmp_path / "map"
    result = run_map(
        ["--model", "tiny-ioi", "--positions", "END", "--hooks", "resid", "--n-prompts", "64"]
        + ["--n-fit-prompts", "128", "--out", str(out), "--no-cache", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    csv, png = out / "map.csv", out / "heatmap.png"
    assert f"map.csv: {csv.resolve()}" in result.output
    assert f"heatmap.png: {png.resolve()}" in result.output
    assert png.read_bytes().startswith(b"\x89PNG")
    frame = pd.read_csv(csv)
    n_layers = load_model("tiny-ioi").cfg.n_layers
    assert len(frame) == (n_layers + 1) * len(ATTRIBUTES)
    assert frame["head"].isna().all() and set(frame["position"]) == {"END"}
    # one entry per attribute: "none", or a table of exactly its causal and editable nodes
    lines = result.output.splitlines()
    for attr, rows in causal_and_editable(frame).items():
        heading = [line for line in lines if line.startswith(f"{attr}: ")]
        assert len(heading) == 1
        if rows.empty:
            assert heading[0] == f"{attr}: none"
        else:
            start = lines.index(heading[0]) + 2
            listed = [line.split()[0] for line in lines[start : start + len(rows)]]
            assert listed == list(rows["node"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--positions", "END,FOO"], "unknown position label 'FOO' for task ioi"),
        (["--hooks", "resid,attn"], "unknown hook kind 'attn'"),
        (["--positions", " , "], "expected comma-separated position labels"),
    ],
)
def test_bad_options_fail_in_one_line_before_the_model_is_loaded(args, expected, monkeypatch):
    def fail(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr("saebench.model.load_model", fail)
    result = run_map(["--model", "tiny-ioi", "--no-cache", *args])
    assert result.exit_code == 2
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1
