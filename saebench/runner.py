"""Forward passes at one node: the clean run, cached once, and interventions recomputed from it.

The clean run of the evaluation prompts is done once; it keeps the node's activations, the
residual stream entering the node's block, the task metric and argmax at END (one
:func:`clean_run` can read many nodes at once, for runners that share it) and, for the blocks
from the node's on, the attention keys and values of every position (:class:`PrefixKV`).

Every intervention then replaces the node's vector at its position p (per prompt) and
recomputes only what that can change: positions p..END of the blocks from the node's on,
attending to the clean keys and values of the positions before p
(``saebench.model.suffix_logits_at``), logits only at END. At END that is one row per prompt
and block instead of the whole prompt: at GPT-2 Small's shape (node ``blocks.8.hook_resid_pre``,
256 prompts, one thread) 0.9 s of CPU time against 6.4 s for resuming the whole sequence at the
block and 27 s for a full forward pass (``benchmarks/bench_scoring.py``). It is exact: in a
causal model an edit at p changes nothing before p.

Memory: the keys and values cost, per prompt, 2 · L · n_kv_heads · d_head floats for each block
from the node's on (L: prompt length up to END). GPT-2 Small from block 8 at L ≈ 21: 4 blocks ·
2 · 21 · 768 · 4 B ≈ 0.5 MB per prompt, 0.5 GB for 1000 prompts (1.5 GB from block 0). The
clean run keeps them batch by batch while their total stays within ``cache_budget_mb``; a
batch past the budget, a model :func:`saebench.model.prefix_cache_unsupported` rules out
(ALiBi, shortformer, local attention, ...) or a node after END falls back to resuming the
whole sequence at the node's block (``saebench.model.resume_logits_at``), with one warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saebench import model as model_access
from saebench.defaults import DEFAULT_CACHE_BUDGET_MB
from saebench.model import PrefixKV
from saebench.node import Node
from saebench.task import PromptSet, Task, check_readable

logger = logging.getLogger(__name__)

PASS_LOGITS = 2**24
"""Bound on the END logits of one intervention pass (rows · d_vocab: 64 MB of float32)."""
MAX_PASS_ROWS = 4096
"""Bound on the prompts of one intervention pass."""
RECENT_INTERVENTIONS = 8
"""Interventions a runner remembers, to return a repeated one without recomputing it."""

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time only (per process)."""
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


@dataclass
class Outcome:
    """What an (intervened) run says at END for each prompt."""

    metric_N: Tensor
    """Task metric (IOI: logit difference) on the clean prompt's answer tokens."""
    argmax_N: Tensor
    """Top next-token prediction."""


def _nested_bar_disabled(progress: bool) -> bool:
    """Whether a bar shown under another one (``leave=False``) is off: with ``progress`` off,
    or where stderr is no terminal (logs, notebooks), in which nested bars leave cursor
    escapes (``\x1b[A``) behind; the outer bar still shows the progress there."""
    import sys

    return not progress or not getattr(sys.stderr, "isatty", lambda: False)()


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
    after the batch's last END), the state interventions at layer l start from."""
    batch_size: int
    n_prompts: int
    kv: list[PrefixKV | None] = field(default_factory=list)
    """Per batch, the attention keys and values of the blocks from the shallowest node's on
    [B, L', H_kv, d_head] each, or None where they were not kept (unsupported model, budget
    spent, or not asked for): interventions there resume the whole sequence."""


@torch.no_grad()
def clean_run(
    model,
    task: Task,
    nodes: list[Node],
    prompts: PromptSet,
    batch_size: int = 64,
    progress: bool = True,
    cache_budget_mb: float = DEFAULT_CACHE_BUDGET_MB,
    prefix_cache: bool = True,
) -> CleanRun:
    """One clean pass over ``prompts`` in batches of ``batch_size``, caching every node's hook,
    the residual stream entering every node's block and, while their total stays within
    ``cache_budget_mb``, the attention keys and values from the shallowest node's block on
    (``prefix_cache=False``: none); logits only at END."""
    check_readable(prompts, model.tokenizer, getattr(task, "name", ""))
    prompts = prompts.to(next(model.parameters()).device)
    layers = sorted({node.layer for node in nodes})
    resid_hooks = {layer: f"blocks.{layer}.hook_resid_pre" for layer in layers}
    hooks = list(dict.fromkeys([node.hook_name for node in nodes] + list(resid_hooks.values())))
    reason = model_access.prefix_cache_unsupported(model) if prefix_cache else None
    if reason is not None:
        _warn_once(
            f"interventions resume the whole sequence at the node's block ({reason}: the "
            f"prefix key-value cache would not be exact)"
        )
    kv_from_layer = layers[0] if prefix_cache and reason is None else None
    budget_bytes = cache_budget_mb * 2**20
    kept_bytes = 0
    acts: dict[Node, list[Tensor]] = {node: [] for node in nodes}
    resid: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    kv: list[PrefixKV | None] = []
    metric, argmax = [], []
    for sl in tqdm(
        list(_batches(len(prompts), batch_size)),
        desc="clean run",
        disable=_nested_bar_disabled(progress),
        leave=False,
    ):
        batch = prompts.select(sl)
        end_logits_BV, cache, batch_kv = model_access.clean_pass_at(
            model, batch.tokens_BL, hooks, batch.positions["END"], kv_from_layer
        )
        if batch_kv is not None and kept_bytes + batch_kv.nbytes > budget_bytes:
            _warn_once(
                f"the prefix key-value cache would exceed --cache-budget ({cache_budget_mb:g} "
                f"MB): batches past it resume the whole sequence at the node's block"
            )
            batch_kv = None
        kept_bytes += 0 if batch_kv is None else batch_kv.nbytes
        kv.append(batch_kv)
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
        kv=kv,
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
        disable=_nested_bar_disabled(progress),
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


@dataclass
class InterventionPass:
    """Prompts intervened on in one forward pass, with the clean state they start from."""

    rows: slice
    """Which of the runner's prompts."""
    resid_BLD: Tensor
    """Their clean ``blocks.{layer}.hook_resid_pre`` (zero-padded after each batch's length)."""
    kv: PrefixKV | None
    """Their clean keys and values (zero-padded alike; the padding lies after every END), or
    None: resume the whole sequence."""


def _pad_cat(tensors: list[Tensor]) -> Tensor:
    """Tensors [B_i, L_i, ...] zero-padded along dim 1 to max L_i and concatenated [Σ B_i, ...]."""
    if len(tensors) == 1:
        return tensors[0]
    length = max(t.shape[1] for t in tensors)
    padded = []
    for t in tensors:
        pad = torch.zeros(
            (t.shape[0], length - t.shape[1], *t.shape[2:]), dtype=t.dtype, device=t.device
        )
        padded.append(torch.cat([t, pad], dim=1))
    return torch.cat(padded)


class NodeRunner:
    """Runs ``model`` on ``prompts`` with the node's activation replaced at will.

    ``clean`` (from :func:`clean_run` on the same prompts and batch size, at this node among
    others) is used instead of running the clean prompts again; otherwise the runner makes its
    own, keeping keys and values within ``cache_budget_mb`` unless ``prefix_cache`` is False
    (then every intervention resumes the whole sequence at the node's block).

    Prefix-cached interventions run in passes of consecutive clean-run batches, merged up to
    max(``batch_size``, min(``MAX_PASS_ROWS``, ``PASS_LOGITS`` / d_vocab)) prompts: a forward
    pass has a fixed cost (Python, TransformerLens's module calls) that weighs on small models
    (tiny-ioi, 1000 prompts at END: 37 ms per intervention in one pass, 58 ms in four), while
    at GPT-2's vocabulary a pass stays one batch. A merged pass holds a copy of its batches'
    residual streams and keys and values (the clean run's are freed with it unless shared).
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
        cache_budget_mb: float = DEFAULT_CACHE_BUDGET_MB,
        prefix_cache: bool = True,
    ):
        self.model, self.task, self.node = model, task, node
        self.device = next(model.parameters()).device
        self.prompts = prompts.to(self.device)
        self.batch_size = batch_size
        self.progress = progress
        self.positions_N = self.prompts.positions[node.position]
        if clean is None:
            clean = clean_run(
                model,
                task,
                [node],
                self.prompts,
                batch_size,
                progress,
                cache_budget_mb,
                prefix_cache,
            )
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
        resid = clean.resid[node.layer]
        kv = self._usable_kv(clean.kv) if prefix_cache else [None] * len(resid)
        self.passes = self._passes(resid, kv)
        self._recent: list[tuple[Tensor, Outcome]] = []

    def _usable_kv(self, kv: list[PrefixKV | None]) -> list[PrefixKV | None]:
        """The clean keys and values each batch's interventions can start from (None: resume
        the whole sequence): recorded from this node's block or earlier, and the node at or
        before END in every prompt of the batch."""
        usable: list[PrefixKV | None] = []
        end_N = self.prompts.positions["END"]
        for b, sl in enumerate(_batches(len(self.prompts), self.batch_size)):
            entry = kv[b] if b < len(kv) else None
            if entry is not None and entry.first_layer > self.node.layer:
                entry = None
            if entry is not None and bool((self.positions_N[sl] > end_N[sl]).any()):
                _warn_once(
                    f"{self.node} lies after END in some prompts: its interventions resume the "
                    f"whole sequence"
                )
                entry = None
            usable.append(entry)
        return usable

    def _passes(self, resid: list[Tensor], kv: list[PrefixKV | None]) -> list[InterventionPass]:
        """Consecutive prefix-cached batches merged up to the pass size (class docstring);
        batches that resume the whole sequence stay as they are (a larger batch of whole
        sequences is not faster). A batch alone is used as it is, merged ones are copied."""
        vocab = max(1, int(self.model.cfg.d_vocab_out))
        max_rows = max(self.batch_size, min(MAX_PASS_ROWS, PASS_LOGITS // vocab))
        groups: list[list[tuple[slice, Tensor, PrefixKV | None]]] = []
        for b, sl in enumerate(_batches(len(self.prompts), self.batch_size)):
            item = (sl, resid[b], kv[b])
            if groups:
                last = groups[-1]
                rows = last[-1][0].stop - last[0][0].start + sl.stop - sl.start
                if last[0][2] is not None and kv[b] is not None and rows <= max_rows:
                    last.append(item)
                    continue
            groups.append([item])
        passes = []
        for group in groups:
            entries = [entry for _, _, entry in group if entry is not None]
            merged_kv = None
            if entries:
                n_layers = len(entries[0].keys_BLHE)
                merged_kv = PrefixKV(
                    entries[0].first_layer,
                    [_pad_cat([e.keys_BLHE[i] for e in entries]) for i in range(n_layers)],
                    [_pad_cat([e.values_BLHE[i] for e in entries]) for i in range(n_layers)],
                )
            rows = slice(group[0][0].start, group[-1][0].stop)
            passes.append(InterventionPass(rows, _pad_cat([r for _, r, _ in group]), merged_kv))
        return passes

    @property
    def prefix_cached_prompts(self) -> int:
        """How many prompts' interventions recompute only positions p..END (the others
        resume the whole sequence at the node's block)."""
        return sum(p.rows.stop - p.rows.start for p in self.passes if p.kv is not None)

    def activations(self, prompts: PromptSet, desc: str = "activations") -> Tensor:
        """The node's vectors [N, D] for other prompts (forward pass stops after the node)."""
        check_readable(prompts, self.model.tokenizer, getattr(self.task, "name", ""))
        acts = read_nodes(self.model, [self.node], prompts, self.batch_size, self.progress, desc)
        return acts[self.node]

    @torch.no_grad()
    def patched(self, new_ND: Tensor, desc: str = "intervention") -> Outcome:
        """Metric and argmax at END with the node's vector replaced by ``new_ND``.

        Per pass: from the node's block on, positions p..END only, on the clean prefix keys
        and values (``saebench.model.suffix_logits_at``; the node's hook writes row 0 of the
        suffix, position p), or, where those were not kept, the whole sequence
        (``saebench.model.resume_logits_at``). Both give the same logits up to float rounding.
        An intervention equal to one of the last ``RECENT_INTERVENTIONS`` returns its outcome
        (the computation is deterministic, so that is exact).
        """
        new_ND = new_ND.to(self.device)
        for seen_ND, outcome in self._recent:
            if seen_ND.shape == new_ND.shape and torch.equal(seen_ND, new_ND):
                return outcome  # the same intervention again (a greedy edit that stopped early)
        metric, argmax = [], []
        for step in self.passes:
            sl = step.rows
            batch = self.prompts.select(sl)
            positions_B = self.positions_N[sl]
            new_BD = new_ND[sl].to(self.device)
            end_B = batch.positions["END"]
            if step.kv is not None:
                hook = self.node.replace_hook(torch.zeros_like(positions_B), new_BD)
                logits_BV = model_access.suffix_logits_at(
                    self.model,
                    step.resid_BLD,
                    self.node.layer,
                    step.kv,
                    positions_B,
                    [(self.node.hook_name, hook)],
                    end_B,
                )
            else:
                hook = self.node.replace_hook(positions_B, new_BD)
                logits_BV = model_access.resume_logits_at(
                    self.model,
                    step.resid_BLD,
                    self.node.layer,
                    [(self.node.hook_name, hook)],
                    end_B,
                )
            metric.append(self.task.metric(logits_BV, batch))
            argmax.append(logits_BV.argmax(-1))
        outcome = Outcome(torch.cat(metric), torch.cat(argmax))
        self._recent = [*self._recent[-(RECENT_INTERVENTIONS - 1) :], (new_ND.clone(), outcome)]
        return outcome
