"""``saebench train``: train an SAE (or build a reference baseline) at a node."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from saebench.cli.common import THREADS_HELP, echo_error, fail, set_threads


@click.command()
@click.option(
    "--model",
    "model_name",
    default="tiny-ioi",
    show_default=True,
    help="Model whose activations the SAE is trained on.",
)
@click.option("--hook", required=True, help="Hook name, e.g. blocks.2.hook_resid_pre.")
@click.option(
    "--head",
    type=int,
    default=None,
    help="Head index for per-head hooks; none means all heads concatenated.",
)
@click.option(
    "--position",
    default="END",
    show_default=True,
    help="Position label read on task prompts (ignored with --all-positions).",
)
@click.option(
    "--architecture",
    "kind",
    required=True,
    type=click.Choice(
        ["relu", "standard", "gated", "topk", "batchtopk", "frozen_decoder", "pca", "random"]
    ),
    help="SAE architecture (relu = standard ReLU + L1), or a reference baseline: "
    "frozen_decoder (decoder kept at its random init), pca, random.",
)
@click.option(
    "--l1",
    type=float,
    default=None,
    help="L1 coefficient λ (relu, gated, frozen_decoder); inputs are scaled to mean "
    "norm √d. Default 1.0.",
)
@click.option(
    "--k",
    "k",
    type=click.IntRange(min=1),
    default=None,
    help="Active latents per input (topk, batchtopk).",
)
@click.option(
    "--d-sae",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Number of latents (pca: 2 × components).",
)
@click.option(
    "--data",
    type=click.Choice(["task", "general"]),
    default="task",
    show_default=True,
    help="task: the task's train split (vocabulary disjoint from the evaluation "
    "split); general: non-task text (the embedded models' own families, else OpenWebText).",
)
@click.option(
    "--n-prompts",
    type=click.IntRange(min=1),
    default=20000,
    show_default=True,
    help="Prompts (task) or texts (general) to read activations from.",
)
@click.option(
    "--all-positions",
    is_flag=True,
    help="Task data: read every token position, not only --position.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Optimiser steps (default: the trainer's).",
)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Activation vectors per optimiser step.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the training prompts or texts and of the SAE's initialisation.",
)
@click.option("--task", default="ioi", show_default=True, help="Task plugin for --data task.")
@click.option(
    "--device", default="cpu", show_default=True, help="torch device (cpu, cuda, cuda:1, mps)."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the SAELens-format SAE to.",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help=THREADS_HELP
)
def train(model_name: str, kind: str, out: Path, device: str, threads: int, **options) -> None:
    """Train an SAE (or build a reference baseline) at a node and save it for `saebench run`."""
    from saebench.model import ModelUnavailableError, check_device, load_model
    from saebench_baselines.build import BuildSpec, build

    try:
        check_device(device)
    except ValueError as err:
        fail(err.args[0])
    set_threads(threads)
    spec = BuildSpec(kind="standard" if kind == "relu" else kind, **options)
    if spec.kind in ("topk", "batchtopk") and spec.k is None:
        raise click.BadParameter("--k is required for topk and batchtopk", param_hint="--k")
    try:
        model = load_model(model_name, None, device=device)
        path, report = build(model, model_name, spec, out)
    except (ModelUnavailableError, ValueError, KeyError, RuntimeError) as err:
        echo_error(err.args[0] if err.args else err)
        sys.exit(2)
    summary = {k: report[k] for k in ("l0", "fvu", "dead_fraction") if k in report}
    click.echo(f"saved {Path(path).absolute()} ({report['n_train']} training vectors) {summary}")
