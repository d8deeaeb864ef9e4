"""What several ``saebench`` commands share: option help and defaults (without importing
torch, so that ``saebench --help`` stays fast), the checks made before anything is loaded, and
the one-line ``error:`` exit."""

from __future__ import annotations

import re
import sys
from typing import NoReturn

import click

# Defaults shown in ``--help``, kept here so that ``saebench --help`` imports no torch; a test
# checks that they equal the library's (saebench.evaluate, saebench.runner, saebench.run).
DEFAULT_KS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
DEFAULT_N_FIT_PROMPTS = 10_000
DEFAULT_CACHE_BUDGET_MB = 1024.0
DEFAULT_LEADERBOARD = "leaderboard/{model}.csv"
DEFAULT_JSON_OUT = "runs/{model}/{sae}-{task}-{node}.json"
MAX_N_PROMPTS = 100_000
"""Most ``--n-prompts`` / ``--n-fit-prompts`` a run accepts. Prompts, their activations and
logits are held in memory for the whole run (10 million tiny-ioi prompts grew past 4 GB, and
GPT-2 Small needs far more per prompt), so larger values are refused at once rather than
failing after minutes; 1000 evaluation and 10,000 fitting prompts are the defaults, the paper
used 20,000 fitting prompts."""

_HOOK_RE = re.compile(
    r"^(hook_embed|hook_pos_embed|hook_tokens|ln_final\.hook_\w+|"
    r"blocks\.\d+\.(\w+\.)*hook_\w+)$"
)


def fail(message: str) -> NoReturn:
    """Print ``error: MESSAGE`` (one line, stderr) and exit with code 2."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(2)


def check_hook_syntax(hook: str) -> None:
    """``ValueError`` unless ``hook`` looks like a TransformerLens hook name
    (``blocks.{L}.hook_resid_pre``, ``blocks.{L}.attn.hook_z``, ``hook_embed``, ...); whether the
    model has it is checked once it is loaded.

    >>> check_hook_syntax("blocks.3.attn.hook_z")
    """
    if not _HOOK_RE.match(hook):
        raise ValueError(
            f"--hook {hook!r} is not a TransformerLens hook name (e.g. blocks.3.hook_resid_pre, "
            "blocks.0.attn.hook_z)"
        )


def check_task_options(task: str, positions: tuple[str, ...] = ()) -> None:
    """``ValueError``/``KeyError`` unless ``task`` is installed and each of ``positions`` is one
    of its class's ``position_labels`` (read without instantiating it, before any model)."""
    from saebench.task import task_factory

    factory = task_factory(task)
    labels = tuple(getattr(factory, "position_labels", ()) or ())
    for position in positions:
        if labels and position not in labels:
            raise ValueError(
                f"--position {position!r} is not a position of task {task!r} "
                f"(its positions: {', '.join(labels)})"
            )


THREADS_HELP = (
    "torch CPU threads (torch.set_num_threads). 1 is the fastest measured on a shared 2-core "
    "CPU: the forward passes are small matrix products that a second thread barely speeds "
    "up, and it competes with other work; raise it on a dedicated many-core machine."
)
CACHE_BUDGET_HELP = (
    "Bound (MB) on the attention keys and values the clean run keeps so that each "
    "intervention recomputes only positions p..END from the node's block on (about 0.5 MB per "
    "prompt for GPT-2 Small from block 8); batches past it resume the whole sequence."
)


def set_threads(threads: int) -> None:
    """Apply ``--threads``: torch's intra-op CPU thread count, ``torch.set_num_threads``."""
    import torch

    torch.set_num_threads(threads)
