"""The GPT-2 Small path, offline: ``saebench run --sae gpt2-small-res-jb/<id> --model gpt2-small``
through the exact loading code (TransformerLens ``from_pretrained``, sae-lens
``SAE.from_pretrained``, the Hugging Face cache) with the hub offline.

The weights cannot be downloaded here, so the test lays out a local Hugging Face cache as a
download would leave it: ``models--gpt2`` holding a small random-weight GPT-2 written by
``transformers``' own ``save_pretrained`` (GPT-2's config keys and tokenizer, fewer and
narrower layers), and ``models--jbloom--GPT2-Small-SAEs-Reformatted`` holding one SAE of the
release in the real repository's layout (``<hook>/cfg.json`` in the pre-6.0 SAELens format,
``sae_weights.safetensors``, ``sparsity.safetensors``). The CLI runs in a subprocess whose
``HF_HUB_CACHE`` is that cache and whose ``HF_HUB_OFFLINE`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

pytest.importorskip("sae_lens")
transformers = pytest.importorskip("transformers")

RELEASE = "gpt2-small-res-jb"
REPO_ID = "jbloom/GPT2-Small-SAEs-Reformatted"
SAE_ID = "blocks.1.hook_resid_pre"
REVISION = "0123456789abcdef0123456789abcdef01234567"
N_LAYER, N_EMBD, N_HEAD, D_SAE = 2, 64, 4, 256


def snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in hub cache ``cache``, with refs/main naming it (the
    layout ``huggingface_hub`` reads offline)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    folder = repo / "snapshots" / REVISION
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_gpt2(cache: Path) -> None:
    """A random-weight GPT-2 (GPT-2's config with fewer, narrower layers) and GPT-2's
    tokenizer, saved by transformers under GPT-2's name."""
    from saebench.model import gpt2_tokenizer

    folder = snapshot(cache, "gpt2")
    torch.manual_seed(0)
    # the keys of GPT-2's own config.json (n_ctx among them, which TransformerLens reads)
    config = transformers.GPT2Config(n_layer=N_LAYER, n_embd=N_EMBD, n_head=N_HEAD, n_ctx=1024)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    tokenizer = gpt2_tokenizer()
    tokenizer.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["model_type"] == "gpt2" and saved["vocab_size"] == 50257
    assert saved["n_ctx"] == saved["n_positions"] == 1024


def write_release_sae(cache: Path) -> None:
    """One SAE of the release, as the real repository holds it."""
    from safetensors.torch import save_file

    folder = snapshot(cache, REPO_ID) / SAE_ID
    folder.mkdir(parents=True)
    cfg = {  # the pre-6.0 SAELens training config the release ships (its keys)
        "model_name": "gpt2-small",
        "hook_point": SAE_ID,
        "hook_point_layer": 1,
        "hook_point_head_index": None,
        "dataset_path": "Skylion007/openwebtext",
        "is_dataset_tokenized": False,
        "context_size": 128,
        "use_cached_activations": False,
        "d_in": N_EMBD,
        "d_sae": D_SAE,
        "b_dec_init_method": "geometric_median",
        "expansion_factor": D_SAE // N_EMBD,
        "apply_b_dec_to_input": True,
        "lr": 0.0004,
        "l1_coefficient": 8e-05,
        "train_batch_size": 4096,
        "device": "cpu",
        "seed": 42,
        "dtype": "torch.float32",
        "prepend_bos": True,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    gen = torch.Generator().manual_seed(1)
    w_dec = torch.randn(D_SAE, N_EMBD, generator=gen)
    w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
    weights = {
        "W_enc": w_dec.T.contiguous().clone(),
        "W_dec": w_dec,
        "b_enc": torch.full((D_SAE,), -0.1),
        "b_dec": torch.zeros(N_EMBD),
    }
    save_file(weights, str(folder / "sae_weights.safetensors"))
    save_file({"sparsity": torch.full((D_SAE,), -3.0)}, str(folder / "sparsity.safetensors"))


def test_gpt2_small_release_scores_offline_through_the_real_loaders(tmp_path):
    cache = tmp_path / "hf" / "hub"
    write_gpt2(cache)
    write_release_sae(cache)
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "SAEBENCH_RESULTS": str(tmp_path / "results"),
        "SAEBENCH_CACHE": str(tmp_path / "sb-cache"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("TRANSFORMERS_CACHE", None)
    args = ["--n-prompts", "20", "--n-fit-prompts", "200", "--k", "1,2", "--quiet"]
    result = subprocess.run(
        [sys.executable, "-m", "saebench", "run", "--sae", f"{RELEASE}/{SAE_ID}"]
        + ["--model", "gpt2-small", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Retry" not in result.stderr  # offline: no request was attempted
    row = pd.read_csv(tmp_path / "results" / "gpt2-small.csv").iloc[0]
    assert row["model"] == "gpt2-small" and row["hook"] == SAE_ID and row["position"] == "END"
    assert row["sae_id"] == f"{RELEASE}/{SAE_ID}" and int(row["d_sae"]) == D_SAE
    processing = json.loads(row["model_processing"])
    assert processing.get("center_writing_weights") is True  # the release's config override
    for metric in ("clean_logit_diff", "l0", "fvu", "sufficiency", "edit_accuracy_io_k2"):
        assert pd.notna(row[metric]), metric
    record = next((tmp_path / "results" / "runs").rglob("*.json"))
    versions = json.loads(record.read_text())["provenance"]["versions"]
    assert "sae-lens" in versions and "transformer_lens" in versions
