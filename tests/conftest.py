"""Shared fixtures: models that need no download.

The suite runs with one torch thread: on the shared 2-core CPU it is measured faster than
torch's default (two threads), whose synchronisation costs more than the small matrix
products of these models gain (README, "Threads").
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def random_model():
    """A random-init 2-layer GPT-2-architecture model with GPT-2's real tokenizer."""
    from saebench.model import random_gpt2

    return random_gpt2(seed=0)


@pytest.fixture(scope="session")
def ioi_task(random_model):
    from saebench_tasks.ioi import IOITask

    return IOITask(tokenizer=random_model.tokenizer)
