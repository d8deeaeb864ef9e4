"""``saebench leaderboard show --best-per-k``: the paper's per-k selection (closest edit in L2)."""

from __future__ import annotations

import pandas as pd
from test_cli import run_cli

from saebench.leaderboard.selection import best_per_k


def frame() -> pd.DataFrame:
    """Three TopK task SAEs and one gated SAE at one node, plus the supervised reference. The
    SAE with the best greedy accuracy (t1) is not the closest: the paper's selection takes t2."""
    base = {"model": "m", "task": "ioi", "hook": "blocks.1.hook_resid_pre", "head": None}
    base |= {"position": "END", "noint_accuracy_io": 0.0, "sup_edit_accuracy_io": 0.95}
    base |= {"model_processing": "{}", "sae_id": "x"}
    rows = [
        ("t1", "topk", "task", 5.0, 0.9, 4.0, 0.5),
        ("t2", "topk", "task", 2.0, 0.6, 6.0, 0.4),
        ("t3", "topk", "general", 9.0, 0.1, 1.0, 0.2),
        ("g1", "gated", "task", 3.0, 0.3, None, None),
        ("sup", "supervised_mean", "", 0.1, 0.95, 0.1, 0.95),
    ]
    return pd.DataFrame(
        [
            base
            | {"sae_hash": f"{i:016x}", "sae_name": n, "architecture": a, "data_source": d}
            | {"edit_distance_io_k2": gd, "edit_accuracy_io_k2": ga}
            | {"aware_edit_distance_io_k2": ad, "aware_edit_accuracy_io_k2": aa}
            for i, (n, a, d, gd, ga, ad, aa) in enumerate(rows)
        ]
    )


def test_best_per_k_picks_the_closest_edit_per_family_and_edit_kind():
    got = best_per_k(frame())
    picked = {
        (r.edit, r.architecture, r.data_source): (
            r.sae_name,
            r.distance,
            r.accuracy,
            r.n_candidates,
        )
        for r in got.itertuples()
    }
    assert picked == {
        ("greedy", "gated", "task"): ("g1", 3.0, 0.3, 1),
        ("greedy", "topk", "general"): ("t3", 9.0, 0.1, 1),
        ("greedy", "topk", "task"): ("t2", 2.0, 0.6, 2),
        ("aware", "topk", "general"): ("t3", 1.0, 0.2, 1),
        ("aware", "topk", "task"): ("t1", 4.0, 0.5, 2),
    }  # g1 has no aware distance; the supervised dictionary is the reference, not a family
    assert set(got["sup_edit_accuracy"]) == {0.95}


def test_show_best_per_k_prints_the_selection(tmp_path):
    csv = tmp_path / "lb.csv"
    frame().to_csv(csv, index=False)
    result = run_cli(["leaderboard", "show", str(csv), "--best-per-k"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "m ioi blocks.1.hook_resid_pre @ END"
    t2 = next(line for line in lines if " greedy " in line and "topk" in line and " task " in line)
    assert t2.split()[5:8] == ["t2", "2.000", "0.600"]
