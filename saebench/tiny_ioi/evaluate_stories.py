"""How well a tiny-ioi trained on stories does IOI (issue 17; scores from :mod:`.evaluate`).

On a ``PromptSet`` with ``logits_BV`` the next-token logits at END:

- accuracy = mean over prompts of [argmax_v logits_BV[b, v] = IO_b] (whole vocabulary);
- mean LD = mean over prompts of logits_BV[b, IO_b] − logits_BV[b, S_b];
- mean-ablation curve: for each layer l, mean LD when ``blocks.{l}.hook_resid_pre`` at END
  is replaced by its mean over the prompts (the last entry: ``blocks.{n−1}.hook_resid_post``).

The evaluation sets of :func:`measure` (``training.json``'s ``metrics``), 1000 prompts each:

- ``test`` / ``train``: the IOI plugin's prompts (its three templates) on each name half;
- ``held_out_shapes``: stories whose intro and final clause are shapes never trained on
  (:data:`~saebench.tiny_ioi.stories.HELD_OUT_INTROS`, ``HELD_OUT_FINALS``), with trained
  preambles and middles;
- ``preamble``: the plugin's templates after 1–3 unrelated sentences of shapes never trained
  on (``HELD_OUT_PREAMBLES``), so every name sits somewhere else;
- ``counting_adversarial``: the plugin's templates with two middle sentences about IO of
  shapes never trained on (``HELD_OUT_MIDDLES``): IO is mentioned three times, S twice, so
  "the name mentioned least" is wrong on every prompt;
- ``order``: the ``ioi-order`` plugin's prompts (S named "the former"/"the latter").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from saebench.task import PromptSet
from saebench.tiny_ioi.evaluate import end_logits, ioi_scores, mean_ablation_curve
from saebench.tiny_ioi.stories import (
    FINALS,
    HELD_OUT_MIDDLES,
    HELD_OUT_PREAMBLES,
    INTROS,
    Shapes,
    Story,
    ioi_story,
    task_template_story,
)


def story_prompts(tokenizer, stories: list[Story]) -> PromptSet:
    """``stories`` as a right-padded ``PromptSet`` with BOS. Only ``tokens_BL``,
    ``positions["END"]``, ``answer_B`` (IO) and ``wrong_B`` (S) are filled: enough for
    :func:`ioi_scores`."""
    rows = [[tokenizer.bos_token_id, *tokenizer.encode(s.text, add_special_tokens=False)]
            for s in stories]  # fmt: skip
    length = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tokens_BL = torch.full((len(rows), length), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens_BL[i, : len(row)] = torch.tensor(row)

    def ids(names: list[str]) -> Tensor:
        return torch.tensor([tokenizer.encode(" " + n, add_special_tokens=False)[0] for n in names])

    return PromptSet(
        tokens_BL=tokens_BL,
        positions={"END": torch.tensor([len(r) - 1 for r in rows])},
        attributes={},
        answer_B=ids([s.io for s in stories]),
        wrong_B=ids([s.s for s in stories]),
        texts=[s.text for s in stories],
    )


def held_out_shape_stories(n: int, seed: int) -> list[Story]:
    """``n`` stories with a held-out intro and a held-out final clause."""
    rng = np.random.default_rng([seed, 11])
    return [ioi_story(rng, Shapes.held_out()) for _ in range(n)]


def preamble_stories(n: int, seed: int) -> list[Story]:
    """``n`` stories of the IOI plugin's templates after 1–3 held-out unrelated sentences."""
    from saebench_tasks.ioi import TEMPLATES

    rng = np.random.default_rng([seed, 13])
    shapes = Shapes(INTROS, FINALS, (), HELD_OUT_PREAMBLES)
    return [
        task_template_story(
            rng, TEMPLATES[rng.integers(len(TEMPLATES))], int(rng.integers(1, 4)), shapes
        )  # fmt: skip
        for _ in range(n)
    ]


def counting_adversarial_stories(n: int, seed: int) -> list[Story]:
    """``n`` stories of the IOI plugin's templates with two held-out middle sentences about
    IO before the last clause (IO three times, S twice)."""
    from saebench_tasks.ioi import TEMPLATES

    rng = np.random.default_rng([seed, 17])
    shapes = Shapes(INTROS, FINALS, HELD_OUT_MIDDLES, HELD_OUT_PREAMBLES)
    return [
        task_template_story(rng, TEMPLATES[rng.integers(len(TEMPLATES))], 0, shapes, ("IO", "IO"))
        for _ in range(n)
    ]


def measure(model, n: int = 1000, seed: int = 1) -> dict[str, object]:
    """The acceptance numbers (see the module docstring): scores per evaluation set and the
    mean-ablation curve on ``test``."""
    from saebench_tasks.ioi import IOIOrderTask, IOITask

    tokenizer = model.tokenizer
    task = IOITask(tokenizer=tokenizer, prepend_bos=True)
    out: dict[str, object] = {"n_prompts": n, "prompt_seed": seed}
    test = task.prompts("test", n, seed)
    out["test"] = ioi_scores(end_logits(model, test), test)
    train = task.prompts("train", n, seed)
    out["train"] = ioi_scores(end_logits(model, train), train)
    for name, make in (
        ("held_out_shapes", held_out_shape_stories),
        ("preamble", preamble_stories),
        ("counting_adversarial", counting_adversarial_stories),
    ):
        prompts = story_prompts(tokenizer, make(n, seed))
        out[name] = ioi_scores(end_logits(model, prompts), prompts)
    order = IOIOrderTask(tokenizer=tokenizer, prepend_bos=True).prompts("test", n, seed)
    out["order"] = ioi_scores(end_logits(model, order), order)
    out["mean_ablation_end_test"] = mean_ablation_curve(model, test)
    return out
