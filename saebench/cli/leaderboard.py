"""``saebench leaderboard``: show, plot and export a leaderboard CSV.

The group is attached to the main CLI with ``main.add_command(leaderboard)``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from saebench.cli.common import fail
from saebench.io_utils import check_writable
from saebench.leaderboard.store import LeaderboardError, read_leaderboard

DEFAULT_CSV = Path("leaderboard") / "tiny-ioi.csv"
"""Leaderboard read when no CSV argument is given (relative to the working directory)."""

_csv_argument = click.argument(
    "csv", required=False, default=str(DEFAULT_CSV), type=click.Path(dir_okay=False)
)


def _load(csv: str):
    """The leaderboard at ``csv``; one ``error:`` line and exit code 2 when it cannot be read
    (as ``saebench run`` reports errors)."""
    try:
        return read_leaderboard(csv)
    except LeaderboardError as err:
        fail(str(err))
    except OSError as err:
        fail(f"{err.filename or csv}: {err.strerror or err}")


@click.group()
def leaderboard() -> None:
    """Show, plot and export leaderboard CSVs (default: leaderboard/tiny-ioi.csv)."""


@leaderboard.command()
@_csv_argument
@click.option("--sort", "sort_column", default=None, help="Column to sort by (ascending).")
@click.option("--desc", is_flag=True, help="Sort descending.")
@click.option(
    "--filter",
    "filter_expr",
    default=None,
    help="pandas query expression, e.g. \"architecture == 'topk' and l0 < 10\".",
)
@click.option(
    "--columns",
    multiple=True,
    help="Columns to show (comma-separated or repeated; shell patterns like 'edit_*_k4').",
)
@click.option("--plain", is_flag=True, help="Plain aligned text even on a terminal.")
@click.option(
    "--best-per-k",
    is_flag=True,
    help="The paper's selection: per node, attribute, k and edit kind (greedy, aware), the SAE "
    "of each family (architecture, data source) whose edit lands closest in L2 to the "
    "counterfactual activation (edit_distance / aware_edit_distance columns).",
)
@click.option(
    "--reference",
    "reference_csv",
    default=None,
    type=click.Path(dir_okay=False),
    help="Another leaderboard (e.g. the shipped leaderboard/tiny-ioi.csv) whose rows at the "
    "same nodes (model, hook, head, position) are shown beside CSV's, named 'ref: NAME'.",
)
@click.option(
    "--frontier",
    is_flag=True,
    help="Only rows on the L0-vs-metric Pareto frontier of their node (the --sort metric; "
    "default necessity), per node by L0: no other dictionary there is as sparse and at least "
    "as good. Supervised references are left out.",
)
@click.option(
    "--outcomes",
    "outcomes_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Run JSONs with their .outcomes.npz (e.g. runs/): ties under --sort use the paired "
    "bootstrap where both rows have outcomes on the same prompts (else their intervals).",
)
def show(
    csv: str,
    sort_column: str | None,
    desc: bool,
    filter_expr: str | None,
    columns: tuple[str, ...],
    plain: bool,
    best_per_k: bool,
    reference_csv: str | None,
    frontier: bool,
    outcomes_dir: str | None,
) -> None:
    """Print the leaderboard as a table, each SAE metric beside its supervised reference,
    with ± half its 95% interval where the row has one.

    \b
    CSV defaults to leaderboard/tiny-ioi.csv (relative to the working directory).
    With --sort, rows computed with different settings (n_prompts, n_fit_prompts, seed, tau,
    task_version, coverage_min_prompts, coverage_prompts) are ranked in separate tables, and
    a row not distinguishable from the row above it is marked ≈ in the "tie" column
    (docs/metrics.md §11). On a terminal too narrow for every column, the table is folded
    into parts one under another (each repeating the SAE and node); no column is left out.
    """
    from saebench.leaderboard.table import (
        TableError,
        compact_columns,
        filter_rows,
        resolve_columns,
        sort_rows,
    )

    frame = _load(csv)
    if reference_csv is not None:
        frame = with_reference(frame, _load(reference_csv))
    if best_per_k:
        from saebench.leaderboard.selection import best_per_k as select
        from saebench.leaderboard.selection import render_selection

        if sort_column or columns:
            raise click.UsageError("--best-per-k has its own columns and order")
        try:
            frame = filter_rows(frame, filter_expr)
        except TableError as err:
            fail(str(err))
        selection = select(frame)
        if selection.empty:
            fail(f"{csv}: no rows with edit distances (re-score them with this saebench)")
        click.echo(render_selection(selection), nl=False)
        return
    if outcomes_dir is not None and sort_column is None:
        raise click.UsageError("--outcomes is for the tie marks of --sort")
    try:
        frame = filter_rows(frame, filter_expr)
        if frame.empty:
            click.echo(f"{csv}: no rows" + (" match the filter" if filter_expr else ""))
            return
        frame = sort_rows(frame, sort_column, descending=desc)
        selected = resolve_columns(frame, columns) if columns else compact_columns(frame)
        if frontier:  # per node by L0: along a frontier the metric improves with L0
            metric = sort_column or "necessity"
            frame = _frontier(frame, metric)
            frame = _by_node_then_l0(frame)
            selected += [c for c in ("l0", metric) if c not in selected]
    except TableError as err:
        fail(str(err))
    if frontier:
        _print_table(frame, selected, plain)
        click.echo(
            f"L0-vs-{metric} Pareto frontier of each node and settings group, by L0 "
            "(docs/metrics.md §11)"
        )
        return
    if sort_column is None:
        _print_table(frame, selected, plain)
        return
    from saebench.leaderboard.ranking import (
        TIE,
        UNKNOWN,
        differing_settings,
        find_outcomes,
        group_header,
        settings_groups,
        tie_marks,
    )

    outcomes = find_outcomes(outcomes_dir) if outcomes_dir is not None else None
    groups = settings_groups(frame)
    differing = differing_settings(groups)
    if sort_column not in selected:
        selected = [*selected, sort_column]
    at = selected.index(sort_column) + 1
    shown = [*selected[:at], "tie", *selected[at:]]
    n_paired = 0
    for number, (settings, rows) in enumerate(groups):
        if len(groups) > 1:
            click.echo(("\n" if number else "") + group_header(settings, differing, len(rows)))
        marks, paired = tie_marks(rows, sort_column, outcomes)
        n_paired += paired
        _print_table(rows.assign(tie=marks), shown, plain)
    how = (
        f"paired bootstrap for {n_paired} pair(s) with outcomes, 95% intervals otherwise"
        if outcomes is not None
        else "from the two rows' 95% intervals"
    )
    click.echo(
        f"tie: {TIE} = not distinguishable from the row above in {sort_column} ({how}; "
        f"docs/metrics.md §11); {UNKNOWN} = no interval to tell"
    )
    if len(groups) > 1:
        click.echo(
            f"{len(groups)} groups of rows computed with different settings "
            f"({', '.join(differing)}) are ranked separately"
        )


def _by_node_then_l0(frame):
    import pandas as pd

    from saebench.leaderboard.table import node_groups, sort_rows

    groups = [sort_rows(rows, "l0") for _, rows in node_groups(frame)]
    return pd.concat(groups) if groups else frame


def _frontier(frame, column: str):
    from saebench.leaderboard.ranking import frontier_rows
    from saebench.leaderboard.table import TableError

    if column not in frame.columns:
        raise TableError(f"--frontier: no column {column!r}")
    return frontier_rows(frame, column)


def _print_table(frame, selected: list[str], plain: bool) -> None:
    from saebench.leaderboard.table import (
        UNINFORMATIVE_NOTE,
        any_uninformative,
        render_plain,
        render_rich,
    )

    if plain or not sys.stdout.isatty():
        click.echo(render_plain(frame, selected), nl=False)
    else:
        width = shutil.get_terminal_size().columns
        click.echo(render_rich(frame, selected, width=width), nl=False)
    if any_uninformative(frame, selected):
        click.echo(UNINFORMATIVE_NOTE)


NODE_COLUMNS = ("model", "task", "hook", "head", "position")


def with_reference(frame, reference):
    """``frame``'s rows, then ``reference``'s rows at the nodes ``frame`` has (their
    ``sae_name`` prefixed ``ref: ``)."""
    import pandas as pd

    def key(table):
        return table[list(NODE_COLUMNS)].astype(str).agg("|".join, axis=1)

    if reference.empty or frame.empty:
        return frame
    reference = reference[key(reference).isin(set(key(frame)))].copy()
    reference["sae_name"] = "ref: " + reference["sae_name"].astype(str)
    return pd.concat([frame, reference], ignore_index=True)


@leaderboard.command()
@_csv_argument
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Directory for the PNGs (default: plots/ next to the CSV).",
)
def plot(csv: str, out_dir: str | None) -> None:
    """Draw the leaderboard figures as PNGs: edit accuracy and edit magnitude against k,
    sparsity vs fidelity, edit accuracy vs magnitude, interpretability coverage, and the
    sparsity-matched Pareto views (L0 vs sufficiency/necessity and vs edit accuracy at small
    k). Error bars and bands are the CSV's 95% intervals (docs/metrics.md §11)."""
    from saebench.leaderboard.plots import write_plots

    frame = _load(csv)
    target = Path(out_dir) if out_dir is not None else Path(csv).parent / "plots"
    if target.exists() and not target.is_dir():
        fail(f"--out {target}: is a file, not a directory")
    try:
        written = write_plots(frame, target)
    except OSError as err:  # e.g. under a file, not writable, disk full
        fail(f"{err.filename or target}: {err.strerror or err}")
    for path in written.values():
        click.echo(str(path))


@leaderboard.command()
@click.argument("csvs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder.")
def site(csvs: tuple[str, ...], out_dir: str) -> None:
    """Build a static web page of the leaderboards (default: leaderboard/tiny-ioi.csv) into
    --out: open OUT/index.html from disk, no server or network needed."""
    from saebench.leaderboard.site import SiteError, build_site

    paths = list(csvs) or [str(DEFAULT_CSV)]
    for path in paths:
        _load(path)  # one clean error line for a bad CSV
    try:
        click.echo(str(build_site(paths, out_dir)))
    except SiteError as err:
        fail(str(err))


EXPORT_FORMATS: tuple[str, ...] = ("markdown", "saebench")
"""Formats of ``saebench leaderboard export``; ``markdown`` is the default."""


@leaderboard.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--format",
    "export_format",
    type=click.Choice(EXPORT_FORMATS),
    default="markdown",
    show_default=True,
    help="markdown: per-node tables (PATHS: [CSV]). saebench: one SAEBench eval-results JSON "
    "per row (PATHS: [CSV] DIR).",
)
@click.option(
    "--markdown",
    "markdown_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the Markdown tables here (default: print them).",
)
@click.option(
    "--readme",
    "readme_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write a full README (plots + tables), e.g. leaderboard/README.md.",
)
@click.option(
    "--plots",
    "plots_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Plot directory the README links to (default: plots/ next to the README).",
)
@click.option(
    "--runs",
    "runs_dir",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="saebench format: run JSONs (e.g. runs/) adding sae-lens version and details.",
)
def export(
    paths: tuple[str, ...],
    export_format: str,
    markdown_file: str | None,
    readme_file: str | None,
    plots_dir: str | None,
    runs_dir: str | None,
) -> None:
    """Export the per-node Markdown tables (and optionally the leaderboard README), or one
    SAEBench eval-results JSON per row (leaderboard/saebench_format.py).

    \b
      export [CSV] [--markdown FILE] [--readme FILE [--plots DIR]]
      export --format saebench [CSV] DIR [--runs RUNS_DIR]
    CSV defaults to leaderboard/tiny-ioi.csv (relative to the working directory).
    """
    if export_format == "saebench":
        if markdown_file or readme_file or plots_dir:
            raise click.UsageError("--markdown, --readme and --plots are for --format markdown")
        if not 1 <= len(paths) <= 2:
            raise click.UsageError("--format saebench takes [CSV] DIR")
        csv = paths[0] if len(paths) == 2 else str(DEFAULT_CSV)
        _export_saebench(csv, paths[-1], runs_dir)
        return
    if runs_dir is not None:
        raise click.UsageError("--runs is for --format saebench")
    if len(paths) > 1:
        raise click.UsageError(f"--format markdown takes at most one CSV, got {len(paths)} paths")
    csv = paths[0] if paths else str(DEFAULT_CSV)
    _export_markdown(csv, markdown_file, readme_file, plots_dir)


def _export_saebench(csv: str, out_dir: str, runs_dir: str | None) -> None:
    from saebench.leaderboard.saebench_format import run_records_in, write_saebench_results

    if Path(out_dir).suffix == ".csv" or Path(out_dir).is_file():
        raise click.UsageError(f"{out_dir} is a file; --format saebench writes into a directory")
    frame = _load(csv)
    records = run_records_in(runs_dir) if runs_dir is not None else None
    try:
        written = write_saebench_results(frame, out_dir, run_records=records)
    except OSError as err:
        fail(f"could not write into {out_dir}: {err.strerror or err}")
    click.echo(f"wrote {len(written)} SAEBench result file(s) to {out_dir}")


def _export_markdown(
    csv: str, markdown_file: str | None, readme_file: str | None, plots_dir: str | None
) -> None:
    from saebench.leaderboard.export import export_markdown, render_leaderboard_readme
    from saebench.validation.outputs import check_distinct

    outputs = {"--markdown": markdown_file, "--readme": readme_file}
    outputs = {k: v for k, v in outputs.items() if v is not None}
    try:
        check_distinct({"leaderboard": csv}, outputs)
        for what, path in outputs.items():  # before any work, as `saebench run` does
            check_writable(path, what=what)
    except OSError as err:
        fail(err.strerror or str(err))
    except ValueError as err:
        fail(str(err))
    frame = _load(csv)
    text = export_markdown(frame)
    if markdown_file is not None:
        _write(markdown_file, text)
        click.echo(f"wrote {markdown_file}")
    elif readme_file is None:
        click.echo(text, nl=False)
    if readme_file is not None:
        readme = Path(readme_file)
        plots = Path(plots_dir) if plots_dir is not None else readme.parent / "plots"
        try:
            body = render_leaderboard_readme(csv, plots, readme_dir=readme.parent)
        except LeaderboardError as err:
            fail(str(err))
        _write(readme, body)
        click.echo(f"wrote {readme_file}")


def _write(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (the old file or the new one, never a torn one);
    one ``error:`` line on failure (disk full, say)."""
    from saebench.io_utils import atomic_write

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as ``plot --out`` does
        atomic_write(path, text)
    except OSError as err:
        fail(f"could not write {path}: {err.strerror or err}")
