"""Where saebench's scoring time goes, and what its shortcuts buy (run on demand).

Measures, in one run on the same prompts and node:
1. an intervention resumed at the node's block with logits only at END
   (``NodeRunner.patched``) against the naive full forward pass with a hook and full logits;
2. the greedy edit restricted to latents whose code changes (``control.greedy_edit``)
   against a dense greedy over all latents.

    python benchmarks/bench_scoring.py [--model tiny-ioi] [--n-prompts 500]
"""

from __future__ import annotations

import argparse
import time

import torch

from saebench.control import greedy_edit
from saebench.model import load_model
from saebench.node import Node
from saebench.runner import NodeRunner
from saebench.task import load_task


def timed(fn, repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def dense_greedy(diff_ND, delta_NF, W_dec_FD, k):
    """Greedy over all latents at every step (the naive implementation)."""
    c_NFD = delta_NF[..., None] * W_dec_FD
    total_ND = torch.zeros_like(diff_ND)
    used_NF = torch.zeros_like(delta_NF, dtype=torch.bool)
    rows = torch.arange(len(diff_ND))
    for _ in range(k):
        dist_NF = (total_ND[:, None] + c_NFD - diff_ND[:, None]).norm(dim=-1)
        j_N = dist_NF.masked_fill(used_NF, float("inf")).argmin(1)
        total_ND += c_NFD[rows, j_N]
        used_NF[rows, j_N] = True
    return total_ND


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny-ioi")
    parser.add_argument("--hook", default=None)
    parser.add_argument("--n-prompts", type=int, default=500)
    parser.add_argument("--d-sae", type=int, default=2048)
    args = parser.parse_args()
    model = load_model(args.model)
    hook = args.hook or f"blocks.{model.cfg.n_layers // 2}.hook_resid_pre"
    node = Node(hook, "END")
    task = load_task("ioi", tokenizer=model.tokenizer)
    prompts = task.prompts("test", args.n_prompts, seed=0)
    runner = NodeRunner(model, task, node, prompts, batch_size=64, progress=False)
    new_ND = runner.acts_ND * 0.5

    def naive():
        for start in range(0, len(prompts), 64):
            batch = prompts.select(slice(start, start + 64))
            hook_fn = node.replace_hook(batch.positions["END"], new_ND[start : start + 64])
            with torch.no_grad():
                model.run_with_hooks(batch.tokens_BL, fwd_hooks=[(hook, hook_fn)])

    t_resume = timed(lambda: runner.patched(new_ND))
    t_naive = timed(naive)
    print(
        f"intervention at {node} on {args.n_prompts} prompts: resumed {t_resume:.3f}s, "
        f"full forward {t_naive:.3f}s, speed-up x{t_naive / t_resume:.1f}"
    )

    g = torch.Generator().manual_seed(0)
    d = runner.acts_ND.shape[1]
    W_dec_FD = torch.nn.functional.normalize(torch.randn(args.d_sae, d, generator=g), dim=1)
    n = min(200, args.n_prompts)
    codes = torch.relu(torch.randn(n, args.d_sae, generator=g) - 2.0)
    codes_cf = torch.relu(torch.randn(n, args.d_sae, generator=g) - 2.0)
    diff = (codes_cf - codes) @ W_dec_FD
    t_sparse = timed(lambda: greedy_edit(diff, codes_cf - codes, W_dec_FD, [1, 2, 4, 8]), 1)
    t_dense = timed(lambda: dense_greedy(diff, codes_cf - codes, W_dec_FD, 8), 1)
    print(
        f"greedy edit, {n} prompts, {args.d_sae} latents, k=8: restricted {t_sparse:.3f}s, "
        f"dense {t_dense:.3f}s, speed-up x{t_dense / t_sparse:.1f}"
    )


if __name__ == "__main__":
    main()
