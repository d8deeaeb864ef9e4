"""Run the jobs of a sweep spec (:mod:`saebench.sweep.spec`): in-process or on Ray.

A job is the SAEs of one (model, node); running it is one :func:`saebench.run.run_outcomes`
call, so it loads the model once and shares the SAE-independent work across its SAEs.

- **Resuming.** Before any job runs, the driver looks each SAE up in the leaderboard
  (:func:`plan`): an SAE whose row exists with the same settings is skipped, one whose row has
  other settings fails (unless ``force``), and a job with nothing left to score is skipped
  whole (its model is never loaded). An interrupted sweep, run again, scores only what is
  missing.
- **Failures.** An SAE that fails is reported in its :class:`SAEResult`; a job that fails
  whole (its model, its node) is reported in every one of its SAEs; either way the other
  jobs go on. :class:`SweepReport` ``failed`` says whether any did.
- **Executors.** :func:`run_local` runs the jobs one after the other in this process, each
  writing its rows through the locked store as its SAEs are scored. :func:`run_ray` runs each
  job as a Ray task (``ray`` is imported only there): the task returns its records and the
  driver writes every JSON and row (one writer, so each row lands once); a task whose worker
  dies is retried (``max_retries``), one that raises is reported, not retried.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from saebench.sweep.spec import Job, JobItem, one_line

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


@dataclass
class SAEResult:
    """What became of one SAE of a job."""

    name: str
    status: str
    """``scored``, ``skipped`` (its row with the same settings exists) or ``failed``."""
    message: str = ""
    record: Any = None
    """The :class:`saebench.run.RunRecord` of a scored SAE."""


@dataclass
class JobResult:
    """What became of one job: ``done`` (every SAE scored or skipped), ``skipped`` (every SAE
    already had its row; the job did not run) or ``failed`` (some SAE failed)."""

    job: str
    status: str
    saes: list[SAEResult] = field(default_factory=list)

    def line(self) -> str:
        """One status line: ``done tiny-ioi blocks.1.hook_resid_pre@END: 3 scored, 1 skipped``."""
        counts = {s: sum(r.status == s for r in self.saes) for s in ("scored", "skipped", "failed")}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return f"{self.status} {self.job}: {summary or 'no SAE'}"


@dataclass
class SweepReport:
    jobs: list[JobResult]
    errors: list[tuple[str, str]] = field(default_factory=list)
    """SAE values of the spec that gave no SAE (name, message)."""

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(j.status == "failed" for j in self.jobs)

    def failures(self) -> list[str]:
        """``NAME: why`` for every SAE that failed."""
        lines = [f"{name}: {why}" for name, why in self.errors]
        for job in self.jobs:
            lines += [f"{r.name}: {r.message}" for r in job.saes if r.status == "failed"]
        return lines


def plan(job: Job) -> tuple[Job, list[SAEResult]]:
    """``job`` with only the SAEs that need scoring, and the results of the others (skipped:
    their row with the same settings exists; failed: a row with other settings, without
    ``force``, or a leaderboard that cannot be read)."""
    from saebench.leaderboard import has_row

    todo: list[JobItem] = []
    done: list[SAEResult] = []
    for item in job.items:
        csv_path = item.paths.get("leaderboard")
        if csv_path is None or item.config.force:
            todo.append(item)
            continue
        try:
            exists = has_row(csv_path, item.identity)
        except Exception as err:  # a row with other settings, or a leaderboard that does not parse
            done.append(SAEResult(item.name, "failed", one_line(err)))
            continue
        if exists:
            done.append(SAEResult(item.name, "skipped", f"{csv_path} has its row"))
        else:
            todo.append(item)
    return replace(job, items=todo), done


def run_job(job: Job, write: bool = True, threads: int | None = None) -> list[SAEResult]:
    """Score a job's SAEs with one :func:`saebench.run.run_outcomes` call. ``write``: each SAE's
    JSON and row are written as it is scored; otherwise nothing is written and the records
    come back for the caller to write. ``threads``: torch's CPU threads (None: unchanged)."""
    from saebench.run import run_outcomes

    if threads is not None:
        from saebench.cli.common import set_threads

        set_threads(max(1, int(threads)))
    configs = [item.config for item in job.items]
    if not write:
        configs = [
            replace(c, leaderboard=None, json_out=None, skip_existing=False) for c in configs
        ]
    try:
        outcomes = run_outcomes(configs)
    except ValueError as err:  # a problem of the whole call (output paths): every SAE fails
        return [SAEResult(item.name, "failed", one_line(err)) for item in job.items]
    return [
        SAEResult(item.name, o.status, o.message, o.record)
        for item, o in zip(job.items, outcomes, strict=True)
    ]


def _finish(job: Job, results: list[SAEResult]) -> JobResult:
    status = "failed" if any(r.status == "failed" for r in results) else "done"
    return JobResult(job.name, status, results)


def run_local(
    jobs: list[Job],
    threads: int | None = None,
    progress: bool = True,
    on_done: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run the jobs one after the other in this process (:func:`run_job` writes the rows)."""
    from tqdm.auto import tqdm

    results = []
    for job, pending, done in _bar(jobs, progress, tqdm):
        if not pending.items:
            result = JobResult(job.name, "skipped", done)
        else:
            try:
                scored = run_job(pending, write=True, threads=threads)
            except Exception as err:  # unexpected: report it, go on with the other jobs
                scored = [SAEResult(i.name, "failed", one_line(err)) for i in pending.items]
            result = _finish(job, done + scored)
        results.append(_report(result, on_done))
    return results


def _bar(jobs: list[Job], progress: bool, tqdm):
    """Each job with its :func:`plan`, under one progress bar over the jobs."""
    with tqdm(total=len(jobs), unit="job", desc="sweep", disable=not progress) as bar:
        for job in jobs:
            pending, done = plan(job)
            yield job, pending, done
            bar.update()


def _report(result: JobResult, on_done: Callable[[JobResult], None] | None) -> JobResult:
    logger.info("%s", result.line())
    if on_done is not None:
        on_done(result)
    return result


def _ray_task(job: Job, run: Callable, threads: int) -> list[SAEResult]:
    """The body of one Ray task: score the job without writing (the driver writes)."""
    return run(job, write=False, threads=threads)


def run_ray(
    jobs: list[Job],
    cpus_per_job: float = 1,
    gpus_per_job: float = 0,
    num_cpus: int | None = None,
    max_retries: int = 3,
    progress: bool = True,
    on_done: Callable[[JobResult], None] | None = None,
    run: Callable[..., list[SAEResult]] = run_job,
) -> list[JobResult]:
    """Run each job as a Ray task and write its records from this process (the driver).

    Connects to the running Ray instance when this process already called ``ray.init``, else
    to ``$RAY_ADDRESS`` when set, else starts a local cluster of ``num_cpus`` CPUs (None: all)
    and shuts it down at the end. Each task asks for ``cpus_per_job`` CPUs (and that many
    torch threads) and ``gpus_per_job`` GPUs; a task whose worker dies is retried up to
    ``max_retries`` times; one that raises is reported as failed, not retried. ``run`` is what
    a task calls (:func:`run_job`; tests wrap it to inject faults).
    """
    try:
        import ray
    except ImportError as err:
        raise RuntimeError(
            "--executor ray needs Ray: pip install 'saebench[ray]' (or pip install ray)"
        ) from err
    from tqdm.auto import tqdm

    started = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        task = ray.remote(_ray_task).options(
            num_cpus=cpus_per_job,
            num_gpus=gpus_per_job,
            max_retries=max_retries,
            retry_exceptions=False,
        )
        threads = max(1, int(cpus_per_job))
        results: dict[int, JobResult] = {}
        refs: dict[Any, tuple[int, Job, Job, list[SAEResult]]] = {}
        with tqdm(total=len(jobs), unit="job", desc="sweep", disable=not progress) as bar:
            for index, job in enumerate(jobs):
                pending, done = plan(job)
                if not pending.items:
                    results[index] = _report(JobResult(job.name, "skipped", done), on_done)
                    bar.update()
                    continue
                refs[task.remote(pending, run, threads)] = (index, job, pending, done)
            waiting = list(refs)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                index, job, pending, done = refs.pop(ready[0])
                try:
                    scored = ray.get(ready[0])
                except Exception as err:  # the task raised, or its worker kept dying
                    why = one_line(getattr(err, "cause", None) or err)
                    scored = [SAEResult(i.name, "failed", why) for i in pending.items]
                else:
                    scored = [
                        _write(item, r) for item, r in zip(pending.items, scored, strict=True)
                    ]
                results[index] = _report(_finish(job, done + scored), on_done)
                bar.update()
    finally:
        if started:
            ray.shutdown()
    return [results[i] for i in range(len(jobs))]


def _write(item: JobItem, result: SAEResult) -> SAEResult:
    """Write a record a Ray task returned (its JSON and row) as the job's config says."""
    from saebench.run import write_outputs

    if result.record is None:
        return result
    config = item.config
    result.record.config.update(leaderboard=config.leaderboard, json_out=config.json_out)
    try:
        write_outputs(result.record, item.paths, config.force, config.lock_timeout)
    except Exception as err:
        return SAEResult(result.name, "failed", one_line(err), result.record)
    return result


def sweep(
    spec_path: str,
    executor: str = "local",
    force: bool = False,
    progress: bool = True,
    on_done: Callable[[JobResult], None] | None = None,
    **executor_options: Any,
) -> SweepReport:
    """Read, expand and run a sweep spec with ``executor`` (``local`` or ``ray``; the options
    of :func:`run_local` or :func:`run_ray`)."""
    from saebench.sweep.spec import expand_spec, load_spec

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r} (one of {', '.join(EXECUTORS)})")
    expansion = expand_spec(load_spec(spec_path), force=force)
    run = run_local if executor == "local" else run_ray
    jobs = run(expansion.jobs, progress=progress, on_done=on_done, **executor_options)
    return SweepReport(jobs=jobs, errors=expansion.errors)
