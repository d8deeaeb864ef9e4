"""Where tiny-ioi does IOI: per-head attention, direct logit attribution and ablations.

On IOI prompts (the plugin's ``PromptSet``, positions IO, S1, S2, END), for every head
(layer l, head h):

- ``attn_s2_s1``: mean attention from S2 to S1 (a duplicate-token head attends from the
  repeated name to its first occurrence); ``attn_s2_io`` the same to IO, for contrast;
- ``attn_end_s2``, ``attn_end_io``, ``attn_end_s1``: mean attention from END to S2, IO, S1
  (S-inhibition heads attend to S2, name movers to IO);
- ``dla``: direct logit attribution at END, mean over prompts of
  z_lh W_O^{lh} · (W_U[:, IO] − W_U[:, S]) ÷ σ, with σ the final LayerNorm's scale at END
  (the head's direct share of the logit difference; it sums with the other components to
  the LD up to the LayerNorm's centring);
- ``ablate_ld``: mean LD with the head's output (``hook_z``) mean-ablated at every position
  (its mean over the prompts at that position), against the clean mean LD;
- ``patch_s``, ``patch_pos``: accuracy of the clean answer (IO) when the head's output at
  END (``ablation_position``) is replaced by its value on the ``s`` / ``pos`` counterfactual:
  1 when the head carries nothing about that attribute that changes the answer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from saebench.task import PromptSet


def _z_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


@torch.no_grad()
def head_table(model, task, n: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """Every statistic of the module docstring, each an array [n_layers, n_heads]."""
    prompts = task.prompts("test", n, seed)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    rows = torch.arange(n)
    pos = prompts.positions
    _, cache = model.run_with_cache(prompts.tokens_BL)
    out: dict[str, np.ndarray] = {}
    for name, (q, k) in {
        "attn_s2_s1": ("S2", "S1"),
        "attn_s2_io": ("S2", "IO"),
        "attn_end_s2": ("END", "S2"),
        "attn_end_io": ("END", "IO"),
        "attn_end_s1": ("END", "S1"),
    }.items():
        table = np.zeros((n_layers, n_heads))
        for layer in range(n_layers):
            pattern_BHQK = cache[f"blocks.{layer}.attn.hook_pattern"]
            table[layer] = pattern_BHQK[rows, :, pos[q], pos[k]].mean(0).numpy()
        out[name] = table

    direction_BD = (model.W_U[:, prompts.answer_B] - model.W_U[:, prompts.wrong_B]).T
    scale_B = cache["ln_final.hook_scale"][rows, pos["END"], 0]
    dla = np.zeros((n_layers, n_heads))
    for layer in range(n_layers):
        z_BHd = cache[_z_hook(layer)][rows, pos["END"]]
        out_BHD = torch.einsum("bhd,hdm->bhm", z_BHd, model.blocks[layer].attn.W_O)
        dla[layer] = (torch.einsum("bhm,bm->bh", out_BHD, direction_BD) / scale_B[:, None]).mean(0)
    out["dla"] = dla.astype(float)

    clean_ld = float(task.metric(_end_logits(model, prompts), prompts).mean())
    ablate = np.zeros((n_layers, n_heads))
    for layer in range(n_layers):
        mean_LHd = cache[_z_hook(layer)].mean(0)
        for head in range(n_heads):

            def hook(z_BLHd: Tensor, hook, head: int = head, mean_LHd: Tensor = mean_LHd) -> Tensor:
                z_BLHd = z_BLHd.clone()
                z_BLHd[:, :, head] = mean_LHd[None, :, head]
                return z_BLHd

            logits = _end_logits(model, prompts, [(_z_hook(layer), hook)])
            ablate[layer, head] = float(task.metric(logits, prompts).mean())
    out["ablate_ld"] = ablate
    out["clean_ld"] = np.array(clean_ld)

    for attribute in ("s", "pos"):
        cf = task.counterfactual(prompts, attribute, seed + 1)
        _, cf_cache = model.run_with_cache(cf.tokens_BL, names_filter=lambda h: "hook_z" in h)
        table = np.zeros((n_layers, n_heads))
        for layer in range(n_layers):
            cf_BHd = cf_cache[_z_hook(layer)][rows, pos["END"]]
            for head in range(n_heads):

                def patch(z_BLHd: Tensor, hook, head: int = head, cf_BHd: Tensor = cf_BHd):
                    z_BLHd = z_BLHd.clone()
                    z_BLHd[rows, pos["END"], head] = cf_BHd[:, head]
                    return z_BLHd

                logits = _end_logits(model, prompts, [(_z_hook(layer), patch)])
                table[layer, head] = float((logits.argmax(-1) == prompts.answer_B).float().mean())
        out[f"patch_{attribute}"] = table
    return out


def _end_logits(model, prompts: PromptSet, hooks: list | None = None) -> Tensor:
    with model.hooks(fwd_hooks=hooks or []):
        logits_BLV = model(prompts.tokens_BL)
    return logits_BLV[torch.arange(len(prompts)), prompts.positions["END"]]


def plot_head_table(table: dict[str, np.ndarray], path, title: str = "tiny-ioi") -> None:
    """Heatmaps (layers × heads) of the attention, DLA, ablation and patching statistics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("attn_s2_s1", "attention S2 → S1\n(duplicate token)", "Blues", (0, 1)),
        ("attn_end_s2", "attention END → S2\n(S-inhibition)", "Blues", (0, 1)),
        ("attn_end_io", "attention END → IO\n(name movers)", "Blues", (0, 1)),
        ("dla", "direct logit attribution\nto LD at END", "RdBu", None),
        ("ablate_ld", "LD with the head\nmean-ablated", "viridis", None),
        ("patch_pos", "accuracy with the pos\ncounterfactual at END", "viridis", (0, 1)),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(10, 6))
    for ax, (key, label, cmap, limits) in zip(axes.flat, panels, strict=True):
        data = table[key]
        if limits is None and cmap == "RdBu":
            bound = float(np.abs(data).max()) or 1.0
            limits = (-bound, bound)
        image = ax.imshow(data, cmap=cmap, vmin=limits and limits[0], vmax=limits and limits[1])
        for (layer, head), value in np.ndenumerate(data):
            ax.text(head, layer, f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}",
                    ha="center", va="center", fontsize=6)  # fmt: skip
        ax.set_title(label, fontsize=8)
        ax.set_xticks(range(data.shape[1]))
        ax.set_yticks(range(data.shape[0]))
        ax.set_xlabel("head", fontsize=7)
        ax.set_ylabel("layer", fontsize=7)
        ax.tick_params(labelsize=6)
        fig.colorbar(image, ax=ax, shrink=0.6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
