"""The ``saebench`` command group: every command, the heavy ones imported lazily."""

from __future__ import annotations

import logging
import sys

import click

from saebench.cli.common import fail


class LazyGroup(click.Group):
    """A group whose heavy subcommands are imported only when used, so that
    ``saebench --help`` imports no torch: ``lazy`` maps a name to (module, attribute,
    one-line help shown in the command list)."""

    lazy: dict[str, tuple[str, str, str]] = {
        "map": (
            "saebench.cli.map",
            "map_command",
            "Map where a model's task answer depends on each attribute, node by node.",
        ),
        "nodes": (
            "saebench.cli.nodes",
            "nodes_command",
            "List a model's hooks with their widths, a task's positions and its causal nodes.",
        ),
        "sweep": (
            "saebench.cli.sweep",
            "sweep_command",
            "Score the SAEs of a TOML sweep spec, one job per model and node (local or Ray).",
        ),
    }

    def main(self, *args, standalone_mode: bool = True, **kwargs):  # noqa: D102
        """Click's ``main``, with its usage errors (a bad option value, an unknown option, a
        missing argument) printed as the one ``error:`` line the rest of saebench prints,
        naming the option, exit code 2."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.ClickException as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as before
                err.show()
                sys.exit(err.exit_code)
            fail(err.format_message() if isinstance(err, click.UsageError) else err.message)
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, attribute, _ = self.lazy[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                rows.append((name, self.lazy[name][2]))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress messages (INFO level).")
def main(verbose: bool) -> None:
    """saebench: rate sparse autoencoders against supervised feature dictionaries.

    Metric definitions: docs/metrics.md (summarised in the README).
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@main.command()
def tasks() -> None:
    """List the installed task plugins."""
    from saebench.task import available_tasks

    for name, target in sorted(available_tasks().items()):
        click.echo(f"{name}\t{target}")


def _attach_commands() -> None:
    """Add the commands imported eagerly: they import no torch and no pandas at import time
    (``map``, ``nodes`` and ``sweep`` are :attr:`LazyGroup.lazy`)."""
    from saebench.cli.compare import compare
    from saebench.cli.leaderboard import leaderboard
    from saebench.cli.model import model
    from saebench.cli.run import run
    from saebench.cli.train import train

    for command in (run, train, compare, leaderboard, model):
        main.add_command(command)


_attach_commands()
