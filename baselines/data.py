"""Training activations for SAEs at a node: the task distribution or a general one.

- ``task``: prompts of the task's ``train`` split (names, objects and places disjoint from the
  ``test`` split that saebench evaluates on), read at the node's position or at every
  position of the prompt.
- ``general``: text that is not the task. For the embedded models, their own non-task
  training families (:func:`saebench.tiny_ioi.stories.general_corpus`,
  :func:`saebench.tiny_gt.corpus.general_corpus`); for other models, a streamed text data
  set (OpenWebText by default, via the ``datasets`` library; needs network), read at every
  token position except BOS.
"""

from __future__ import annotations

import importlib

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saebench.node import Node
from saebench.task import Task

GENERAL_DATASET = "Skylion007/openwebtext"
EMBEDDED_GENERAL_CORPORA: dict[str, str] = {
    "tiny-ioi": "saebench.tiny_ioi.stories",
    "tiny-gt": "saebench.tiny_gt.corpus",
}
"""Embedded model -> the module whose ``general_corpus(n, seed)`` is its non-task text."""


def _read_all_positions(node: Node, acts: Tensor, keep_BL: Tensor) -> Tensor:
    """The node's vectors at every kept position, [n_kept, D]."""
    if node.per_head:
        acts = acts[:, :, node.head] if node.head is not None else acts.flatten(2)
    return acts[keep_BL]


@torch.no_grad()
def _collect(
    model,
    node: Node,
    tokens_BL: Tensor,
    keep_BL: Tensor,
    batch_size: int,
    progress: bool,
    desc: str,
) -> Tensor:
    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(tokens_BL), batch_size), desc=desc, disable=not progress):
        toks = tokens_BL[start : start + batch_size].to(device)
        _, cache = model.run_with_cache(
            toks, names_filter=lambda n: n == node.hook_name, stop_at_layer=node.layer + 1
        )
        keep = keep_BL[start : start + batch_size].to(device)
        out.append(_read_all_positions(node, cache[node.hook_name], keep).float().cpu())
    return torch.cat(out)


def task_activations(
    model,
    task: Task,
    node: Node,
    n_prompts: int,
    seed: int = 0,
    all_positions: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> Tensor:
    """Node activations on ``n_prompts`` prompts of the task's ``train`` split, [N, D]."""
    prompts = task.prompts("train", n_prompts, seed)
    n, length = prompts.tokens_BL.shape
    cols_BL = torch.arange(length).expand(n, length)
    if all_positions:  # every real token after BOS, up to END
        keep_BL = (cols_BL >= 1) & (cols_BL <= prompts.positions["END"][:, None])
    else:
        keep_BL = cols_BL == prompts.positions[node.position][:, None]
    return _collect(
        model, node, prompts.tokens_BL, keep_BL, batch_size, progress, "task activations"
    )


def general_texts(model_name: str, n_texts: int, seed: int = 0) -> list[str]:
    """Non-task text for ``model_name``: an embedded model's own general families (tiny-ioi:
    non-IOI sentences; tiny-gt: sentences with years in no order), else OpenWebText."""
    if model_name in EMBEDDED_GENERAL_CORPORA:
        corpus = importlib.import_module(EMBEDDED_GENERAL_CORPORA[model_name])
        return corpus.general_corpus(n_texts, seed)
    try:
        from datasets import load_dataset

        stream = load_dataset(GENERAL_DATASET, split="train", streaming=True)
        stream = stream.shuffle(seed=seed, buffer_size=10_000)
        return [row["text"] for _, row in zip(range(n_texts), stream, strict=False)]
    except Exception as err:  # noqa: BLE001 - any failure means the data cannot be had here
        raise RuntimeError(
            f"cannot stream {GENERAL_DATASET} ({type(err).__name__}); general-distribution "
            f"data for {model_name!r} needs network access"
        ) from err


def general_activations(
    model,
    model_name: str,
    node: Node,
    n_texts: int,
    seed: int = 0,
    max_tokens: int = 64,
    batch_size: int = 64,
    progress: bool = True,
) -> Tensor:
    """Node activations at every token (after BOS) of ``n_texts`` general texts, [N, D]."""
    tokenizer = model.tokenizer
    rows = [
        [tokenizer.bos_token_id, *tokenizer.encode(text, add_special_tokens=False)][:max_tokens]
        for text in general_texts(model_name, n_texts, seed)
    ]
    lengths_B = torch.tensor([len(r) for r in rows])
    tokens_BL = torch.zeros(len(rows), int(lengths_B.max()), dtype=torch.long)
    for b, row in enumerate(rows):
        tokens_BL[b, : len(row)] = torch.tensor(row)
    cols_BL = torch.arange(tokens_BL.shape[1]).expand_as(tokens_BL)
    keep_BL = (cols_BL >= 1) & (cols_BL < lengths_B[:, None])
    return _collect(model, node, tokens_BL, keep_BL, batch_size, progress, "general activations")
