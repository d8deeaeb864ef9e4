"""The shipped tiny-ioi leaderboard sits where the model's answer depends on each attribute.

The committed causal maps (``leaderboard/map/tiny-ioi-{task}/map.csv``, written by
``saebench map`` for the tasks ``ioi`` and ``ioi-order``) say, per node and attribute, how often
patching the counterfactual activation leaves the answer unchanged (``noint_accuracy``) and how
often the supervised edit reaches the patched answer (``sup_edit_accuracy``). An edit benchmark
only separates dictionaries at a (node, attribute) pair where the attribute is clearly causal
and linearly editable; the shipped leaderboard must have one for each attribute (issue 17:
noint ≤ 0.30 and sup ≥ 0.80), and its tables mark the pairs that are not causal.
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
from saebench.runner import NodeRunner
from saebench.task import load_task

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("ioi", "ioi-order")
LEADERBOARD_CSV = ROOT / "leaderboard" / "tiny-ioi.csv"
CAUSAL_MAX_NOINT, EDITABLE_MIN_SUP = 0.5, 0.8
CLEAR_MAX_NOINT = 0.30
"""A clear margin from the 0.5 cut (issue 17)."""


def _map(task: str) -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "leaderboard" / "map" / f"tiny-ioi-{task}" / "map.csv")
    frame["head"] = frame["head"].astype("Int64")
    return frame


@pytest.fixture(scope="module")
def causal_map() -> pd.DataFrame:
    return pd.concat([_map(task) for task in TASKS], ignore_index=True)


def _node_key(task: str, hook: str, head, position: str) -> tuple[str, str, int | None, str]:
    return task, hook, None if pd.isna(head) else int(head), position


def _shipped_nodes() -> set[tuple[str, str, int | None, str]]:
    frame = read_leaderboard(LEADERBOARD_CSV)
    return {_node_key(r.task, r.hook, r.head, r.position) for r in frame.itertuples()}


def _good(causal_map: pd.DataFrame, attribute: str, max_noint: float) -> set:
    rows = causal_map[causal_map["attribute"] == attribute]
    return {
        _node_key(r.task, r.hook, r.head, r.position)
        for r in rows.itertuples()
        if r.noint_accuracy <= max_noint
        and r.noint_accuracy_hi < CAUSAL_MAX_NOINT
        and r.sup_edit_accuracy >= EDITABLE_MIN_SUP
    }


def test_maps_cover_every_layer_head_and_attribute_of_the_shipped_model(causal_map):
    model = load_model("tiny-ioi")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    per_position = (n_layers + 1) + 4 * n_layers * n_heads  # resid (+ final post), z/q/k/v heads
    for task, frame in causal_map.groupby("task"):
        assert set(frame["attribute"]) == {"io", "s", "pos"}, task
        assert len(frame) == per_position * frame["position"].nunique() * 3, task
    assert set(causal_map["task"]) == set(TASKS)
    assert causal_map[["noint_accuracy", "sup_edit_accuracy"]].stack().between(0, 1).all()


@pytest.mark.parametrize("attribute", ["io", "s", "pos"])
def test_each_attribute_is_clearly_causal_and_editable_at_a_shipped_leaderboard_node(
    causal_map, attribute
):
    good = _good(causal_map, attribute, CLEAR_MAX_NOINT)
    shipped = _shipped_nodes()
    assert good & shipped, f"{attribute}: causal at {sorted(good)}, shipped {sorted(shipped)}"


def test_pos_is_causal_only_where_order_decides_the_answer(causal_map):
    """On plain IOI the model reads S's identity: no node's ``pos`` patch changes over 5% of the
    answers. On ``ioi-order`` the order word at S2 decides, and ``pos`` is clearly causal."""
    plain = causal_map[(causal_map["task"] == "ioi") & (causal_map["attribute"] == "pos")]
    assert plain["noint_accuracy"].min() >= 0.95
    assert _good(causal_map[causal_map["task"] == "ioi-order"], "pos", CLEAR_MAX_NOINT)


def test_shipped_leaderboard_rows_match_their_maps(causal_map):
    """Every shipped row's noint accuracies are its map cell's (same prompts and seeds)."""
    frame = read_leaderboard(LEADERBOARD_CSV)
    cells = causal_map.set_index(["task", "hook", "head", "position", "attribute"])
    for row in frame.drop_duplicates(["task", "hook", "head", "position"]).itertuples():
        head = pd.NA if pd.isna(row.head) else int(row.head)
        for attribute in ("io", "s", "pos"):
            cell = cells.loc[(row.task, row.hook, head, row.position, attribute)]
            value = getattr(row, f"noint_accuracy_{attribute}")
            assert value == pytest.approx(float(cell["noint_accuracy"]), abs=1e-6), row


@pytest.mark.parametrize(("task", "attribute"), [("ioi", "io"), ("ioi", "s"), ("ioi-order", "pos")])
def test_map_cells_recompute_on_the_shipped_weights(causal_map, task, attribute):
    """The best node of ``io`` and of ``s`` (task ioi) and of ``pos`` (task ioi-order): the
    scorer, run afresh on the shipped weights with the map's settings, gives the map's noint
    and supervised-edit accuracies."""
    model = load_model("tiny-ioi")
    frame = causal_map[causal_map["task"] == task]
    settings = EvalSettings(
        n_prompts=int(frame["n_prompts"].iloc[0]),
        n_fit_prompts=int(frame["n_fit_prompts"].iloc[0]),
        seed=int(frame["seed"].iloc[0]),
        ks=(1,),
        cache_dir=None,
        progress=False,
    )
    rows = frame[frame["attribute"] == attribute]
    best = rows.loc[(rows["sup_edit_accuracy"] - rows["noint_accuracy"]).idxmax()]
    assert best["noint_accuracy"] <= CLEAR_MAX_NOINT
    head = None if pd.isna(best["head"]) else int(best["head"])
    node = Node(best["hook"], best["position"], head)
    metrics = evaluate(
        model, load_task(task, tokenizer=model.tokenizer), node, "supervised:mean", settings
    ).metrics
    assert metrics[f"noint_accuracy_{attribute}"] == pytest.approx(
        best["noint_accuracy"], abs=1e-6
    ), node
    assert metrics[f"sup_edit_accuracy_{attribute}"] == pytest.approx(
        best["sup_edit_accuracy"], abs=1e-6
    ), node


def test_s_patched_answers_are_names_in_the_prompt(causal_map):
    """At every shipped node where ``s`` is clearly causal, the answer after patching the ``s``
    counterfactual (the map's ground truth) is IO or S on at least 90% of prompts: the node
    says which name to suppress, not which name to say (docs/tiny-ioi.md §3)."""
    model = load_model("tiny-ioi")
    task = load_task("ioi", tokenizer=model.tokenizer)
    prompts = task.prompts("test", 500, 0)
    counterfactual = task.counterfactual(prompts, "s", 7919 * 2)
    nodes = _good(causal_map[causal_map["task"] == "ioi"], "s", CLEAR_MAX_NOINT) & _shipped_nodes()
    assert nodes
    for _, hook, head, position in nodes:
        node = Node(hook, position, head)
        runner = NodeRunner(model, task, node, prompts, progress=False)
        answer_B = runner.patched(runner.activations(counterfactual)).argmax_N
        in_prompt = (answer_B == prompts.answer_B) | (answer_B == prompts.wrong_B)
        assert in_prompt.float().mean().item() >= 0.9, node
        assert (answer_B == prompts.wrong_B).float().mean().item() >= 0.5, node  # mostly S


def test_tables_mark_edit_accuracies_where_the_attribute_is_not_causal():
    frame = read_leaderboard(LEADERBOARD_CSV)
    for task in TASKS:
        row = frame[frame["task"] == task].iloc[[0]]
        for attribute in ("io", "s", "pos"):
            cell = formatted_cells(row, [f"edit_accuracy_{attribute}_k2"])[0][0]
            noint = float(row[f"noint_accuracy_{attribute}"].iloc[0])
            assert (cell == NOT_CAUSAL) == (noint > CAUSAL_MAX_NOINT), (task, attribute, cell)
