"""The shipped tiny-ioi leaderboard sits where the model's answer depends on each attribute.

The committed causal map (``leaderboard/map/tiny-ioi-ioi/map.csv``, written by ``saebench map``)
says, per node and attribute, how often patching the counterfactual activation leaves the answer
unchanged (``noint_accuracy``) and how often the supervised edit reaches the patched answer
(``sup_edit_accuracy``). An edit benchmark only separates dictionaries at a (node, attribute)
pair with noint ≤ 0.5 and sup ≥ 0.8; the shipped leaderboard must have one for every attribute
that is causal anywhere, and its tables mark the pairs that are not.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from saebench.evaluate import EvalSettings, evaluate
from saebench.leaderboard import read_leaderboard
from saebench.leaderboard.table import NOT_CAUSAL, formatted_cells
from saebench.model import load_model
from saebench.node import Node
from saebench.task import load_task

ROOT = Path(__file__).resolve().parents[1]
MAP_CSV = ROOT / "leaderboard" / "map" / "tiny-ioi-ioi" / "map.csv"
LEADERBOARD_CSV = ROOT / "leaderboard" / "tiny-ioi.csv"
CAUSAL_MAX_NOINT, EDITABLE_MIN_SUP = 0.5, 0.8
REQUIRED = ("io", "s")
"""Attributes that must be causal and editable at a shipped node (``pos``: see README)."""


@pytest.fixture(scope="module")
def causal_map() -> pd.DataFrame:
    frame = pd.read_csv(MAP_CSV)
    frame["head"] = frame["head"].astype("Int64")
    return frame


def _node_key(hook: str, head, position: str) -> tuple[str, int | None, str]:
    return hook, None if pd.isna(head) else int(head), position


def _shipped_nodes() -> set[tuple[str, int | None, str]]:
    frame = read_leaderboard(LEADERBOARD_CSV)
    return {_node_key(r.hook, r.head, r.position) for r in frame.itertuples()}


def test_map_covers_every_layer_head_and_attribute_of_the_shipped_model(causal_map):
    model = load_model("tiny-ioi")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    per_position = (n_layers + 1) + 4 * n_layers * n_heads  # resid (+ final post), z/q/k/v heads
    assert set(causal_map["attribute"]) == {"io", "s", "pos"}
    assert len(causal_map) == per_position * causal_map["position"].nunique() * 3
    assert causal_map[["noint_accuracy", "sup_edit_accuracy"]].stack().between(0, 1).all()


@pytest.mark.parametrize("attribute", REQUIRED)
def test_each_attribute_is_causal_and_editable_at_a_shipped_leaderboard_node(causal_map, attribute):
    shipped = _shipped_nodes()
    rows = causal_map[causal_map["attribute"] == attribute]
    good = [
        _node_key(r.hook, r.head, r.position)
        for r in rows.itertuples()
        if r.noint_accuracy <= CAUSAL_MAX_NOINT and r.sup_edit_accuracy >= EDITABLE_MIN_SUP
    ]
    assert set(good) & shipped, f"{attribute}: causal at {good}, shipped {sorted(shipped)}"


def test_shipped_nodes_cover_every_attribute_the_map_finds_causal(causal_map):
    shipped = _shipped_nodes()
    causal = causal_map[
        (causal_map["noint_accuracy"] <= CAUSAL_MAX_NOINT)
        & (causal_map["sup_edit_accuracy"] >= EDITABLE_MIN_SUP)
    ]
    for attribute, rows in causal.groupby("attribute"):
        keys = {_node_key(r.hook, r.head, r.position) for r in rows.itertuples()}
        assert keys & shipped, attribute


def test_two_map_cells_recompute_on_the_shipped_weights(causal_map):
    """The best node of ``io`` and of ``s``: the scorer, run afresh on the shipped weights with
    the map's settings, gives the map's noint and supervised-edit accuracies."""
    model = load_model("tiny-ioi")
    task = load_task("ioi", tokenizer=model.tokenizer)
    settings = EvalSettings(
        n_prompts=int(causal_map["n_prompts"].iloc[0]),
        n_fit_prompts=int(causal_map["n_fit_prompts"].iloc[0]),
        seed=int(causal_map["seed"].iloc[0]),
        ks=(1,),
        cache_dir=None,
        progress=False,
    )
    for attribute in REQUIRED:
        rows = causal_map[causal_map["attribute"] == attribute]
        best = rows.loc[(rows["sup_edit_accuracy"] - rows["noint_accuracy"]).idxmax()]
        head = None if pd.isna(best["head"]) else int(best["head"])
        node = Node(best["hook"], best["position"], head)
        metrics = evaluate(model, task, node, "supervised:mean", settings).metrics
        assert metrics[f"noint_accuracy_{attribute}"] == pytest.approx(
            best["noint_accuracy"], abs=1e-6
        ), node
        assert metrics[f"sup_edit_accuracy_{attribute}"] == pytest.approx(
            best["sup_edit_accuracy"], abs=1e-6
        ), node


def test_tables_mark_edit_accuracies_where_the_attribute_is_not_causal():
    frame = read_leaderboard(LEADERBOARD_CSV)
    row = frame.iloc[[0]]
    for attribute in ("io", "s", "pos"):
        cell = formatted_cells(row, [f"edit_accuracy_{attribute}_k2"])[0][0]
        noint = float(row[f"noint_accuracy_{attribute}"].iloc[0])
        assert (cell == NOT_CAUSAL) == (noint > CAUSAL_MAX_NOINT), (attribute, noint, cell)
