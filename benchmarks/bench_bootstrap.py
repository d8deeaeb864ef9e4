"""Cost of bootstrap intervals (docs/metrics.md §9): one process, one thread, tiny-ioi.

Scores the shipped ``topk-k6-general`` SAE at ``blocks.3.hook_resid_post`` @ END with default
settings (1000 prompts, the supervised fit read from the default cache, warmed first) and
prints the time of the run without intervals (prepare + score),
the bootstrap's time at B = ``DEFAULT_N_BOOTSTRAP`` and the ratio (run with ÷ run without).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_bootstrap.py [B]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from saebench import evaluate
from saebench.discover import load as load_sae
from saebench.io_utils import default_cache_dir
from saebench.model import load_model, tokenizer_of
from saebench.node import Node
from saebench.stats import bootstrap
from saebench.task import load_task

SAE = Path(__file__).parents[1] / "baselines/saes/tiny-ioi/L3-resid_post-END/topk-k6-general"


def main() -> None:
    torch.set_num_threads(1)
    b = int(sys.argv[1]) if len(sys.argv) > 1 else bootstrap.DEFAULT_N_BOOTSTRAP
    model = load_model("tiny-ioi")
    sae = load_sae(str(SAE))
    task = load_task("ioi", tokenizer=tokenizer_of(model), prepend_bos=sae.meta.prepend_bos)
    node = Node(sae.meta.hook_name, "END", None)
    settings = evaluate.EvalSettings(progress=False, n_bootstrap=0, cache_dir=default_cache_dir())
    evaluate.fit_supervised(  # warm the fit cache, as a second run finds it
        evaluate.NodeRunner(model, task, node, task.prompts("test", 8, 0), 8, False),
        task,
        settings,
        "tiny-ioi",
    )
    start = time.perf_counter()
    result = evaluate.score(evaluate.prepare(model, task, node, settings, "tiny-ioi"), sae)
    run_s = time.perf_counter() - start
    start = time.perf_counter()
    bootstrap.intervals(result.outcomes, result.outcomes_meta, b, bootstrap.BOOTSTRAP_SEED_OFFSET)
    boot_s = time.perf_counter() - start
    print(f"run without intervals: {run_s:.2f} s")
    print(f"bootstrap, B = {b}: {boot_s:.2f} s")
    print(f"ratio (with / without): {(run_s + boot_s) / run_s:.3f}")


if __name__ == "__main__":
    main()
