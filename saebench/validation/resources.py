"""A memory estimate of scoring one SAE, checked before its work starts.

Scoring holds several [N, F] arrays per SAE (codes and activity of the clean and
counterfactual prompts, edit weights, the edited codes, a chosen-latent mask per k), so the
memory grows with prompts × latents: a 200k-latent SAE on 1000 prompts needs several GB.
:func:`estimate_bytes` is that estimate; :func:`check_memory` refuses an SAE above the limit
(``--max-memory``, default :func:`default_limit_mb`) with a message saying what to lower.
"""

from __future__ import annotations

import os

BYTES_PER_CODE = 32
"""Bytes per (prompt, latent) of the arrays scoring keeps at once (float32 codes and edits,
boolean masks), apart from the per-k masks."""


def estimate_bytes(n_prompts: int, d_sae: int, d_in: int, n_ks: int) -> int:
    """Bytes scoring one SAE of ``d_sae`` latents reading ``d_in``-dim vectors needs.

    >>> round(estimate_bytes(1000, 200_000, 768, 6) / 2**30, 1)
    9.3
    """
    weights = 2 * d_sae * d_in * 4
    return weights + n_prompts * d_sae * (BYTES_PER_CODE + 2 * n_ks)


def default_limit_mb() -> float | None:
    """80% of this machine's physical memory, in MB (None when unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None
    return 0.8 * total / 2**20


def check_memory(
    n_prompts: int,
    d_sae: int,
    d_in: int,
    n_ks: int,
    limit_mb: float | None = None,
    style: str = "cli",
) -> None:
    """``ValueError`` when :func:`estimate_bytes` exceeds ``limit_mb`` (None: the default); the
    options are named as ``style`` spells them (:func:`saebench.validation.settings.label`)."""
    from saebench.validation.settings import label

    limit = default_limit_mb() if limit_mb is None else limit_mb
    need = estimate_bytes(n_prompts, d_sae, d_in, n_ks)
    if limit is not None and need > limit * 2**20:
        option, prompts = label("max_memory_mb", style), label("n_prompts", style)
        raise ValueError(
            f"scoring this SAE ({d_sae:,} latents on {n_prompts:,} prompts) needs about "
            f"{need / 2**20:,.0f} MB, more than {option} {limit:,.0f} MB; lower {prompts} "
            f"or raise {option}"
        )
