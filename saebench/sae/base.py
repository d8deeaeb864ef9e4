"""One internal representation for every sparse-autoencoder architecture saebench rates.

Every SAE, whatever library wrote it, becomes an :class:`SAE`: its weights, its architecture
name and the few numbers its activation needs (``k``, a threshold, the gated magnitude path).
The equations below match sae-lens v6 (``sae_lens/saes/*.py``) exactly, so a code computed
here equals the code sae-lens computes for the same weights. Loading and saving live in
:mod:`saebench.sae.formats`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

ARCHITECTURES = ("standard", "topk", "batchtopk", "jumprelu", "gated")
"""Architecture names an :class:`SAE` may carry."""

_WEIGHT_NAMES = ("W_enc_DF", "W_dec_FD", "b_enc_F", "b_dec_D", "threshold_F", "r_mag_F", "b_mag_F")
"""Every tensor field, in the fixed order :meth:`SAE.content_hash` reads them."""


@dataclass
class SAEMeta:
    """Where an SAE reads its activations, and where it came from."""

    model_name: str | None = None
    """Language model the SAE was trained on (a TransformerLens or Hugging Face name)."""
    hook_name: str | None = None
    """TransformerLens hook it reads, e.g. ``blocks.8.hook_resid_pre``; None if unknown."""
    hook_head_index: int | None = None
    """Head index when the SAE reads one head of a per-head hook (``hook_z`` ...)."""
    model_from_pretrained_kwargs: dict | None = None
    """Model processing the SAE was trained with; None = not stated by the SAE."""
    prepend_bos: bool = True
    """Whether the SAE's training prompts started with a BOS token."""
    source: str = ""
    """Path or release id it was loaded from."""
    cfg: dict = field(default_factory=dict)
    """The raw config as read (for provenance)."""
    training_cfg: dict = field(default_factory=dict)
    """The training run's config when it sits next to the weights (sae-lens
    ``runner_cfg.json``); empty otherwise."""
    sae_lens_release: str | None = None
    """sae-lens release it was loaded from (``gpt2-small-res-jb``); None for a local file."""
    sae_lens_id: str | None = None
    """SAE id within that release (``blocks.8.hook_resid_pre``)."""
    training_step: int | None = None
    """Training step of a checkpoint (dictionary_learning ``checkpoints/ae_N.pt``); None for
    a finished SAE."""


@dataclass(eq=False)
class SAE:
    """A sparse autoencoder ``x -> f -> x̂`` with D inputs and F latents.

    With ``x_in = x − b_dec·apply_b_dec_to_input`` and ``pre = x_in W_enc + b_enc``:

    - ``standard``:  ``f = relu(pre)``
    - ``topk``:      ``f = relu`` of the k largest entries of ``pre`` (per input), 0 elsewhere
    - ``jumprelu``:  ``f = relu(pre) · [pre > threshold]``
    - ``batchtopk``: with ``threshold_F``, the jumprelu rule (dictionary_learning's inference
      rule, and what sae-lens saves a trained BatchTopK as); without it, per-input top-k
      (a code must not depend on the other inputs of a batch)
    - ``gated``:     ``f = [pre > 0] · relu(x_in (W_enc ⊙ exp(r_mag)) + b_mag)``, where
      ``pre`` uses ``b_enc`` = sae-lens's ``b_gate``

    and for every architecture ``x̂ = f W_dec + b_dec``.

    Construction validates shapes and finiteness (:meth:`validate`).

    >>> sae = SAE("standard", torch.eye(2), torch.eye(2), torch.zeros(2), torch.ones(2))
    >>> sae.encode(torch.tensor([[3.0, 0.5]])).tolist()
    [[2.0, 0.0]]
    >>> sae.decode(torch.tensor([[2.0, 0.0]])).tolist()
    [[3.0, 1.0]]
    """

    architecture: str
    W_enc_DF: Tensor
    W_dec_FD: Tensor
    b_enc_F: Tensor
    b_dec_D: Tensor
    apply_b_dec_to_input: bool = True
    """Subtract ``b_dec`` from the input before encoding."""
    k: int | None = None
    """Active latents per input (topk; batchtopk without a threshold)."""
    threshold_F: Tensor | None = None
    """Jump threshold per latent (jumprelu; batchtopk when it carries one)."""
    r_mag_F: Tensor | None = None
    """Gated: log-scale of the magnitude path's encoder, ``W_mag = W_enc ⊙ exp(r_mag)``."""
    b_mag_F: Tensor | None = None
    """Gated: bias of the magnitude path."""
    meta: SAEMeta = field(default_factory=SAEMeta)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def d_in(self) -> int:
        """Activation width D."""
        return self.W_enc_DF.shape[0]

    @property
    def d_sae(self) -> int:
        """Number of latents F."""
        return self.W_enc_DF.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the weights (inputs are cast to it, as sae-lens does)."""
        return self.W_enc_DF.dtype

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self.W_enc_DF.device

    def _uses_threshold(self) -> bool:
        return self.architecture == "jumprelu" or (
            self.architecture == "batchtopk" and self.threshold_F is not None
        )

    def _uses_topk(self) -> bool:
        return self.architecture == "topk" or (
            self.architecture == "batchtopk" and self.threshold_F is None
        )

    def _sae_in(self, x_ND: Tensor) -> Tensor:
        """``x_in = x − b_dec·apply_b_dec_to_input``, in the weights' dtype."""
        x_ND = x_ND.to(self.dtype)
        return x_ND - self.b_dec_D if self.apply_b_dec_to_input else x_ND

    def pre_acts(self, x_ND: Tensor) -> Tensor:
        """Hidden pre-activation ``pre = x_in W_enc + b_enc`` (gated: the gate's), shape ...F."""
        return self._sae_in(x_ND) @ self.W_enc_DF + self.b_enc_F

    def encode(self, x_ND: Tensor) -> Tensor:
        """Codes ``f`` (shape ...F) of activations ``x`` (shape ...D); see the class docstring."""
        pre_NF = self.pre_acts(x_ND)
        if self.architecture == "standard":
            return pre_NF.relu()
        if self._uses_topk():
            top = torch.topk(pre_NF, k=self.k, dim=-1, sorted=False)
            return torch.zeros_like(pre_NF).scatter_(-1, top.indices, top.values.relu())
        if self._uses_threshold():
            return pre_NF.relu() * (pre_NF > self.threshold_F).to(pre_NF.dtype)
        if self.architecture == "gated":
            W_mag_DF = self.W_enc_DF * self.r_mag_F.exp()
            mag_NF = (self._sae_in(x_ND) @ W_mag_DF + self.b_mag_F).relu()
            return (pre_NF > 0).to(pre_NF.dtype) * mag_NF
        raise ValueError(f"unknown architecture {self.architecture!r}")

    def decode(self, f_NF: Tensor) -> Tensor:
        """Reconstruction ``x̂ = f W_dec + b_dec`` (shape ...D)."""
        return f_NF.to(self.dtype) @ self.W_dec_FD + self.b_dec_D

    def active(self, x_ND: Tensor) -> Tensor:
        """Which latents fire, bool ...F.

        standard: ``pre > 0``; topk: among the k largest pre-activations and ``> 0`` (the relu
        sae-lens applies); jumprelu / thresholded batchtopk: ``pre > threshold`` and ``pre > 0``
        (the same thing for the usual threshold ≥ 0); gated: the gate ``pre > 0``, even where
        the magnitude path is 0.
        """
        pre_NF = self.pre_acts(x_ND)
        if self.architecture in ("standard", "gated"):
            return pre_NF > 0
        if self._uses_topk():
            top = torch.topk(pre_NF, k=self.k, dim=-1, sorted=False)
            mask_NF = torch.zeros_like(pre_NF, dtype=torch.bool)
            return mask_NF.scatter_(-1, top.indices, top.values > 0)
        return (pre_NF > self.threshold_F) & (pre_NF > 0)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SAE:
        """A copy with every weight on ``device`` and/or in ``dtype`` (meta shared)."""
        moved = {
            name: None if getattr(self, name) is None else getattr(self, name).to(device, dtype)
            for name in _WEIGHT_NAMES
        }
        return dataclasses.replace(self, **moved)

    def content_hash(self) -> str:
        """First 16 hex chars of sha256 over architecture, k, apply_b_dec_to_input and every
        weight (name, dtype, shape, bytes) in a fixed order; equal on every device."""
        digest = hashlib.sha256()
        digest.update(
            f"{self.architecture}|k={self.k}|apply_b_dec={self.apply_b_dec_to_input}".encode()
        )
        for name in _WEIGHT_NAMES:
            tensor = getattr(self, name)
            if tensor is None:
                digest.update(f"|{name}:None".encode())
                continue
            tensor = tensor.detach().to("cpu").contiguous()
            digest.update(f"|{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    def validate(self) -> None:
        """Raise ValueError naming the problem: unknown architecture, a missing or extra
        parameter, inconsistent shapes, a non-float or non-finite weight, a bad ``k``."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r} (expected one of {ARCHITECTURES})"
            )
        for name in _WEIGHT_NAMES:
            tensor = getattr(self, name)
            if tensor is not None and not isinstance(tensor, Tensor):
                raise ValueError(f"{name} is a {type(tensor).__name__}, not a torch.Tensor")
        if self.W_enc_DF.ndim != 2:
            raise ValueError(f"W_enc must be 2-D [d_in, d_sae], got shape {_shape(self.W_enc_DF)}")
        d_in, d_sae = self.W_enc_DF.shape
        expected = {"W_dec_FD": (d_sae, d_in), "b_enc_F": (d_sae,), "b_dec_D": (d_in,)}
        required = {
            "jumprelu": ("threshold_F",),
            "gated": ("r_mag_F", "b_mag_F"),
        }.get(self.architecture, ())
        allowed = required + (("threshold_F",) if self.architecture == "batchtopk" else ())
        for name in ("threshold_F", "r_mag_F", "b_mag_F"):
            tensor = getattr(self, name)
            if tensor is None and name in required:
                raise ValueError(f"{self.architecture} SAE needs {name}")
            if tensor is not None and name not in allowed:
                raise ValueError(f"{self.architecture} SAE has an unexpected {name}")
            if tensor is not None:
                expected[name] = (d_sae,)
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(
                    f"{name} has shape {_shape(getattr(self, name))}, expected {shape} "
                    f"(W_enc is {_shape(self.W_enc_DF)}: d_in={d_in}, d_sae={d_sae})"
                )
        for name in ("W_enc_DF", *expected):
            tensor = getattr(self, name)
            if not tensor.is_floating_point():
                raise ValueError(f"{name} has non-float dtype {tensor.dtype}")
            if tensor.device != self.W_enc_DF.device:
                raise ValueError(f"{name} is on {tensor.device}, W_enc on {self.W_enc_DF.device}")
            if not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise ValueError(f"{name} has {bad} NaN/inf entries")
        if self._uses_topk():
            if self.k is None:
                raise ValueError(f"{self.architecture} SAE needs k (got None)")
            if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= d_sae:
                raise ValueError(f"k must be an int in [1, d_sae={d_sae}], got {self.k!r}")
        elif self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int)):
            raise ValueError(f"k must be an int or None, got {self.k!r}")

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: architecture, sizes, k, hook, model and content hash."""
        return {
            "architecture": self.architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "k": self.k,
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "model_name": self.meta.model_name,
            "hook_name": self.meta.hook_name,
            "hook_head_index": self.meta.hook_head_index,
            "source": self.meta.source,
            "content_hash": self.content_hash(),
        }


def _shape(tensor: Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)
