"""``saebench compare``: paired differences between two scored runs."""

from __future__ import annotations

import click

from saebench.cli.common import fail


@click.command()
@click.argument("run_a", type=click.Path(exists=True, dir_okay=False))
@click.argument("run_b", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--against",
    type=click.Choice(["supervised", "noint"]),
    default=None,
    help="Compare RUN_A with its own reference instead of a second run: the supervised "
    "mean dictionary or no intervention.",
)
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(1),
    default=2000,
    show_default=True,
    help="Paired bootstrap replicates: the same resampled prompts for both runs.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resampling."
)
@click.option("--all", "show_all", is_flag=True, help="Every metric (default: leaderboard ones).")
def compare(
    run_a: str,
    run_b: str | None,
    against: str | None,
    n_bootstrap: int,
    seed: int,
    show_all: bool,
) -> None:
    """Paired difference of every metric between two runs on the same prompts (their JSONs,
    with the .outcomes.npz beside them), each with its 95% paired bootstrap interval; `*`
    marks differences distinguishable from zero (docs/metrics.md §11)."""
    from saebench.leaderboard.schema import INTERVAL_METRICS, parse_metric
    from saebench.stats import bootstrap
    from saebench.stats import compare as comparing

    if (run_b is None) == (against is None):
        fail("give RUN_B or --against (supervised, noint), not both")
    try:
        a, meta_a = bootstrap.load(bootstrap.sidecar_path(run_a))
        if run_b is not None:
            b, meta_b = bootstrap.load(bootstrap.sidecar_path(run_b))
            comparing.check_paired(meta_a, meta_b)
            name_b = run_b
        else:
            b, name_b = comparing.reference(a, against), against
        diffs = comparing.compare(a, b, meta_a, n_bootstrap, seed)
    except (OSError, ValueError, KeyError) as err:
        fail(f"cannot compare: {err}")
    if not show_all:
        diffs = [d for d in diffs if (p := parse_metric(d.metric)) and p[0] in INTERVAL_METRICS]
    click.echo(comparing.format_table(diffs, run_a, name_b))
