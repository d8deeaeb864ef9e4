"""How well tiny-ioi does IOI, and where in the model it does it.

On a ``PromptSet`` from the IOI plugin, with ``logits_BV`` the next-token logits at END:

- accuracy = mean over prompts of [argmax_v logits_BV[b, v] = IO_b] (whole vocabulary);
- mean LD = mean over prompts of logits_BV[b, IO_b] − logits_BV[b, S_b];
- mean-ablation curve: for each layer l, mean LD when ``blocks.{l}.hook_resid_pre`` at END
  is replaced by its mean over the prompts (the last entry: ``blocks.{n−1}.hook_resid_post``);
- counting-adversarial scores: accuracy and mean LD on IOI-template prompts with two
  ``ADVERSARIAL_INTERLUDES`` (never trained on) before the last clause, so IO is mentioned
  at least three times and S twice: a model that answers "the name mentioned least" fails.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from saebench.task import PromptSet
from saebench.tiny_ioi.corpus import ADVERSARIAL_INTERLUDES, HELD_OUT_TEMPLATE, ioi_prompt


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


def counting_adversarial_prompts(tokenizer, n: int, seed: int) -> PromptSet:
    """``n`` prompts from the IOI plugin's templates with two adversarial interludes each.

    Only ``tokens_BL``, ``positions["END"]``, ``answer_B`` (IO) and ``wrong_B`` (S) are
    filled: enough for :func:`ioi_scores`.
    """
    from saebench_tasks.ioi import TEMPLATES

    rng = np.random.default_rng([seed, 17])
    rows, io_ids, s_ids, texts = [], [], [], []
    for t in rng.integers(len(TEMPLATES), size=n):
        text, io, s = ioi_prompt(TEMPLATES[t], rng, ("IO", "IO"), ADVERSARIAL_INTERLUDES)
        ids = tokenizer.encode(text, add_special_tokens=False)
        rows.append([tokenizer.bos_token_id, *ids])
        io_ids.append(tokenizer.encode(" " + io, add_special_tokens=False)[0])
        s_ids.append(tokenizer.encode(" " + s, add_special_tokens=False)[0])
        texts.append(text)
    length = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tokens_BL = torch.full((n, length), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens_BL[i, : len(row)] = torch.tensor(row)
    return PromptSet(
        tokens_BL=tokens_BL,
        positions={"END": torch.tensor([len(r) - 1 for r in rows])},
        attributes={},
        answer_B=torch.tensor(io_ids),
        wrong_B=torch.tensor(s_ids),
        texts=texts,
    )


def measure(model, n: int = 1000, seed: int = 1) -> dict[str, object]:
    """The acceptance numbers: scores on the IOI plugin's ``test`` and ``train`` splits, on
    the held-out template (``test`` split), and the mean-ablation curve on ``test``."""
    from saebench_tasks.ioi import IOITask

    tokenizer = model.tokenizer
    task = IOITask(tokenizer=tokenizer, prepend_bos=True)
    held_out = IOITask(tokenizer=tokenizer, prepend_bos=True, templates=(HELD_OUT_TEMPLATE,))
    test = task.prompts("test", n, seed)
    out: dict[str, object] = {"n_prompts": n, "prompt_seed": seed}
    out["test"] = ioi_scores(end_logits(model, test), test)
    train = task.prompts("train", n, seed)
    out["train"] = ioi_scores(end_logits(model, train), train)
    unseen = held_out.prompts("test", n, seed)
    out["held_out_template"] = ioi_scores(end_logits(model, unseen), unseen)
    out["held_out_template_text"] = HELD_OUT_TEMPLATE
    adversarial = counting_adversarial_prompts(tokenizer, n, seed)
    out["counting_adversarial"] = ioi_scores(end_logits(model, adversarial), adversarial)
    out["mean_ablation_end_test"] = mean_ablation_curve(model, test)
    return out
