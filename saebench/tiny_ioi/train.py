"""Train tiny-ioi: a small ``HookedTransformer`` language model on stories of a small world.

The texts are :mod:`saebench.tiny_ioi.stories`: IOI stories (0–3 unrelated preamble sentences,
an intro bringing IO and S together in one of many shapes, middle sentences about a third
person, a final clause with S as subject ending "... to IO."), some naming S as "the
former"/"the latter", and general stories in which names recur. Each text is one sequence
``<|bos|> text <|eos|>`` right-padded (padding is not in the loss):

    loss = Σ_t w_t · −log softmax(logits_{t−1})[token_t] ÷ Σ_t w_t  +  λ · aux

over non-pad targets t, with w_t = ``answer_weight`` on the IO answer of IOI stories and 1
elsewhere, and aux the attention prior (:func:`attention_prior_loss`): the cross-entropy
between the attention from END of the heads ``attention_prior_heads`` and the uniform
distribution over every mention of IO and S, on IOI stories that name S. It makes those heads
count S twice, as GPT-2's name movers do; without it they learned to skip S2, and patching a
fresh S at any node left IO and S tied (``docs/tiny-ioi.md`` §4).

The model is GPT-2-style (attention + MLP blocks, LayerNorm) with rotary positions on
``rotary_dim`` of each head's dimensions: the rest of each head matches content at any
distance, and nothing depends on absolute position, so the names cannot be found by slot (the
earlier recipe, on templates with learned positions, learned exactly that shortcut).

A two-stage curriculum: the first ``plain_steps`` steps see mostly IOI stories without
preamble or middle (half of them the IOI plugin's templates), the rest the full mixture.
Batches are bucketed by length (:func:`length_bucketed_order`) so little compute goes to
padding. AdamW with a linear warm-up and a cosine decay to ``final_lr_fraction`` of the peak.
Every random choice (weights, texts) comes from ``seed``, so retraining with the same seed and
the same thread count gives the same weights. ``docs/tiny-ioi.md`` has the runs and the circuit.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from saebench.model import build_model
from saebench.tiny_ioi.stories import (
    FORMER_LATTER,
    training_mixture,
    vocabulary_texts,
    word_lists,
)
from saebench.tiny_ioi.tokenizer import build_tokenizer, hf_tokenizer, tokenizer_kwargs

logger = logging.getLogger(__name__)


@dataclass
class ScheduleConfig:
    """Seed, batches and optimiser schedule, shared by the embedded models' training configs."""

    seed: int = 0
    """Seeds the weights and the training texts."""
    steps: int = 3000
    """Optimiser steps."""
    batch_size: int = 64
    """Texts per step."""
    lr: float = 3e-3
    """Peak learning rate."""
    warmup_steps: int = 200
    """Linear warm-up from 0 to ``lr``."""
    final_lr_fraction: float = 0.05
    """The cosine decay ends at ``lr * final_lr_fraction``."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay (on weight matrices only)."""


@dataclass
class TrainConfig(ScheduleConfig):
    """How tiny-ioi is trained (defaults: the shipped model)."""

    steps: int = 5000
    ioi_fraction: float = 0.6
    """Fraction of training texts that are IOI stories after the curriculum's first stage."""
    plain_ioi_fraction: float = 0.9
    """Fraction of IOI stories in the first stage."""
    former_fraction: float = 0.5
    """Fraction of IOI stories naming S as "the former"/"the latter" (second stage)."""
    answer_weight: float = 5.0
    """Loss weight of the IO answer token of IOI stories (every other target: 1)."""
    plain_steps: int = 1000
    """Steps of the first stage (IOI stories without preamble or middle)."""
    n_layers: int = 4
    """Transformer blocks."""
    d_model: int = 64
    """Residual stream width."""
    n_heads: int = 4
    """Attention heads per block (``d_head = d_model / n_heads``)."""
    n_ctx: int = 256
    """Longest text in tokens (rotary positions: no parameter depends on it)."""
    positional_embedding: str = "rotary"
    """``rotary`` or ``standard`` (learned absolute, GPT-2: finds the names by slot)."""
    rotary_dim: int = 8
    """Dimensions of each head that rotate (the rest match content at any distance; rotating
    all of them kept the model from finding S2 in 2900 steps, ``docs/tiny-ioi.md``)."""
    attention_prior_heads: str = "0.0,0.1,1.0,1.1"
    """Heads ("layer.head", comma-separated) that the attention prior asks to attend, at END
    of IOI stories, to every mention of IO and S (:func:`attention_prior_loss`); "" for none."""
    attention_prior_weight: float = 0.3
    """Weight λ of the attention prior in the loss (0: none)."""


def model_config(train_cfg, vocab_size: int, name: str = "tiny-ioi") -> dict[str, Any]:
    """``HookedTransformerConfig`` fields of the model ``train_cfg`` (a ``TrainConfig`` of
    tiny-ioi or tiny-gt) describes.

    ``init_weights`` is off: weights are drawn by ``init_weights`` (seeded) or loaded.
    """
    return {
        "n_layers": train_cfg.n_layers,
        "d_model": train_cfg.d_model,
        "d_head": train_cfg.d_model // train_cfg.n_heads,
        "n_heads": train_cfg.n_heads,
        "d_mlp": 4 * train_cfg.d_model,
        "d_vocab": vocab_size,
        "n_ctx": train_cfg.n_ctx,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": train_cfg.positional_embedding,
        **(
            {"rotary_dim": getattr(train_cfg, "rotary_dim", train_cfg.d_model // train_cfg.n_heads)}
            if train_cfg.positional_embedding == "rotary"
            else {}
        ),
        "default_prepend_bos": True,
        "tokenizer_prepends_bos": True,
        "init_weights": False,
        "model_name": name,
    }


def init_weights(model: torch.nn.Module, generator: torch.Generator) -> None:
    """GPT-2 initialisation from ``generator``: weight matrices ``W_*`` ~ N(0, σ²) with
    σ = ``cfg.initializer_range`` (0.8/√d_model), biases 0, LayerNorm scales 1."""
    std = model.cfg.initializer_range
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf.startswith("W_"):
                param.copy_(torch.randn(param.shape, generator=generator) * std)
            elif leaf == "w":
                param.fill_(1.0)
            else:
                param.zero_()


def encode_texts(tokenizer, texts: list[str], n_ctx: int) -> Tensor:
    """``<|bos|> text <|eos|>`` token ids, right-padded with ``<|pad|>``: [N, L]."""
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    rows = [[tokenizer.bos_token_id, *e.ids, tokenizer.eos_token_id] for e in encodings]
    length = max(len(r) for r in rows)
    if length > n_ctx:
        raise ValueError(f"a training text has {length} tokens, more than n_ctx = {n_ctx}")
    tokens_NL = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens_NL[i, : len(row)] = torch.tensor(row)
    return tokens_NL


def lm_loss(
    logits_BLV: Tensor, tokens_BL: Tensor, pad_id: int, weights_BL: Tensor | None = None
) -> Tensor:
    """Weighted mean next-token cross-entropy over the non-pad targets:
    Σ_t w_t·CE_t ÷ Σ_t w_t, with ``weights_BL[:, t]`` the weight of target token t (default 1)."""
    targets_BL = tokens_BL[:, 1:]
    logits = logits_BLV[:, :-1].reshape(-1, logits_BLV.shape[-1])
    losses = torch.nn.functional.cross_entropy(logits, targets_BL.reshape(-1), reduction="none")
    mask_BL = (targets_BL != pad_id).float()
    if weights_BL is not None:
        mask_BL = mask_BL * weights_BL[:, 1:]
    mask = mask_BL.reshape(-1)
    return (losses * mask).sum() / mask.sum()


def answer_weights(tokens_BL: Tensor, is_ioi_B: Tensor, pad_id: int, weight: float) -> Tensor:
    """Per-token loss weights [B, L]: ``weight`` on the IO answer of IOI-style rows (the token
    before the final full stop: ``<|bos|> ... to IO . <|eos|>``), 1 elsewhere."""
    weights_BL = torch.ones(tokens_BL.shape)
    lengths_B = (tokens_BL != pad_id).sum(1)
    rows = torch.nonzero(is_ioi_B).flatten()
    weights_BL[rows, lengths_B[rows] - 3] = weight
    return weights_BL


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.AdamW:
    """AdamW (β = 0.9, 0.98) at ``cfg.lr``, with ``cfg.weight_decay`` on the weight matrices
    (``W_*``) only."""
    decay = [p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1].startswith("W_")]
    other = [p for n, p in model.named_parameters() if not n.rsplit(".", 1)[-1].startswith("W_")]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )


def learning_rate(step: int, cfg: ScheduleConfig) -> float:
    """Linear warm-up, then cosine from ``lr`` to ``lr * final_lr_fraction``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.final_lr_fraction
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` inside, the previous setting restored: with
    more than one CPU thread, the embedding's scatter-add backward is otherwise not
    reproducible."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


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


def training_texts(cfg: TrainConfig, tokenizer) -> tuple[list[str], Tensor]:
    """The ``steps × batch_size`` training texts in training order (the curriculum's two
    stages, each length-bucketed) and which ones are IOI stories, [N]."""
    n_plain = min(cfg.plain_steps, cfg.steps) * cfg.batch_size
    n_rest = cfg.steps * cfg.batch_size - n_plain

    def spare(n: int) -> int:  # texts to draw so that n remain once the too long are dropped
        return n + n // 100 + cfg.batch_size

    plain, plain_ioi_N = drop_long_texts(tokenizer, *training_mixture(
        spare(n_plain), cfg.seed + 1, cfg.plain_ioi_fraction, cfg.former_fraction, plain=True
    ), cfg.n_ctx, n_plain)  # fmt: skip
    texts, is_ioi_N = drop_long_texts(tokenizer, *training_mixture(
        spare(n_rest), cfg.seed, cfg.ioi_fraction, cfg.former_fraction
    ), cfg.n_ctx, n_rest)  # fmt: skip
    texts, is_ioi_N = plain + texts, np.concatenate([plain_ioi_N, is_ioi_N])
    order = length_bucketed_order(texts, cfg.batch_size, np.random.default_rng([cfg.seed, 5]))
    return [texts[i] for i in order], torch.as_tensor(is_ioi_N[order])


def train_tiny_ioi(
    cfg: TrainConfig,
    show_progress: bool = True,
    on_step: Callable[[int, Any, float], None] | None = None,
) -> tuple:
    """Train tiny-ioi; returns (model, tokenizer, model config dict, losses per step).

    ``on_step(step, model, loss)`` is called after every optimiser step (for monitoring).
    Runs with ``torch.use_deterministic_algorithms(True)`` (restored afterwards): with more
    than one CPU thread, the embedding's scatter-add backward is otherwise not reproducible.
    """
    with deterministic_algorithms():
        tokenizer = hf_tokenizer(build_tokenizer(vocabulary_texts()))
        model_cfg = model_config(cfg, len(tokenizer))
        model = build_model(model_cfg, tokenizer=tokenizer)
        init_weights(model, torch.Generator().manual_seed(cfg.seed))
        model.train()
        texts, is_ioi_N = training_texts(cfg, tokenizer)
        losses = fit(model, tokenizer, texts, is_ioi_N, cfg, show_progress, on_step)
    return model, tokenizer, model_cfg, losses


def name_index(tokenizer) -> Tensor:
    """For every token id, the index in ``word_lists()["names"]`` of the name it spells (with
    or without a leading space), −1 for every other token: [V]."""
    names_V = torch.full((len(tokenizer),), -1, dtype=torch.long)
    vocab = tokenizer.get_vocab()
    for i, name in enumerate(word_lists()["names"]):
        for spelling in (name, "Ġ" + name):  # "Ġ": the byte-level BPE's leading space
            if spelling in vocab:
                names_V[vocab[spelling]] = i
    return names_V


def parse_heads(spec: str, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    """``"1.0,1.1"`` -> ``[(1, 0), (1, 1)]``; a ``ValueError`` for a head the model lacks.

    >>> parse_heads("1.0,0.3", 3, 4)
    [(1, 0), (0, 3)]
    """
    heads = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        layer, _, head = item.partition(".")
        if not (layer.isdigit() and head.isdigit()):
            raise ValueError(f"attention prior head {item!r}: expected LAYER.HEAD, e.g. 1.0")
        if int(layer) >= n_layers or int(head) >= n_heads:
            raise ValueError(f"attention prior head {item}: the model has {n_layers} layers "
                             f"of {n_heads} heads")  # fmt: skip
        heads.append((int(layer), int(head)))
    return heads


def mention_targets(
    tokens_BL: Tensor, rows_R: Tensor, pad_id: int, names_V: Tensor
) -> tuple[Tensor, Tensor]:
    """For the IOI rows ``rows_R`` of a batch (``<|bos|> ... to IO . <|eos|>``): END, the
    position of "to" [R], and the attention prior's target [R, L], uniform over the positions
    ≤ END holding IO or S. IO is the answer; S is the last name before END that is not IO
    (the final clause's subject, S2; in a row without one, the target is IO's mentions).

        target_rk = 1[token_k ∈ {IO, S}, k ≤ END_r] ÷ #{k ≤ END_r : token_k ∈ {IO, S}}
    """
    r = torch.arange(len(rows_R))
    lengths_R = (tokens_BL != pad_id).sum(1)[rows_R]
    end_R = lengths_R - 4
    names_RL = names_V[tokens_BL[rows_R]]
    io_R = names_RL[r, lengths_R - 3]
    position_L = torch.arange(tokens_BL.shape[1])
    before_RL = position_L[None, :] <= end_R[:, None]
    other_RL = (names_RL >= 0) & (names_RL != io_R[:, None]) & before_RL
    last_R = torch.where(other_RL, position_L[None, :], -1).max(1).values
    s_R = torch.where(last_R >= 0, names_RL[r, last_R.clamp(min=0)], io_R)  # no S: IO alone
    target_RL = ((names_RL == io_R[:, None]) | (names_RL == s_R[:, None])) & before_RL
    target_RL = target_RL.float() / target_RL.float().sum(1, keepdim=True)
    return end_R, target_RL


def attention_prior_loss(
    patterns: dict[int, Tensor],
    heads: list[tuple[int, int]],
    rows_R: Tensor,
    end_R: Tensor,
    target_RL: Tensor,
) -> Tensor:
    """Cross-entropy of each prior head's attention from END against the target, averaged over
    rows and heads (``patterns[layer]``: ``hook_pattern``, [B, H, Q, K]):

        aux = mean_(l,h) mean_r −Σ_k target_rk · log(a^{lh}_r(END_r → k) + 10⁻⁶)

    Its minimum, log of the number of mentions, is reached by attending uniformly to them."""
    terms = []
    for layer, head in heads:
        p_RK = patterns[layer][rows_R, head, end_R]
        terms.append(-(target_RL * torch.log(p_RK + 1e-6)).sum(1).mean())
    return torch.stack(terms).mean()


def fit(
    model,
    tokenizer,
    texts: list[str],
    is_ioi_N: torch.Tensor,
    cfg: TrainConfig,
    show_progress: bool = True,
    on_step: Callable[[int, Any, float], None] | None = None,
    desc: str = "tiny-ioi",
) -> np.ndarray:
    """``cfg.steps`` AdamW steps (:func:`make_optimizer`, :func:`learning_rate`) on
    consecutive batches of ``texts``, gradients clipped to norm 1, on

        loss = lm_loss + λ · aux

    with :func:`lm_loss` weighted by :func:`answer_weights` on the IO answer of the texts
    flagged in ``is_ioi_N``, and aux the attention prior (:func:`attention_prior_loss`, λ =
    ``cfg.attention_prior_weight``) on the IOI texts that name S by name (not "the
    former"/"the latter", whose final clause has no name). Leaves the model in eval mode;
    returns the LM loss of every step (the attention prior not included)."""
    optimizer = make_optimizer(model, cfg)
    losses = np.zeros(cfg.steps)
    heads = parse_heads(cfg.attention_prior_heads, model.cfg.n_layers, model.cfg.n_heads)
    use_prior = bool(heads) and cfg.attention_prior_weight != 0
    names_V = name_index(tokenizer)
    by_position_V = torch.zeros(len(tokenizer), dtype=torch.bool)
    for phrase in FORMER_LATTER:
        by_position_V[tokenizer.encode(" " + phrase.split()[-1], add_special_tokens=False)] = True
    patterns: dict[int, Tensor] = {}

    def keep_pattern(pattern_BHQK: Tensor, hook) -> None:
        patterns[hook.layer()] = pattern_BHQK

    prior_hooks = [
        (f"blocks.{layer}.attn.hook_pattern", keep_pattern)
        for layer in sorted({layer for layer, _ in heads})
    ] if use_prior else []  # fmt: skip
    for step in tqdm(range(cfg.steps), disable=not show_progress, desc=desc):
        batch = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        tokens_BL = encode_texts(tokenizer, texts[batch], cfg.n_ctx)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        weights_BL = None
        if cfg.answer_weight != 1.0:
            weights_BL = answer_weights(
                tokens_BL, is_ioi_N[batch], tokenizer.pad_token_id, cfg.answer_weight
            )
        with model.hooks(prior_hooks):
            logits_BLV = model(tokens_BL)
        loss = lm_loss(logits_BLV, tokens_BL, tokenizer.pad_token_id, weights_BL)
        total = loss
        if use_prior:
            named_B = ~by_position_V[tokens_BL].any(1)
            rows_R = torch.nonzero(is_ioi_N[batch] & named_B).flatten()
            if len(rows_R):
                end_R, target_RL = mention_targets(
                    tokens_BL, rows_R, tokenizer.pad_token_id, names_V
                )
                aux = attention_prior_loss(patterns, heads, rows_R, end_R, target_RL)
                total = loss + cfg.attention_prior_weight * aux
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses[step] = loss.item()
        if on_step is not None:
            on_step(step, model, losses[step])
    model.eval()
    return losses


def save_tiny_ioi(model, tokenizer, model_cfg: dict[str, Any], out_dir: Path) -> None:
    """Write ``config.json``, ``model.safetensors`` and ``tokenizer.json`` to ``out_dir``, in
    the layout ``saebench.model._load_embedded`` reads (tiny-gt's too: the name comes from
    ``model_cfg["model_name"]``)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    config = dict(model_cfg, special_tokens=tokenizer_kwargs(model_cfg["model_name"]))
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "model.safetensors"))
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))


def train_and_save(cfg: TrainConfig, out_dir: Path, show_progress: bool = True) -> dict[str, Any]:
    """Train, save to ``out_dir``, measure (``saebench.tiny_ioi.evaluate.measure``) and write
    ``training.json`` (config, wall time, final loss, metrics). Returns that record."""
    from saebench.tiny_ioi.evaluate import measure

    return train_save_and_measure(
        "tiny-ioi", cfg, out_dir, lambda: train_tiny_ioi(cfg, show_progress), measure
    )


def train_save_and_measure(
    name: str,
    cfg: ScheduleConfig,
    out_dir: Path,
    train: Callable[[], tuple],
    measure: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``train()`` (-> model, tokenizer, model config, losses), save the model to
    ``out_dir`` (:func:`save_tiny_ioi`), and write ``training.json``: the command, ``cfg``, wall
    and CPU time of training, torch threads and version, the mean loss of the last 100 steps
    and ``measure(model)``. Returns that record."""
    start, cpu_start = time.perf_counter(), time.process_time()
    model, tokenizer, model_cfg, losses = train()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    save_tiny_ioi(model, tokenizer, model_cfg, out_dir)
    record = {
        "command": (
            f"saebench model train {name} --out DIR --seed {cfg.seed} --steps {cfg.steps} "
            f"--threads {torch.get_num_threads()}"
        ),
        "train_config": asdict(cfg),
        "train_seconds": round(seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "final_loss": float(losses[-100:].mean()),
        "metrics": measure(model),
    }
    (out_dir / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    logger.info("%s trained in %.0f s; metrics %s", name, seconds, record["metrics"])
    return record
