"""Approximation metrics (metrics.md §4): how well a dictionary's reconstruction stands in for the
activation at a node.

All are computed on the task distribution at the node (evaluation prompts):

- ``l0`` = mean over prompts of the number of active latents.
- ``fvu`` = Σ_p ‖a(p) − â(p)‖² ÷ Σ_p ‖a(p) − ā_eval‖² (fraction of variance unexplained).
- ``dead_fraction`` = fraction of latents active on no evaluation prompt.
- ``sufficiency`` = mean_p LD(a → â) ÷ mean_p LD_clean (1 is best).
- ``logit_diff_recovered_vs_meanabl`` = |LD(a → â) − LD_meanabl| ÷ |LD_clean − LD_meanabl|,
  each LD a mean over prompts: the share of the mean-ablation gap the reconstruction
  recovers (1 is best; the paper's ``training.get_logitdiff_loss``). Unlike
  ``sufficiency``, it is not near 1 merely because mean ablation barely moves the LD.
- ``necessity`` = 1 − |LD_meanabl − LD(a → ā + (a − â))| ÷ |LD_meanabl − LD_clean|, each LD a
  mean over prompts, LD_meanabl with a replaced by ā (the fitting prompts' mean); 1 is best:
  removing â hurts as much as mean ablation.

>>> import torch
>>> sufficiency(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))
0.5
>>> necessity(ld_meanabl_N=torch.tensor([0.0]), ld_removed_N=torch.tensor([1.0]),
...           ld_clean_N=torch.tensor([4.0]))
0.75
>>> logit_diff_recovered_vs_meanabl(ld_recon_N=torch.tensor([3.0]),
...     ld_meanabl_N=torch.tensor([1.0]), ld_clean_N=torch.tensor([5.0]))
0.5
"""

from __future__ import annotations

from torch import Tensor


def l0(active_NF: Tensor) -> float:
    """Mean number of active latents per prompt (counted exactly, divided in float64)."""
    n = active_NF.shape[0]
    return int(active_NF.bool().sum().item()) / n if n else float("nan")


def fvu(x_ND: Tensor, xhat_ND: Tensor) -> float:
    """Σ‖x − x̂‖² ÷ Σ‖x − mean(x)‖² over prompts (computed in float64)."""
    x, xhat = x_ND.double(), xhat_ND.double()
    return ((x - xhat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()


def dead_fraction(active_NF: Tensor) -> float:
    """Fraction of latents that are active on no prompt (exactly dead / F, in float64)."""
    return int((~active_NF.bool().any(0)).sum().item()) / active_NF.shape[1]


def sufficiency(ld_recon_N: Tensor, ld_clean_N: Tensor) -> float:
    """mean LD with a replaced by â ÷ mean clean LD."""
    return (ld_recon_N.double().mean() / ld_clean_N.double().mean()).item()


def logit_diff_recovered_vs_meanabl(
    ld_recon_N: Tensor, ld_meanabl_N: Tensor, ld_clean_N: Tensor
) -> float:
    """|LD(a → â) − LD_meanabl| ÷ |LD_clean − LD_meanabl| (means over prompts, float64)."""
    recon = ld_recon_N.double().mean()
    meanabl = ld_meanabl_N.double().mean()
    clean = ld_clean_N.double().mean()
    return ((recon - meanabl).abs() / (clean - meanabl).abs()).item()


def necessity(ld_meanabl_N: Tensor, ld_removed_N: Tensor, ld_clean_N: Tensor) -> float:
    """1 − |LD_meanabl − LD(a → ā + (a − â))| ÷ |LD_meanabl − LD_clean| (means over prompts)."""
    meanabl = ld_meanabl_N.double().mean()
    removed = ld_removed_N.double().mean()
    clean = ld_clean_N.double().mean()
    return (1 - (meanabl - removed).abs() / (meanabl - clean).abs()).item()
