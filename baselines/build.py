"""Build one baseline dictionary at a node and save it as a SAELens directory.

``kind`` is an SAE architecture trained by :func:`saebench_baselines.train_sae` (``standard``,
``gated``, ``topk``, ``batchtopk``), ``frozen_decoder`` (a standard SAE whose decoder stays at
its random initialisation), ``pca`` or ``random``. The saved ``cfg.json`` records, under
``metadata``, the model, hook, head, data source and the kind, which ``saebench run`` reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from saebench.model import embedded_model_names
from saebench.node import Node
from saebench.sae import SAEMeta
from saebench.sae.formats import save_saelens
from saebench.task import load_task
from saebench_baselines.data import general_activations, task_activations
from saebench_baselines.reference import pca_sae, random_sae
from saebench_baselines.trainers import train_sae

TRAINED_KINDS = ("standard", "gated", "topk", "batchtopk")
KINDS = (*TRAINED_KINDS, "frozen_decoder", "pca", "random")


@dataclass
class BuildSpec:
    """What to build and on which data."""

    kind: str
    hook: str
    head: int | None = None
    position: str = "END"
    data: str = "task"
    """``task`` (the task's train split) or ``general`` (non-task text)."""
    d_sae: int = 512
    l1: float | None = None
    k: int | None = None
    steps: int | None = None
    lr: float = 1e-3
    batch_size: int = 512
    seed: int = 0
    n_prompts: int = 20000
    """Task prompts (data=task) or texts (data=general) to read activations from."""
    all_positions: bool = False
    task: str = "ioi"


def training_activations(model, model_name: str, spec: BuildSpec, progress: bool = True):
    node = Node(spec.hook, spec.position, spec.head)
    node.check(model)
    if spec.data == "task":
        task = load_task(
            spec.task, tokenizer=model.tokenizer, prepend_bos=bool(model.cfg.default_prepend_bos)
        )
        return task_activations(
            model,
            task,
            node,
            spec.n_prompts,
            seed=spec.seed,
            all_positions=spec.all_positions,
            progress=progress,
        )
    if spec.data == "general":
        return general_activations(
            model, model_name, node, spec.n_prompts, seed=spec.seed, progress=progress
        )
    raise ValueError(f"--data must be 'task' or 'general', got {spec.data!r}")


def build(
    model,
    model_name: str,
    spec: BuildSpec,
    out: Path,
    acts_ND=None,
    processing: dict | None = None,
    name: str | None = None,
    progress: bool = True,
) -> tuple[Path, dict]:
    """Build the dictionary ``spec`` describes, save it to ``out``; returns (path, report)."""
    if spec.kind not in KINDS:
        raise ValueError(f"unknown kind {spec.kind!r}; one of {', '.join(KINDS)}")
    if acts_ND is None:
        acts_ND = training_activations(model, model_name, spec, progress)
    meta = SAEMeta(
        model_name=model_name,
        hook_name=spec.hook,
        hook_head_index=spec.head,
        model_from_pretrained_kwargs=None if model_name in embedded_model_names() else processing,
        cfg={
            "metadata": {
                "sae_name": name or Path(out).name,
                "saebench_kind": spec.kind,
                "data_source": spec.data if spec.kind not in ("random",) else "",
                "training_task": spec.task if spec.data == "task" and spec.kind != "random" else "",
                "training_position": "all" if spec.all_positions else spec.position,
            }
        },
    )
    report: dict = {"n_train": int(acts_ND.shape[0])}
    if spec.kind == "pca":
        sae = pca_sae(acts_ND, n_components=min(spec.d_sae // 2, acts_ND.shape[1]))
    elif spec.kind == "random":
        sae = random_sae(acts_ND.shape[1], spec.d_sae, seed=spec.seed, acts_ND=acts_ND)
    else:
        architecture = "standard" if spec.kind == "frozen_decoder" else spec.kind
        sae, report = train_sae(
            acts_ND,
            architecture,
            spec.d_sae,
            l1=spec.l1,
            k=spec.k,
            seed=spec.seed,
            steps=spec.steps,
            batch_size=spec.batch_size,
            lr=spec.lr,
            progress=progress,
            frozen_decoder=spec.kind == "frozen_decoder",
            meta=meta,
        )
        report = dict(report, n_train=int(acts_ND.shape[0]))
    if spec.kind in ("pca", "random"):  # train_sae already carries ``meta`` (plus its config)
        sae.meta = meta
    path = save_saelens(sae.to("cpu", torch.float32), out)
    report_json = json.dumps(report, default=lambda o: o.tolist() if torch.is_tensor(o) else str(o))
    (Path(path) / "training.json").write_text(report_json + "\n")
    return Path(path), report
