"""What several ``saebench`` commands share: option help and defaults (without importing
torch, so that ``saebench --help`` stays fast), the checks made before anything is loaded, and
the one-line ``error:`` exit."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import NoReturn

import click

_HOOK_RE = re.compile(
    r"^(hook_embed|hook_pos_embed|hook_tokens|ln_final\.hook_\w+|"
    r"blocks\.\d+\.(\w+\.)*hook_\w+)$"
)


def echo_error(message: object) -> None:
    """Print ``error: MESSAGE`` on stderr as one line: line breaks in it (an SAE folder or
    name may hold a newline) become spaces."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)


def fail(message: str) -> NoReturn:
    """Print ``error: MESSAGE`` (one line, stderr) and exit with code 2."""
    echo_error(message)
    sys.exit(2)


def check_hook_syntax(hook: str) -> None:
    """``ValueError`` unless ``hook`` looks like a TransformerLens hook name
    (``blocks.{L}.hook_resid_pre``, ``blocks.{L}.attn.hook_z``, ``hook_embed``, ...); whether the
    model has it is checked once it is loaded.

    >>> check_hook_syntax("blocks.3.attn.hook_z")
    """
    if not _HOOK_RE.match(hook):
        head, _, last = hook.rpartition(".")
        guess = f"{head}.hook_{last}" if head and not last.startswith("hook_") else ""
        hint = f"did you mean {guess}? " if guess and _HOOK_RE.match(guess) else ""
        raise ValueError(
            f"--hook {hook!r} is not a TransformerLens hook name; {hint}(e.g. "
            "blocks.3.hook_resid_pre, blocks.0.attn.hook_z; `saebench nodes --model M` lists a "
            "model's hooks)"
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


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def capped_threads(threads: int) -> int:
    """``threads`` capped at :func:`available_cores`, with a warning when it was more (torch
    crashes or fails to start threads far beyond the machine's cores)."""
    cores = available_cores()
    if threads > cores:
        logging.getLogger("saebench").warning(
            "--threads %s is more than the %d CPU core(s) here; using %d", threads, cores, cores
        )
        return cores
    return threads


def set_threads(threads: int) -> None:
    """Apply ``--threads``: torch's intra-op CPU thread count, ``torch.set_num_threads``,
    capped at the machine's cores (:func:`capped_threads`)."""
    threads = capped_threads(threads)
    import torch

    torch.set_num_threads(threads)
