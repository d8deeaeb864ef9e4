"""Options shared by several ``saebench`` commands (``run``, ``map``, ``train``)."""

from __future__ import annotations

THREADS_HELP = (
    "torch CPU threads (torch.set_num_threads). 1 is the fastest measured on a shared 2-core "
    "CPU: the forward passes are small matrix products that a second thread barely speeds "
    "up, and it competes with other work; raise it on a dedicated many-core machine."
)
CACHE_BUDGET_HELP = (
    "Bound (MB) on the attention keys and values the clean run keeps so that each "
    "intervention recomputes only positions p..END from the node's block on (about 0.5 MB per "
    "prompt for GPT-2 Small from block 8); batches past it resume the whole sequence."
)


def set_threads(threads: int) -> None:
    """Apply ``--threads``: torch's intra-op CPU thread count, ``torch.set_num_threads``."""
    import torch

    torch.set_num_threads(threads)
