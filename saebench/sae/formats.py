"""Load SAEs from SAELens and dictionary_learning files, and save them in SAELens's format.

Formats read:

- **SAELens directory**: ``cfg.json`` + ``sae_weights.safetensors``. v6 configs (``architecture``,
  ``d_in``, ``d_sae``, ``metadata``) and older ones (top-level ``hook_name``/``hook_point``,
  ``activation_fn_str``, ``k`` in ``activation_fn_kwargs``, ...). sae_lens need not be installed.
- **dictionary_learning directory**: ``ae.pt`` (a state dict) + ``config.json`` (``trainer``:
  ``dict_class``, ``activation_dim``, ``dict_size``, ``k``, ``layer``, ``lm_name``,
  ``submodule_name``).
- **sae-lens release** ``"RELEASE/SAE_ID"`` through ``sae_lens.SAE.from_pretrained`` (needs
  sae_lens and the network, or a Hugging Face cache).

Foldable rescalings are folded into the weights so that codes and reconstructions equal what
the source library computes: sae-lens TopK ``rescale_acts_by_decoder_norm``
(``W_enc·n, b_enc·n, W_dec/n`` with ``n = ‖W_dec_j‖``), ``normalize_activations =
"expected_average_only_in"`` with a known scaling factor s (``W_enc·s, W_dec/s, b_dec/s``) and
old sae-lens ``finetuning_scaling_factor`` (``W_dec·s_j``). Any other input normalization raises.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from saebench.sae.base import ARCHITECTURES, SAE, SAEMeta
from saebench.validation.sae_config import config_problem, dl_config_problem, scaling_problem

logger = logging.getLogger(__name__)

SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
SAELENS_SCALER = "activation_scaler.json"
SAELENS_RUNNER_CFG = "runner_cfg.json"
"""The training run's config sae-lens writes next to a trained SAE (``training_tokens``, the
training SAE config with ``l1_coefficient``): read for the hyperparameters only."""
DL_WEIGHTS = "ae.pt"
DL_CFG = "config.json"
SAELENS_FORMAT_VERSION = "6.0.0"
"""Written as ``metadata.sae_lens_version``: marks the config as v6-format for sae-lens."""

NO_PROCESSING_KWARGS: dict[str, bool] = {
    "fold_ln": False,
    "center_writing_weights": False,
    "center_unembed": False,
    "fold_value_biases": False,
    "refactor_factored_attn_matrices": False,
}
"""TransformerLens's ``from_pretrained_no_processing`` flags: dictionary_learning trains on
the raw Hugging Face model, so its SAEs need activations from an unprocessed model."""

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_META_KEYS = ("model_name", "hook_name", "hook_head_index", "model_from_pretrained_kwargs")
_OLD_META_NAMES = {"hook_name": ("hook_point",), "hook_head_index": ("hook_point_head_index",)}
_MISSING = object()


class SAELoadError(Exception):
    """An SAE could not be loaded; the message names the file and the problem on one line."""


def _error(where: object, problem: str) -> SAELoadError:
    return SAELoadError(f"{where}: {' '.join(str(problem).split())}")


# --------------------------------------------------------------------------- dispatch


def load_sae(spec: str | Path, device: str = "cpu") -> SAE:
    """Load an SAE from a SAELens directory, a dictionary_learning directory (or a file in
    one) or a sae-lens release ``"RELEASE/SAE_ID"``; raise :class:`SAELoadError` otherwise."""
    path = Path(spec).expanduser()
    if path.is_file() and path.name in (SAELENS_CFG, SAELENS_WEIGHTS, DL_WEIGHTS, DL_CFG):
        path = path.parent
    if path.is_dir():
        if (path / SAELENS_CFG).is_file():
            return load_saelens_dir(path, device=device)
        if (path / DL_WEIGHTS).is_file():
            return load_dictionary_learning_dir(path, device=device)
        raise _error(
            path,
            f"directory has neither {SAELENS_CFG} (SAELens) nor {DL_WEIGHTS} (dictionary_learning)",
        )
    if path.exists():
        raise _error(path, "not an SAE directory (expected a directory with cfg.json or ae.pt)")
    text = str(spec)
    if isinstance(spec, str) and "/" in text.strip("/") and not text.startswith(("/", ".", "~")):
        return load_saelens_release(text, device=device)
    raise _error(spec, "no such file or directory (and not a RELEASE/SAE_ID string)")


# --------------------------------------------------------------------------- SAELens


def load_saelens_dir(path: str | Path, device: str = "cpu") -> SAE:
    """Load ``cfg.json`` + ``sae_weights.safetensors`` written by any sae-lens version."""
    path = Path(path)
    cfg_path, weights_path = path / SAELENS_CFG, path / SAELENS_WEIGHTS
    if not path.is_dir():
        raise _error(path, "no such directory")
    raw = _read_json(cfg_path)
    if (problem := config_problem(raw)) is not None:
        raise _error(cfg_path, problem)
    if not weights_path.is_file():
        raise _error(weights_path, "weights file missing")
    try:
        state = load_file(weights_path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _error(weights_path, f"unreadable safetensors file ({exc})") from exc
    scaling_factor = None
    if _normalization(raw) == "expected_average_only_in":
        scaler = _read_json(path / SAELENS_SCALER) if (path / SAELENS_SCALER).is_file() else {}
        scaling_factor = scaler.get("scaling_factor")
        if (problem := scaling_problem(scaling_factor)) is not None:
            raise _error(path / SAELENS_SCALER, f"scaling_factor {problem}")
    sae = _sae_from_saelens_parts(
        raw, state, where=weights_path, source=str(path), device=device,
        scaling_factor=scaling_factor,
    )  # fmt: skip
    runner_path = path / SAELENS_RUNNER_CFG
    if runner_path.is_file():
        try:
            sae.meta.training_cfg = _read_json(runner_path)
        except SAELoadError as exc:  # provenance only: the SAE itself loaded fine
            logger.warning("%s", exc)
    return sae


def load_saelens_release(spec: str, device: str = "cpu") -> SAE:
    """Load ``"RELEASE/SAE_ID"`` through ``sae_lens.SAE.from_pretrained`` (downloads; from
    the local cache only, at once, when the hub is offline or unreachable)."""
    from saebench.offline import OfflineError, check_release

    try:
        check_release(spec)
    except OfflineError as exc:
        raise _error(spec, str(exc).removeprefix(f"{spec}: ")) from exc
    try:
        import sae_lens
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    except ImportError as exc:
        raise _error(
            spec, "loading a sae-lens release needs sae_lens: pip install sae-lens"
        ) from exc
    directory = get_pretrained_saes_directory()
    parts = spec.split("/")
    splits = [("/".join(parts[:i]), "/".join(parts[i:])) for i in range(1, len(parts))]
    known = [(release, sae_id) for release, sae_id in splits if release in directory]
    if not known:
        raise _error(
            spec,
            f"not an existing path, and {parts[0]!r} is not a sae_lens release "
            "(see sae_lens.loading.pretrained_saes_directory)",
        )
    release, sae_id = known[0]
    valid_ids = list(directory[release].saes_map)
    if sae_id not in valid_ids:
        raise _error(spec, f"release {release!r} has no SAE {sae_id!r}; e.g. {valid_ids[:3]}")
    try:
        from saebench.model import _offline_unless_hub_reachable

        with _offline_unless_hub_reachable():
            sl_sae = sae_lens.SAE.from_pretrained(release, sae_id, device=device)
    except Exception as exc:  # network, cache and format errors all end here
        raise _error(
            spec,
            f"sae_lens could not download or load it ({type(exc).__name__}: {exc}). "
            "A release cannot be downloaded offline: fetch it where there is internet, save it "
            "with saebench.sae.formats.save_saelens(load_sae(...), DIR) and pass DIR instead",
        ) from exc
    sae = sae_from_saelens(sl_sae, source=spec)
    sae.meta.sae_lens_release, sae.meta.sae_lens_id = release, sae_id
    return sae


def sae_from_saelens(sl_sae: Any, source: str = "") -> SAE:
    """Convert an in-memory ``sae_lens.SAE`` (v6) to an :class:`SAE`."""
    cfg = sl_sae.cfg.to_dict()
    state = {name: tensor.detach() for name, tensor in sl_sae.state_dict().items()}
    device = str(next(iter(state.values())).device)
    return _sae_from_saelens_parts(
        cfg, state, where=source or "sae_lens.SAE", source=source, device=device
    )


def _normalization(raw: dict) -> str:
    value = raw.get("normalize_activations", "none")
    if value is None or value is False:
        return "none"
    if value is True:
        return "expected_average_only_in"
    return str(value)


def _meta_value(raw: dict, key: str) -> Any:
    """The first of metadata[key], raw[key], raw[old names of key] present (even if None)."""
    metadata = raw.get("metadata") or {}
    for source in (metadata, raw):
        for name in (key, *_OLD_META_NAMES.get(key, ())):
            if name in source:
                return source[name]
    return _MISSING


def _saelens_architecture(raw: dict, where: object) -> tuple[str, int | None]:
    """Architecture name and k from a v6 or older sae-lens config."""
    architecture = raw.get("architecture") or "standard"
    activation = raw.get("activation_fn", raw.get("activation_fn_str"))
    kwargs = raw.get("activation_fn_kwargs") or {}
    k = raw.get("k") if raw.get("k") is not None else kwargs.get("k")
    if architecture == "standard" and activation == "topk":
        architecture = "topk"
    elif architecture == "standard" and activation not in (None, "relu"):
        raise _error(where, f"activation function {activation!r} is not supported")
    if architecture == "matryoshka_batchtopk":  # a sae-lens training checkpoint
        architecture = "batchtopk"
    metadata = raw.get("metadata") or {}
    if architecture in ("jumprelu", "topk") and metadata.get("training_architecture") in (
        "batchtopk",
        "matryoshka_batchtopk",
    ):
        details = metadata.get("training_architecture_details") or {}
        architecture = "batchtopk"
        k = details.get("k") if k is None else k
    if architecture not in ARCHITECTURES:
        raise _error(
            where, f"architecture {architecture!r} is not supported (supported: {ARCHITECTURES})"
        )
    if k is not None:
        k = int(k) if float(k).is_integer() else None
    return architecture, k


def _sae_from_saelens_parts(
    raw: dict,
    state: dict[str, Tensor],
    where: object,
    source: str,
    device: str,
    scaling_factor: float | None = None,
) -> SAE:
    """Build an :class:`SAE` from a sae-lens config dict and state dict (sae-lens key names)."""
    if (problem := config_problem(raw)) is not None:
        raise _error(where.with_name(SAELENS_CFG) if isinstance(where, Path) else where, problem)
    architecture, k = _saelens_architecture(raw, where)
    dtype_name = str(raw.get("dtype") or "float32").removeprefix("torch.")
    if dtype_name not in _DTYPES:
        raise _error(where, f"dtype {raw.get('dtype')!r} is not supported")
    state = {name: tensor.to(_DTYPES[dtype_name]) for name, tensor in state.items()}

    normalization = _normalization(raw)
    # the config states the normalisation: name cfg.json (beside the weights), not the weights
    cfg_where = where.with_name(SAELENS_CFG) if isinstance(where, Path) else where
    if normalization == "expected_average_only_in" and scaling_factor is None:
        raise _error(
            cfg_where,
            "normalize_activations='expected_average_only_in' but no scaling factor is known "
            f"({SAELENS_SCALER} missing); fold it into the weights first",
        )
    if normalization not in ("none", "expected_average_only_in"):
        raise _error(cfg_where, f"normalize_activations={normalization!r} is not supported")
    if raw.get("reshape_activations", "none") not in ("none", "hook_z"):
        raise _error(cfg_where, f"reshape_activations={raw['reshape_activations']!r} not supported")

    def need(name: str) -> Tensor:
        if name not in state:
            raise _error(where, f"weight {name!r} missing (has {sorted(state)})")
        return state.pop(name)

    W_enc_DF, W_dec_FD, b_dec_D = need("W_enc"), need("W_dec"), need("b_dec")
    _check_widths(W_enc_DF, W_dec_FD, where)
    for key, size in (("d_in", W_enc_DF.shape[0]), ("d_sae", W_enc_DF.shape[1])):
        if raw.get(key) is not None and raw[key] != size:
            raise _error(where, f"config says {key}={raw[key]} but the weights have {size}")
    extra: dict[str, Tensor | None] = {}
    if architecture == "gated":
        b_enc_F = need("b_gate")
        extra = {"r_mag_F": need("r_mag"), "b_mag_F": need("b_mag")}
    else:
        b_enc_F = need("b_enc")
    if "threshold" not in state and "log_threshold" in state:  # old jumprelu checkpoints
        state["threshold"] = state.pop("log_threshold").exp()
    if architecture == "batchtopk" and "threshold" not in state and "topk_threshold" in state:
        state["threshold"] = state.pop("topk_threshold").to(b_enc_F.dtype).expand_as(b_enc_F)
    if architecture == "jumprelu" or (architecture == "batchtopk" and "threshold" in state):
        extra["threshold_F"] = need("threshold").clone()

    if "scaling_factor" in state:  # sae-lens < 6 fine-tuning scale: decode(f · s)
        scale_F = state.pop("scaling_factor")
        if not torch.allclose(scale_F, torch.ones_like(scale_F)):
            if not raw.get("finetuning_scaling_factor"):
                raise _error(where, "scaling_factor present but finetuning_scaling_factor False")
            W_dec_FD = W_dec_FD * scale_F[:, None]
    if architecture in ("topk", "batchtopk") and raw.get("rescale_acts_by_decoder_norm"):
        # codes of relu(pre · n) with decode (f / n) W_dec: fold n = ‖W_dec_j‖ (thresholds
        # of a training checkpoint are already in units of pre · n)
        norm_F = W_dec_FD.norm(dim=-1)
        W_enc_DF, b_enc_F, W_dec_FD = (
            W_enc_DF * norm_F,
            b_enc_F * norm_F,
            W_dec_FD / norm_F[:, None],
        )
    if scaling_factor is not None:
        W_enc_DF, W_dec_FD, b_dec_D = (
            W_enc_DF * scaling_factor,
            W_dec_FD / scaling_factor,
            b_dec_D / scaling_factor,
        )
    if state:
        logger.warning("%s: ignoring unused weights %s", where, sorted(state))

    kwargs_value = _meta_value(raw, "model_from_pretrained_kwargs")
    meta = SAEMeta(
        model_name=_none_if_missing(_meta_value(raw, "model_name")),
        hook_name=_none_if_missing(_meta_value(raw, "hook_name")),
        hook_head_index=_none_if_missing(_meta_value(raw, "hook_head_index")),
        model_from_pretrained_kwargs=_none_if_missing(kwargs_value),
        prepend_bos=bool(_none_if_missing(_meta_value(raw, "prepend_bos")) in (None, True)),
        source=source,
        cfg=_jsonable(raw),
    )
    return _build(
        where,
        device,
        architecture=architecture,
        W_enc_DF=W_enc_DF,
        W_dec_FD=W_dec_FD,
        b_enc_F=b_enc_F,
        b_dec_D=b_dec_D,
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        k=k if architecture in ("topk", "batchtopk") else None,
        meta=meta,
        **extra,
    )


def save_saelens(sae: SAE, path: str | Path) -> Path:
    """Write ``sae`` as a v6 SAELens directory (``cfg.json`` + ``sae_weights.safetensors``)
    that ``sae_lens.SAE.load_from_disk`` loads; atomic (temp dir, then rename).

    A thresholded batchtopk is written as sae-lens writes one, a ``jumprelu`` with
    ``metadata.training_architecture = "batchtopk"``; a batchtopk without threshold as a
    ``topk`` with the same tag. Both load back as batchtopk here. Overwrites an existing
    SAELens directory; refuses to replace any other non-empty directory.
    """
    path = Path(path)
    if path.exists() and not (path.is_dir() and (path / SAELENS_CFG).is_file()):
        if not path.is_dir() or any(path.iterdir()):
            raise FileExistsError(f"{path}: exists and is not a SAELens directory; not replacing")
    cfg, state = _saelens_cfg_and_state(sae)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, 0o755)
        save_file(state, tmp / SAELENS_WEIGHTS)
        (tmp / SAELENS_CFG).write_text(json.dumps(cfg, indent=2) + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _saelens_cfg_and_state(sae: SAE) -> tuple[dict, dict[str, Tensor]]:
    """The v6 config dict and sae-lens-named state dict for ``sae``."""
    sae.validate()
    state = {"W_enc": sae.W_enc_DF, "W_dec": sae.W_dec_FD, "b_dec": sae.b_dec_D}
    architecture = sae.architecture
    metadata: dict[str, Any] = {}
    raw_metadata = sae.meta.cfg.get("metadata") if isinstance(sae.meta.cfg, dict) else None
    if isinstance(raw_metadata, dict):
        metadata.update(_jsonable(raw_metadata))
    if sae.architecture == "batchtopk":
        architecture = "jumprelu" if sae.threshold_F is not None else "topk"
        metadata["training_architecture"] = "batchtopk"
        details = metadata.get("training_architecture_details")
        metadata["training_architecture_details"] = {
            **(details if isinstance(details, dict) else {}),
            "k": sae.k,
        }
    elif metadata.get("training_architecture") in ("batchtopk", "matryoshka_batchtopk"):
        metadata.pop("training_architecture")  # no longer true of what is written
    if architecture == "gated":
        state.update(b_gate=sae.b_enc_F, r_mag=sae.r_mag_F, b_mag=sae.b_mag_F)
    else:
        state["b_enc"] = sae.b_enc_F
    if architecture == "jumprelu":
        state["threshold"] = sae.threshold_F
    dtype_name = {v: k for k, v in _DTYPES.items()}.get(sae.dtype, "float32")
    metadata.update(
        sae_lens_version=SAELENS_FORMAT_VERSION,
        model_name=sae.meta.model_name,
        hook_name=sae.meta.hook_name,
        hook_head_index=sae.meta.hook_head_index,
        prepend_bos=sae.meta.prepend_bos,
        saved_by="saebench",
        source=sae.meta.source,
        content_hash=sae.content_hash(),
    )
    metadata.pop("model_from_pretrained_kwargs", None)
    if sae.meta.model_from_pretrained_kwargs is not None:
        metadata["model_from_pretrained_kwargs"] = dict(sae.meta.model_from_pretrained_kwargs)
    reshape = sae.meta.cfg.get("reshape_activations") if isinstance(sae.meta.cfg, dict) else None
    cfg: dict[str, Any] = {
        "architecture": architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": dtype_name,
        "device": "cpu",
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": reshape if reshape in ("none", "hook_z") else "none",
    }
    if architecture == "topk":
        cfg.update(k=sae.k, rescale_acts_by_decoder_norm=False)
    cfg["metadata"] = metadata
    state = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in state.items()}
    return cfg, state


# --------------------------------------------------------------------------- dictionary_learning

_DL_CLASSES = {
    "AutoEncoder": "standard",
    "AutoEncoderNew": "standard",
    "GatedAutoEncoder": "gated",
    "AutoEncoderTopK": "topk",
    "BatchTopKSAE": "batchtopk",
    "MatryoshkaBatchTopKSAE": "batchtopk",
    "JumpReluAutoEncoder": "jumprelu",
}


def load_dictionary_learning_dir(path: str | Path, device: str = "cpu") -> SAE:
    """Load ``ae.pt`` (+ ``config.json``) written by saprmarks/dictionary_learning.

    Per ``dict_class`` (read from the trainer config, else guessed from the keys), with
    PyTorch's ``nn.Linear`` storing ``encoder.weight`` as [F, D] and ``decoder.weight`` as
    [D, F]:

    - AutoEncoder: ``relu(enc(x − bias))``; ``b_dec = bias``.
    - AutoEncoderNew: ``relu(enc(x))``, ``x̂ = dec(f)`` with ``b_dec = decoder.bias``, no
      input centring.
    - GatedAutoEncoder: ``b_dec = decoder_bias``, gate bias ``gate_bias``, ``r_mag``,
      ``mag_bias``.
    - AutoEncoderTopK: per-input top-k of ``relu(enc(x − b_dec))``.
    - BatchTopKSAE / MatryoshkaBatchTopKSAE: ``relu(pre)·[relu(pre) > threshold]`` when the
      stored scalar threshold is ≥ 0 (their default inference rule); a threshold < 0 means
      it was never set, and per-input top-k with the stored k is used (logged).
    - JumpReluAutoEncoder: ``W_enc``, ``b_enc``, ``W_dec``, ``b_dec``, ``threshold``, no
      input centring.

    Weights are taken as stored (no decoder-norm renormalisation). The model processing is
    set to TransformerLens's no-processing flags (:data:`NO_PROCESSING_KWARGS`), since
    dictionary_learning records activations of the raw Hugging Face model.
    """
    path = Path(path)
    ae_path, cfg_path = path / DL_WEIGHTS, path / DL_CFG
    if not path.is_dir():
        raise _error(path, "no such directory")
    if not ae_path.is_file():
        raise _error(ae_path, "weights file missing")
    raw = _read_json(cfg_path) if cfg_path.is_file() else {}
    if (problem := dl_config_problem(raw)) is not None:
        raise _error(cfg_path, problem)
    try:
        state = torch.load(ae_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe pickles
        raise _error(ae_path, f"unreadable state dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise _error(ae_path, "not a state dict of tensors")
    state = dict(state)
    trainer = raw.get("trainer") if isinstance(raw.get("trainer"), dict) else {}
    dict_class = _dl_class_name(trainer.get("dict_class")) or _guess_dl_class(state)
    if dict_class not in _DL_CLASSES:
        raise _error(
            ae_path,
            f"dictionary_learning class {dict_class!r} not supported ({sorted(_DL_CLASSES)})",
        )
    architecture = _DL_CLASSES[dict_class]

    def need(*names: str) -> Tensor:
        for name in names:
            if name in state:
                return state.pop(name).float()
        raise _error(ae_path, f"{dict_class} weight {names[0]!r} missing (has {sorted(state)})")

    W_enc_DF = need("W_enc") if "W_enc" in state else need("encoder.weight").T
    W_dec_FD = need("W_dec") if "W_dec" in state else need("decoder.weight").T
    _check_widths(W_enc_DF, W_dec_FD, ae_path)
    for key, size in (("activation_dim", W_enc_DF.shape[0]), ("dict_size", W_enc_DF.shape[1])):
        if trainer.get(key) is not None and trainer[key] != size:
            raise _error(ae_path, f"config.json says {key}={trainer[key]} but weights have {size}")
    apply_b_dec = dict_class not in ("AutoEncoderNew", "JumpReluAutoEncoder")
    extra: dict[str, Any] = {}
    if dict_class == "AutoEncoder":
        b_enc_F, b_dec_D = need("encoder.bias"), need("bias")
    elif dict_class == "AutoEncoderNew":
        b_enc_F, b_dec_D = need("encoder.bias"), need("decoder.bias")
    elif dict_class == "GatedAutoEncoder":
        b_enc_F, b_dec_D = need("gate_bias"), need("decoder_bias")
        extra = {"r_mag_F": need("r_mag"), "b_mag_F": need("mag_bias")}
    else:
        b_enc_F, b_dec_D = need("b_enc", "encoder.bias"), need("b_dec")
    if architecture == "jumprelu":
        extra["threshold_F"] = need("threshold")
    if architecture in ("topk", "batchtopk"):
        k = state.pop("k").item() if "k" in state else trainer.get("k")
        if k is None and architecture == "topk":
            raise _error(ae_path, f"{dict_class} needs k (neither in ae.pt nor config.json)")
        extra["k"] = None if k is None else int(k)
        threshold = state.pop("threshold", None)
        if architecture == "batchtopk":
            if threshold is not None and float(threshold.max()) >= 0:
                extra["threshold_F"] = threshold.float().expand(W_enc_DF.shape[1]).clone()
            else:
                logger.warning("%s: BatchTopK threshold unset; using per-input top-k", ae_path)
    for ignored in ("group_sizes",):
        state.pop(ignored, None)
    if state:
        logger.warning("%s: ignoring unused weights %s", ae_path, sorted(state))

    meta = SAEMeta(
        model_name=trainer.get("lm_name"),
        hook_name=dictionary_learning_hook_name(
            trainer.get("submodule_name"), trainer.get("layer"), _buffer_io(raw)
        ),
        hook_head_index=None,
        model_from_pretrained_kwargs=dict(NO_PROCESSING_KWARGS),
        source=str(path),
        cfg=_jsonable(raw),
    )
    return _build(
        ae_path,
        device,
        architecture=architecture,
        W_enc_DF=W_enc_DF,
        W_dec_FD=W_dec_FD,
        b_enc_F=b_enc_F,
        b_dec_D=b_dec_D,
        apply_b_dec_to_input=apply_b_dec,
        meta=meta,
        **extra,
    )


def dictionary_learning_hook_name(
    submodule_name: str | None, layer: int | None, io: str = "out"
) -> str | None:
    """TransformerLens hook for a dictionary_learning submodule, or None if unknown.

    >>> dictionary_learning_hook_name("resid_post_layer_3", 3)
    'blocks.3.hook_resid_post'
    >>> dictionary_learning_hook_name("attn_out_layer2", None)
    'blocks.2.hook_attn_out'
    >>> dictionary_learning_hook_name("resid_post_layer_3", 3, io="in")
    'blocks.3.hook_resid_pre'
    """
    if not submodule_name:
        return None
    name = submodule_name.lower()
    if layer is None:
        digits = re.findall(r"\d+", name)
        if not digits:
            return None
        layer = int(digits[-1])
    kinds = (
        ("resid_pre", "hook_resid_pre"),
        ("resid_mid", "hook_resid_mid"),
        ("resid", "hook_resid_post"),
        ("attn", "hook_attn_out"),
        ("mlp", "hook_mlp_out"),
    )
    for marker, hook in kinds:
        if marker in name:
            if io == "in":  # the input of a layer is the previous residual; else unknown
                if hook != "hook_resid_post":
                    return None
                hook = "hook_resid_pre"
            return f"blocks.{int(layer)}.{hook}"
    return None


def _buffer_io(raw: dict) -> str:
    buffer = raw.get("buffer") if isinstance(raw.get("buffer"), dict) else {}
    return str(buffer.get("io", "out"))


def _dl_class_name(value: Any) -> str | None:
    """``"AutoEncoderTopK"`` from a name or a ``"<class '...AutoEncoderTopK'>"`` string."""
    if not value:
        return None
    names = re.findall(r"[A-Za-z_]\w*", str(value))
    return names[-1] if names else None


def _guess_dl_class(state: dict[str, Tensor]) -> str:
    if "r_mag" in state:
        return "GatedAutoEncoder"
    if "W_enc" in state:
        return "MatryoshkaBatchTopKSAE" if "group_sizes" in state else "JumpReluAutoEncoder"
    if "k" in state:
        return "AutoEncoderTopK"
    if "decoder.bias" in state:
        return "AutoEncoderNew"
    return "AutoEncoder"


# --------------------------------------------------------------------------- hyperparameters

HYPERPARAMETERS: tuple[str, ...] = (
    "architecture",
    "d_in",
    "d_sae",
    "k",
    "l1_coefficient",
    "training_tokens",
    "sae_lens_release",
    "sae_lens_id",
)
"""What :func:`hyperparameters` reports (None where the SAE's config does not say)."""

_L1_KEYS = ("l1_coefficient", "l1_penalty", "sparsity_penalty", "l1")


def hyperparameters(sae: SAE) -> dict[str, Any]:
    """The SAE's hyperparameters, from its weights and wherever its configs state them.

    ``architecture``, ``d_in``, ``d_sae`` and ``k`` from the SAE itself (``k`` of a topk or
    batchtopk SAE, else a ``k`` the config states); ``l1_coefficient`` and ``training_tokens``
    from, in order: sae-lens's ``runner_cfg.json`` (``training_tokens``,
    ``sae.l1_coefficient``), an old sae-lens ``cfg.json`` (top level), saebench's own
    ``metadata.saebench_training`` (``l1``; tokens = ``steps × batch_size`` activation
    vectors) and dictionary_learning's ``config.json`` (``trainer.l1_penalty`` or
    ``sparsity_penalty``; tokens = steps, or a checkpoint's step, × ``buffer.out_batch_size``);
    ``sae_lens_release`` and ``sae_lens_id`` of an SAE loaded from a release.

    >>> import torch
    >>> sae = SAE("standard", torch.eye(2), torch.eye(2), torch.zeros(2), torch.zeros(2),
    ...           meta=SAEMeta(cfg={"trainer": {"l1_penalty": 0.1, "steps": 10},
    ...                             "buffer": {"out_batch_size": 8}}))
    >>> hyper = hyperparameters(sae)
    >>> hyper["l1_coefficient"], hyper["training_tokens"], hyper["k"], hyper["d_in"]
    (0.1, 80, None, 2)
    """
    cfg = sae.meta.cfg if isinstance(sae.meta.cfg, dict) else {}
    runner = sae.meta.training_cfg if isinstance(sae.meta.training_cfg, dict) else {}
    metadata = _dict(cfg.get("metadata"))
    ours = _dict(metadata.get("saebench_training"))
    trainer, buffer = _dict(cfg.get("trainer")), _dict(cfg.get("buffer"))
    sources = (_dict(runner.get("sae")), runner, cfg, ours, trainer)
    k = sae.k
    if k is None:
        k = _first_number(sources, ("k",), int)
    l1 = _first_number(sources, _L1_KEYS, float)
    tokens = _first_number((runner, cfg), ("training_tokens",), int)
    if tokens is None:
        steps, batch = _number(ours.get("steps"), int), _number(ours.get("batch_size"), int)
        if steps is None or batch is None:
            steps = sae.meta.training_step
            if steps is None:
                steps = _number(trainer.get("steps"), int)
            batch = _number(buffer.get("out_batch_size"), int)
        tokens = None if steps is None or batch is None else steps * batch
    return {
        "architecture": sae.architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "k": k,
        "l1_coefficient": l1,
        "training_tokens": tokens,
        "sae_lens_release": sae.meta.sae_lens_release,
        "sae_lens_id": sae.meta.sae_lens_id,
    }


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` (int or float) when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if kind is int:
        return int(value) if float(value).is_integer() else None
    return float(value) if value == value else None


def _first_number(sources: tuple[dict, ...], keys: tuple[str, ...], kind: type) -> Any:
    for source in sources:
        for key in keys:
            value = _number(source.get(key), kind)
            if value is not None:
                return value
    return None


# --------------------------------------------------------------------------- shared helpers


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise _error(path, "config file missing")
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _error(path, f"unreadable JSON ({exc})") from exc
    except RecursionError as exc:
        raise _error(path, "unreadable JSON (nested too deeply)") from exc
    if not isinstance(value, dict):
        raise _error(path, "config is not a JSON object")
    return value


def _check_widths(W_enc_DF: Tensor, W_dec_FD: Tensor, where: object) -> None:
    if W_enc_DF.ndim != 2 or W_dec_FD.ndim != 2 or W_enc_DF.shape != W_dec_FD.T.shape:
        raise _error(
            where,
            f"W_enc has shape {tuple(W_enc_DF.shape)} [d_in, d_sae] but W_dec has shape "
            f"{tuple(W_dec_FD.shape)} (expected [d_sae, d_in])",
        )


def _build(where: object, device: str, **fields: Any) -> SAE:
    """``SAE(**fields)`` on ``device``, half-precision weights (float16, bfloat16) made float32
    (the model's activations are float32); a ValueError from validation becomes
    SAELoadError."""
    for name, value in fields.items():
        if isinstance(value, Tensor):
            if value.dtype in (torch.float16, torch.bfloat16):  # computed in float32
                value = value.float()
            fields[name] = value.to(device)
    try:
        return SAE(**fields)
    except ValueError as exc:
        raise _error(where, str(exc)) from exc


def _none_if_missing(value: Any) -> Any:
    return None if value is _MISSING else value


def _jsonable(value: Any) -> Any:
    """A JSON round-trip of ``value`` (non-JSON leaves become strings)."""
    return json.loads(json.dumps(value, default=str))
