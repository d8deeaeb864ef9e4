"""Trainable SAE modules, one per architecture: forward pass, training loss, export.

All modules work on *scaled* inputs ``x = s · a`` (``s`` from :func:`mean_norm_scale`) and
share one parametrisation (sae-lens v6 names, ``b_dec`` subtracted from the input):

- ``standard``: ``f = relu((x − b_dec) W_enc + b_enc)``; loss ``‖x − x̂‖² + λ Σ_j f_j ‖d_j‖``.
- ``gated`` (Rajamanoharan et al. 2024): ``π_gate = (x − b_dec) W_gate + b_gate``,
  ``W_mag = W_gate ⊙ exp(r_mag)``, ``f = 1[π_gate > 0] ⊙ relu((x − b_dec) W_mag + b_mag)``;
  loss ``‖x − x̂‖² + λ Σ_j relu(π_gate)_j ‖d_j‖ + ‖x − (relu(π_gate) sg(W_dec) + sg(b_dec))‖²``
  (``sg`` = stop-gradient: the auxiliary loss uses a frozen copy of the decoder, as in the paper;
  sae-lens does not detach it). ``W_gate`` is stored as ``W_enc`` and ``b_gate`` as ``b_enc``.
- ``topk`` (Gao et al. 2024): ``f = relu`` of the ``k`` largest pre-activations
  ``(x − b_dec) W_enc + b_enc`` (sae-lens order: select, then relu); loss ``‖x − x̂‖²`` (no AuxK;
  dead latents are resampled like the others).
- ``batchtopk`` (Bussmann et al. 2024): during training keep the ``k·B`` largest values of
  ``relu(pre)`` over the whole batch; loss ``‖x − x̂‖²``. At inference a JumpReLU with one global
  threshold θ (the mean over batches of the smallest kept activation):
  ``f = relu(pre) · 1[pre > θ]``; exported as a ``batchtopk`` :class:`~saebench.sae.SAE` carrying
  ``threshold_F = θ`` (and ``k``), whose inference rule is that JumpReLU and which
  :func:`~saebench.sae.formats.save_saelens` writes as a sae-lens ``jumprelu``, as sae-lens does.

Everywhere ``x̂ = f W_dec + b_dec``, ``‖·‖²`` is summed over the D dimensions and averaged over
the batch. Decoder rows are kept at unit norm (projected after every optimiser step, metrics.md §8),
so ``‖d_j‖ = 1`` in the penalties; the factor is kept so the loss is right for any decoder.

Export folds the input scale ``s`` into the weights so the :class:`~saebench.sae.SAE` works on raw
activations ``a`` with the *same* codes:
``act((s a − b_dec) W + c) = act((a − b_dec/s)(s W) + c)`` and ``x̂/s = f (W_dec/s) + b_dec/s``;
i.e. ``W_enc ← s W_enc``, ``W_dec ← W_dec / s``, ``b_dec ← b_dec / s``; ``b_enc``, ``r_mag``,
``b_mag``, ``k`` and the threshold are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from saebench.sae import SAE, SAEMeta

ARCHITECTURES = ("standard", "gated", "topk", "batchtopk")
"""Architectures :func:`saebench_baselines.trainers.train_sae` can train."""


def mean_norm_scale(acts_ND: Tensor) -> float:
    """Input scale ``s = √D / mean_n ‖a_n‖``: scaled inputs have mean norm ``√D``
    (metrics.md §8)."""
    mean_norm = acts_ND.float().norm(dim=-1).mean().item()
    if mean_norm == 0.0:
        return 1.0
    return acts_ND.shape[-1] ** 0.5 / mean_norm


class TrainableSAE(nn.Module):
    """Common parameters and decoder handling; subclasses define ``codes`` and ``loss_terms``.

    Initialisation: decoder rows are random unit vectors (Gaussian directions drawn from
    ``generator``), ``W_enc = W_decᵀ``, ``b_enc = 0`` and ``b_dec`` = the given mean.
    """

    architecture: str = ""

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        generator: torch.Generator,
        b_dec_init_D: Tensor | None = None,
        frozen_decoder: bool = False,
    ) -> None:
        super().__init__()
        W_dec_FD = torch.randn(d_sae, d_in, generator=generator)
        W_dec_FD = W_dec_FD / W_dec_FD.norm(dim=-1, keepdim=True)
        self.W_dec_FD = nn.Parameter(W_dec_FD, requires_grad=not frozen_decoder)
        self.W_enc_DF = nn.Parameter(W_dec_FD.T.clone())
        self.b_enc_F = nn.Parameter(torch.zeros(d_sae))
        b_dec = torch.zeros(d_in) if b_dec_init_D is None else b_dec_init_D.float().clone()
        self.b_dec_D = nn.Parameter(b_dec)
        self.frozen_decoder = frozen_decoder

    @property
    def d_sae(self) -> int:
        return self.W_dec_FD.shape[0]

    def pre_acts(self, x_ND: Tensor) -> Tensor:
        """Encoder pre-activations ``(x − b_dec) W_enc + b_enc``."""
        return (x_ND - self.b_dec_D) @ self.W_enc_DF + self.b_enc_F

    def decode(self, f_NF: Tensor) -> Tensor:
        """``x̂ = f W_dec + b_dec``."""
        return f_NF @ self.W_dec_FD + self.b_dec_D

    def codes(self, x_ND: Tensor, training: bool = False) -> tuple[Tensor, Tensor]:
        """Codes ``f_NF`` and the boolean active mask (metrics.md §6) for scaled inputs ``x_ND``."""
        raise NotImplementedError

    def loss_terms(self, x_ND: Tensor, coef: float) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Loss terms (their sum is minimised), codes and active mask on a training batch."""
        raise NotImplementedError

    def decoder_norms_F(self) -> Tensor:
        return self.W_dec_FD.norm(dim=-1)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the gradient component parallel to each decoder row (‖d_j‖ = 1 to first order)."""
        grad = self.W_dec_FD.grad
        if grad is None:
            return
        unit_FD = self.W_dec_FD / self.W_dec_FD.norm(dim=-1, keepdim=True)
        grad -= (grad * unit_FD).sum(-1, keepdim=True) * unit_FD

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Rescale decoder rows to unit norm (no-op for a frozen decoder: it is unit at init)."""
        if not self.frozen_decoder:
            self.W_dec_FD /= self.W_dec_FD.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def reinit_latents(self, idx: Tensor, directions_KD: Tensor, enc_norm: float) -> None:
        """Resampling: latent ``idx[i]`` gets decoder row ``directions_KD[i]`` (unit) and encoder
        column ``enc_norm · directions_KD[i]``; its biases are reset to 0."""
        if not self.frozen_decoder:
            self.W_dec_FD[idx] = directions_KD
        self.W_enc_DF[:, idx] = (directions_KD * enc_norm).T
        self.b_enc_F[idx] = 0.0

    def per_latent_params(self) -> list[tuple[nn.Parameter, int]]:
        """(parameter, latent dimension) pairs whose optimiser state is reset on resampling."""
        pairs = [(self.W_enc_DF, 1), (self.b_enc_F, 0)]
        if not self.frozen_decoder:
            pairs.append((self.W_dec_FD, 0))
        return pairs

    def finalise(self, acts_ND: Tensor, batch_size: int) -> None:
        """Hook run once after training on the scaled data (BatchTopK estimates θ here)."""

    def export(self, scale: float, meta: SAEMeta) -> SAE:
        """The inference :class:`~saebench.sae.SAE` on raw activations (input scale folded in)."""
        return SAE(
            architecture=self.architecture,
            W_enc_DF=(self.W_enc_DF.detach() * scale).cpu().clone(),
            W_dec_FD=(self.W_dec_FD.detach() / scale).cpu().clone(),
            b_enc_F=self.b_enc_F.detach().cpu().clone(),
            b_dec_D=(self.b_dec_D.detach() / scale).cpu().clone(),
            apply_b_dec_to_input=True,
            meta=meta,
            **self._export_extra(),
        )

    def _export_extra(self) -> dict:
        return {}


class StandardSAE(TrainableSAE):
    """Vanilla ReLU SAE with L1 penalty ``λ Σ_j f_j ‖d_j‖``."""

    architecture = "standard"

    def codes(self, x_ND: Tensor, training: bool = False) -> tuple[Tensor, Tensor]:
        f_NF = torch.relu(self.pre_acts(x_ND))
        return f_NF, f_NF > 0

    def loss_terms(self, x_ND: Tensor, coef: float) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        f_NF, active_NF = self.codes(x_ND, training=True)
        mse = (x_ND - self.decode(f_NF)).pow(2).sum(-1).mean()
        l1 = coef * (f_NF * self.decoder_norms_F()).sum(-1).mean()
        return {"mse": mse, "sparsity": l1}, f_NF, active_NF


class GatedSAE(TrainableSAE):
    """Gated SAE (gate weights ``W_enc``, gate bias ``b_enc``; magnitude ``r_mag``, ``b_mag``)."""

    architecture = "gated"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.r_mag_F = nn.Parameter(torch.zeros(self.d_sae))
        self.b_mag_F = nn.Parameter(torch.zeros(self.d_sae))

    def gate_and_magnitude(self, x_ND: Tensor) -> tuple[Tensor, Tensor]:
        """``π_gate = (x − b_dec) W_gate + b_gate`` and ``π_mag = (x − b_dec) W_mag + b_mag``."""
        centred_ND = x_ND - self.b_dec_D
        pi_gate_NF = centred_ND @ self.W_enc_DF + self.b_enc_F
        pi_mag_NF = centred_ND @ (self.W_enc_DF * self.r_mag_F.exp()) + self.b_mag_F
        return pi_gate_NF, pi_mag_NF

    def codes(self, x_ND: Tensor, training: bool = False) -> tuple[Tensor, Tensor]:
        pi_gate_NF, pi_mag_NF = self.gate_and_magnitude(x_ND)
        active_NF = pi_gate_NF > 0
        return active_NF.to(pi_mag_NF.dtype) * torch.relu(pi_mag_NF), active_NF

    def loss_terms(self, x_ND: Tensor, coef: float) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        pi_gate_NF, pi_mag_NF = self.gate_and_magnitude(x_ND)
        active_NF = pi_gate_NF > 0
        f_NF = active_NF.to(pi_mag_NF.dtype) * torch.relu(pi_mag_NF)
        mse = (x_ND - self.decode(f_NF)).pow(2).sum(-1).mean()
        gate_NF = torch.relu(pi_gate_NF)
        l1 = coef * (gate_NF * self.decoder_norms_F()).sum(-1).mean()
        via_gate_ND = gate_NF @ self.W_dec_FD.detach() + self.b_dec_D.detach()
        aux = (x_ND - via_gate_ND).pow(2).sum(-1).mean()
        return {"mse": mse, "sparsity": l1, "aux": aux}, f_NF, active_NF

    @torch.no_grad()
    def reinit_latents(self, idx: Tensor, directions_KD: Tensor, enc_norm: float) -> None:
        super().reinit_latents(idx, directions_KD, enc_norm)
        self.r_mag_F[idx] = 0.0
        self.b_mag_F[idx] = 0.0

    def per_latent_params(self) -> list[tuple[nn.Parameter, int]]:
        return super().per_latent_params() + [(self.r_mag_F, 0), (self.b_mag_F, 0)]

    def _export_extra(self) -> dict:
        return {
            "r_mag_F": self.r_mag_F.detach().cpu().clone(),
            "b_mag_F": self.b_mag_F.detach().cpu().clone(),
        }


class TopKSAE(TrainableSAE):
    """TopK SAE: exactly ``k`` latents selected per sample (sae-lens: top-k, then relu)."""

    architecture = "topk"

    def __init__(self, *args, k: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0 < k <= self.d_sae:
            raise ValueError(f"k must be in [1, d_sae={self.d_sae}], got {k}")
        self.k = k

    def codes(self, x_ND: Tensor, training: bool = False) -> tuple[Tensor, Tensor]:
        pre_NF = self.pre_acts(x_ND)
        values_NK, idx_NK = pre_NF.topk(self.k, dim=-1, sorted=False)
        f_NF = torch.zeros_like(pre_NF).scatter(-1, idx_NK, torch.relu(values_NK))
        active_NF = torch.zeros_like(pre_NF, dtype=torch.bool).scatter(-1, idx_NK, values_NK > 0)
        return f_NF, active_NF

    def loss_terms(self, x_ND: Tensor, coef: float) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        f_NF, active_NF = self.codes(x_ND, training=True)
        mse = (x_ND - self.decode(f_NF)).pow(2).sum(-1).mean()
        return {"mse": mse}, f_NF, active_NF

    def _export_extra(self) -> dict:
        return {"k": self.k}


class BatchTopKSAE(TrainableSAE):
    """BatchTopK SAE: ``k·B`` activations kept per batch in training, JumpReLU(θ) at inference."""

    architecture = "batchtopk"

    def __init__(self, *args, k: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0 < k <= self.d_sae:
            raise ValueError(f"k must be in [1, d_sae={self.d_sae}], got {k}")
        self.k = k
        self.threshold: float | None = None

    def batch_topk(self, x_ND: Tensor) -> tuple[Tensor, Tensor]:
        """Keep the ``k · N`` largest entries of ``relu(pre)`` over the whole batch."""
        acts_NF = torch.relu(self.pre_acts(x_ND))
        flat = acts_NF.flatten()
        values, idx = flat.topk(min(self.k * x_ND.shape[0], flat.numel()), sorted=False)
        f_NF = torch.zeros_like(flat).scatter(-1, idx, values).view_as(acts_NF)
        return f_NF, f_NF > 0

    def codes(self, x_ND: Tensor, training: bool = False) -> tuple[Tensor, Tensor]:
        if training or self.threshold is None:
            return self.batch_topk(x_ND)
        pre_NF = self.pre_acts(x_ND)
        active_NF = (pre_NF > self.threshold) & (pre_NF > 0)
        return pre_NF * active_NF, active_NF

    def loss_terms(self, x_ND: Tensor, coef: float) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        f_NF, active_NF = self.batch_topk(x_ND)
        mse = (x_ND - self.decode(f_NF)).pow(2).sum(-1).mean()
        return {"mse": mse}, f_NF, active_NF

    @torch.no_grad()
    def finalise(self, acts_ND: Tensor, batch_size: int) -> None:
        """θ = mean over consecutive full batches of the smallest kept positive activation."""
        mins = []
        n_full = max(1, acts_ND.shape[0] // batch_size)
        for i in range(n_full):
            f_NF, _ = self.batch_topk(acts_ND[i * batch_size : (i + 1) * batch_size])
            positive = f_NF[f_NF > 0]
            if positive.numel():
                mins.append(positive.min().item())
        self.threshold = float(sum(mins) / len(mins)) if mins else 0.0

    def _export_extra(self) -> dict:
        theta = 0.0 if self.threshold is None else self.threshold
        return {"k": self.k, "threshold_F": torch.full((self.d_sae,), theta)}


def build_module(
    architecture: str,
    d_in: int,
    d_sae: int,
    generator: torch.Generator,
    *,
    k: int | None = None,
    b_dec_init_D: Tensor | None = None,
    frozen_decoder: bool = False,
) -> TrainableSAE:
    """A freshly initialised trainable module for ``architecture`` (see :data:`ARCHITECTURES`)."""
    common = {"b_dec_init_D": b_dec_init_D, "frozen_decoder": frozen_decoder}
    if architecture == "standard":
        return StandardSAE(d_in, d_sae, generator, **common)
    if architecture == "gated":
        return GatedSAE(d_in, d_sae, generator, **common)
    if architecture in ("topk", "batchtopk"):
        if k is None:
            raise ValueError(f"architecture {architecture!r} needs k")
        cls = TopKSAE if architecture == "topk" else BatchTopKSAE
        return cls(d_in, d_sae, generator, k=k, **common)
    raise ValueError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
