"""Shared fixtures: models that need no download."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def random_model():
    """A random-init 2-layer GPT-2-architecture model with GPT-2's real tokenizer."""
    from saebench.model import random_gpt2

    return random_gpt2(seed=0)


@pytest.fixture(scope="session")
def ioi_task(random_model):
    from saebench_tasks.ioi import IOITask

    return IOITask(tokenizer=random_model.tokenizer)
