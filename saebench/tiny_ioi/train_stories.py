"""The next tiny-ioi recipe (issue 17, in development): train on stories, not templates.

The shipped tiny-ioi (:mod:`saebench.tiny_ioi.train`) learned a shortcut: its templates put the
two names in fixed slots, so it finds them by absolute position and suppresses S by identity.
This recipe trains on :mod:`saebench.tiny_ioi.stories` instead (preambles that move every name,
36 intro and 26 final shapes, counting-proof middles, "the former/the latter", general stories
in which names recur), with rotary positions by default. Same loss, optimiser, schedule and
determinism as :mod:`saebench.tiny_ioi.train`, plus:

- a two-stage curriculum: the first ``plain_steps`` steps see IOI stories without preamble or
  middle (``plain_ioi_fraction`` of the texts; half of them the IOI plugin's templates), the
  rest the full mixture;
- length-bucketed batches (:func:`length_bucketed_order`), so little compute goes to padding.

Status and measurements: ``docs/tiny-ioi.md``. Run it with
``python -m saebench.tiny_ioi.train_stories --out DIR [--steps N] [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saebench.model import build_model
from saebench.tiny_ioi.stories import training_mixture, vocabulary_texts
from saebench.tiny_ioi.tokenizer import build_tokenizer, hf_tokenizer
from saebench.tiny_ioi.train import (
    ScheduleConfig,
    deterministic_algorithms,
    fit,
    init_weights,
    model_config,
    train_save_and_measure,
)


@dataclass
class StoriesConfig(ScheduleConfig):
    """How the stories recipe trains tiny-ioi."""

    steps: int = 4000
    lr: float = 3e-3
    ioi_fraction: float = 0.6
    """Fraction of training texts that are IOI stories after the curriculum's first stage."""
    plain_ioi_fraction: float = 0.9
    """Fraction of IOI stories in the first stage."""
    former_fraction: float = 0.2
    """Fraction of IOI stories naming S as "the former"/"the latter" (second stage)."""
    answer_weight: float = 5.0
    """Loss weight of the IO answer token of IOI stories (every other target: 1)."""
    plain_steps: int = 1000
    """Steps of the first stage (IOI stories without preamble or middle)."""
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 8
    n_ctx: int = 256
    """Longest text in tokens (rotary positions: no parameter depends on it)."""
    positional_embedding: str = "rotary"
    """``rotary`` or ``standard`` (learned absolute, GPT-2)."""
    rotary_dim: int = 8
    """Dimensions of each head that rotate (the rest match content at any distance)."""


def length_bucketed_order(
    texts: list[str], batch_size: int, rng: np.random.Generator, block_batches: int = 16
) -> np.ndarray:
    """An order of ``texts`` in which each run of ``block_batches`` batches is sorted by length
    (characters) and its batches shuffled: consecutive batches of ``batch_size`` hold texts of
    similar length, and the curriculum's stages stay in order.

    >>> length_bucketed_order(["aaa", "a", "aa", "aaaa"], 2, np.random.default_rng(0), 2)
    array([1, 2, 0, 3])
    """
    lengths_N = np.array([len(t) for t in texts])
    block = block_batches * batch_size
    order = []
    for start in range(0, len(texts), block):
        idx = np.arange(start, min(len(texts), start + block))
        idx = idx[np.argsort(lengths_N[idx], kind="stable")]
        batches = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
        order.extend(batches[j] for j in rng.permutation(len(batches)))
    return np.concatenate(order)


def drop_long_texts(
    tokenizer, texts: list[str], is_ioi_N: np.ndarray, n_ctx: int, n: int
) -> tuple[list[str], np.ndarray]:
    """The first ``n`` of ``texts`` that fit ``n_ctx`` tokens with ``<|bos|>`` and
    ``<|eos|>``, and their IOI flags; a ``ValueError`` if fewer than ``n`` fit."""
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    keep_N = np.array([len(e.ids) + 2 <= n_ctx for e in encodings])
    if keep_N.sum() < n:
        raise ValueError(f"only {keep_N.sum()} of {len(texts)} texts fit n_ctx = {n_ctx}; need {n}")
    idx = np.flatnonzero(keep_N)[:n]
    return [texts[i] for i in idx], is_ioi_N[idx]


def stories_model_config(cfg: StoriesConfig, vocab_size: int) -> dict[str, Any]:
    """``HookedTransformerConfig`` fields of the model ``cfg`` describes."""
    out = model_config(cfg, vocab_size)
    if cfg.positional_embedding == "rotary":
        out["rotary_dim"] = cfg.rotary_dim
    return out


def train_stories(cfg: StoriesConfig, show_progress: bool = True) -> tuple:
    """Train; returns (model, tokenizer, model config dict, losses per step). Deterministic
    for a seed and a thread count (``torch.use_deterministic_algorithms`` inside)."""
    with deterministic_algorithms():
        tokenizer = hf_tokenizer(build_tokenizer(vocabulary_texts()))
        model_cfg = stories_model_config(cfg, len(tokenizer))
        model = build_model(model_cfg, tokenizer=tokenizer)
        init_weights(model, torch.Generator().manual_seed(cfg.seed))
        model.train()
        n_plain = min(cfg.plain_steps, cfg.steps) * cfg.batch_size
        n_rest = cfg.steps * cfg.batch_size - n_plain
        spare = lambda n: n + n // 100 + cfg.batch_size  # noqa: E731 (texts too long are dropped)
        plain, plain_ioi_N = drop_long_texts(tokenizer, *training_mixture(
            spare(n_plain), cfg.seed + 1, cfg.plain_ioi_fraction, cfg.former_fraction, plain=True
        ), cfg.n_ctx, n_plain)  # fmt: skip
        texts, is_ioi_N = drop_long_texts(tokenizer, *training_mixture(
            spare(n_rest), cfg.seed, cfg.ioi_fraction, cfg.former_fraction
        ), cfg.n_ctx, n_rest)  # fmt: skip
        texts, is_ioi_N = plain + texts, np.concatenate([plain_ioi_N, is_ioi_N])
        order = length_bucketed_order(texts, cfg.batch_size, np.random.default_rng([cfg.seed, 5]))
        texts, is_ioi_N = [texts[i] for i in order], torch.as_tensor(is_ioi_N[order])
        desc = "tiny-ioi (stories)"
        losses = fit(model, tokenizer, texts, is_ioi_N, cfg, show_progress, desc=desc)
    return model, tokenizer, model_cfg, losses


def main(argv: list[str] | None = None) -> None:
    from saebench.tiny_ioi.evaluate_stories import measure

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory to write the model to")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and texts")
    parser.add_argument("--steps", type=int, default=StoriesConfig.steps, help="optimiser steps")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    for name in ("n_layers", "d_model", "n_heads"):
        default = getattr(StoriesConfig, name)
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default,
                            help=f"model size (default {default})")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = StoriesConfig(
        seed=args.seed,
        steps=args.steps,
        n_layers=args.n_layers,
        d_model=args.d_model,
        n_heads=args.n_heads,
    )
    record = train_save_and_measure("tiny-ioi", cfg, args.out, lambda: train_stories(cfg), measure)
    print(json.dumps(record["metrics"], indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
