"""``saebench model ...``: commands about the models saebench ships.

``saebench model train {tiny-ioi,tiny-gt} --out DIR [--seed N] [--steps N]`` trains an
embedded model from a seed and writes ``config.json``, ``model.safetensors``,
``tokenizer.json`` and ``training.json`` (config, wall time, measured metrics) to ``DIR``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click


@click.group()
def model() -> None:
    """Train or inspect the models shipped with saebench."""


@model.command("train")
@click.argument("name", type=click.Choice(["tiny-ioi", "tiny-gt"]))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write config.json, model.safetensors, tokenizer.json and "
    "training.json to (created if absent).",
)
@click.option(
    "--seed",
    default=None,
    type=click.IntRange(0, 2**32 - 1),
    help="Seed of weights and texts (default 0).",
)
@click.option(
    "--steps",
    default=None,
    type=click.IntRange(min=1),
    help="Optimiser steps (default: the shipped run).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="torch CPU threads. The weights depend on it: the same seed and thread count give the "
    "same weights on one machine (another CPU may round differently). The shipped tiny-ioi was "
    "trained with 1 (14 minutes on a 2-core machine shared with other jobs), tiny-gt with 2 "
    "(about 2 minutes); the command each used is in its training.json.",
)
def train(name: str, out_dir: Path, seed: int | None, steps: int | None, threads: int) -> None:
    """Train the embedded model NAME from scratch into OUT (CPU: tiny-gt 2 min, tiny-ioi 15).

    tiny-ioi does IOI (task ioi); tiny-gt does Greater-Than (task greater-than).
    """
    from saebench.cli.common import fail, set_threads
    from saebench.io_utils import check_writable

    try:  # before minutes of training: an --out that could not be written
        for file in ("config.json", "model.safetensors", "tokenizer.json", "training.json"):
            check_writable(out_dir / file, what="--out")
    except OSError as err:
        fail(err.strerror or str(err))
    if name == "tiny-gt":
        from saebench.tiny_gt.train import TrainConfig, train_and_save
    else:
        from saebench.tiny_ioi.train import TrainConfig, train_and_save

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    set_threads(threads)  # capped at the machine's cores (thousands crash torch)
    overrides = {k: v for k, v in {"seed": seed, "steps": steps}.items() if v is not None}
    record = train_and_save(TrainConfig(**overrides), out_dir)
    click.echo(json.dumps({"out": str(out_dir), **record}, indent=2))
