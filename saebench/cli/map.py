"""``saebench map``: the causal map of a model on a task (:mod:`saebench.causal_map`).

The command is attached to the main CLI with ``main.add_command(map_command)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from saebench.causal_map import (
    CAUSAL_MAX_NOINT,
    DEFAULT_HOOKS,
    DEFAULT_POSITIONS,
    EDITABLE_MIN_SUP,
    HOOK_KINDS,
    check_hooks,
    check_positions,
    parse_list,
)
from saebench.cli.common import CACHE_BUDGET_HELP, THREADS_HELP, echo_error, fail, set_threads
from saebench.defaults import DEFAULT_CACHE_BUDGET_MB, DEFAULT_N_FIT_PROMPTS
from saebench.io_utils import check_writable, save_unsaved
from saebench.validation.settings import check_settings

DEFAULT_OUT = "maps/{model}-{task}"


class BadOption(click.BadParameter):
    """A bad option value, shown as one line (``error: Invalid value for '--x': ...``) with exit
    code 2, like the other errors of ``saebench``."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


def _parse_positions(_ctx, _param, value: str) -> tuple[str, ...]:
    try:
        return parse_list(value, "position labels")
    except ValueError as err:
        raise BadOption(str(err)) from err


def _parse_hooks(_ctx, _param, value: str) -> tuple[str, ...]:
    try:
        hooks = parse_list(value, "hook kinds")
        check_hooks(hooks)
    except ValueError as err:
        raise BadOption(str(err)) from err
    return hooks


def _out_dir(template: str, model_name: str, task_name: str) -> Path:
    """``--out`` with ``{model}`` (``/`` made ``_``) and ``{task}`` filled in."""
    try:
        return Path(template.format(model=model_name.replace("/", "_"), task=task_name))
    except (KeyError, IndexError, ValueError) as err:
        raise BadOption(
            f"{template!r}: only {{model}} and {{task}} may be filled in", param_hint="'--out'"
        ) from err


@click.command("map")
@click.option(
    "--model",
    "model_name",
    required=True,
    help="Model to map: a TransformerLens pretrained name, or tiny-ioi / tiny-gt (embedded, "
    "offline).",
)
@click.option(
    "--task", default="ioi", show_default=True, help="Task plugin (see `saebench tasks`)."
)
@click.option(
    "--positions",
    default=",".join(DEFAULT_POSITIONS),
    show_default=True,
    callback=_parse_positions,
    help="Comma-separated position labels each node is read and patched at (the task's "
    "labels; IOI: IO, S1, S1+1, S2, END). The metric is always read at END.",
)
@click.option(
    "--hooks",
    default=",".join(DEFAULT_HOOKS),
    show_default=True,
    callback=_parse_hooks,
    help="Comma-separated hook kinds to map: "
    + "; ".join(f"{kind} = {what}" for kind, what in HOOK_KINDS.items())
    + ".",
)
@click.option(
    "--n-prompts",
    type=click.IntRange(min=10),
    default=500,
    show_default=True,
    help="Evaluation prompts (test split, as `saebench run`).",
)
@click.option(
    "--n-fit-prompts",
    type=click.IntRange(min=10),
    default=DEFAULT_N_FIT_PROMPTS,
    show_default=True,
    help="Prompts the supervised mean dictionary (ā for mean ablation, u_{i,v} for the "
    "edit a - u_v + u_v') is fitted on at each node (same split, other seed).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the prompts; attribute i's counterfactuals use seed + 7919 (i + 1).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Prompts per forward pass.",
)
@click.option("--device", default="cpu", show_default=True, help="torch device (cpu, cuda, ...).")
@click.option(
    "--causal-max-noint",
    type=click.FloatRange(0, 1),
    default=CAUSAL_MAX_NOINT,
    show_default=True,
    help="A node is causal for an attribute when its noint_accuracy (agreement of the clean "
    "answer with the counterfactual patch's) is at most this.",
)
@click.option(
    "--editable-min-sup",
    type=click.FloatRange(0, 1),
    default=EDITABLE_MIN_SUP,
    show_default=True,
    help="A node is linearly editable for an attribute when the supervised edit reaches the "
    "counterfactual patch's answer at least this often (sup_edit_accuracy).",
)
@click.option(
    "--out",
    default=DEFAULT_OUT,
    show_default=True,
    help="Directory for map.csv and heatmap.png ({model} and {task} are filled in).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help=THREADS_HELP
)
@click.option(
    "--cache-budget",
    "cache_budget_mb",
    type=click.FloatRange(min=0),
    default=DEFAULT_CACHE_BUDGET_MB,
    show_default=True,
    help=CACHE_BUDGET_HELP + " Kept per layer of the map, from that layer on.",
)
@click.option("--no-cache", is_flag=True, help="Refit supervised dictionaries; cache nothing.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache of fitted supervised dictionaries (shared with `saebench run`). "
    "Default: $SAEBENCH_CACHE or ~/.cache/saebench.",
)
def map_command(
    model_name: str,
    task: str,
    positions: tuple[str, ...],
    hooks: tuple[str, ...],
    n_prompts: int,
    n_fit_prompts: int,
    seed: int,
    batch_size: int,
    device: str,
    causal_max_noint: float,
    editable_min_sup: float,
    out: str,
    quiet: bool,
    threads: int,
    cache_budget_mb: float,
    no_cache: bool,
    cache_dir: Path | None,
) -> None:
    """Map where a model's task answer depends on each attribute, node by node.

    At every hook_resid_pre (and the final hook_resid_post) and every head of attn.hook_z /
    q / k / v, at each position, and for each task attribute i: noint_accuracy =
    P[clean argmax = argmax with the counterfactual activation patched in];
    sup_edit_accuracy = P[the supervised edit a - u_{i,v} + u_{i,v'} gives that argmax];
    meanabl_logit_diff = mean LD with a -> ā. The numbers are those `saebench run` reports
    at the node. Writes map.csv and heatmap.png to --out and prints, per attribute, the nodes
    where it is causal (noint <= --causal-max-noint) and linearly editable
    (sup >= --editable-min-sup).
    """
    from saebench.task import task_factory

    try:
        factory = task_factory(task)
    except KeyError as err:
        raise BadOption(err.args[0], param_hint="'--task'") from err
    labels = getattr(factory, "position_labels", None)
    if labels is not None:
        try:
            check_positions(positions, labels, task)
        except ValueError as err:
            raise BadOption(str(err), param_hint="'--positions'") from err
    out_dir = _out_dir(out, model_name, task)
    from saebench.model import check_device

    try:
        check_device(device)
    except ValueError as err:
        raise BadOption(str(err), param_hint="'--device'") from err
    try:
        check_settings(
            {
                "n_prompts": n_prompts,
                "n_fit_prompts": n_fit_prompts,
                "seed": seed,
                "batch_size": batch_size,
                "cache_budget_mb": cache_budget_mb,
                "threads": threads,
                "causal_max_noint": causal_max_noint,
                "editable_min_sup": editable_min_sup,
            },
            "cli",
        )
        for name in ("map.csv", "heatmap.png"):  # before any work, as `saebench run` does
            check_writable(out_dir / name, what="--out")
    except (ValueError, OSError) as err:
        fail(err.strerror if isinstance(err, OSError) and err.strerror else str(err))
    set_threads(threads)

    from saebench.cache import default_cache_dir
    from saebench.causal_map import causal_map, format_summary, write_map
    from saebench.evaluate import EvalSettings
    from saebench.model import ModelUnavailableError, load_model, prepends_bos, tokenizer_of
    from saebench.task import load_task

    settings = EvalSettings(
        n_prompts=n_prompts,
        n_fit_prompts=n_fit_prompts,
        seed=seed,
        batch_size=batch_size,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
        progress=not quiet,
        cache_budget_mb=cache_budget_mb,
    )
    try:
        model = load_model(model_name, processing=None, device=device)
        task_obj = load_task(task, tokenizer=tokenizer_of(model), prepend_bos=prepends_bos(model))
        try:
            check_positions(positions, task_obj.position_labels, task)
        except ValueError as err:
            raise BadOption(str(err), param_hint="'--positions'") from err
        frame = causal_map(
            model,
            task_obj,
            positions,
            hooks,
            settings,
            model_name,
            causal_max_noint=causal_max_noint,
            editable_min_sup=editable_min_sup,
        )
        try:
            paths = write_map(frame, out_dir)
        except OSError as err:  # a late write failure: keep the computed map
            saved = save_unsaved(f"map-{model_name}-{task}.csv", frame.to_csv(index=False))
            why = err.strerror or str(err)
            fail(f"could not write the map to {out_dir} ({why}); the map is saved in {saved}")
    except (ModelUnavailableError, ValueError, KeyError) as err:
        echo_error(err.args[0] if err.args else err)
        sys.exit(2)
    click.echo(format_summary(frame, causal_max_noint, editable_min_sup))
    for name, path in paths.items():
        click.echo(f"{name}: {Path(path).absolute()}")
