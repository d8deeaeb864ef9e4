"""Reference dictionaries that need no SAE training, each an exact ``standard`` ReLU :class:`SAE`.

- :func:`pca_sae`: principal components as a ±-split ReLU SAE (a dense, non-sparse baseline).
- :func:`random_sae`: random unit decoder directions, tied encoder, biases set so each latent
  fires on a chosen fraction of the data (a "nothing learned" baseline).

The third reference, the decoder frozen at initialisation with a trained encoder, is
``train_sae(..., frozen_decoder=True)`` in :mod:`saebench_baselines.trainers`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from saebench.sae import SAE, SAEMeta

DEFAULT_RANDOM_L0 = 8.0
"""Mean number of active latents :func:`random_sae` aims for by default (the middle of the
metrics.md §8 TopK grid 3–24)."""


def pca_sae(acts_ND: Tensor, n_components: int | None = None) -> SAE:
    """PCA as a ``standard`` SAE with ``2·n`` latents (one per sign of each component).

    With μ the mean of ``acts_ND`` and ``V`` (D × n) its top-n principal directions:
    ``W_enc = [V, −V]``, ``b_enc = 0``, ``W_dec = [Vᵀ; −Vᵀ]``, ``b_dec = μ``, so
    ``f = relu([(x − μ)V, −(x − μ)V])`` and ``x̂ = μ + (x − μ) V Vᵀ`` (relu(z) − relu(−z) = z): the
    rank-n PCA reconstruction, exact when ``n = D``. Each component's sign is fixed so that its
    largest-magnitude entry is positive. ``n_components`` defaults to D.

    >>> acts = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    >>> sae = pca_sae(acts)
    >>> sae.d_sae, bool(torch.allclose(sae.decode(sae.encode(acts)), acts, atol=1e-4))
    (10, True)
    """
    acts_ND = acts_ND.detach().float().cpu()
    n_samples, d_in = acts_ND.shape
    n = d_in if n_components is None else n_components
    if not 1 <= n <= d_in:
        raise ValueError(f"n_components must be in [1, {d_in}], got {n_components}")
    mean_D = acts_ND.mean(0)
    centred_ND = (acts_ND - mean_D).double()
    cov_DD = centred_ND.T @ centred_ND / max(n_samples - 1, 1)
    eigvals_D, eigvecs_DD = torch.linalg.eigh(cov_DD)
    order = eigvals_D.argsort(descending=True)[:n]
    V_Dn = eigvecs_DD[:, order]
    signs_n = torch.sign(V_Dn.gather(0, V_Dn.abs().argmax(0, keepdim=True))).squeeze(0)
    V_Dn = (V_Dn * signs_n).float()
    W_enc_DF = torch.cat([V_Dn, -V_Dn], dim=1)
    return SAE(
        architecture="standard",
        W_enc_DF=W_enc_DF.contiguous(),
        W_dec_FD=W_enc_DF.T.contiguous(),
        b_enc_F=torch.zeros(2 * n),
        b_dec_D=mean_D,
        meta=SAEMeta(
            source="saebench_baselines.reference.pca_sae",
            cfg={"metadata": {"saebench_reference": {"kind": "pca", "n_components": n}}},
        ),
    )


def random_sae(
    d_in: int,
    d_sae: int,
    seed: int,
    acts_ND: Tensor | None = None,
    fire_fraction: float | None = None,
) -> SAE:
    """A ``standard`` SAE with random unit decoder rows and a tied encoder ``W_enc = W_decᵀ``.

    ``b_dec`` = mean of ``acts_ND`` (0 without data). Biases: latent j fires on a fraction
    ``p = fire_fraction`` of the given activations, i.e.
    ``b_enc_j = −quantile_{1−p}{(a − b_dec)·d_j : a ∈ acts}`` (the ⌈(1−p)N⌉-th smallest value),
    so the mean L0 on ``acts_ND`` is ≈ ``p·F``. ``fire_fraction`` defaults to
    ``min(0.5, DEFAULT_RANDOM_L0 / d_sae)`` (mean L0 ≈ 8). Without data ``b_enc = 0`` (each
    latent fires on half of any distribution symmetric about ``b_dec``).

    >>> sae = random_sae(4, 16, seed=0)
    >>> bool(torch.allclose(sae.W_dec_FD.norm(dim=-1), torch.ones(16)))
    True
    """
    generator = torch.Generator().manual_seed(seed)
    W_dec_FD = torch.randn(d_sae, d_in, generator=generator)
    W_dec_FD = W_dec_FD / W_dec_FD.norm(dim=-1, keepdim=True)
    W_enc_DF = W_dec_FD.T.contiguous()
    p = min(0.5, DEFAULT_RANDOM_L0 / d_sae) if fire_fraction is None else fire_fraction
    if not 0.0 < p <= 1.0:
        raise ValueError(f"fire_fraction must be in (0, 1], got {fire_fraction}")
    if acts_ND is None:
        b_dec_D = torch.zeros(d_in)
        b_enc_F = torch.zeros(d_sae)
    else:
        acts_ND = acts_ND.detach().float().cpu()
        if acts_ND.shape[-1] != d_in:
            raise ValueError(f"acts_ND has width {acts_ND.shape[-1]}, expected d_in={d_in}")
        b_dec_D = acts_ND.mean(0)
        proj_NF = (acts_ND - b_dec_D) @ W_enc_DF
        n_samples = proj_NF.shape[0]
        rank = min(n_samples, max(1, math.ceil((1.0 - p) * n_samples)))
        b_enc_F = -proj_NF.kthvalue(rank, dim=0).values
    return SAE(
        architecture="standard",
        W_enc_DF=W_enc_DF,
        W_dec_FD=W_dec_FD,
        b_enc_F=b_enc_F,
        b_dec_D=b_dec_D,
        meta=SAEMeta(
            source="saebench_baselines.reference.random_sae",
            cfg={
                "metadata": {
                    "saebench_reference": {"kind": "random", "seed": seed, "fire_fraction": p}
                }
            },
        ),
    )
