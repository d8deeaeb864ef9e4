"""The leaderboard figures' visual code: edit accuracy and magnitude against k (the paper's main
figure kind), one colour per architecture and one style per data source, sweeps joined, the
supervised skyline and the no-intervention floor, and grey panels where an attribute is not
causal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from saebench.leaderboard.plots import (
    NO_INTERVENTION_GID,
    SUPERVISED_GID,
    SWEEP_LINE_GID,
    SWEEP_MEMBER_GID,
    arch_colour,
    family_gid,
    plot_edit_accuracy_vs_k,
    plot_edit_magnitude_vs_k,
    plot_interpretability_coverage,
    plot_l0_vs_fidelity,
    source_style,
)

KS = (1, 2, 4)
SUP_EDIT = {"io": 0.95, "pos": 1.0}
SUP_MAGNITUDE = {"io": 0.4, "pos": 0.0}
NOINT = {"io": 0.1, "pos": 0.97}  # io is causal at the node, pos is not
# (name, architecture, data source, l0, scale of its edit accuracies)
SAES = [
    ("topk-k2-task", "topk", "task", 2.0, 0.5),
    ("topk-k4-task", "topk", "task", 4.0, 0.9),  # the best topk/task SAE
    ("topk-k8-task", "topk", "task", 8.0, 0.7),
    ("topk-k4-general", "topk", "general", 4.0, 0.6),
    ("topk-k8-general", "topk", "general", 8.0, 0.4),
    ("gated-l1-task", "gated", "task", 30.0, 0.3),
    ("gated-l2-task", "gated", "task", 12.0, 0.8),
    ("random", "random", "", 10.0, 0.05),
    ("supervised_mean", "supervised_mean", "", 3.0, 1.0),
    ("supervised_lstsq", "supervised_lstsq", "", 3.0, 0.95),
]
FAMILIES = {("topk", "task"), ("topk", "general"), ("gated", "task"), ("random", "")}


def sweep_frame() -> pd.DataFrame:
    """One node: sweeps of two architectures on two data sources, a single random baseline and
    both supervised dictionaries' own rows."""
    rows = []
    for index, (name, arch, source, l0, scale) in enumerate(SAES):
        row: dict[str, object] = {
            "model": "tiny-ioi", "task": "ioi", "hook": "blocks.1.hook_resid_pre", "head": np.nan,
            "position": "END", "sae_hash": f"{index:016x}", "sae_name": name,
            "architecture": arch, "data_source": source or np.nan, "l0": l0, "tau": 0.8,
            "fvu": 1.0 / l0, "sufficiency": 0.5, "necessity": 0.6, "sup_fvu": 0.2,
            "sup_sufficiency": 1.0, "sup_necessity": 0.9,
        }  # fmt: skip
        for attribute in ("io", "pos"):
            row[f"noint_accuracy_{attribute}"] = NOINT[attribute]
            row[f"sup_edit_accuracy_{attribute}"] = SUP_EDIT[attribute]
            row[f"sup_edit_magnitude_{attribute}"] = SUP_MAGNITUDE[attribute]
            row[f"f1_coverage_{attribute}"] = 0.0 if arch == "gated" else scale
            row[f"f1_mean_best_{attribute}"] = 0.5
            for k in KS:
                row[f"edit_accuracy_{attribute}_k{k}"] = scale * k / 4
                row[f"aware_edit_accuracy_{attribute}_k{k}"] = scale * k / 8
                row[f"edit_magnitude_{attribute}_k{k}"] = 0.1 * k + 0.01 * index
                row[f"aware_edit_magnitude_{attribute}_k{k}"] = 0.2 * k
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return sweep_frame()


@pytest.fixture(scope="module")
def accuracy_figure(frame):
    return plot_edit_accuracy_vs_k(frame)


def _panel(figure, kind: str, attribute: str):
    """The panel of ``figure`` for one edit kind and attribute (titles name both)."""
    wanted = "interpretation-aware" if kind == "aware" else "interpretation-agnostic"
    found = [
        axis
        for axis in figure.axes
        if wanted in axis.get_title() and axis.get_title().endswith(f"attribute {attribute}")
    ]
    assert len(found) == 1, [axis.get_title() for axis in figure.axes]
    return found[0]


def _gid_lines(axis, gid: str) -> list:
    return [line for line in axis.lines if line.get_gid() == gid]


def test_edit_accuracy_vs_k_has_a_panel_per_edit_kind_and_attribute(accuracy_figure) -> None:
    assert len(accuracy_figure.axes) == 4  # one node x (agnostic, aware) x (io, pos)
    axis = _panel(accuracy_figure, "agnostic", "io")
    assert axis.get_xscale() == "log"
    assert [int(t) for t in axis.get_xticks()] == list(KS)


def test_edit_accuracy_vs_k_draws_one_bold_line_per_family(frame, accuracy_figure) -> None:
    axis = _panel(accuracy_figure, "agnostic", "io")
    bold = [line for line in axis.lines if str(line.get_gid()).startswith("family:")]
    assert sorted(line.get_gid() for line in bold) == sorted(family_gid(*f) for f in FAMILIES)
    best = _gid_lines(axis, family_gid("topk", "task"))[0]  # the highest mean accuracy
    assert np.allclose(best.get_xdata(), KS)
    assert np.allclose(best.get_ydata(), [0.9 * k / 4 for k in KS])
    # the other SAEs of the sweeps are thin lines: 8 SAEs in 4 families
    assert len(_gid_lines(axis, SWEEP_MEMBER_GID)) == 8 - 4


def test_edit_accuracy_vs_k_draws_supervised_skyline_and_no_intervention_floor(
    accuracy_figure,
) -> None:
    for kind in ("agnostic", "aware"):
        axis = _panel(accuracy_figure, kind, "io")
        (skyline,) = _gid_lines(axis, SUPERVISED_GID)
        (floor,) = _gid_lines(axis, NO_INTERVENTION_GID)
        assert np.allclose(skyline.get_ydata(), SUP_EDIT["io"])
        assert np.allclose(floor.get_ydata(), NOINT["io"])
    aware = _panel(accuracy_figure, "aware", "io")
    best = _gid_lines(aware, family_gid("topk", "task"))[0]
    assert np.allclose(best.get_ydata(), [0.9 * k / 8 for k in KS])  # aware_edit_accuracy_*


def test_edit_vs_k_greys_panels_where_the_attribute_is_not_causal(accuracy_figure) -> None:
    for kind in ("agnostic", "aware"):
        grey = _panel(accuracy_figure, kind, "pos")  # noint_accuracy_pos = 0.97 > 0.5
        causal = _panel(accuracy_figure, kind, "io")
        assert grey.get_facecolor() != causal.get_facecolor()
        assert causal.get_facecolor() == to_rgba("white")
        assert any("not causal here" in text.get_text() for text in grey.texts)
        assert not any("not causal" in text.get_text() for text in causal.texts)


def test_colour_is_the_architecture_and_style_the_data_source(accuracy_figure) -> None:
    axis = _panel(accuracy_figure, "agnostic", "io")
    task = _gid_lines(axis, family_gid("topk", "task"))[0]
    general = _gid_lines(axis, family_gid("topk", "general"))[0]
    gated = _gid_lines(axis, family_gid("gated", "task"))[0]
    assert to_rgba(task.get_color()) == to_rgba(general.get_color()) == to_rgba(arch_colour("topk"))
    assert to_rgba(gated.get_color()) != to_rgba(task.get_color())
    assert task.get_marker() == source_style("task")[0] != general.get_marker()
    assert task.get_linestyle() != general.get_linestyle()
    assert gated.get_linestyle() == task.get_linestyle()  # same data source, same style
    members = _gid_lines(axis, SWEEP_MEMBER_GID)
    assert all(line.get_linewidth() < task.get_linewidth() for line in members)


def test_the_two_supervised_dictionaries_have_distinct_markers(frame, accuracy_figure) -> None:
    axis = _panel(accuracy_figure, "agnostic", "io")
    (mean,) = _gid_lines(axis, "supervised_row:supervised_mean")
    (lstsq,) = _gid_lines(axis, "supervised_row:supervised_lstsq")
    assert mean.get_marker() != lstsq.get_marker()
    figure = plot_l0_vs_fidelity(frame)
    rows = [c for c in figure.axes[0].collections if c.get_gid() == SUPERVISED_GID]
    assert len(rows) == 2
    first, second = (row.get_paths()[0].vertices for row in rows)  # the marker shapes
    assert first.shape != second.shape or not np.allclose(first, second)


def test_edit_magnitude_vs_k_bolds_the_same_sae_and_has_no_floor(frame) -> None:
    figure = plot_edit_magnitude_vs_k(frame)
    axis = _panel(figure, "agnostic", "io")
    (skyline,) = _gid_lines(axis, SUPERVISED_GID)
    assert np.allclose(skyline.get_ydata(), SUP_MAGNITUDE["io"])
    assert not _gid_lines(axis, NO_INTERVENTION_GID)
    best = _gid_lines(axis, family_gid("topk", "task"))[0]
    index = [name for name, *_ in SAES].index("topk-k4-task")  # chosen by edit accuracy
    assert np.allclose(best.get_ydata(), [0.1 * k + 0.01 * index for k in KS])
    assert axis.get_ylabel() == "edit magnitude"


def test_l0_vs_fidelity_has_fvu_panel_and_joins_each_sweep_in_l0_order(frame) -> None:
    figure = plot_l0_vs_fidelity(frame)
    assert len(figure.axes) == 3
    fvu = figure.axes[2]
    assert "FVU" in fvu.get_title()
    (reference,) = _gid_lines(fvu, SUPERVISED_GID)
    assert np.allclose(reference.get_ydata(), 0.2)
    sweeps = _gid_lines(fvu, SWEEP_LINE_GID)
    assert len(sweeps) == 3  # topk/task, topk/general, gated/task; random is a single point
    for line in sweeps:
        assert list(line.get_xdata()) == sorted(line.get_xdata())
        assert np.allclose(line.get_ydata(), 1.0 / np.asarray(line.get_xdata()))


def test_coverage_plot_has_a_labelled_bar_per_sae_and_marks_tau(frame) -> None:
    figure = plot_interpretability_coverage(frame)
    assert len(figure.axes) == 2  # one node x (io, pos)
    axis = figure.axes[0]
    labels = [tick.get_text() for tick in axis.get_yticklabels()]
    assert sorted(labels) == sorted(name for name, *_ in SAES)
    assert labels[-2:] == ["supervised_mean", "supervised_lstsq"]  # references at the bottom
    widths = dict(zip(labels, [bar.get_width() for bar in axis.containers[0]], strict=True))
    assert widths["gated-l1-task"] == 0.0 and widths["topk-k4-task"] == pytest.approx(0.9)
    texts = [text.get_text() for text in axis.texts]
    assert texts.count("0.00") == 2 and "0.90" in texts  # one printed value per bar
    taus = [line for line in axis.lines if np.allclose(line.get_xdata(), 0.8)]
    assert len(taus) == 1


# ---- intervals, sparsity and Pareto views (issue 19, metrics.md §11) ----


def _with_intervals(frame: pd.DataFrame, half: float = 0.05) -> pd.DataFrame:
    out = frame.copy()
    prefixes = ("necessity", "edit_accuracy_io", "noint_accuracy_io", "l0")
    for column in [c for c in frame.columns if c.startswith(prefixes)]:
        out[f"{column}_lo"] = frame[column] - half
        out[f"{column}_hi"] = frame[column] + half
    return out


def _gid_artists(axis, gid: str) -> list:
    return [a for a in [*axis.lines, *axis.collections, *axis.patches] if a.get_gid() == gid]


def test_l0_vs_fidelity_draws_the_csv_intervals_as_error_bars(frame) -> None:
    from saebench.leaderboard.plots import INTERVAL_GID

    figure = plot_l0_vs_fidelity(_with_intervals(frame))
    necessity = next(a for a in figure.axes if "necessity (1 = best)" in a.get_title())
    bars = [a for a in _gid_artists(necessity, INTERVAL_GID) if hasattr(a, "get_segments")]
    assert bars  # one errorbar per family, each with vertical (and horizontal L0) segments
    segments = [seg for bar in bars for seg in bar.get_segments()]
    vertical = [seg for seg in segments if seg[0][0] == seg[1][0]]
    # necessity 0.6 ± 0.05 for every non-supervised SAE: each vertical bar spans [0.55, 0.65]
    assert len(vertical) == 8
    assert all(sorted([seg[0][1], seg[1][1]]) == pytest.approx([0.55, 0.65]) for seg in vertical)
    sufficiency = next(a for a in figure.axes if "sufficiency" in a.get_title())
    bars = [a for a in _gid_artists(sufficiency, INTERVAL_GID) if hasattr(a, "get_segments")]
    segments = [seg for bar in bars for seg in bar.get_segments()]
    # no sufficiency interval in the CSV: only the horizontal L0 bars (L0 ± 0.05)
    assert segments and all(seg[0][1] == seg[1][1] for seg in segments)
    assert all(abs(seg[1][0] - seg[0][0]) == pytest.approx(0.1) for seg in segments)


def test_edit_vs_k_bands_intervals_and_shades_k_at_least_a_quarter_of_the_width(frame) -> None:
    from saebench.leaderboard.plots import INTERVAL_GID, NOT_SPARSE_GID

    for width, start in ((16, 4.0), (8, 2.0), (64, None)):
        figure = plot_edit_accuracy_vs_k(_with_intervals(frame).assign(d_in=width))
        io = _panel(figure, "agnostic", "io")
        spans = _gid_artists(io, NOT_SPARSE_GID)
        if start is None:  # 64 / 4 = 16 > the largest k (4): nothing to shade
            assert not spans
            continue
        (span,) = spans
        assert span.get_x() == pytest.approx(start)
    bands = _gid_artists(_panel(figure, "agnostic", "io"), INTERVAL_GID)
    # the four families' bold lines, and the no-intervention floor's band (0.1 ± 0.05)
    assert len(bands) == 5
    floor = [b for b in bands if hasattr(b, "get_y")]  # axhspan: a Rectangle
    assert len(floor) == 1
    assert (floor[0].get_y(), floor[0].get_height()) == pytest.approx((0.05, 0.1))


def _segments(axis, gid: str) -> list:
    bars = [a for a in _gid_artists(axis, gid) if hasattr(a, "get_segments")]
    return [seg for bar in bars for seg in bar.get_segments()]


def test_coverage_plot_draws_the_intervals_of_coverage_and_mean_best_f1(frame) -> None:
    from saebench.leaderboard.plots import INTERVAL_GID

    planted = frame.copy()
    for attribute in ("io", "pos"):
        for metric, half in (("f1_coverage", 0.1), ("f1_mean_best", 0.02)):
            column = f"{metric}_{attribute}"
            planted[f"{column}_lo"] = (planted[column] - half).clip(lower=0)
            planted[f"{column}_hi"] = planted[column] + half
    figure = plot_interpretability_coverage(planted)
    io = next(a for a in figure.axes if a.get_title().endswith("attribute io"))
    segments = _segments(io, INTERVAL_GID)
    assert all(seg[0][1] == seg[1][1] for seg in segments)  # horizontal bars only
    widths = sorted(round(abs(seg[1][0] - seg[0][0]), 6) for seg in segments)
    # every SAE: a mean best F1 bar of width 0.04; coverage bars of width 0.2, narrower where
    # the interval is clipped at 0 (gated: coverage 0, [0, 0.1]; random: 0.05, [0, 0.15])
    assert widths.count(0.04) == len(frame)
    assert widths.count(0.1) == 2 and widths.count(0.15) == 1
    assert widths.count(0.2) == len(frame) - 3
    # an old CSV without interval columns draws none
    assert not _segments(plot_interpretability_coverage(frame).axes[0], INTERVAL_GID)


def test_edit_accuracy_vs_magnitude_draws_accuracy_intervals_as_error_bars(frame) -> None:
    from saebench.leaderboard.plots import INTERVAL_GID, plot_edit_accuracy_vs_magnitude

    planted = frame.copy()
    for column in [c for c in frame.columns if "edit_accuracy_io_k" in c]:
        planted[f"{column}_lo"] = planted[column] - 0.05
        planted[f"{column}_hi"] = planted[column] + 0.05
    figure = plot_edit_accuracy_vs_magnitude(planted)
    io = next(a for a in figure.axes if a.get_title().endswith("attribute io"))
    segments = _segments(io, INTERVAL_GID)
    # every row, both edit kinds, each k: a vertical bar of height 0.1 (no magnitude interval)
    assert len(segments) == len(frame) * 2 * len(KS)
    assert all(seg[0][0] == seg[1][0] for seg in segments)
    assert all(abs(seg[1][1] - seg[0][1]) == pytest.approx(0.1) for seg in segments)
    # the supervised edit's star gets its accuracy interval too
    starred = planted.assign(sup_edit_accuracy_io_lo=0.9, sup_edit_accuracy_io_hi=0.97)
    figure = plot_edit_accuracy_vs_magnitude(starred)
    io = next(a for a in figure.axes if a.get_title().endswith("attribute io"))
    star = [seg for seg in _segments(io, INTERVAL_GID) if seg[0][0] == SUP_MAGNITUDE["io"]]
    assert any(sorted([seg[0][1], seg[1][1]]) == pytest.approx([0.9, 0.97]) for seg in star)
    pos = next(a for a in figure.axes if a.get_title().endswith("attribute pos"))
    assert not _segments(pos, INTERVAL_GID)  # no pos intervals planted


def test_borderline_panels_are_grey_and_hatched_not_causal_ones_only_grey(frame) -> None:
    from saebench.leaderboard.plots import BORDERLINE_GID

    planted = frame.assign(noint_accuracy_io=0.48, noint_accuracy_io_lo=0.45,
                           noint_accuracy_io_hi=0.51)  # fmt: skip
    figure = plot_edit_accuracy_vs_k(planted)
    io, pos = _panel(figure, "agnostic", "io"), _panel(figure, "agnostic", "pos")
    assert _gid_artists(io, BORDERLINE_GID) and not _gid_artists(pos, BORDERLINE_GID)
    assert to_rgba(io.get_facecolor()) == to_rgba(pos.get_facecolor()) != to_rgba("white")
    assert any("borderline" in t.get_text() for t in io.texts)
    assert any("not causal here" in t.get_text() for t in pos.texts)


def test_pareto_plots_draw_the_frontier_of_hand_made_rows(frame) -> None:
    from saebench.leaderboard.pareto import (
        FRONTIER_GID,
        frontier_points,
        plot_pareto_edit_accuracy,
        plot_pareto_fidelity,
    )

    # necessity by hand: L0 2 -> 0.3, 4 -> 0.5 (and 0.2), 8 -> 0.45, 10 -> 0.1 (random),
    # 12 -> 0.7, 30 -> 0.6: frontier (2, 0.3), (4, 0.5), (12, 0.7)
    necessity = {"topk-k2-task": 0.3, "topk-k4-task": 0.5, "topk-k8-task": 0.45,
                 "topk-k4-general": 0.2, "topk-k8-general": 0.45, "gated-l1-task": 0.6,
                 "gated-l2-task": 0.7, "random": 0.1, "supervised_mean": 0.99,
                 "supervised_lstsq": 0.98}  # fmt: skip
    rows = frame.assign(necessity=frame["sae_name"].map(necessity))
    assert frontier_points(rows, "necessity").tolist() == [[2.0, 0.3], [4.0, 0.5], [12.0, 0.7]]
    # sufficiency is best at 1: 1.3 at L0 2 is farther than 0.9 at L0 4
    suff = rows.assign(sufficiency=[1.3, 0.9, 1.02, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0])
    assert frontier_points(suff, "sufficiency").tolist() == [[2.0, 1.3], [4.0, 0.9], [8.0, 1.02]]
    figure = plot_pareto_fidelity(rows)
    panel = next(a for a in figure.axes if "necessity" in a.get_title())
    (stairs,) = [line for line in panel.lines if line.get_gid() == FRONTIER_GID]
    assert list(stairs.get_xdata()) == [2.0, 4.0, 12.0]
    # edit accuracy at k = 2 and 4 (k = 6 not in the rows' ks, said in the title); no
    # frontier where the attribute is not causal (pos)
    figure = plot_pareto_edit_accuracy(rows)
    assert "k = 6 not in these rows' ks" in figure._suptitle.get_text()
    titles = [a.get_title() for a in figure.axes if a.get_title()]
    assert sum("attribute io, k = 2" in t for t in titles) == 1
    pos = next(a for a in figure.axes if "attribute pos, k = 2" in a.get_title())
    assert not _gid_artists(pos, FRONTIER_GID)
    io = next(a for a in figure.axes if "attribute io, k = 4" in a.get_title())
    # edit accuracy io k4 = scale: the frontier is topk-k2 (0.5), topk-k4-task (0.9)
    assert sorted(x for p in io.collections if p.get_gid() == FRONTIER_GID
                  for x, _ in p.get_offsets()) == [2.0, 4.0]  # fmt: skip


def test_uninformative_sufficiency_is_labelled_and_gets_no_frontier(frame) -> None:
    from saebench.leaderboard.pareto import FRONTIER_GID, plot_pareto_fidelity

    flagged = frame.assign(sufficiency_uninformative=1)
    for figure in (plot_l0_vs_fidelity(flagged), plot_pareto_fidelity(flagged)):
        panel = next(a for a in figure.axes if a.get_title().split("\n")[1].startswith("suff"))
        assert "UNINFORMATIVE" in panel.get_title() and "1 = best" not in panel.get_title()
    assert not _gid_artists(panel, FRONTIER_GID)
    plain = next(a for a in plot_l0_vs_fidelity(frame).axes if "sufficiency" in a.get_title())
    assert "1 = best" in plain.get_title()
