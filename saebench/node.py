"""Nodes: where activations are read and replaced (metrics.md §1).

A node is a hook name, an optional head index and a position label. Per-head hooks
(``attn.hook_z``, ``hook_q``, ``hook_k``, ``hook_v``, shape [B, L, H, d_head]) are read either
for one head (``head=h``, width d_head) or with all heads concatenated (``head=None``, width
H·d_head, the layout of SAELens ``hook_z`` SAEs). Other hooks are [B, L, D].

>>> node = Node("blocks.3.attn.hook_z", position="END", head=5)
>>> str(node), node.layer
('blocks.3.attn.hook_z[5]@END', 3)
>>> acts_BLHE = torch.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2)
>>> Node("blocks.0.attn.hook_z", head=1).read(acts_BLHE, torch.tensor([2, 0])).tolist()
[[10.0, 11.0], [14.0, 15.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from saebench.model import model_layer_of

PER_HEAD_HOOKS = ("hook_z", "hook_q", "hook_k", "hook_v", "hook_result")


@dataclass(frozen=True)
class Node:
    """A hook name, optional head and position label: one place in the model."""

    hook_name: str
    position: str = "END"
    head: int | None = None

    @property
    def layer(self) -> int:
        """The block the hook lives in; interventions resume the forward pass there."""
        return model_layer_of(self.hook_name)

    @property
    def per_head(self) -> bool:
        return self.hook_name.rsplit(".", 1)[-1] in PER_HEAD_HOOKS

    def __str__(self) -> str:
        head = f"[{self.head}]" if self.head is not None else ""
        return f"{self.hook_name}{head}@{self.position}"

    def width(self, model) -> int:
        """Width of the activation vector this node reads in ``model``."""
        cfg = model.cfg
        if self.per_head:
            return cfg.d_head if self.head is not None else cfg.n_heads * cfg.d_head
        if "mlp.hook_post" in self.hook_name or "mlp.hook_pre" in self.hook_name:
            return cfg.d_mlp
        return cfg.d_model

    def check(self, model) -> None:
        """Raise ``ValueError`` if the hook, head or layer does not exist in ``model``."""
        if self.hook_name not in model.hook_dict:
            import difflib

            close = difflib.get_close_matches(self.hook_name, list(model.hook_dict), n=3)
            name = getattr(model.cfg, "model_name", None) or "MODEL"
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ValueError(
                f"the model has no hook {self.hook_name!r}; {hint}(`saebench nodes --model "
                f"{name}` lists its hooks and widths)"
            )
        if self.head is not None:
            if not self.per_head:
                raise ValueError(f"hook {self.hook_name!r} has no heads; drop the head index")
            if not 0 <= self.head < model.cfg.n_heads:
                raise ValueError(f"head {self.head} out of range (n_heads={model.cfg.n_heads})")

    def read(self, acts: Tensor, positions_B: Tensor) -> Tensor:
        """The node's vectors [B, D] from a hook activation at per-prompt positions."""
        rows = torch.arange(acts.shape[0], device=acts.device)
        at_pos = acts[rows, positions_B.to(acts.device)]
        if self.per_head:
            return at_pos[:, self.head] if self.head is not None else at_pos.flatten(1)
        return at_pos

    def replace_hook(self, positions_B: Tensor, new_BD: Tensor) -> Callable:
        """A TransformerLens hook function writing ``new_BD`` at the node's positions."""

        def hook(acts: Tensor, hook=None) -> Tensor:
            acts = acts.clone()
            rows = torch.arange(acts.shape[0], device=acts.device)
            pos = positions_B.to(acts.device)
            new = new_BD.to(acts.dtype)
            if self.per_head and self.head is not None:
                acts[rows, pos, self.head] = new
            elif self.per_head:
                acts[rows, pos] = new.view(new.shape[0], acts.shape[2], acts.shape[3])
            else:
                acts[rows, pos] = new
            return acts

        return hook
