"""The leaderboards shipped for tiny-ioi (IOI) and tiny-gt (Greater-Than): complete, and every
row's SAE is the one on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from saebench.leaderboard import read_leaderboard
from saebench.sae.formats import load_sae

ROOT = Path(__file__).resolve().parents[1]
N_NODES = {"tiny-ioi": 5, "tiny-gt": 1}
"""Nodes per leaderboard (tiny-ioi: three on the task ioi, two on ioi-order)."""
TRAINED = ("standard", "gated", "topk", "batchtopk")
REFERENCES = ("frozen_decoder", "random", "pca", "supervised_mean", "supervised_lstsq")


@pytest.fixture(scope="module", params=sorted(N_NODES))
def frame(request):
    frame = read_leaderboard(ROOT / "leaderboard" / f"{request.param}.csv")
    assert set(frame["model"]) == {request.param}
    return frame


def test_every_architecture_data_source_and_baseline_is_there_at_every_node(frame):
    nodes = frame.groupby(["task", "hook", "head", "position"], dropna=False)
    assert len(nodes) == N_NODES[frame["model"].iloc[0]]
    for _, rows in nodes:
        kinds = set(zip(rows["architecture"], rows["data_source"].fillna(""), strict=True))
        for arch in TRAINED:
            assert sum(1 for a, d in kinds if a == arch and d == "task") >= 1, arch
            assert sum(1 for a, d in kinds if a == arch and d == "general") >= 1, arch
            assert (rows["architecture"] == arch).sum() >= 6  # 3 sparsities × 2 data sources
        for ref in REFERENCES:
            assert ref in set(rows["architecture"]), ref
        assert rows["clean_accuracy"].min() > 0.9  # the model does the task at every row


def test_shipped_rows_name_their_saes_by_paths_inside_the_repository(frame):
    """Row identities hold no machine's absolute path: a clone elsewhere finds every SAE."""
    for sae_id in frame.loc[~frame["sae_id"].str.startswith("supervised:"), "sae_id"]:
        assert not Path(sae_id).is_absolute(), sae_id
        assert (ROOT / sae_id).is_dir(), sae_id


def test_every_shipped_sae_matches_its_row(frame):
    for _, row in frame[~frame["sae_id"].str.startswith("supervised:")].iterrows():
        sae = load_sae(ROOT / row["sae_id"])
        assert sae.content_hash() == row["sae_hash"], row["sae_id"]
        assert sae.meta.hook_name == row["hook"]


def test_supervised_rows_are_the_skyline_for_sufficiency(frame):
    sup = frame[frame["architecture"] == "supervised_mean"]
    assert (sup["sufficiency"] - sup["sup_sufficiency"]).abs().max() < 1e-6
