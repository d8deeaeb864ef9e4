"""``saebench run``: score SAEs at a node next to the supervised reference, and record the rows."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from saebench.cli.common import (
    CACHE_BUDGET_HELP,
    THREADS_HELP,
    check_hook_syntax,
    check_task_options,
    echo_error,
    fail,
    set_threads,
)
from saebench.defaults import (
    DEFAULT_CACHE_BUDGET_MB,
    DEFAULT_COVERAGE_MIN_PROMPTS,
    DEFAULT_COVERAGE_PROMPTS,
    DEFAULT_JSON_OUT,
    DEFAULT_KS,
    DEFAULT_LEADERBOARD,
    DEFAULT_N_FIT_PROMPTS,
    DEFAULT_N_PROMPTS,
    MAX_N_PROMPTS,
    PAPER_TASK_OPTIONS,
    PROTOCOLS,
    paper_preset,
)
from saebench.validation.settings import SettingsError, check_settings

if TYPE_CHECKING:
    from saebench.run import Outcome


def _parse_ks(_ctx, _param, value: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(v) for v in value.split(",") if v.strip()}))
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from err
    if not ks or min(ks) < 1:
        raise click.BadParameter("every k must be a positive integer")
    return ks


@click.command()
@click.option(
    "--sae",
    "saes",
    required=True,
    multiple=True,
    help="SAE to score: a SAELens directory (cfg.json + sae_weights.safetensors), a "
    "dictionary_learning directory (ae.pt + config.json) or checkpoint (checkpoints/ae_N.pt), "
    "a SAELens release id RELEASE/SAE_ID (needs sae-lens and network), or supervised:mean / "
    "supervised:lstsq to score a supervised dictionary itself. A folder holding several SAEs "
    "(e.g. a dictionary_learning trainSAE output trainer_0/ ... trainer_N/) or a glob (quote "
    "it: 'sweep/*/trainer_*') scores every SAE in it, each named by its path "
    "(trainSAE-dir/trainer_3). Repeat to score several: SAEs at the same node share the "
    "model, the clean run and every SAE-independent number.",
)
@click.option(
    "--task",
    default=None,
    help="Task plugin (see `saebench tasks`). Default: the task the SAE was trained on "
    "(its training_task), else ioi.",
)
@click.option(
    "--model",
    default=None,
    help="TransformerLens model name, or tiny-ioi / tiny-gt (embedded, offline: IOI / "
    "Greater-Than). "
    "Default: the SAE's model_name, else gpt2-small.",
)
@click.option(
    "--hook",
    default=None,
    help="Hook name of the node, e.g. blocks.3.hook_resid_pre. Default: the SAE's hook.",
)
@click.option(
    "--head",
    type=int,
    default=None,
    help="Head index for per-head hooks (attn.hook_z, ...). Default: the SAE's "
    "hook_head_index; none means all heads concatenated.",
)
@click.option(
    "--position",
    default=None,
    help="Position label the node reads and edits (IOI: END, IO, S1, S1+1, S2; `saebench nodes "
    "--model M` lists a task's). Default: the position the SAE was trained at (its "
    "training_position) where the task has it, else END.",
)
@click.option(
    "--n-prompts",
    type=click.IntRange(min=10),
    default=DEFAULT_N_PROMPTS,
    show_default=True,
    help=f"Evaluation prompts (test split); at most {MAX_N_PROMPTS:,} (all are held in memory).",
)
@click.option(
    "--n-fit-prompts",
    type=click.IntRange(min=10),
    default=DEFAULT_N_FIT_PROMPTS,
    show_default=True,
    help="Prompts the supervised dictionaries are fitted on (same split, other seed); at most "
    f"{MAX_N_PROMPTS:,}.",
)
@click.option(
    "--k",
    "ks",
    default=",".join(map(str, DEFAULT_KS)),
    show_default=True,
    callback=_parse_ks,
    help="Edit budgets: numbers of latents an SAE edit may change (the aware edit exchanges "
    "K//2 out, K//2 in; docs/metrics.md §5).",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="saebench",
    show_default=True,
    help="paper: Makelov et al.'s evaluation (docs/metrics.md §10): 5,000 prompts whose "
    "counterfactual names come from the other vocabulary half, supervised dictionaries fitted "
    "on 20,000 prompts over all names, k = 2, the normalised score clipped to [0, 2]; "
    "--n-prompts, --n-fit-prompts and --k given explicitly still win. IOI only.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for prompts.")
@click.option(
    "--seeds",
    default=None,
    help="Repeat with these seeds (e.g. 0,1,2: other prompts, counterfactuals and coverage "
    "prompts each) and print each SAE's spread across seeds next to its bootstrap interval; "
    "the first seed's run is written as with --seed (its JSON also gets the spread), the "
    "others are not written. Implies --no-skip-existing (docs/metrics.md §11).",
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="torch device (cpu, cuda, cuda:1, mps); checked before anything is loaded.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Prompts per forward pass.",
)
@click.option(
    "--tau",
    type=click.FloatRange(0, 1),
    default=0.8,
    show_default=True,
    help="F1 threshold for a latent to count as interpretable.",
)
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(0),
    default=500,
    show_default=True,
    help="Bootstrap replicates of every metric's 95%% interval over prompts (0: none; "
    "docs/metrics.md §11).",
)
@click.option(
    "--coverage-min-prompts",
    type=click.IntRange(1),
    default=DEFAULT_COVERAGE_MIN_PROMPTS,
    show_default=True,
    help="Prompts an attribute value needs to count in F1 coverage (docs/metrics.md §6).",
)
@click.option(
    "--coverage-prompts",
    type=click.IntRange(min=10),
    default=DEFAULT_COVERAGE_PROMPTS,
    show_default=True,
    help="Prompts F1 coverage and the other interpretability metrics are computed on (test "
    "split, the run's seed), whatever --n-prompts is, so that they do not change with it; "
    "the evaluation prompts themselves when the counts are equal (docs/metrics.md §6).",
)
@click.option(
    "--leaderboard",
    default=None,
    help="Leaderboard CSV to upsert the row into ({model}, {task} are filled in; relative to "
    f"the working directory). Default: your results folder, $SAEBENCH_RESULTS/{{model}}.csv, "
    f"else {DEFAULT_LEADERBOARD}. The shipped leaderboards (leaderboard/*.csv) are "
    "reference data, written only when named here.",
)
@click.option("--no-leaderboard", is_flag=True, help="Do not write a leaderboard row.")
@click.option(
    "--json-out",
    default=None,
    help="Per-run JSON ({model}, {task}, {sae}, {node} are filled in; relative to the working "
    f"directory). Default: {DEFAULT_JSON_OUT} (in $SAEBENCH_RESULTS when set). Both outputs "
    "are checked for writability before the evaluation; a result "
    "that still cannot be written is saved under $SAEBENCH_CACHE/unsaved (~/.cache/saebench/"
    "unsaved) and the error names the file.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait for the leaderboard's lock held by another process before failing "
    "with a message naming it (pid, host). Default: $SAEBENCH_LOCK_TIMEOUT, else 30.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache of fitted supervised dictionaries. Default: $SAEBENCH_CACHE or ~/.cache/saebench.",
)
@click.option("--no-cache", is_flag=True, help="Refit supervised dictionaries; cache nothing.")
@click.option(
    "--cache-budget",
    "cache_budget_mb",
    type=click.FloatRange(min=0),
    default=DEFAULT_CACHE_BUDGET_MB,
    show_default=True,
    help=CACHE_BUDGET_HELP,
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help=THREADS_HELP
)
@click.option(
    "--max-memory",
    "max_memory_mb",
    type=float,
    default=None,
    help="Refuse, before its work, an SAE whose scoring is estimated to need more memory "
    "(MB; it grows with prompts x latents). Default: 80% of the machine's memory.",
)
@click.option("--name", default=None, help="Display name of the SAE in the leaderboard.")
@click.option(
    "--skip-existing/--no-skip-existing",
    default=None,
    help="Skip, before any work, an SAE whose leaderboard row at this node was computed with "
    "the same settings (n-prompts, n-fit-prompts, seed, k, tau, task version, coverage-prompts, "
    "coverage-min-prompts). Default: on when a leaderboard is written.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Score every SAE even when its row exists, and replace a row of the same SAE and "
    "node computed with other settings (without it such an SAE fails before any work, "
    "and its old row is kept).",
)
@click.option(
    "--checkpoints",
    is_flag=True,
    help="In folders given to --sae, also score dictionary_learning checkpoints "
    "(TRAINER/checkpoints/ae_N.pt, named TRAINER/ae_N).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--details",
    is_flag=True,
    help="With several SAEs, print each one's full table too (the JSONs always hold "
    "everything); without it a call of several ends with one comparison table.",
)
def run(saes: tuple[str, ...], threads: int, details: bool, **options) -> None:
    """Score SAEs on a task next to the supervised reference at the same node.

    Prints a table, writes a per-run JSON and upserts one leaderboard row per SAE. An SAE that
    fails is reported on one line and the others still finish. Exit code 0 when every SAE
    was scored or skipped; 1 when some of several failed; 2 when the call could not start
    (bad options) or its only SAE failed.
    """
    from saebench.defaults import default_json_out, default_leaderboard

    if options["leaderboard"] is None:
        options["leaderboard"] = default_leaderboard()
    if options["json_out"] is None:
        options["json_out"] = default_json_out()
    seeds = _seeds_option(options)
    _check_offline(saes, options["model"])  # before torch is imported
    _check_early({**options, "threads": threads})
    if options["protocol"] == "paper":
        from click.core import ParameterSource

        if options["task"] is not None and options["task"] not in PAPER_TASK_OPTIONS:
            fail(f"--protocol paper is defined for the task(s) {', '.join(PAPER_TASK_OPTIONS)}")
        ctx = click.get_current_context()
        given = {
            key: options[key]
            for key in ("n_prompts", "n_fit_prompts", "ks")
            if ctx.get_parameter_source(key) is not ParameterSource.DEFAULT
        }
        options.update(paper_preset(given))
    from saebench.discover import expand
    from saebench.io_utils import default_cache_dir
    from saebench.run import Outcome, RunConfig, run_outcomes

    set_threads(threads)
    no_leaderboard = options.pop("no_leaderboard")
    no_cache = options.pop("no_cache")
    quiet = options.pop("quiet")
    skip_existing = options.pop("skip_existing")
    if skip_existing is None:
        skip_existing = not no_leaderboard and not seeds
    try:
        found = expand(saes, checkpoints=options.pop("checkpoints"))
    except OSError as err:  # e.g. a folder that cannot be read
        fail(_os_message(err))
    if len(found) > 1 and options["name"] is not None:
        click.echo("error: --name names one SAE; drop it when scoring several", err=True)
        sys.exit(2)
    configs = []
    for item in found:
        config = RunConfig(
            sae=item.spec,
            **options,
            progress=not quiet,
            label=item.name,
            skip_existing=skip_existing,
        )
        config.cache_dir = None if no_cache else (config.cache_dir or default_cache_dir())
        if no_leaderboard:
            config.leaderboard = None
        configs.append(config)
    # --seeds: the other seeds' runs of each SAE (index into configs), written nowhere
    extra = [
        (i, dataclasses.replace(config, seed=seed, leaderboard=None, json_out=None,
                                skip_existing=False))
        for seed in seeds[1:]
        for i, config in enumerate(configs)
    ]  # fmt: skip
    try:
        done = iter(
            run_outcomes(
                [c for c, f in zip(configs, found, strict=True) if not f.error]
                + [c for i, c in extra if not found[i].error]
            )
        )
    except ValueError as err:  # an option of the whole call: nothing was done
        fail(err.args[0] if err.args else err)
    except OSError as err:
        fail(_os_message(err))
    outcomes = [
        Outcome(config, message=item.error) if item.error else next(done)
        for config, item in zip(configs, found, strict=True)
    ]
    extra_outcomes = [(i, None if found[i].error else next(done)) for i, _ in extra]
    several = len(outcomes) > 1
    noted = (n for o in outcomes if o.status != "failed" for n in o.notes)
    for note in dict.fromkeys(noted):
        click.echo(note if several else f"{outcomes[0].name}: {note}")
    for outcome in outcomes:
        _report(outcome, several, details)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("scored", "skipped", "failed")}
    if several:
        _report_several(outcomes, counts["skipped"])
        click.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
    if seeds and not _report_seeds(seeds, outcomes, extra_outcomes) and not counts["failed"]:
        sys.exit(1)
    if counts["failed"]:
        sys.exit(1 if several else 2)


def _seeds_option(options: dict) -> tuple[int, ...]:
    """``--seeds`` parsed (popped from ``options``; ``seed`` set to the first), or () without it;
    fails (exit 2) on a bad list or with an explicit ``--seed``."""
    from click.core import ParameterSource

    from saebench.stats.seeds import parse_seeds

    text = options.pop("seeds")
    if text is None:
        return ()
    try:
        seeds = parse_seeds(text)
    except ValueError as err:
        fail(str(err))
    if click.get_current_context().get_parameter_source("seed") is not ParameterSource.DEFAULT:
        fail("give --seed or --seeds, not both")
    options["seed"] = seeds[0]
    return seeds


def _report_seeds(
    seeds: tuple[int, ...], outcomes: list[Outcome], extra: list[tuple[int, Outcome | None]]
) -> bool:
    """Print each scored SAE's spread across ``seeds`` (:mod:`saebench.stats.seeds`) and add it to
    its first seed's JSON (``seed_spread``); False when some seed of some SAE failed."""
    import json

    from saebench.io_utils import atomic_write, dumps_strict
    from saebench.stats.seeds import render, spread

    ok = True
    for index, first in enumerate(outcomes):
        if first.status != "scored":
            continue
        runs = [first] + [o for i, o in extra if i == index]
        failed = [o for o in runs if o is None or o.status != "scored"]
        if failed:
            ok = False
            for o in failed:
                if o is not None:
                    echo_error(f"{first.name} (seed {o.config.seed}): {o.message}")
            continue
        records = [o.record for o in runs]
        spreads = spread([r.metrics for r in records], [r.intervals for r in records])
        click.echo("")
        click.echo(render(first.name, seeds, spreads))
        path = first.record.paths.get("json")
        if path:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            data["seed_spread"] = {
                "seeds": list(seeds),
                "metrics": {m: vars(item) for m, item in spreads.items()},
                "method": "sample sd across seeds; boot_half: mean half-width of the seeds' "
                "95% bootstrap intervals (docs/metrics.md §11)",
            }
            atomic_write(Path(path), dumps_strict(data) + "\n")
    return ok


def _row_of(outcome: Outcome) -> dict | None:
    """The flat row (node, name, metrics) of a scored or skipped SAE, for the comparison."""
    from saebench.run import leaderboard_row

    if outcome.record is not None:
        return leaderboard_row(outcome.record)
    return outcome.row


def _report_several(outcomes: list[Outcome], skipped: int) -> None:
    """After several SAEs: the skipped ones in one line, the comparison table (scored and
    skipped SAEs, their stored numbers), and where the results are."""
    from saebench.cli.comparison_table import comparison_table

    if skipped:
        sources = sorted({o.message.split(" has its row")[0] for o in outcomes if o.row})
        click.echo(
            f"{skipped} skipped: their rows with these settings exist in {', '.join(sources)} "
            "(shown below from there; --force recomputes)"
        )
    rows = [row for row in map(_row_of, outcomes) if row is not None]
    if rows:
        click.echo("")
        click.echo(comparison_table(rows))
        click.echo("")
    paths: dict[str, set[str]] = {}
    for outcome in outcomes:
        if outcome.record is not None:
            for what, path in outcome.record.paths.items():
                paths.setdefault(what, set()).add(path)
    if "leaderboard" in paths:
        click.echo(f"results: {', '.join(sorted(paths['leaderboard']))}")
    if "json" in paths:
        folders = sorted({str(Path(p).parent) for p in paths["json"]})
        click.echo(f"JSONs: {len(paths['json'])} in {', '.join(folders)}")


def _check_offline(saes: tuple[str, ...], model: str | None) -> None:
    """Fail at once (one line, exit 2; before torch is imported) on a SAELens release or a
    --model that is not in the local Hugging Face cache while the hub is offline or
    unreachable (:mod:`saebench.offline`), instead of after a minute of retries."""
    from saebench.offline import OfflineError, check_model, check_release

    try:
        if model is not None:
            check_model(model)
        for spec in saes:
            if "/" in spec and not spec.startswith("supervised:") and not Path(spec).exists():
                check_release(spec)
    except OfflineError as err:
        fail(str(err))


def _os_message(err: OSError) -> str:
    """One line for an ``OSError``: ``PATH: why``."""
    why = err.strerror or str(err)
    return f"{err.filename}: {why}" if err.filename else why


def _check_early(options: dict) -> None:
    """Fail (one line, exit 2) on option values that are wrong whatever the SAE, before the
    libraries are imported and the model loaded: prompt counts, task, position, hook, head,
    device."""
    for name in ("n_prompts", "n_fit_prompts", "coverage_prompts"):
        if options[name] > MAX_N_PROMPTS:
            fail(
                f"--{name.replace('_', '-')} {options[name]:,} is more than one run holds in "
                f"memory (at most {MAX_N_PROMPTS:,}; prompts, activations and logits are kept "
                "for the whole run)"
            )
    try:  # types and ranges, shared with sweep specs and the API
        check_settings(options, "cli")
    except SettingsError as err:
        fail(str(err))
    if options["head"] is not None and options["head"] < 0:
        fail(f"--head {options['head']} must be 0 or more")
    try:
        if options["hook"] is not None:
            check_hook_syntax(options["hook"])
        if options["task"] is not None:  # else the SAE's own task: checked once it is known
            positions = () if options["position"] is None else (options["position"],)
            check_task_options(options["task"], positions)
        from saebench.model import check_device

        check_device(options["device"])
    except (KeyError, ValueError) as err:
        fail(err.args[0] if err.args else err)


def _report(outcome: Outcome, several: bool, details: bool = False) -> None:
    """Print one SAE's table and output paths (with several SAEs only with ``details``), or
    its one line (failed; skipped, with its stored numbers when alone)."""
    from saebench.cli.report import render

    if outcome.status == "failed":
        prefix = f"{outcome.name}: " if several else ""
        echo_error(f"{prefix}{outcome.message}")
        return
    if outcome.status == "skipped":
        if several:  # summed up in one line; its numbers are in the comparison
            return
        click.echo(f"skipped {outcome.name}: {outcome.message}")
        if outcome.row:
            from saebench.cli.comparison_table import comparison_table

            click.echo("its stored numbers:")
            click.echo(comparison_table([outcome.row]))
        return
    if several and not details:
        return
    record = outcome.record
    ident = record.identity
    head = "" if ident["head"] is None else f"[{ident['head']}]"
    title = (
        f"{ident['sae_name']} on {ident['model']} / {ident['task']} at "
        f"{ident['hook']}{head}@{ident['position']}"
    )
    attributes = [
        k.removeprefix("noint_accuracy_") for k in record.metrics if k.startswith("noint_accuracy_")
    ]
    ks, tau = list(outcome.config.ks), outcome.config.tau
    shown = dict(record.metrics)
    for metric, (lo, hi) in record.intervals.items():
        shown[f"{metric}_lo"], shown[f"{metric}_hi"] = lo, hi
    click.echo(render(shown, attributes, ks, title, details=record.details, tau=tau))
    for what, path in record.paths.items():
        click.echo(f"{what}: {path}")
