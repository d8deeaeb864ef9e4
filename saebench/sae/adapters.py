"""Adapters: any sparse autoencoder object, seen through the interface the scorer reads.

:func:`saebench.evaluate.score` reads exactly the attributes of :class:`Scorable` from a
dictionary. saebench's own :class:`~saebench.sae.SAE` has them; :func:`as_scorable` wraps
anything else that satisfies :class:`SAELike`:

- a ``sae_lens`` SAE (every architecture sae-lens registers: standard, topk, abstopk,
  jumprelu, gated, matching_pursuit, and training SAEs such as batchtopk, converted to their
  inference form as sae-lens's own ``save_inference_model`` does) becomes a
  :class:`SAELensAdapter`: codes and reconstructions are sae-lens's ``encode`` / ``decode``,
  input normalisation (``layer_norm``, ``constant_norm_rescale``) and ``hook_z`` reshaping
  included;
- any other object with ``encode``, ``decode`` and decoder directions (a dictionary_learning
  dictionary, a user's module) becomes a :class:`DictionaryAdapter`.

Which latents are *active* (metrics.md §6, ``F_j = {p : f_j(p) > 0}``): a nonzero code (for
ReLU-like codes the same as ``f > 0``; for TopK and AbsTopK the selected latents, whose
signed codes may be negative; for matching pursuit the chosen atoms), except for gated SAEs,
whose latent is active when its gate pre-activation is > 0 even where the magnitude path is
0 (metrics.md §6; :meth:`saebench.sae.SAE.active` does the same).

Decoder directions ``W_dec_FD`` (the edits of metrics.md §5 add ``Δf W_dec``) are the rows of the
affine map ``decode(f) = f W_dec_FD + b`` and are checked against ``decode`` once, on a random
sparse code, when the adapter is built. For sae-lens TopK-family SAEs with
``rescale_acts_by_decoder_norm`` that map is ``W_dec / ‖W_dec_j‖``. For SAEs that normalise
their input per vector (``layer_norm``: ``x̂ = (f W_dec + b_dec) · σ(x) + μ(x)``) it is the
SAE's ``W_dec``, in normalised units: an edit adds ``Δf W_dec`` to the activation without the
per-input factor σ(x).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import logging
import sys
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from saebench.sae.base import SAE, SAEMeta
from saebench.sae.formats import SAELoadError, sae_from_saelens

logger = logging.getLogger(__name__)

_NORM_STATE = {"layer_norm": ("ln_mu", "ln_std"), "constant_norm_rescale": ("x_norm_coeff",)}
"""Per-input statistics sae-lens's ``encode`` stores on the module for ``decode`` to undo."""
_NEUTRAL_NORM_STATE = {"ln_mu": 0.0, "ln_std": 1.0, "x_norm_coeff": 1.0}
_DL_ARCHITECTURES = {
    "AutoEncoder": "standard",
    "AutoEncoderNew": "standard",
    "GatedAutoEncoder": "gated",
    "AutoEncoderTopK": "topk",
    "BatchTopKSAE": "batchtopk",
    "MatryoshkaBatchTopKSAE": "batchtopk",
    "JumpReluAutoEncoder": "jumprelu",
}
"""dictionary_learning class names and the architecture they implement."""


@runtime_checkable
class SAELike(Protocol):
    """What an object needs to be scored by :func:`saebench.evaluate_sae`.

    Required:

    - ``encode(x_ND) -> codes_NF``: latent codes of activations (N vectors of width D);
    - ``decode(codes_NF) -> recon_ND``: reconstructions, affine in the codes;
    - decoder directions, one of ``W_dec_FD`` [F, D], ``W_dec`` ([F, D], or [D, F] when that
      is the only orientation that matches ``encode``'s width), ``decoder.weight`` [D, F]
      (a ``torch.nn.Linear`` decoder, as in dictionary_learning).

    Optional: ``active(x_ND) -> bool_NF`` (default: ``codes != 0``; a dictionary_learning
    gated dictionary's ``encode(x, return_gate=True)`` gate is used when present),
    ``to(device)`` (for ``device=``), ``cfg`` / ``meta`` (provenance). Nothing else is read.
    Missing attributes are reported by :func:`check_sae_like`.
    """

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, codes: Tensor) -> Tensor: ...


class Scorable(Protocol):
    """Exactly what :func:`saebench.evaluate.score` and the leaderboard identity read.

    ``d_in`` (int), ``d_sae`` (int), ``W_dec_FD`` (Tensor [F, D]), ``encode(x_ND)``,
    ``decode(codes_NF)``, ``active(x_ND)`` (bool [N, F]), ``to(device)`` (returns a
    Scorable), ``architecture`` (str), ``meta`` (:class:`~saebench.sae.SAEMeta`),
    ``content_hash()`` (str). :class:`~saebench.sae.SAE` and the adapters here have them.
    """

    d_in: int
    d_sae: int
    W_dec_FD: Tensor
    architecture: str
    meta: SAEMeta

    def encode(self, x_ND: Tensor) -> Tensor: ...

    def decode(self, codes_NF: Tensor) -> Tensor: ...

    def active(self, x_ND: Tensor) -> Tensor: ...

    def to(self, device: str | torch.device) -> Scorable: ...

    def content_hash(self) -> str: ...


def check_sae_like(obj: Any) -> None:
    """``TypeError`` naming the first attribute of :class:`SAELike` that ``obj`` lacks."""
    name = type(obj).__name__
    for attribute, role in (
        ("encode", "encode(x) -> latent codes"),
        ("decode", "decode(codes) -> reconstruction"),
    ):
        if not callable(getattr(obj, attribute, None)):
            raise TypeError(
                f"{name} object cannot be scored: it has no method `{attribute}` ({role}). "
                f"An SAE needs encode, decode and decoder directions (W_dec_FD, W_dec or "
                f"decoder.weight); see saebench.sae.adapters.SAELike"
            )
    if _decoder_matrix(obj) is None:
        raise TypeError(
            f"{name} object cannot be scored: it has no decoder directions (`W_dec_FD`, "
            f"`W_dec` [d_sae, d_in] or `decoder.weight` [d_in, d_sae] tensor). "
            f"See saebench.sae.adapters.SAELike"
        )


def is_saelens_sae(obj: Any) -> bool:
    """Whether ``obj`` is a ``sae_lens`` SAE (checked only if sae_lens is imported)."""
    if "sae_lens" not in sys.modules:
        return False
    from sae_lens.saes.sae import SAE as SAELensSAE

    return isinstance(obj, SAELensSAE)


_HALF = (torch.float16, torch.bfloat16)


def as_scorable(obj: Any, d_head: int | None = None, source: str = "") -> Scorable:
    """``obj`` as the scorer reads it: a saebench :class:`SAE` as it is, a sae-lens SAE as a
    :class:`SAELensAdapter`, any other :class:`SAELike` as a :class:`DictionaryAdapter`.

    ``d_head`` is the model's head width, needed only by sae-lens ``hook_z`` SAEs (which read
    all heads concatenated, width ``n_heads · d_head``).
    """
    if isinstance(obj, SAE):  # half precision computed in float32, as on load
        return obj.to(dtype=torch.float32) if obj.dtype in _HALF else obj
    if isinstance(obj, DictionaryAdapter):
        return obj
    found = _decoder_matrix(obj)
    if found is not None and not torch.isfinite(found[1].detach()).all():
        bad = int((~torch.isfinite(found[1].detach())).sum())
        raise ValueError(f"{source or 'the SAE'}: its decoder {found[0]} has {bad} NaN/inf entries")
    if is_saelens_sae(obj):
        return SAELensAdapter(obj, d_head=d_head, source=source)
    check_sae_like(obj)
    return DictionaryAdapter(obj, source=source)


def _decoder_matrix(obj: Any) -> tuple[str, Tensor] | None:
    for name in ("W_dec_FD", "W_dec"):
        value = getattr(obj, name, None)
        if isinstance(value, Tensor) and value.ndim == 2:
            return name, value
    decoder = getattr(obj, "decoder", None)
    weight = getattr(decoder, "weight", None)
    if isinstance(weight, Tensor) and weight.ndim == 2:
        return "decoder.weight", weight
    return None


class DictionaryAdapter:
    """A duck-typed SAE (:class:`SAELike`) with the interface of :class:`Scorable`.

    ``encode`` and ``decode`` are the object's own (inputs cast to its decoder's dtype, codes
    and reconstructions returned as float32); ``active`` is the object's ``active`` if it has
    one, else the gate of a gated dictionary_learning dictionary, else ``codes != 0``.
    """

    def __init__(self, sae: Any, source: str = "") -> None:
        self.sae = sae
        self.meta = self._meta(source)
        self.W_dec_FD = self._decoder_directions()
        self._check_affine_decode()

    # --------------------------------------------------------------- what the scorer reads

    @property
    def d_sae(self) -> int:
        """Number of latents F."""
        return self.W_dec_FD.shape[0]

    @property
    def d_in(self) -> int:
        """Activation width D."""
        return self.W_dec_FD.shape[1]

    @property
    def device(self) -> torch.device:
        return self.W_dec_FD.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_dec_FD.dtype

    @property
    def architecture(self) -> str:
        """dictionary_learning's architecture for its classes, else the class name."""
        name = type(self.sae).__name__
        return _DL_ARCHITECTURES.get(name, name)

    @torch.no_grad()
    def encode(self, x_ND: Tensor) -> Tensor:
        """Codes ``f`` [N, F] of activations ``x`` [N, D], as float32."""
        return self.sae.encode(x_ND.to(self.dtype)).float()

    @torch.no_grad()
    def decode(self, codes_NF: Tensor) -> Tensor:
        """Reconstruction ``x̂`` [N, D] of codes ``f`` [N, F], as float32."""
        return self.sae.decode(codes_NF.to(self.dtype)).float()

    @torch.no_grad()
    def active(self, x_ND: Tensor) -> Tensor:
        """Which latents fire, bool [N, F] (see the class docstring)."""
        own = getattr(self.sae, "active", None)
        if callable(own):
            return own(x_ND.to(self.dtype)).bool()
        if "return_gate" in _parameters(self.sae.encode):
            _, gate_NF = self.sae.encode(x_ND.to(self.dtype), return_gate=True)
            return gate_NF > 0
        return self.encode(x_ND) != 0

    def to(self, device: str | torch.device | None = None) -> DictionaryAdapter:
        """This adapter if already on ``device``, else one around a moved copy of the SAE
        (the caller's object is not moved)."""
        if device is None or torch.device(device) == self.device:
            return self
        if not callable(getattr(self.sae, "to", None)):
            raise TypeError(
                f"{type(self.sae).__name__} is on {self.device} and has no `to` method to move "
                f"it to {device}; move it yourself or pass device={str(self.device)!r}"
            )
        return type(self)(copy.deepcopy(self.sae).to(device), source=self.meta.source)

    def content_hash(self) -> str:
        """First 16 hex chars of sha256 over the class name and every tensor of the SAE's
        state dict (or, without one, its decoder directions)."""
        digest = hashlib.sha256(type(self.sae).__name__.encode())
        state = getattr(self.sae, "state_dict", None)
        tensors = state() if callable(state) else {"W_dec_FD": self.W_dec_FD}
        for name in sorted(tensors):
            tensor = tensors[name].detach().to("cpu").contiguous()
            digest.update(f"|{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    # ---------------------------------------------------------------------------- set-up

    def _meta(self, source: str) -> SAEMeta:
        cfg = getattr(self.sae, "cfg", None)
        cfg = cfg if isinstance(cfg, dict) else {}
        meta = getattr(self.sae, "meta", None)
        if isinstance(meta, SAEMeta):
            return meta
        return SAEMeta(source=source or f"python:{type(self.sae).__name__}", cfg=cfg)

    def _decoder_directions(self) -> Tensor:
        """``W_dec_FD`` [F, D], oriented by the width of ``encode``'s codes."""
        name, matrix = _decoder_matrix(self.sae)
        matrix = matrix.detach()
        if name == "decoder.weight":  # nn.Linear(d_sae, d_in).weight is [D, F]
            return matrix.T
        rows, cols = matrix.shape
        if name == "W_dec_FD" or rows == cols:
            return matrix
        width = self._code_width(cols, matrix)
        if width == rows:
            return matrix
        if self._code_width(rows, matrix) == cols:
            return matrix.T
        raise ValueError(
            f"{type(self.sae).__name__}.{name} has shape {tuple(matrix.shape)} but encode's "
            f"codes do not have {rows} (or {cols}) latents"
        )

    def _code_width(self, d_in: int, like: Tensor) -> int | None:
        try:
            with torch.no_grad():
                return int(self.sae.encode(like.new_zeros(1, d_in)).shape[-1])
        except Exception:  # noqa: BLE001 - a width that does not fit raises anything
            return None

    def _probe_decode(self, codes_NF: Tensor) -> Tensor:
        return self.decode(codes_NF)

    def _check_affine_decode(self) -> None:
        """``ValueError`` unless ``decode(f) − decode(0) = f W_dec_FD`` on a random sparse
        code (relative tolerance 1e-4, looser for 16-bit weights)."""
        gen = torch.Generator().manual_seed(0)
        n, f = 4, self.d_sae
        codes_NF = torch.rand(n, f, generator=gen) * (torch.rand(n, f, generator=gen) < 0.25)
        codes_NF = torch.cat([torch.zeros(1, f), codes_NF]).to(self.device)
        recon_ND = self._probe_decode(codes_NF)
        got_ND = recon_ND[1:] - recon_ND[:1]
        want_ND = codes_NF[1:] @ self.W_dec_FD.float()
        scale = float(want_ND.abs().max().clamp(min=1e-6))
        rtol = max(1e-4, 8 * torch.finfo(self.dtype).eps)  # bf16 / fp16 decoders round more
        if not torch.allclose(got_ND, want_ND, rtol=rtol, atol=rtol * scale):
            error = float((got_ND - want_ND).abs().max())
            raise ValueError(
                f"{type(self.sae).__name__}.decode is not affine with its decoder directions "
                f"(decode(f) - decode(0) differs from f @ W_dec by {error:.3g}); saebench "
                f"edits activations along W_dec rows, so it needs decode(f) = f W_dec + b"
            )


class SAELensAdapter(DictionaryAdapter):
    """A ``sae_lens`` SAE whose codes and reconstructions are sae-lens's own.

    ``encode`` is ``sae.encode`` and ``decode`` is ``sae.decode``: input normalisation, TopK
    decoder-norm rescaling and ``hook_z`` reshaping are sae-lens's. For ``layer_norm`` and
    ``constant_norm_rescale`` SAEs, the per-input statistics sae-lens's ``encode`` leaves on
    the module are taken off it and kept with the codes they belong to, so ``decode`` of
    those codes undoes exactly their inputs' normalisation (whatever was encoded in between);
    decoding codes that did not come from ``encode`` raises. A training SAE (e.g.
    ``BatchTopKTrainingSAE``, whose codes depend on the batch) is scored in its inference form
    (a JumpReLU with its learnt threshold for batchtopk), built in memory the way sae-lens's
    ``save_inference_model`` writes it. Transcoders and temporal SAEs are refused.
    """

    def __init__(self, sae: Any, d_head: int | None = None, source: str = "") -> None:
        from sae_lens.saes.sae import TrainingSAE

        _refuse_non_autoencoders(sae)
        if isinstance(sae, TrainingSAE):
            sae = _inference_form(sae)
        self._norm = str(getattr(sae.cfg, "normalize_activations", "none") or "none")
        if self._norm in ("expected_average_only_in", "covariance_whitening"):
            logger.warning(
                "sae-lens applies no %s normalisation when it runs this SAE (it must be folded "
                "into the weights); scoring it as sae-lens runs it",
                self._norm,
            )
        self._hook_z = getattr(sae.cfg, "reshape_activations", "none") == "hook_z"
        self._d_head = d_head
        self._stats: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.saebench_view: SAE | None = _saebench_view(sae, source)
        """The same SAE as saebench's own reader represents it (None where it cannot): its
        metadata and content hash are the CLI's; codes still come from sae-lens."""
        super().__init__(sae, source=source)

    @property
    def architecture(self) -> str:
        if self.saebench_view is not None:
            return self.saebench_view.architecture
        return self.sae.cfg.architecture()

    @property
    def dtype(self) -> torch.dtype:
        return self.sae.dtype

    def content_hash(self) -> str:
        """The hash saebench gives the same weights loaded from disk where it can load them
        (:meth:`saebench.sae.SAE.content_hash`), else :meth:`DictionaryAdapter.content_hash`
        with the architecture and normalisation mixed in."""
        if self.saebench_view is not None:
            return self.saebench_view.content_hash()
        extra = f"{self.architecture}|{self._norm}|{self.sae.cfg.to_dict()!r}"
        return hashlib.sha256((super().content_hash() + extra).encode()).hexdigest()[:16]

    @torch.no_grad()
    def encode(self, x_ND: Tensor) -> Tensor:
        """sae-lens's codes ``f`` [N, F] of ``x`` [N, D] (float32)."""
        codes_NF = self.sae.encode(self._sae_input(x_ND)).float()
        stats = self._take_norm_state()
        if stats:
            self._stats[codes_NF] = stats
        return codes_NF

    @torch.no_grad()
    def decode(self, codes_NF: Tensor) -> Tensor:
        """sae-lens's reconstruction [N, D] of codes returned by :meth:`encode`."""
        if self._norm in _NORM_STATE:
            stats = self._stats.get(codes_NF)
            if stats is None:
                raise ValueError(
                    f"this SAE normalises each input ({self._norm}); decode needs the "
                    "statistics of the inputs the codes came from: decode codes returned by "
                    "encode"
                )
            self._put_norm_state(stats)
        try:
            recon = self.sae.decode(codes_NF.to(self.sae.dtype))
        finally:
            self._take_norm_state()
        return self._flat(recon).float()

    @torch.no_grad()
    def active(self, x_ND: Tensor) -> Tensor:
        """Nonzero codes; for gated SAEs the open gates, ``process_sae_in(x) W_enc + b_gate
        > 0`` (metrics.md §6)."""
        from sae_lens.saes.gated_sae import GatedSAE

        if isinstance(self.sae, GatedSAE):
            sae_in = self.sae.process_sae_in(self._sae_input(x_ND))
            self._take_norm_state()
            return (sae_in @ self.sae.W_enc + self.sae.b_gate) > 0
        return self.encode(x_ND) != 0

    def to(self, device: str | torch.device | None = None) -> SAELensAdapter:
        if device is None or torch.device(device) == self.device:
            return self
        moved = copy.deepcopy(self.sae).to(device)
        return SAELensAdapter(moved, d_head=self._d_head, source=self.meta.source)

    # ---------------------------------------------------------------------------- set-up

    def _meta(self, source: str) -> SAEMeta:
        if self.saebench_view is not None:
            return self.saebench_view.meta
        return saelens_meta(self.sae, source)

    def _decoder_directions(self) -> Tensor:
        W_dec_FD = self.sae.W_dec.detach()
        if getattr(self.sae.cfg, "rescale_acts_by_decoder_norm", False):
            W_dec_FD = W_dec_FD / W_dec_FD.norm(dim=-1, keepdim=True)
        return W_dec_FD

    def _probe_decode(self, codes_NF: Tensor) -> Tensor:
        if self._hook_z and getattr(self.sae, "d_head", None) is None:
            self.encode(codes_NF.new_zeros(1, self.sae.cfg.d_in))  # lets sae-lens learn d_head
        if self._norm in _NORM_STATE:  # unit statistics: the decoder in normalised units
            stats = {name: _NEUTRAL_NORM_STATE[name] for name in _NORM_STATE[self._norm]}
            self._stats[codes_NF] = stats
        return self.decode(codes_NF)

    # --------------------------------------------------------------------------- helpers

    def _sae_input(self, x_ND: Tensor) -> Tensor:
        """``x`` as sae-lens expects it: [N, H, d_head] for ``hook_z`` SAEs."""
        if not self._hook_z:
            return x_ND
        if self._d_head is None:
            raise ValueError(
                "this sae-lens SAE reads hook_z with all heads concatenated; pass the model "
                "so saebench knows d_head"
            )
        return x_ND.unflatten(-1, (-1, self._d_head))

    def _flat(self, recon: Tensor) -> Tensor:
        return recon.flatten(-2) if self._hook_z else recon

    def _take_norm_state(self) -> dict[str, Any]:
        """Remove and return the per-input statistics sae-lens left on the module."""
        stats = {}
        for name in _NORM_STATE.get(self._norm, ()):
            if name in self.sae.__dict__:
                stats[name] = self.sae.__dict__.pop(name)
        return stats

    def _put_norm_state(self, stats: dict[str, Any]) -> None:
        for name, value in stats.items():
            self.sae.__dict__[name] = value


def saelens_meta(sae: Any, source: str = "") -> SAEMeta:
    """Model, hook, head, processing and BOS of a sae-lens SAE, read from its config's
    metadata as :mod:`saebench.sae.formats` reads a ``cfg.json``."""
    cfg = sae.cfg.to_dict()
    metadata = cfg.get("metadata") or {}
    prepend_bos = metadata.get("prepend_bos")
    return SAEMeta(
        model_name=metadata.get("model_name"),
        hook_name=metadata.get("hook_name"),
        hook_head_index=metadata.get("hook_head_index"),
        model_from_pretrained_kwargs=metadata.get("model_from_pretrained_kwargs"),
        prepend_bos=prepend_bos in (None, True),
        source=source,
        cfg=_jsonable(cfg),
    )


def _saebench_view(sae: Any, source: str) -> SAE | None:
    """The sae-lens SAE as saebench's loader reads it (for metadata and a content hash that
    equals the CLI's), or None where saebench cannot represent it."""
    if _NORM_STATE.get(str(sae.cfg.normalize_activations)):
        return None
    try:
        return sae_from_saelens(sae, source=source)
    except (SAELoadError, ValueError):
        return None


def _inference_form(sae: Any) -> Any:
    """A training SAE's inference SAE, as ``save_inference_model`` writes it, in memory."""
    from sae_lens.saes.sae import SAE as SAELensSAE

    state = {name: tensor.detach().clone() for name, tensor in sae.state_dict().items()}
    sae.process_state_dict_for_saving_inference(state)
    inference = SAELensSAE.from_dict(sae.cfg.get_inference_sae_cfg_dict())
    inference.load_state_dict(state)
    return inference.to(sae.device)


def _refuse_non_autoencoders(sae: Any) -> None:
    import sae_lens.saes as saes

    transcoder, temporal = getattr(saes, "Transcoder", ()), getattr(saes, "TemporalSAE", ())
    if isinstance(sae, transcoder):
        raise TypeError(
            f"{type(sae).__name__} is a transcoder (it reads one hook and writes another); "
            "saebench scores autoencoders, which reconstruct the vector they read"
        )
    if isinstance(sae, temporal):
        raise TypeError(
            "TemporalSAE codes depend on the earlier positions of the sequence; saebench reads "
            "and edits one position at a time and cannot score it"
        )


def _parameters(fn: Any) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
