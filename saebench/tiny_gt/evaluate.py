"""How well tiny-gt does Greater-Than, and where in the model it does it.

On a ``PromptSet`` from the Greater-Than plugin, with ``logits_BV`` the next-token logits at END
and PD the plugin's probability difference (Σ_{y > YY} p(y) − Σ_{y ≤ YY} p(y)):

- mean_pd = mean over prompts of PD;
- frac_pd_positive = fraction of prompts with PD > 0;
- accuracy = fraction of prompts whose END argmax (whole vocabulary) is YY + 1;
- frac_argmax_greater = fraction whose END argmax is a two-digit token greater than YY;
- mean-ablation curve: for each layer l, mean PD when ``blocks.{l}.hook_resid_pre`` at END is
  replaced by its mean over the prompts (the last entry: ``blocks.{n−1}.hook_resid_post``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from saebench.task import PromptSet
from saebench.tiny_gt.corpus import HELD_OUT_TEMPLATE
from saebench.tiny_ioi.evaluate import end_logits, mean_ablation_curve


def gt_scores(task, logits_BV: Tensor, prompts: PromptSet) -> dict[str, float]:
    """Mean PD, fraction PD > 0, accuracy (argmax = YY + 1) and fraction argmax > YY."""
    pd_B = task.metric(logits_BV, prompts)
    argmax_B = logits_BV.argmax(-1)
    yy_B = torch.tensor(task.yys)[prompts.attributes["yy"]]
    value_V = torch.full((logits_BV.shape[-1],), -1)  # the two digits a token is; -1: none
    value_V[task.digit_ids] = task.digit_values
    greater_B = value_V[argmax_B] > yy_B
    return {
        "mean_pd": float(pd_B.mean()),
        "frac_pd_positive": float((pd_B > 0).float().mean()),
        "accuracy": float((argmax_B == prompts.answer_B).float().mean()),
        "frac_argmax_greater": float(greater_B.float().mean()),
    }


def held_out_prompts(task, n: int, seed: int) -> PromptSet:
    """The task's ``test`` prompts (same nouns, centuries and years) rewritten in
    ``HELD_OUT_TEMPLATE`` up to the end century (END)."""
    prompts = task.prompts("test", n, seed)
    head = HELD_OUT_TEMPLATE.split("[XX][ZZ]")[0] + "[XX]"
    rows, texts = [], []
    for b in range(n):
        noun = task.nouns[int(prompts.attributes["noun"][b])]
        century = task.centuries[int(prompts.attributes["century"][b])]
        yy = task.yys[int(prompts.attributes["yy"][b])]
        text = head.replace("[NOUN]", noun).replace("[XX]", str(century))
        text = text.replace("[YY]", f"{yy:02d}")
        rows.append(
            [task.tokenizer.bos_token_id, *task.tokenizer.encode(text, add_special_tokens=False)]
        )
        texts.append(text)
    tokens_BL = torch.tensor(rows)
    end_B = torch.full((n,), tokens_BL.shape[1] - 1)
    return PromptSet(
        tokens_BL=tokens_BL,
        positions={"END": end_B},
        attributes=prompts.attributes,
        answer_B=prompts.answer_B,
        wrong_B=prompts.wrong_B,
        texts=texts,
    )


def measure(model, n: int = 1000, seed: int = 1) -> dict[str, object]:
    """The acceptance numbers: scores on the Greater-Than plugin's ``test`` and ``train``
    splits, on the held-out template, and the mean-ablation curve on ``test``."""
    from saebench_tasks.greater_than import GreaterThanTask

    task = GreaterThanTask(tokenizer=model.tokenizer, prepend_bos=True)
    out: dict[str, object] = {"n_prompts": n, "prompt_seed": seed}
    for split in ("test", "train"):
        prompts = task.prompts(split, n, seed)
        out[split] = gt_scores(task, end_logits(model, prompts), prompts)
    unseen = held_out_prompts(task, n, seed)
    out["held_out_template"] = gt_scores(task, end_logits(model, unseen), unseen)
    out["held_out_template_text"] = HELD_OUT_TEMPLATE
    test = task.prompts("test", n, seed)
    out["mean_ablation_end_test"] = mean_ablation_curve(
        model, test, lambda logits_BV, prompts: gt_scores(task, logits_BV, prompts)["mean_pd"]
    )
    return out
