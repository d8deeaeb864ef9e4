"""Train an SAE of any baseline architecture on a matrix of activations (metrics.md §8).

One loop serves every architecture in :mod:`saebench_baselines.architectures`:

1. Scale inputs: ``x = s · a`` with ``s = √D / mean_n ‖a_n‖`` (mean norm ``√D``).
2. Initialise (seeded): unit random decoder rows, ``W_enc = W_decᵀ``, ``b_enc = 0``,
   ``b_dec = mean(x)``.
3. Adam on shuffled mini-batches (a fresh permutation per epoch; a last partial batch is dropped).
   After each step the decoder-gradient component parallel to each row is removed before the
   update and decoder rows are renormalised to unit norm after it (metrics.md §8).
4. Dead-latent resampling (Bricken et al. 2023, "Towards Monosemanticity"): every
   ``resample_dead_every`` steps (until 75% of training), latents that fired on no training
   sample since the last check are re-initialised: pick inputs with probability ∝ (their squared
   reconstruction error)², set the decoder row to the unit direction of ``x − b_dec``, the
   encoder column to that direction times 0.2 × the mean encoder-column norm of the live latents,
   zero the latent's biases and its Adam moments. Not done with a frozen decoder (the procedure
   moves the decoder row).
5. Fold ``s`` into the weights (see :mod:`saebench_baselines.architectures`) and return a
   :class:`~saebench.sae.SAE` that works on raw activations with the same codes.

``frozen_decoder=True`` is the paper's "no learning" baseline: ``W_dec`` stays at its random
unit-norm initialisation; the encoder, ``b_enc``, ``b_dec`` (and gated ``r_mag``, ``b_mag``) train.

Same seed, data and arguments give the same weights (all randomness comes from one
``torch.Generator``; CPU Adam is deterministic). Small problems (D ≤ 512) train faster with
``torch.set_num_threads(1)``, which is left to the caller.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saebench.sae import SAE, SAEMeta
from saebench_baselines.architectures import TrainableSAE, build_module, mean_norm_scale

logger = logging.getLogger(__name__)

DEFAULT_STEPS = 3000
"""Optimiser steps when neither ``steps`` nor ``epochs`` is given (≈77 epochs of 20k samples at
batch 512; measured 10–14 ms per step for D = 64, F = 512 on one busy CPU core, i.e. 30–45 s)."""

DEFAULT_L1 = 1.0
"""Sparsity coefficient λ for ``standard`` and ``gated`` when none is given (metrics.md §8 grid:
0.5, 1, 2.5, 5 on inputs of mean norm √D)."""

RESAMPLE_UNTIL = 0.75
"""Fraction of training after which no more resampling happens (leaves time to settle)."""

RESAMPLE_SAMPLE = 16384
"""Number of training samples on which resampling measures the reconstruction loss."""

RESAMPLE_ENC_SCALE = 0.2
"""Resampled encoder column norm as a fraction of the mean live encoder-column norm."""


def train_sae(
    acts_ND: Tensor,
    architecture: str,
    d_sae: int,
    *,
    l1: float | None = None,
    k: int | None = None,
    seed: int = 0,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 512,
    lr: float = 3e-4,
    device: str = "cpu",
    progress: bool = True,
    resample_dead_every: int | None = 1000,
    frozen_decoder: bool = False,
    meta: SAEMeta | None = None,
) -> tuple[SAE, dict]:
    """Train an SAE on ``acts_ND`` and return it with a training report.

    Args:
        acts_ND: training activations (raw, unscaled).
        architecture: ``standard``, ``gated``, ``topk`` or ``batchtopk`` (exported with its
            JumpReLU threshold; see :mod:`saebench_baselines.architectures`).
        d_sae: number of latents F.
        l1: sparsity coefficient λ (``standard``, ``gated``); default :data:`DEFAULT_L1`.
        k: active latents per sample (``topk``: exactly; ``batchtopk``: on average); required
            for those two.
        seed: seeds initialisation, batch order and resampling.
        epochs, steps: training length; ``steps`` wins if both are given; default
            :data:`DEFAULT_STEPS` steps.
        batch_size, lr: mini-batch size and Adam learning rate.
        device: torch device for training (the returned SAE is on the CPU).
        progress: show a tqdm bar.
        resample_dead_every: steps between dead-latent checks; ``None`` or 0 disables resampling.
        frozen_decoder: keep the decoder at its initialisation.
        meta: metadata for the returned SAE; the training config is added to its
            ``cfg["metadata"]["saebench_training"]`` (so :func:`~saebench.sae.formats.save_saelens`
            writes it into ``cfg.json``).

    Returns:
        ``(sae, report)``; ``report`` holds the config, ``scale_factor``, ``log`` (a list of
        ``{"step", "loss", <terms>, "l0"}`` every ~1% of training), ``final`` (loss terms on the
        full data), ``l0``, ``fvu``, ``dead_fraction`` (inference codes on the full data, raw
        space), ``n_resampled`` and, for ``batchtopk``, ``threshold``.
    """
    if acts_ND.ndim != 2 or acts_ND.shape[0] == 0:
        raise ValueError(f"acts_ND must be a non-empty [N, D] matrix, got {tuple(acts_ND.shape)}")
    if architecture in ("topk", "batchtopk") and l1 is not None:
        logger.warning("l1 is ignored for architecture %r", architecture)
    coef = (DEFAULT_L1 if l1 is None else l1) if architecture in ("standard", "gated") else 0.0
    n_samples, d_in = acts_ND.shape
    batch_size = min(batch_size, n_samples)
    batches_per_epoch = n_samples // batch_size
    if steps is None:
        steps = DEFAULT_STEPS if epochs is None else epochs * batches_per_epoch
    if resample_dead_every is not None and resample_dead_every <= 0:
        resample_dead_every = None

    generator = torch.Generator().manual_seed(seed)
    scale = mean_norm_scale(acts_ND)
    x_ND = acts_ND.detach().float().to(device) * scale
    module = build_module(
        architecture,
        d_in,
        d_sae,
        generator,
        k=k,
        b_dec_init_D=x_ND.mean(0).cpu(),
        frozen_decoder=frozen_decoder,
    ).to(device)
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)

    log: list[dict] = []
    log_every = max(1, steps // 100)
    fired_F = torch.zeros(d_sae, dtype=torch.bool, device=device)
    n_resampled = 0
    perm = torch.randperm(n_samples, generator=generator)
    pos = 0
    bar = tqdm(range(steps), desc=f"train {architecture}", disable=not progress, leave=False)
    for step in bar:
        if pos + batch_size > n_samples:
            perm, pos = torch.randperm(n_samples, generator=generator), 0
        batch_ND = x_ND[perm[pos : pos + batch_size].to(device)]
        pos += batch_size

        terms, _, active_NF = module.loss_terms(batch_ND, coef)
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not frozen_decoder:
            module.project_decoder_grad()
        optimizer.step()
        module.normalise_decoder()
        fired_F |= active_NF.any(0)

        if step % log_every == 0 or step == steps - 1:
            entry = {"step": step, "loss": loss.item()}
            entry.update({name: value.item() for name, value in terms.items()})
            entry["l0"] = active_NF.sum(-1).float().mean().item()
            log.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3g}", l0=f"{entry['l0']:.1f}")
        if (
            resample_dead_every
            and not frozen_decoder
            and (step + 1) % resample_dead_every == 0
            and step + 1 <= RESAMPLE_UNTIL * steps
        ):
            dead_idx = (~fired_F).nonzero().flatten()
            if dead_idx.numel():
                resample_dead_latents(module, optimizer, x_ND, dead_idx, generator)
                n_resampled += dead_idx.numel()
                logger.info("step %d: resampled %d dead latents", step + 1, dead_idx.numel())
            fired_F.zero_()

    module.eval()
    module.finalise(x_ND, batch_size)
    report = {
        "architecture": architecture,
        "d_in": d_in,
        "d_sae": d_sae,
        "l1": coef if architecture in ("standard", "gated") else None,
        "k": k,
        "seed": seed,
        "steps": steps,
        "epochs": steps * batch_size / n_samples,
        "batch_size": batch_size,
        "lr": lr,
        "frozen_decoder": frozen_decoder,
        "resample_dead_every": resample_dead_every,
        "scale_factor": scale,
    }
    training_cfg = dict(report)
    report.update(evaluate_module(module, x_ND, coef, batch_size))
    report["log"] = log
    report["n_resampled"] = n_resampled
    if architecture == "batchtopk":
        report["threshold"] = module.threshold

    if meta is None:
        meta = SAEMeta()
    metadata = meta.cfg.get("metadata")
    metadata = {**(metadata if isinstance(metadata, dict) else {})}
    metadata["saebench_training"] = training_cfg
    meta = dataclasses.replace(
        meta,
        source=meta.source or f"saebench_baselines.train_sae:{architecture}",
        cfg={**meta.cfg, "metadata": metadata},
    )
    return module.export(scale, meta), report


@torch.no_grad()
def evaluate_module(module: TrainableSAE, x_ND: Tensor, coef: float, batch_size: int) -> dict:
    """Final loss terms (training forward) and inference L0, FVU, dead fraction on all of ``x_ND``.

    FVU = Σ_n ‖x_n − x̂_n‖² ÷ Σ_n ‖x_n − x̄‖² (scale-free, so the same on raw activations).
    """
    sums: dict[str, float] = {}
    sq_err, n_active = 0.0, 0.0
    fired_F = torch.zeros(module.d_sae, dtype=torch.bool, device=x_ND.device)
    n_chunks = math.ceil(x_ND.shape[0] / batch_size)
    for i in range(n_chunks):
        chunk_ND = x_ND[i * batch_size : (i + 1) * batch_size]
        terms, _, _ = module.loss_terms(chunk_ND, coef)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item() * chunk_ND.shape[0]
        f_NF, active_NF = module.codes(chunk_ND)
        sq_err += (chunk_ND - module.decode(f_NF)).pow(2).sum().item()
        n_active += active_NF.sum().item()
        fired_F |= active_NF.any(0)
    n = x_ND.shape[0]
    final = {name: total / n for name, total in sums.items()}
    final["loss"] = sum(final.values())
    total_var = (x_ND - x_ND.mean(0)).pow(2).sum().item()
    return {
        "final": final,
        "l0": n_active / n,
        "fvu": sq_err / total_var if total_var > 0 else float("nan"),
        "dead_fraction": 1.0 - fired_F.float().mean().item(),
    }


@torch.no_grad()
def resample_dead_latents(
    module: TrainableSAE,
    optimizer: torch.optim.Adam,
    x_ND: Tensor,
    dead_idx: Tensor,
    generator: torch.Generator,
) -> None:
    """Re-initialise ``dead_idx`` toward high-loss inputs (Bricken et al. 2023; see module doc)."""
    sample_idx = torch.randperm(x_ND.shape[0], generator=generator)[:RESAMPLE_SAMPLE]
    xs_ND = x_ND[sample_idx.to(x_ND.device)]
    f_NF, _ = module.codes(xs_ND)
    err_N = (xs_ND - module.decode(f_NF)).pow(2).sum(-1).cpu().double()
    weights_N = err_N.pow(2)
    if not torch.isfinite(weights_N).all() or weights_N.sum() <= 0:
        weights_N = torch.ones_like(weights_N)
    n_dead = dead_idx.numel()
    chosen = torch.multinomial(
        weights_N, n_dead, replacement=n_dead > xs_ND.shape[0], generator=generator
    )
    dirs_KD = xs_ND[chosen.to(x_ND.device)] - module.b_dec_D
    dirs_KD = dirs_KD / dirs_KD.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    alive_F = torch.ones(module.d_sae, dtype=torch.bool, device=x_ND.device)
    alive_F[dead_idx] = False
    if alive_F.any():
        enc_norm = module.W_enc_DF[:, alive_F].norm(dim=0).mean().item() * RESAMPLE_ENC_SCALE
    else:
        enc_norm = 1.0
    module.reinit_latents(dead_idx, dirs_KD, enc_norm)
    for param, dim in module.per_latent_params():
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key].index_fill_(dim, dead_idx, 0.0)
