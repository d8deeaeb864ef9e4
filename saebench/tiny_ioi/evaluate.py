"""How well tiny-ioi does IOI, and where in the model it does it.

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


def end_logits(model, prompts: PromptSet, fwd_hooks: list | None = None) -> Tensor:
    """Next-token logits at END, [B, V]."""
    with torch.no_grad(), model.hooks(fwd_hooks=fwd_hooks or []):
        logits_BLV = model(prompts.tokens_BL)
    rows = torch.arange(len(prompts))
    return logits_BLV[rows, prompts.positions["END"]]


def ioi_scores(logits_BV: Tensor, prompts: PromptSet) -> dict[str, float]:
    """Accuracy (argmax over the whole vocabulary = IO), mean LD and fraction LD > 0."""
    rows = torch.arange(len(prompts))
    ld_B = logits_BV[rows, prompts.answer_B] - logits_BV[rows, prompts.wrong_B]
    return {
        "accuracy": float((logits_BV.argmax(-1) == prompts.answer_B).float().mean()),
        "mean_ld": float(ld_B.mean()),
        "frac_ld_positive": float((ld_B > 0).float().mean()),
    }


def resid_hook_names(n_layers: int) -> list[str]:
    """``blocks.{l}.hook_resid_pre`` for every layer, then the last block's ``hook_resid_post``."""
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    return names + [f"blocks.{n_layers - 1}.hook_resid_post"]


def mean_ablation_curve(model, prompts: PromptSet, score=None) -> dict[str, float]:
    """``score(logits_BV, prompts)`` (default: the mean LD) with the residual stream at END
    replaced by its mean over ``prompts``, per hook of ``resid_hook_names``."""
    if score is None:
        score = lambda logits_BV, prompts: ioi_scores(logits_BV, prompts)["mean_ld"]  # noqa: E731
    rows = torch.arange(len(prompts))
    end_B = prompts.positions["END"]
    names = resid_hook_names(model.cfg.n_layers)
    with torch.no_grad():
        _, cache = model.run_with_cache(prompts.tokens_BL, names_filter=lambda n: n in names)
    curve = {}
    for name in names:
        mean_D = cache[name][rows, end_B].mean(0)

        def ablate(resid_BLD: Tensor, hook, mean_D: Tensor = mean_D) -> Tensor:
            resid_BLD = resid_BLD.clone()
            resid_BLD[rows, end_B] = mean_D
            return resid_BLD

        curve[name] = score(end_logits(model, prompts, [(name, ablate)]), prompts)
    return curve


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
