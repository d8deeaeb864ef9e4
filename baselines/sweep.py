"""Train and evaluate the baseline grid at the chosen nodes and fill a leaderboard CSV.

Grid per node: each architecture (standard and gated at three L1 coefficients, topk and
batchtopk at three k) × both data sources (task, general), plus the reference baselines
(frozen decoder, random, PCA, supervised mean and least-squares). Activations are read once
per node and data source and shared by every SAE trained on them; nodes run in parallel
processes (one thread each).

    python -m saebench_baselines.sweep --out baselines/saes/tiny-ioi \\
        --leaderboard leaderboard/tiny-ioi.csv \\
        --node 'blocks.2.hook_resid_pre@END' --node 'blocks.1.attn.hook_z[0]@END'
    python -m saebench_baselines.sweep --model tiny-gt --task greater-than \\
        --out baselines/saes/tiny-gt --leaderboard leaderboard/tiny-gt.csv \\
        --node 'blocks.0.attn.hook_z[0]@END'

Nodes are written as ``str(Node)`` prints them: ``HOOK[HEAD]@POSITION`` (head optional).
Without ``--node`` the sweep uses :func:`default_nodes` (the middle residual stream and the
head whose mean ablation hurts most); ``saebench map`` is how the shipped nodes were chosen.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click
import torch

logger = logging.getLogger(__name__)

SPARSITY_GRID: dict[str, tuple[tuple[str, float], ...]] = {
    "standard": (("l1", 1.0), ("l1", 2.5), ("l1", 5.0)),
    "gated": (("l1", 1.0), ("l1", 2.5), ("l1", 5.0)),
    "topk": (("k", 3), ("k", 6), ("k", 12)),
    "batchtopk": (("k", 3), ("k", 6), ("k", 12)),
}
DATA_SOURCES = ("task", "general")


@dataclass(frozen=True)
class NodeJob:
    model: str
    hook: str
    head: int | None
    position: str
    out: Path
    leaderboard: Path
    cache_dir: Path
    expansion: int
    steps: int
    n_task_prompts: int
    n_general_texts: int
    n_eval_prompts: int
    seed: int
    task: str = "ioi"
    """Task plugin: the ``task`` training data and the scoring."""
    score: bool = True
    """Score every dictionary into ``leaderboard`` after building it (False: build only, and
    score with ``saebench sweep``, as ``make leaderboard`` does)."""


def most_important_head(
    model, task_name: str = "ioi", n_prompts: int = 300, seed: int = 0
) -> tuple[int, int]:
    """The (layer, head) whose ``hook_z`` at END, mean-ablated, lowers the task metric most."""
    from saebench.node import Node
    from saebench.runner import NodeRunner
    from saebench.task import load_task

    task = load_task(task_name, tokenizer=model.tokenizer)
    prompts = task.prompts("test", n_prompts, seed)
    scores = {}
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            node = Node(f"blocks.{layer}.attn.hook_z", "END", head)
            runner = NodeRunner(model, task, node, prompts, progress=False)
            ablated = runner.patched(runner.acts_ND.mean(0).expand_as(runner.acts_ND))
            scores[(layer, head)] = ablated.metric_N.mean().item()
    return min(scores, key=scores.get)


def default_nodes(model, task_name: str = "ioi") -> list[tuple[str, int | None]]:
    """The residual stream entering the middle block, and the output (``hook_z``) of the
    attention head whose mean ablation at END hurts the task metric most."""
    layer, head = most_important_head(model, task_name)
    return [
        (f"blocks.{model.cfg.n_layers // 2}.hook_resid_pre", None),
        (f"blocks.{layer}.attn.hook_z", head),
    ]


def parse_node(text: str) -> tuple[str, int | None, str]:
    """``HOOK[HEAD]@POSITION`` -> (hook, head, position); the head and ``@POSITION``
    (default END) are optional.

    >>> parse_node("blocks.1.attn.hook_z[3]@S2"), parse_node("blocks.2.hook_resid_pre")
    (('blocks.1.attn.hook_z', 3, 'S2'), ('blocks.2.hook_resid_pre', None, 'END'))
    """
    hook, _, position = text.partition("@")
    head = None
    if hook.endswith("]") and "[" in hook:
        hook, _, head_text = hook[:-1].partition("[")
        try:
            head = int(head_text)
        except ValueError as err:
            raise ValueError(f"bad head index in node {text!r}") from err
    return hook, head, position or "END"


def node_tag(hook: str, head: int | None, position: str) -> str:
    parts = hook.split(".")
    short = f"L{parts[1]}-{parts[-1].removeprefix('hook_')}"
    return f"{short}{'' if head is None else f'-h{head}'}-{position}"


def _sae_name(kind: str, param: tuple[str, float] | None, data: str) -> str:
    if param is None:
        return f"{kind}-{data}" if data else kind
    key, value = param
    return f"{kind}-{key}{value:g}-{data}"


def run_node(job: NodeJob) -> list[str]:
    """Build every dictionary of the grid at one node, then (``job.score``) evaluate each into
    the CSV."""
    torch.set_num_threads(1)
    from saebench.model import load_model
    from saebench.node import Node
    from saebench.run import RunConfig, run
    from saebench_baselines.build import BuildSpec, build, training_activations

    model = load_model(job.model)
    width = Node(job.hook, job.position, job.head).width(model)
    base = BuildSpec(
        kind="standard",
        hook=job.hook,
        head=job.head,
        position=job.position,
        d_sae=job.expansion * width,
        steps=job.steps,
        seed=job.seed,
        task=job.task,
    )
    acts = {
        "task": training_activations(
            model, job.model, replace(base, n_prompts=job.n_task_prompts), progress=False
        ),
        "general": training_activations(
            model,
            job.model,
            replace(base, data="general", n_prompts=job.n_general_texts),
            progress=False,
        ),
    }
    root = job.out / node_tag(job.hook, job.head, job.position)
    specs: list[tuple[str, BuildSpec]] = []
    for kind, grid in SPARSITY_GRID.items():
        for param in grid:
            for data in DATA_SOURCES:
                spec = replace(base, kind=kind, data=data, **{param[0]: param[1]})
                specs.append((_sae_name(kind, param, data), spec))
    specs += [
        (
            _sae_name("frozen_decoder", ("l1", 2.5), "task"),
            replace(base, kind="frozen_decoder", l1=2.5),
        ),
        ("random", replace(base, kind="random")),
        ("pca-task", replace(base, kind="pca")),
    ]
    done = []
    for name, spec in specs:
        start = time.time()
        path, report = build(
            model, job.model, spec, root / name, acts_ND=acts[spec.data], name=name, progress=False
        )
        logger.warning(
            "%s: built %s in %.0fs (l0 %.2f)",
            node_tag(job.hook, job.head, job.position),
            name,
            time.time() - start,
            report.get("l0", float("nan")),
        )
        done.append(str(path))
    if not job.score:
        return done
    runs = [(p, None) for p in done] + [
        ("supervised:mean", "supervised_mean"),
        ("supervised:lstsq", "supervised_lstsq"),
    ]
    for sae, name in runs:
        start = time.time()
        config = RunConfig(
            sae=sae,
            model=job.model,
            hook=job.hook,
            head=job.head,
            position=job.position,
            task=job.task,
            n_prompts=job.n_eval_prompts,
            seed=job.seed,
            leaderboard=str(job.leaderboard),
            json_out=None,
            cache_dir=job.cache_dir,
            progress=False,
            name=name,
        )
        run(config)
        logger.warning(
            "%s: evaluated %s in %.0fs",
            node_tag(job.hook, job.head, job.position),
            name or Path(sae).name,
            time.time() - start,
        )
    return done


@click.command()
@click.option("--model", default="tiny-ioi", show_default=True, help="Model to sweep.")
@click.option(
    "--task",
    default="ioi",
    show_default=True,
    help="Task plugin: its train split is the task training data, and SAEs are scored on it.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the trained SAEs (one subdirectory per node).",
)
@click.option(
    "--leaderboard",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Leaderboard CSV the rows are upserted into.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".saebench-cache"),
    show_default=True,
    help="Cache of fitted supervised dictionaries.",
)
@click.option("--expansion", default=8, show_default=True, help="Latents per input dimension.")
@click.option("--steps", default=3000, show_default=True, help="Optimiser steps per SAE.")
@click.option(
    "--n-task-prompts", default=20000, show_default=True, help="Training prompts (--data task)."
)
@click.option(
    "--n-general-texts", default=4000, show_default=True, help="Training texts (--data general)."
)
@click.option(
    "--n-eval-prompts", default=1000, show_default=True, help="Evaluation prompts per SAE."
)
@click.option(
    "--seed", default=0, show_default=True, help="Seed of training and evaluation prompts."
)
@click.option("--processes", default=2, show_default=True, help="Nodes evaluated in parallel.")
@click.option(
    "--score/--no-score",
    default=True,
    show_default=True,
    help="Score each dictionary into the leaderboard after training (--no-score: train only; "
    "`make leaderboard` scores with `saebench sweep sweeps/tiny-ioi-leaderboard.toml`).",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    help="Node HOOK[HEAD]@POSITION to sweep (repeatable). Default: the middle residual "
    "stream and the most important head's output, at END.",
)
def main(processes: int, nodes: tuple[str, ...], **options) -> None:
    """Train and evaluate the baseline grid at the given (or default) nodes of MODEL."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    from saebench.model import load_model

    try:
        chosen = [parse_node(text) for text in nodes]
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--node") from err
    if not chosen:
        model = load_model(options["model"])
        chosen = [(h, head, "END") for h, head in default_nodes(model, options["task"])]
    jobs = [NodeJob(hook=hook, head=head, position=pos, **options) for hook, head, pos in chosen]
    with mp.get_context("spawn").Pool(min(processes, len(jobs))) as pool:
        for paths in pool.imap_unordered(run_node, jobs):
            click.echo(f"done: {len(paths)} dictionaries")


if __name__ == "__main__":
    main()
