"""Forward passes at one node: the clean run, cached once, and interventions resumed from it.

The clean run of the evaluation prompts is done once; it keeps the node's activations, the
residual stream entering the node's block, and the task metric and argmax at END. Every
intervention then replaces the node's vector at its position and resumes the forward pass at
that block (``saebench.model.resume_logits_at``), computing logits only at END.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saebench import model as model_access
from saebench.node import Node
from saebench.task import PromptSet, Task


@dataclass
class Outcome:
    """What an (intervened) run says at END for each prompt."""

    metric_N: Tensor
    """Task metric (IOI: logit difference) on the clean prompt's answer tokens."""
    argmax_N: Tensor
    """Top next-token prediction."""


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class NodeRunner:
    """Runs ``model`` on ``prompts`` with the node's activation replaced at will."""

    def __init__(
        self,
        model,
        task: Task,
        node: Node,
        prompts: PromptSet,
        batch_size: int = 64,
        progress: bool = True,
    ):
        self.model, self.task, self.node = model, task, node
        self.device = next(model.parameters()).device
        self.prompts = prompts.to(self.device)
        self.batch_size = batch_size
        self.progress = progress
        self.positions_N = self.prompts.positions[node.position]
        self._resid_hook = f"blocks.{node.layer}.hook_resid_pre"
        self.acts_ND, self.resid = self._clean_run()

    @torch.no_grad()
    def _clean_run(self) -> tuple[Tensor, list[Tensor]]:
        acts, resid, metric, argmax = [], [], [], []
        hooks = [self.node.hook_name, self._resid_hook]
        for sl in tqdm(
            list(_batches(len(self.prompts), self.batch_size)),
            desc="clean run",
            disable=not self.progress,
            leave=False,
        ):
            batch = self.prompts.select(sl)
            end_logits_BV, cache = model_access.run_with_cache_at(
                self.model, batch.tokens_BL, hooks, batch.positions["END"]
            )
            acts.append(
                self.node.read(cache[self.node.hook_name], batch.positions[self.node.position])
            )
            resid.append(cache[self._resid_hook])
            metric.append(self.task.metric(end_logits_BV, batch))
            argmax.append(end_logits_BV.argmax(-1))
        self.clean = Outcome(torch.cat(metric), torch.cat(argmax))
        return torch.cat(acts), resid

    @torch.no_grad()
    def activations(self, prompts: PromptSet, desc: str = "activations") -> Tensor:
        """The node's vectors [N, D] for other prompts (forward pass stops after the node)."""
        prompts = prompts.to(self.device)
        out = []
        for sl in tqdm(
            list(_batches(len(prompts), self.batch_size)),
            desc=desc,
            disable=not self.progress,
            leave=False,
        ):
            batch = prompts.select(sl)
            _, cache = self.model.run_with_cache(
                batch.tokens_BL,
                names_filter=lambda n: n == self.node.hook_name,
                stop_at_layer=self.node.layer + 1,
            )
            out.append(
                self.node.read(cache[self.node.hook_name], batch.positions[self.node.position])
            )
        return torch.cat(out)

    @torch.no_grad()
    def patched(self, new_ND: Tensor, desc: str = "intervention") -> Outcome:
        """Metric and argmax at END with the node's vector replaced by ``new_ND``."""
        metric, argmax = [], []
        for b, sl in enumerate(_batches(len(self.prompts), self.batch_size)):
            batch = self.prompts.select(sl)
            hook = self.node.replace_hook(self.positions_N[sl], new_ND[sl].to(self.device))
            logits_BV = model_access.resume_logits_at(
                self.model,
                self.resid[b],
                self.node.layer,
                [(self.node.hook_name, hook)],
                batch.positions["END"],
            )
            metric.append(self.task.metric(logits_BV, batch))
            argmax.append(logits_BV.argmax(-1))
        return Outcome(torch.cat(metric), torch.cat(argmax))
