"""Measure the shipped tiny-ioi: load time and its scores on every evaluation set (``measure``).

Usage: ``python benchmarks/measure_tiny_ioi.py [MODEL_DIR]`` (default: the shipped model).
Prints one JSON record (the ``metrics`` of ``training.json`` plus ``load_seconds``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from saebench.model import EMBEDDED_MODELS_DIR, build_model, load_model
from saebench.tiny_ioi.evaluate import measure


def load_dir(root: Path):
    """A model saved by ``saebench model train tiny-ioi --out ROOT``."""
    from safetensors.torch import load_file

    from saebench.tiny_ioi.tokenizer import hf_tokenizer

    cfg = json.loads((root / "config.json").read_text())
    cfg.pop("special_tokens", None)
    tokenizer = hf_tokenizer(str(root / "tokenizer.json"))
    return build_model(cfg, tokenizer, load_file(str(root / "model.safetensors")))


def main() -> None:
    torch.set_num_threads(2)
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else EMBEDDED_MODELS_DIR / "tiny-ioi"
    load_model("tiny-ioi") if root == EMBEDDED_MODELS_DIR / "tiny-ioi" else load_dir(root)
    start = time.perf_counter()
    model = load_model("tiny-ioi") if root == EMBEDDED_MODELS_DIR / "tiny-ioi" else load_dir(root)
    load_seconds = time.perf_counter() - start
    record = {"model_dir": str(root), "load_seconds": round(load_seconds, 3), **measure(model)}
    sys.stdout.write(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
