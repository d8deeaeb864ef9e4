"""``saebench sweep SPEC``: score the SAEs a TOML spec lists, job by job (one job per model and
node), in this process or on a Ray cluster. The spec format is in :mod:`saebench.sweep.spec`,
the executors in :mod:`saebench.sweep.execute`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from saebench.cli.common import THREADS_HELP, echo_error, fail, set_threads


@click.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: the jobs one after the other in this process; ray: one Ray task per job "
    "(needs pip install 'saebench[ray]'), on the cluster at $RAY_ADDRESS or a local one.",
)
@click.option(
    "--cpus-per-job",
    type=click.FloatRange(min=0),
    default=1,
    show_default=True,
    help="Ray: CPUs each job asks for (and its torch threads).",
)
@click.option(
    "--gpus-per-job",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help='Ray: GPUs each job asks for (set device = "cuda" in the spec).',
)
@click.option(
    "--num-cpus",
    type=click.IntRange(min=1),
    default=None,
    help="Ray: CPUs of the local cluster started when $RAY_ADDRESS is not set. Default: all.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Ray: retries of a job whose worker process dies (a job that raises is not retried).",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help=THREADS_HELP
)
@click.option(
    "--force",
    is_flag=True,
    help="Score every SAE even when its row exists, and replace rows computed with other settings.",
)
@click.option("--dry-run", is_flag=True, help="List the jobs and their SAEs; run nothing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep_command(
    spec: Path,
    executor: str,
    cpus_per_job: float,
    gpus_per_job: float,
    num_cpus: int | None,
    max_retries: int,
    threads: int,
    force: bool,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Score the SAEs a TOML sweep SPEC lists (see the README, "Sweeps").

    SAEs are grouped into one job per (model, node): a job loads its model once and shares
    the SAE-independent work. SAEs whose leaderboard row exists with the same settings are
    skipped, so a re-run resumes an interrupted sweep. A job that fails is reported at the end
    and the others go on. Exit code 0 when nothing failed, 1 when something did, 2 when the
    spec cannot be read.
    """
    from tqdm.auto import tqdm

    from saebench.sweep.execute import run_local, run_ray
    from saebench.sweep.spec import SpecError, expand_spec, load_spec

    try:
        expansion = expand_spec(load_spec(spec), force=force)
    except SpecError as err:
        fail(str(err))
    if dry_run:
        for name, why in expansion.errors:
            echo_error(f"{name}: {why}")
        for job in expansion.jobs:
            click.echo(f"{job.name}: {len(job.items)} SAE(s)")
            for item in job.items:
                click.echo(f"  {item.name}\t{item.config.sae}")
        sys.exit(1 if expansion.errors else 0)

    def on_done(result) -> None:
        tqdm.write(result.line())

    if executor == "local":
        set_threads(threads)
        results = run_local(expansion.jobs, progress=not quiet, on_done=on_done)
    else:
        try:
            results = run_ray(
                expansion.jobs,
                cpus_per_job=cpus_per_job,
                gpus_per_job=gpus_per_job,
                num_cpus=num_cpus,
                max_retries=max_retries,
                progress=not quiet,
                on_done=on_done,
            )
        except RuntimeError as err:
            fail(str(err))
    failed = [f"{name}: {why}" for name, why in expansion.errors]
    for result in results:
        failed += [f"{r.name}: {r.message}" for r in result.saes if r.status == "failed"]
    counts = {s: sum(r.status == s for j in results for r in j.saes) for s in ("scored", "skipped")}
    jobs_failed = sum(j.status == "failed" for j in results)
    for line in failed:
        echo_error(line)
    click.echo(
        f"{len(results)} jobs ({jobs_failed} failed): {counts['scored']} scored, "
        f"{counts['skipped']} skipped, {len(failed)} failed"
    )
    if failed:
        sys.exit(1)
