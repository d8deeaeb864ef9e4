"""Forward passes at one node: the clean run, cached once, and interventions resumed from it.

The clean run of the evaluation prompts is done once; it keeps the node's activations, the
residual stream entering the node's block, and the task metric and argmax at END (one
:func:`clean_run` can read many nodes at once, for runners that share it). Every
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


@dataclass
class CleanRun:
    """The clean run of one prompt set, read at several nodes: where :class:`NodeRunner` starts.

    Built by :func:`clean_run` with one forward pass per batch, so the runners of many nodes
    (a causal map's) can share it instead of each running the prompts again.
    """

    outcome: Outcome
    """Metric and argmax at END of the clean prompts."""
    acts: dict[Node, Tensor]
    """Node -> its clean vectors [N, D]."""
    resid: dict[int, list[Tensor]]
    """Layer l -> the clean ``blocks.{l}.hook_resid_pre`` [B, L', D] of each batch (L' is cut
    after the batch's last END), the state interventions at layer l resume from."""
    batch_size: int
    n_prompts: int


@torch.no_grad()
def clean_run(
    model,
    task: Task,
    nodes: list[Node],
    prompts: PromptSet,
    batch_size: int = 64,
    progress: bool = True,
) -> CleanRun:
    """One clean pass over ``prompts`` in batches of ``batch_size``, caching every node's hook
    and the residual stream entering every node's block; logits only at END."""
    prompts = prompts.to(next(model.parameters()).device)
    layers = sorted({node.layer for node in nodes})
    resid_hooks = {layer: f"blocks.{layer}.hook_resid_pre" for layer in layers}
    hooks = list(dict.fromkeys([node.hook_name for node in nodes] + list(resid_hooks.values())))
    acts: dict[Node, list[Tensor]] = {node: [] for node in nodes}
    resid: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    metric, argmax = [], []
    for sl in tqdm(
        list(_batches(len(prompts), batch_size)),
        desc="clean run",
        disable=not progress,
        leave=False,
    ):
        batch = prompts.select(sl)
        end_logits_BV, cache = model_access.run_with_cache_at(
            model, batch.tokens_BL, hooks, batch.positions["END"]
        )
        for node in nodes:
            acts[node].append(node.read(cache[node.hook_name], batch.positions[node.position]))
        for layer, name in resid_hooks.items():
            resid[layer].append(cache[name])
        metric.append(task.metric(end_logits_BV, batch))
        argmax.append(end_logits_BV.argmax(-1))
    return CleanRun(
        outcome=Outcome(torch.cat(metric), torch.cat(argmax)),
        acts={node: torch.cat(a) for node, a in acts.items()},
        resid=resid,
        batch_size=batch_size,
        n_prompts=len(prompts),
    )


@torch.no_grad()
def read_nodes(
    model,
    nodes: list[Node],
    prompts: PromptSet,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "activations",
) -> dict[Node, Tensor]:
    """Each node's vectors [N, D] for ``prompts``: one forward pass per batch, stopped after
    the block of the deepest node."""
    prompts = prompts.to(next(model.parameters()).device)
    hooks = {node.hook_name for node in nodes}
    stop_at_layer = max(node.layer for node in nodes) + 1
    out: dict[Node, list[Tensor]] = {node: [] for node in nodes}
    for sl in tqdm(
        list(_batches(len(prompts), batch_size)),
        desc=desc,
        disable=not progress,
        leave=False,
    ):
        batch = prompts.select(sl)
        _, cache = model.run_with_cache(
            batch.tokens_BL,
            names_filter=lambda n: n in hooks,
            stop_at_layer=stop_at_layer,
        )
        for node in nodes:
            out[node].append(node.read(cache[node.hook_name], batch.positions[node.position]))
    return {node: torch.cat(vectors) for node, vectors in out.items()}


class NodeRunner:
    """Runs ``model`` on ``prompts`` with the node's activation replaced at will.

    ``clean`` (from :func:`clean_run` on the same prompts and batch size, at this node among
    others) is used instead of running the clean prompts again.
    """

    def __init__(
        self,
        model,
        task: Task,
        node: Node,
        prompts: PromptSet,
        batch_size: int = 64,
        progress: bool = True,
        clean: CleanRun | None = None,
    ):
        self.model, self.task, self.node = model, task, node
        self.device = next(model.parameters()).device
        self.prompts = prompts.to(self.device)
        self.batch_size = batch_size
        self.progress = progress
        self.positions_N = self.prompts.positions[node.position]
        if clean is None:
            clean = clean_run(model, task, [node], self.prompts, batch_size, progress)
        elif (
            node not in clean.acts
            or clean.batch_size != batch_size
            or clean.n_prompts != len(prompts)
        ):
            raise ValueError(
                f"the clean run was made for other nodes, prompts or batch size than {node}"
            )
        self.clean = clean.outcome
        self.acts_ND = clean.acts[node]
        self.resid = clean.resid[node.layer]

    def activations(self, prompts: PromptSet, desc: str = "activations") -> Tensor:
        """The node's vectors [N, D] for other prompts (forward pass stops after the node)."""
        acts = read_nodes(self.model, [self.node], prompts, self.batch_size, self.progress, desc)
        return acts[self.node]

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
