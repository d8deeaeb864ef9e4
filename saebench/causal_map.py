"""A causal map of a model: where the task's answer depends on which attribute, and whether the
attribute can be edited linearly there.

For every candidate node n (a hook, a head for per-head hooks, a position label) and every task
attribute i, on the task's test prompts (the scorer's prompts, :func:`saebench.evaluate.evaluate`
with the same settings):

- ``meanabl_logit_diff`` = mean_p LD(a_n(p) → ā_n), ā_n the supervised mean dictionary's bias
  (the mean activation over ``n_fit_prompts`` fitting prompts), next to ``clean_logit_diff``
  = mean_p LD(p) and ``clean_accuracy`` = P[argmax_p = IO];
- the ground truth y_gt(p) = argmax with a_n(p) → a_n(p_cf), p_cf the counterfactual of p for
  attribute i (seed ``counterfactual_seed(seed, i)``, as the scorer);
- ``noint_accuracy`` = P[argmax_clean(p) = y_gt(p)]: how rarely patching the counterfactual
  activation at n changes the answer (1 when n does not carry the attribute to the answer);
- ``sup_edit_accuracy`` = P[argmax with a_n → a_n − u_{i,v} + u_{i,v′} = y_gt]: the supervised
  mean dictionary's edit from the clean value v to the counterfactual value v′;
- 95% bootstrap intervals of both accuracies (``*_lo``, ``*_hi``): B = ``settings.n_bootstrap``
  replicates of the evaluation prompts, drawn once for the whole map with the scorer's seed
  (``seed + BOOTSTRAP_SEED_OFFSET``), percentile intervals (docs/metrics.md §11);
- ``status``: ``causal`` when the interval of noint_accuracy lies below ``causal_max_noint``
  (0.5), ``n/c`` when it lies above, ``borderline`` when it contains it (the rule of
  :func:`saebench.leaderboard.table.causal_status`; without intervals, the point decides);
  ``causal`` = status is ``causal``; ``editable`` = sup_edit_accuracy ≥ ``editable_min_sup``
  (0.8).

Each number is the one ``saebench run`` reports at that node (same prompts, seeds, fit and
supervised-dictionary cache), because the same code computes it: :class:`NodeRunner` for the
clean run and the interventions, :func:`fit_supervised` for the dictionaries.

Candidate nodes, for each requested position label: ``blocks.{l}.hook_resid_pre`` for every
layer l and ``blocks.{n−1}.hook_resid_post`` (the runner resumes at the final block from its
``hook_resid_pre`` and replaces ``hook_resid_post`` on the way to the unembedding) for hook kind
``resid``; every head h of ``blocks.{l}.attn.hook_{z,q,k,v}`` for kinds ``z``, ``q``, ``k``,
``v`` (``k`` and ``v`` have ``n_key_value_heads`` heads in grouped-query models).

Work is shared per layer: one clean run reads all of the layer's nodes and keeps the residual
stream and the attention keys and values the interventions start from (each recomputes only
positions p..END from the node's block on, :mod:`saebench.runner`), and the fitting and
counterfactual prompts (built once for the whole map) are read at all of the layer's nodes in
one forward pass per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from saebench.evaluate import EvalSettings, counterfactual_seed, fit_supervised
from saebench.metrics import control
from saebench.node import Node
from saebench.runner import CleanRun, NodeRunner, clean_run, read_nodes
from saebench.task import PromptSet, Task

logger = logging.getLogger(__name__)

HOOK_KINDS: dict[str, str] = {
    "resid": "hook_resid_pre (every block) and the final block's hook_resid_post",
    "z": "attn.hook_z, one node per head",
    "q": "attn.hook_q, one node per head",
    "k": "attn.hook_k, one node per (key-value) head",
    "v": "attn.hook_v, one node per (key-value) head",
}
"""Hook kinds a map can cover, in the order nodes are listed within a layer."""
DEFAULT_HOOKS: tuple[str, ...] = tuple(HOOK_KINDS)
DEFAULT_POSITIONS: tuple[str, ...] = ("END", "S2")
CAUSAL_MAX_NOINT = 0.5
EDITABLE_MIN_SUP = 0.8

COLUMNS: tuple[str, ...] = (
    "model",
    "task",
    "hook",
    "head",
    "position",
    "node",
    "attribute",
    "n_prompts",
    "n_fit_prompts",
    "seed",
    "clean_logit_diff",
    "clean_accuracy",
    "meanabl_logit_diff",
    "noint_accuracy",
    "noint_accuracy_lo",
    "noint_accuracy_hi",
    "sup_edit_accuracy",
    "sup_edit_accuracy_lo",
    "sup_edit_accuracy_hi",
    "status",
    "causal",
    "editable",
)
"""Columns of the map (one row per node and attribute), as written to ``map.csv``."""


def cut_status(noint: float, lo: float, hi: float, threshold: float = CAUSAL_MAX_NOINT) -> str:
    """``causal`` (interval of noint_accuracy below ``threshold``), ``n/c`` (above) or
    ``borderline`` (contains it); a missing interval (NaN) falls back on the point, where
    noint ≤ threshold is causal (docs/metrics.md §5, §11).

    >>> cut_status(0.46, 0.43, 0.49), cut_status(0.48, 0.45, 0.51), cut_status(0.9, 0.88, 0.92)
    ('causal', 'borderline', 'n/c')
    >>> cut_status(0.5, float("nan"), float("nan"))
    'causal'
    """
    if not (lo == lo and hi == hi):  # NaN: no interval
        return "causal" if noint <= threshold else "n/c"
    if hi < threshold or (lo == hi and hi <= threshold):
        return "causal"
    if lo > threshold:
        return "n/c"
    return "borderline"


def _intervals_of(correct_N: Tensor, weights_BN: Tensor | None) -> tuple[float, float]:
    """The 95% percentile interval of the mean of ``correct_N`` over bootstrap replicates."""
    from saebench.stats import bootstrap

    if weights_BN is None:
        return float("nan"), float("nan")
    reps_B = weights_BN @ correct_N.double().cpu() / correct_N.shape[0]
    return bootstrap.percentile_interval(reps_B)


def parse_list(text: str, what: str) -> tuple[str, ...]:
    """Comma-separated items, stripped, duplicates dropped (order kept); ``ValueError`` if none.

    >>> parse_list(" END, S2,END ", "position labels")
    ('END', 'S2')
    """
    items = tuple(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
    if not items:
        raise ValueError(f"expected comma-separated {what}, got {text!r}")
    return items


def check_hooks(hooks: Sequence[str]) -> None:
    """``ValueError`` naming the first unknown hook kind."""
    for kind in hooks:
        if kind not in HOOK_KINDS:
            raise ValueError(f"unknown hook kind {kind!r} (known: {', '.join(HOOK_KINDS)})")


def check_positions(positions: Sequence[str], labels: Sequence[str], task_name: str) -> None:
    """``ValueError`` naming the first position label the task does not mark."""
    for position in positions:
        if position not in labels:
            raise ValueError(
                f"unknown position label {position!r} for task {task_name} "
                f"(known: {', '.join(labels)})"
            )


def _n_heads(model, kind: str) -> int:
    cfg = model.cfg
    n_kv = getattr(cfg, "n_key_value_heads", None)
    if kind in ("k", "v") and n_kv and not getattr(cfg, "ungroup_grouped_query_attention", False):
        return int(n_kv)
    return int(cfg.n_heads)


def map_nodes(model, positions: Sequence[str], hooks: Sequence[str] = DEFAULT_HOOKS) -> list[Node]:
    """The candidate nodes, ordered by layer, hook kind (``HOOK_KINDS`` order), head, position;
    the final block's ``hook_resid_post`` (kind ``resid``) comes last. ``ValueError`` for an
    unknown hook kind or a hook the model lacks."""
    check_hooks(hooks)
    n_layers = model.cfg.n_layers
    places: list[tuple[str, int | None]] = []
    for layer in range(n_layers):
        for kind in HOOK_KINDS:
            if kind not in hooks:
                continue
            if kind == "resid":
                places.append((f"blocks.{layer}.hook_resid_pre", None))
            else:
                name = f"blocks.{layer}.attn.hook_{kind}"
                places.extend((name, head) for head in range(_n_heads(model, kind)))
    if "resid" in hooks:
        places.append((f"blocks.{n_layers - 1}.hook_resid_post", None))
    nodes = [Node(name, position, head) for name, head in places for position in positions]
    for node in nodes:
        node.check(model)
    return nodes


def _same_prompts(a: PromptSet, b: PromptSet) -> bool:
    if a is b:
        return True
    if a.tokens_BL.shape != b.tokens_BL.shape or a.positions.keys() != b.positions.keys():
        return False
    return torch.equal(a.tokens_BL.cpu(), b.tokens_BL.cpu()) and all(
        torch.equal(a.positions[k].cpu(), b.positions[k].cpu()) for k in a.positions
    )


class _SharedReads:
    """:func:`read_nodes` at a fixed set of nodes, memoised per prompt set (matched by content,
    so the fitting prompts :func:`fit_supervised` rebuilds for each node are read once)."""

    def __init__(self, model, nodes: list[Node], batch_size: int):
        self.model, self.nodes, self.batch_size = model, nodes, batch_size
        self._memo: list[tuple[PromptSet, dict[Node, Tensor]]] = []

    def __call__(self, prompts: PromptSet) -> dict[Node, Tensor]:
        for seen, acts in self._memo:
            if _same_prompts(seen, prompts):
                return acts
        acts = read_nodes(self.model, self.nodes, prompts, self.batch_size, progress=False)
        self._memo.append((prompts, acts))
        return acts


class _SharedRunner(NodeRunner):
    """A :class:`NodeRunner` on a shared clean run whose ``activations`` come from reads shared
    by the nodes of its layer (the same forward passes, so the same numbers)."""

    def __init__(
        self,
        model,
        task: Task,
        node: Node,
        prompts: PromptSet,
        batch_size: int,
        clean: CleanRun,
        reads: Callable[[PromptSet], dict[Node, Tensor]],
    ):
        super().__init__(model, task, node, prompts, batch_size, progress=False, clean=clean)
        self._reads = reads

    def activations(self, prompts: PromptSet, desc: str = "activations") -> Tensor:
        return self._reads(prompts)[self.node]


class _PromptsOnce:
    """``task`` with ``prompts`` memoised: :func:`fit_supervised` asks every node for the same
    fitting prompts, which are then built once (and read once per layer, by identity)."""

    def __init__(self, task: Task):
        self._task = task
        self._memo: dict[tuple[str, int, int], PromptSet] = {}

    def __getattr__(self, name: str):
        return getattr(self._task, name)

    def prompts(self, split: str, n: int, seed: int) -> PromptSet:
        if (split, n, seed) not in self._memo:
            self._memo[split, n, seed] = self._task.prompts(split, n, seed)
        return self._memo[split, n, seed]


def _node_rows(
    runner: NodeRunner,
    task: Task,
    settings: EvalSettings,
    model_name: str,
    counterfactuals: dict[str, PromptSet],
    fit_task: Task | _PromptsOnce,
    weights_BN: Tensor | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One row per attribute at the runner's node, and the number of evaluation prompts whose
    attribute values the fitting prompts lack (their supervised features are zero).
    ``fit_task`` is ``task`` itself or ``task`` with its prompts memoised."""
    sup_mean = fit_supervised(runner, fit_task, settings, model_name)["mean"]
    acts_ND = runner.acts_ND.float()
    labels = {a: runner.prompts.attributes[a] for a in task.attributes}
    clean = runner.clean
    meanabl_N = runner.patched(sup_mean.bias_D.expand_as(acts_ND)).metric_N
    node = runner.node
    common = {
        "model": model_name,
        "task": task.name,
        "hook": node.hook_name,
        "head": node.head,
        "position": node.position,
        "node": str(node),
        "n_prompts": settings.n_prompts,
        "n_fit_prompts": settings.n_fit_prompts,
        "seed": settings.seed,
        "clean_logit_diff": clean.metric_N.mean().item(),
        "clean_accuracy": control.agreement(clean.argmax_N, runner.prompts.answer_B),
        "meanabl_logit_diff": meanabl_N.mean().item(),
    }
    rows = []
    for attr in task.attributes:
        cf_prompts = counterfactuals[attr]
        acts_cf_ND = runner.activations(cf_prompts).float()
        target_N = runner.patched(acts_cf_ND).argmax_N
        sup_edit_ND = sup_mean.edit(acts_ND, attr, labels[attr], cf_prompts.attributes[attr])
        sup_argmax_N = runner.patched(sup_edit_ND).argmax_N
        noint_lo, noint_hi = _intervals_of((clean.argmax_N == target_N).float(), weights_BN)
        sup_lo, sup_hi = _intervals_of((sup_argmax_N == target_N).float(), weights_BN)
        rows.append(
            dict(
                common,
                attribute=attr,
                noint_accuracy=control.agreement(clean.argmax_N, target_N),
                noint_accuracy_lo=noint_lo,
                noint_accuracy_hi=noint_hi,
                sup_edit_accuracy=control.agreement(sup_argmax_N, target_N),
                sup_edit_accuracy_lo=sup_lo,
                sup_edit_accuracy_hi=sup_hi,
            )
        )
    unfitted = {
        a: int((~sup_mean.present_F[sup_mean.feature_index(a, labels[a])]).sum())
        for a in task.attributes
    }
    return rows, unfitted


@torch.no_grad()
def causal_map(
    model,
    task: Task,
    positions: Sequence[str] = DEFAULT_POSITIONS,
    hooks: Sequence[str] = DEFAULT_HOOKS,
    settings: EvalSettings | None = None,
    model_name: str = "",
    *,
    causal_max_noint: float = CAUSAL_MAX_NOINT,
    editable_min_sup: float = EDITABLE_MIN_SUP,
) -> pd.DataFrame:
    """The causal map of ``model`` on ``task`` (see the module docstring): one row per node and
    attribute, columns ``COLUMNS``, ``head`` a nullable integer (NA for whole-vector hooks).

    ``settings`` supplies ``n_prompts``, ``n_fit_prompts``, ``seed``, ``batch_size``,
    ``cache_dir`` (of the supervised dictionaries, shared with ``saebench run``),
    ``cache_budget_mb`` and ``prefix_cache`` (the clean run's key-value cache, per layer) and
    ``progress`` (a bar over nodes); default ``EvalSettings(n_prompts=500)``.
    """
    settings = settings if settings is not None else EvalSettings(n_prompts=500)
    check_positions(positions, task.position_labels, task.name)
    nodes = map_nodes(model, positions, hooks)
    device = next(model.parameters()).device
    prompts = task.prompts("test", settings.n_prompts, settings.seed).to(device)
    counterfactuals = {
        attr: task.counterfactual(prompts, attr, counterfactual_seed(settings.seed, i))
        for i, attr in enumerate(task.attributes)
    }
    by_layer: dict[int, list[Node]] = {}
    for node in nodes:
        by_layer.setdefault(node.layer, []).append(node)

    fit_task = _PromptsOnce(task)
    weights_BN = None
    if settings.n_bootstrap > 0:  # one set of replicates for every cell, as the scorer draws
        from saebench.stats import bootstrap

        idx_BN = bootstrap.replicate_indices(
            len(prompts), settings.n_bootstrap, settings.seed + bootstrap.BOOTSTRAP_SEED_OFFSET
        )
        weights_BN = bootstrap.index_weights(idx_BN, len(prompts))
    rows: list[dict[str, Any]] = []
    unfitted: dict[str, int] = {}
    bar = tqdm(total=len(nodes), desc="causal map", unit="node", disable=not settings.progress)
    for layer_nodes in by_layer.values():
        clean = clean_run(
            model,
            task,
            layer_nodes,
            prompts,
            settings.batch_size,
            progress=False,
            cache_budget_mb=settings.cache_budget_mb,
            prefix_cache=settings.prefix_cache,
        )
        reads = _SharedReads(model, layer_nodes, settings.batch_size)
        for node in layer_nodes:
            bar.set_postfix_str(str(node), refresh=False)
            runner = _SharedRunner(model, task, node, prompts, settings.batch_size, clean, reads)
            node_rows, node_unfitted = _node_rows(
                runner, task, settings, model_name, counterfactuals, fit_task, weights_BN
            )
            rows.extend(node_rows)
            for attr, count in node_unfitted.items():
                unfitted[attr] = max(unfitted.get(attr, 0), count)
            bar.update(1)
        del clean, reads
    bar.close()
    if any(unfitted.values()):
        logger.warning(
            "some evaluation prompts use attribute values absent from the %d fitting prompts "
            "(their supervised features are zero): %s; raise n_fit_prompts (the CLI's "
            "--n-fit-prompts)",
            settings.n_fit_prompts,
            unfitted,
        )

    frame = pd.DataFrame(rows)
    frame["head"] = pd.array(frame["head"].tolist(), dtype="Int64")
    with_status(frame, causal_max_noint)
    frame["editable"] = frame["sup_edit_accuracy"] >= editable_min_sup
    return frame[list(COLUMNS)]


def with_status(frame: pd.DataFrame, causal_max_noint: float = CAUSAL_MAX_NOINT) -> pd.DataFrame:
    """Set ``status`` and ``causal`` from noint_accuracy and its interval (:func:`cut_status`)
    in place, adding empty intervals to a map written before them; returns ``frame``."""
    for column in ("noint_accuracy_lo", "noint_accuracy_hi"):
        if column not in frame.columns:
            frame[column] = float("nan")
    frame["status"] = [
        cut_status(float(v), float(lo), float(hi), causal_max_noint)
        for v, lo, hi in zip(
            frame["noint_accuracy"], frame["noint_accuracy_lo"], frame["noint_accuracy_hi"],
            strict=True,
        )
    ]
    frame["causal"] = frame["status"] == "causal"
    return frame


def causal_and_editable(
    frame: pd.DataFrame, borderline: bool = False
) -> dict[str, pd.DataFrame]:
    """Per attribute (in the map's order), its causal and editable rows (with ``borderline``,
    also the editable rows whose causal status is borderline), sorted by
    sup_edit_accuracy − noint_accuracy (largest first; ties in map order)."""
    out = {}
    if "status" not in frame.columns:
        frame = with_status(frame.copy())
    wanted = ("causal", "borderline") if borderline else ("causal",)
    for attr in frame["attribute"].unique():
        rows = frame[
            (frame["attribute"] == attr) & frame["status"].isin(wanted) & frame["editable"]
        ]
        gain = rows["sup_edit_accuracy"] - rows["noint_accuracy"]
        out[attr] = rows.assign(gain=gain).sort_values("gain", ascending=False, kind="stable")
    return out


def format_summary(
    frame: pd.DataFrame,
    causal_max_noint: float = CAUSAL_MAX_NOINT,
    editable_min_sup: float = EDITABLE_MIN_SUP,
) -> str:
    """The per-attribute table ``saebench map`` prints: the nodes where the attribute is causal
    and linearly editable, by sup − noint, or ``none``."""
    first = frame.iloc[0]
    lines = [
        f"{first['model']} / {first['task']}: {len(frame['node'].unique())} nodes, "
        f"{first['n_prompts']} prompts; clean LD {first['clean_logit_diff']:.3f}, "
        f"clean accuracy {first['clean_accuracy']:.3f}",
        f"causal (95% interval of noint below {causal_max_noint:g}; b/l: it contains "
        f"{causal_max_noint:g}) and linearly editable (sup >= {editable_min_sup:g}) nodes per "
        "attribute, by sup - noint:",
    ]
    for attr, rows in causal_and_editable(frame, borderline=True).items():
        if rows.empty:
            lines.append(f"{attr}: none")
            continue
        n_causal = int((rows["status"] == "causal").sum())
        n_borderline = len(rows) - n_causal
        lines.append(
            f"{attr}: {n_causal} node{'' if n_causal == 1 else 's'}"
            + (f" (+{n_borderline} borderline)" if n_borderline else "")
        )
        width = max(len("node"), *(len(n) for n in rows["node"]))
        lines.append(
            f"  {'node':<{width}}  {'noint [95% interval]':>20}  {'sup':>6}  {'sup-noint':>9}  "
            f"{'meanabl LD':>10}  cut"
        )
        for _, row in rows.iterrows():
            lo, hi = row.get("noint_accuracy_lo"), row.get("noint_accuracy_hi")
            noint = f"{row['noint_accuracy']:.3f}" + (
                f" [{lo:.3f}, {hi:.3f}]" if lo is not None and pd.notna(lo) else ""
            )
            lines.append(
                f"  {row['node']:<{width}}  {noint:>20}  "
                f"{row['sup_edit_accuracy']:>6.3f}  {row['gain']:>9.3f}  "
                f"{row['meanabl_logit_diff']:>10.3f}  "
                + ("b/l" if row["status"] == "borderline" else "")
            )
    return "\n".join(line.rstrip() for line in lines)


def _row_label(hook: str, head: Any) -> str:
    return hook if pd.isna(head) else f"{hook}[{int(head)}]"


def plot_causal_map(frame: pd.DataFrame, path: str | Path):
    """Draw the map to ``path`` (PNG, matplotlib's Agg canvas) and return the figure.

    One panel per position: rows are the nodes (hook and head), columns the attributes; the
    colour is noint_accuracy (dark where patching the counterfactual activation changes the
    answer: causal), the first number of the text "noint/sup", and a box marks cells that are
    causal and editable (a dashed box: editable and borderline). Borderline cells (the interval
    of noint contains 0.5) are hatched. A last panel shows the mean-ablation drop
    clean LD − meanabl LD, one column per position.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if "status" not in frame.columns:
        frame = with_status(frame.copy())
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    positions = list(dict.fromkeys(frame["position"]))
    attributes = list(dict.fromkeys(frame["attribute"]))
    row_labels = [_row_label(h, k) for h, k in zip(frame["hook"], frame["head"], strict=True)]
    labels = list(dict.fromkeys(row_labels))
    row_of = {label: r for r, label in enumerate(labels)}
    n_rows, n_attr, n_pos = len(labels), len(attributes), len(positions)

    noint_PRA = np.full((n_pos, n_rows, n_attr), np.nan)
    text_PRA = np.full((n_pos, n_rows, n_attr), "", dtype=object)
    marked_PRA = np.zeros((n_pos, n_rows, n_attr), dtype=bool)
    borderline_PRA = np.zeros((n_pos, n_rows, n_attr), dtype=bool)
    drop_RP = np.full((n_rows, n_pos), np.nan)
    for row in frame.itertuples(index=False):
        p, r = positions.index(row.position), row_of[_row_label(row.hook, row.head)]
        a = attributes.index(row.attribute)
        noint_PRA[p, r, a] = row.noint_accuracy
        text_PRA[p, r, a] = f"{row.noint_accuracy:.2f}/{row.sup_edit_accuracy:.2f}"
        borderline_PRA[p, r, a] = row.status == "borderline"
        marked_PRA[p, r, a] = bool(row.status in ("causal", "borderline") and row.editable)
        drop_RP[r, p] = row.clean_logit_diff - row.meanabl_logit_diff

    height = 0.24 * n_rows + 1.6
    fig = Figure(figsize=(1.1 * n_attr * n_pos + 0.7 * n_pos + 4.5, height))
    FigureCanvasAgg(fig)
    # columns: one panel per position, the noint colour bar, a gap, LD drop, its colour bar
    ratios = [n_attr] * n_pos + [0.12, 0.35, n_pos, 0.12]
    grid = fig.add_gridspec(1, len(ratios), width_ratios=ratios, wspace=0.08)
    fig.subplots_adjust(top=1 - 1.0 / height, bottom=0.3 / height)
    first = frame.iloc[0]
    fig.suptitle(
        f"{first['model']} / {first['task']}: causal map ({first['n_prompts']} prompts). "
        "Colour and first number: noint (dark: causal), second: sup; red box: causal and "
        "editable;\nhatched: "
        "borderline (95% interval of noint contains 0.5), dashed box: borderline and editable",
        fontsize=9,
    )
    image = None
    for p, position in enumerate(positions):
        ax = fig.add_subplot(grid[0, p])
        image = ax.imshow(noint_PRA[p], cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for r in range(n_rows):
            for a in range(n_attr):
                if not text_PRA[p, r, a]:
                    continue
                colour = "white" if noint_PRA[p, r, a] < 0.6 else "black"
                ax.text(a, r, text_PRA[p, r, a], ha="center", va="center", fontsize=5.5, c=colour)
                if borderline_PRA[p, r, a]:
                    ax.add_patch(
                        Rectangle((a - 0.5, r - 0.5), 1, 1, fill=False, lw=0, hatch="////",
                                  ec="orange", gid="borderline")
                    )
                if marked_PRA[p, r, a]:
                    ax.add_patch(
                        Rectangle((a - 0.47, r - 0.44), 0.94, 0.88, fill=False, lw=1.4, ec="red",
                                  ls="--" if borderline_PRA[p, r, a] else "-")
                    )
        ax.set_xticks(range(n_attr), attributes, fontsize=8)
        ax.xaxis.tick_top()
        ax.set_title(f"@{position}", fontsize=9)
        ax.set_yticks(range(n_rows), labels if p == 0 else [""] * n_rows, fontsize=7)
    if image is not None:
        colour_bar_ax = fig.add_subplot(grid[0, n_pos])
        fig.colorbar(image, cax=colour_bar_ax, label="noint_accuracy (low: causal)")
    ax = fig.add_subplot(grid[0, n_pos + 2])
    bound = max(float(np.nanmax(np.abs(drop_RP))) if np.isfinite(drop_RP).any() else 0, 1e-6)
    drop_image = ax.imshow(drop_RP, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    for r in range(n_rows):
        for p in range(n_pos):
            if np.isfinite(drop_RP[r, p]):
                colour = "white" if abs(drop_RP[r, p]) > 0.6 * bound else "black"
                ax.text(
                    p, r, f"{drop_RP[r, p]:.2f}", ha="center", va="center", fontsize=5.5, c=colour
                )
    ax.set_xticks(range(n_pos), positions, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(n_rows), [""] * n_rows)
    ax.set_title("LD drop\n(clean - meanabl)", fontsize=8)
    fig.colorbar(drop_image, cax=fig.add_subplot(grid[0, n_pos + 3]), label="LD drop")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def write_map(frame: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write ``map.csv`` and ``heatmap.png`` to ``out_dir``; their absolute paths."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = {"map.csv": out / "map.csv", "heatmap.png": out / "heatmap.png"}
    frame.to_csv(paths["map.csv"], index=False)
    plot_causal_map(frame, paths["heatmap.png"])
    return paths
