"""``saebench nodes --model M [--task T]``: where an SAE can be scored in a model.

Lists every hook of the model with the width of the vector a node there reads (per-head hooks:
the head count and the width of one head; all heads concatenated is their product), the
task's position labels, and, where a causal map of the model and task exists
(``leaderboard/map/{model}-{task}/map.csv``, ``saebench map``), which attributes are causal
at each of its nodes and whether the supervised edit reaches them there.
"""

from __future__ import annotations

import csv
import difflib
from pathlib import Path

import click

from saebench.cli.common import fail

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout (where ``leaderboard/map/`` lives when saebench runs from one)."""


def hook_widths(model) -> dict[str, tuple[int, int | None]]:
    """Hook name -> (width, heads) from one forward pass of three tokens: (d, None) for a
    [B, L, d] hook, (d_head, n_heads) for a per-head [B, L, H, d_head] one. Attention
    scores and patterns ([B, H, L, L]) are left out: they are not nodes."""
    import torch

    tokens = torch.zeros((1, 3), dtype=torch.long, device=next(model.parameters()).device)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    out: dict[str, tuple[int, int | None]] = {}
    for name in model.hook_dict:
        if name not in cache:
            continue
        shape = tuple(cache[name].shape)
        if name.endswith(("hook_attn_scores", "hook_pattern")):
            continue
        if len(shape) == 3:
            out[name] = (shape[-1], None)
        elif len(shape) == 4:
            out[name] = (shape[-1], shape[2])
    return out


def close_hooks(hook: str, names) -> list[str]:
    """The hook names closest to ``hook`` (at most three).

    >>> close_hooks("blocks.1.resid_pre", ["blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid"])
    ['blocks.1.hook_resid_pre', 'blocks.1.hook_resid_mid']
    """
    return difflib.get_close_matches(hook, list(names), n=3, cutoff=0.6)


def map_file(model_name: str, task: str) -> Path | None:
    """The causal map CSV of ``model_name`` and ``task``, in the working directory's
    ``leaderboard/map/`` or the checkout's; None when there is none."""
    for root in (Path.cwd(), REPO_ROOT):
        path = root / "leaderboard" / "map" / f"{model_name}-{task}" / "map.csv"
        if path.is_file():
            return path
    return None


def default_task(model_name: str) -> str:
    """The task of the model's causal map when it has exactly one, else ``ioi``."""
    for root in (Path.cwd(), REPO_ROOT):
        maps = sorted((root / "leaderboard" / "map").glob(f"{model_name}-*/map.csv"))
        if len(maps) == 1:
            return maps[0].parent.name.removeprefix(f"{model_name}-")
    return "ioi"


def causal_nodes(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Node -> (attributes causal there, those the supervised edit reaches), from a map CSV."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            causal, editable = out.setdefault(row["node"], ([], []))
            if row.get("causal") == "True":
                causal.append(row["attribute"])
                if row.get("editable") == "True":
                    editable.append(row["attribute"])
    return out


@click.command("nodes")
@click.option(
    "--model",
    "model_name",
    required=True,
    help="tiny-ioi, tiny-gt (embedded) or a TransformerLens model name (needs its weights).",
)
@click.option(
    "--task",
    default=None,
    help="Task whose positions (and causal map) to show. Default: the task of the model's "
    "shipped causal map, else ioi.",
)
def nodes_command(model_name: str, task: str | None) -> None:
    """List a model's hooks with their widths, the task's positions and its causal nodes."""
    from saebench.cli.common import check_task_options

    task = task or default_task(model_name)
    try:
        check_task_options(task)
    except (KeyError, ValueError) as err:
        fail(err.args[0] if err.args else err)
    from saebench.model import ModelUnavailableError, load_model
    from saebench.task import task_factory

    try:
        model = load_model(model_name, None, device="cpu")
    except ModelUnavailableError as err:
        fail(str(err))
    widths = hook_widths(model)
    cfg = model.cfg
    click.echo(
        f"{model_name}: {cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads of "
        f"{cfg.d_head}, d_mlp {cfg.d_mlp}"
    )
    click.echo("hook (node: --hook NAME [--head H])  width")
    name_width = max(len(n) for n in widths)
    for name, (width, heads) in widths.items():
        text = (
            f"{width}" if heads is None else f"{width} per head x {heads} heads ({width * heads})"
        )
        click.echo(f"  {name:<{name_width}}  {text}")
    labels = getattr(task_factory(task), "position_labels", ()) or ()
    click.echo(f"task {task}: positions {', '.join(labels)} (--position)")
    path = map_file(model_name, task)
    if path is None:
        click.echo(f"no causal map of {model_name} / {task} (saebench map --model {model_name})")
        return
    nodes = causal_nodes(path)
    shown = {node: v for node, v in nodes.items() if v[0]}
    try:
        where = path.relative_to(Path.cwd())
    except ValueError:
        where = path
    click.echo(f"causal map ({where}): {len(shown)} of {len(nodes)} nodes have a causal attribute")
    node_width = max((len(n) for n in shown), default=0)
    for node, (causal, editable) in shown.items():
        click.echo(
            f"  {node:<{node_width}}  causal: {', '.join(causal)}"
            f"; supervised edit reaches: {', '.join(editable) or 'none'}"
        )
