"""Train tiny-gt: a small ``HookedTransformer`` language model on year ranges and year sentences.

The model is GPT-2-style (attention + MLP blocks, LayerNorm, learned positions), trained, like
tiny-ioi (:mod:`saebench.tiny_ioi.train`, whose initialisation, batching, loss and schedule it
reuses), by next-token cross-entropy on ``training_mixture`` texts, each one sequence
``<|bos|> text <|eos|>`` right-padded (padding is not in the loss):

    loss = Σ_t w_t · −log softmax(logits_{t−1})[token_t] ÷ Σ_t w_t   over non-pad targets t

with w_t = ``answer_weight`` on the end year's two digits (ZZ) of year-range texts and 1
elsewhere. Every random choice (weights, texts) comes from ``seed``, so retraining with the same
seed and thread count gives the same weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from saebench.model import build_model
from saebench.tiny_gt.corpus import training_mixture, vocabulary_texts
from saebench.tiny_ioi.tokenizer import build_tokenizer, hf_tokenizer
from saebench.tiny_ioi.train import (
    ScheduleConfig,
    deterministic_algorithms,
    encode_texts,
    init_weights,
    learning_rate,
    lm_loss,
    make_optimizer,
    model_config,
    train_save_and_measure,
)

logger = logging.getLogger(__name__)

NAME = "tiny-gt"


@dataclass
class TrainConfig(ScheduleConfig):
    """How tiny-gt is trained (defaults: the shipped model; seed and schedule as tiny-ioi's)."""

    range_fraction: float = 0.8
    """Fraction of training texts that are year ranges (the rest are single-year sentences)."""
    answer_weight: float = 3.0
    """Loss weight of the end year's two digits in year-range texts (every other target: 1)."""
    n_layers: int = 2
    """Transformer blocks."""
    d_model: int = 64
    """Residual stream width."""
    n_heads: int = 4
    """Attention heads per block (``d_head = d_model / n_heads``)."""
    n_ctx: int = 64
    """Maximum sequence length (a year range after two general sentences is under 50)."""
    positional_embedding: str = "standard"
    """Learned absolute positions, as GPT-2."""


def tiny_gt_tokenizer():
    """tiny-gt's word-level tokenizer, years cut as GPT-2 cuts them (`` 17``, ``32``)."""
    return hf_tokenizer(build_tokenizer(vocabulary_texts(), digit_pairs=True), name=NAME)


def end_year_weights(
    tokens_BL: Tensor, is_range_B: Tensor, digit_ids: Tensor, weight: float
) -> Tensor:
    """Per-token loss weights [B, L]: ``weight`` on the last two-digit token of each year-range
    row (the end year's ZZ: a range has two years, written [`` XX``][``YY``] and
    [`` XX``][``ZZ``]), 1 elsewhere."""
    is_digit_BL = torch.isin(tokens_BL, digit_ids)
    cols_BL = torch.arange(tokens_BL.shape[1]).expand_as(tokens_BL)
    last_B = torch.where(is_digit_BL, cols_BL, -1).max(1).values
    weights_BL = torch.ones(tokens_BL.shape)
    rows = torch.nonzero(is_range_B & (last_B >= 0)).flatten()
    weights_BL[rows, last_B[rows]] = weight
    return weights_BL


def train_tiny_gt(cfg: TrainConfig, show_progress: bool = True):
    """Train tiny-gt; returns (model, tokenizer, model config dict, losses per step).

    Runs with ``torch.use_deterministic_algorithms(True)`` (restored afterwards), as tiny-ioi.
    """
    with deterministic_algorithms():
        return _train(cfg, show_progress)


def _train(cfg: TrainConfig, show_progress: bool) -> tuple:
    tokenizer = tiny_gt_tokenizer()
    digit_ids = torch.tensor([tokenizer.convert_tokens_to_ids(f"{y:02d}") for y in range(100)])
    model_cfg = model_config(cfg, len(tokenizer), name=NAME)
    model = build_model(model_cfg, tokenizer=tokenizer)
    init_weights(model, torch.Generator().manual_seed(cfg.seed))
    model.train()

    optimizer = make_optimizer(model, cfg)
    texts, is_range_N = training_mixture(
        cfg.steps * cfg.batch_size, cfg.seed, cfg.range_fraction, cfg.batch_size
    )
    is_range_N = torch.as_tensor(is_range_N)
    losses = np.zeros(cfg.steps)
    for step in tqdm(range(cfg.steps), disable=not show_progress, desc=NAME):
        batch = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        tokens_BL = encode_texts(tokenizer, texts[batch], cfg.n_ctx)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        weights_BL = end_year_weights(tokens_BL, is_range_N[batch], digit_ids, cfg.answer_weight)
        loss = lm_loss(model(tokens_BL), tokens_BL, tokenizer.pad_token_id, weights_BL)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses[step] = loss.item()
    model.eval()
    return model, tokenizer, model_cfg, losses


def train_and_save(cfg: TrainConfig, out_dir: Path, show_progress: bool = True) -> dict[str, Any]:
    """Train, save to ``out_dir``, measure (``saebench.tiny_gt.evaluate.measure``) and write
    ``training.json`` (config, wall time, final loss, metrics). Returns that record."""
    from saebench.tiny_gt.evaluate import measure

    return train_save_and_measure(
        NAME, cfg, out_dir, lambda: train_tiny_gt(cfg, show_progress), measure
    )
