"""Cost of the coverage prompts (docs/metrics.md §6): one process, one thread, tiny-ioi.

Scores the shipped ``topk-k6-general`` SAE at ``blocks.3.hook_resid_post`` @ END with default
settings (1000 evaluation prompts, the supervised fit read from the default cache, warmed
first), once with the interpretability metrics on the evaluation prompts
(``coverage_prompts`` = 1000: no extra work) and once on the default 3000 coverage prompts
(a forward pass to the node and the SAE's encode on them, and their F1 tables and bootstrap),
and prints both times and their ratio, without intervals and with them (B = 500).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_coverage.py [REPEATS]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from saebench import evaluate
from saebench.defaults import DEFAULT_COVERAGE_PROMPTS, DEFAULT_N_PROMPTS
from saebench.discover import load as load_sae
from saebench.io_utils import default_cache_dir
from saebench.model import load_model, tokenizer_of
from saebench.node import Node
from saebench.task import load_task

SAE = Path(__file__).parents[1] / "baselines/saes/tiny-ioi/L3-resid_post-END/topk-k6-general"


def main() -> None:
    torch.set_num_threads(1)
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    model = load_model("tiny-ioi")
    sae = load_sae(str(SAE))
    task = load_task("ioi", tokenizer=tokenizer_of(model), prepend_bos=sae.meta.prepend_bos)
    node = Node(sae.meta.hook_name, "END", None)
    base = evaluate.EvalSettings(progress=False, cache_dir=default_cache_dir())
    evaluate.fit_supervised(  # warm the fit cache, as a second run finds it
        evaluate.NodeRunner(model, task, node, task.prompts("test", 8, 0), 8, False),
        task,
        base,
        "tiny-ioi",
    )
    for n_bootstrap in (0, 500):
        times: dict[int, list[float]] = {DEFAULT_N_PROMPTS: [], DEFAULT_COVERAGE_PROMPTS: []}
        for _ in range(repeats):
            for coverage in times:
                settings = evaluate.EvalSettings(
                    progress=False,
                    cache_dir=default_cache_dir(),
                    coverage_prompts=coverage,
                    n_bootstrap=n_bootstrap,
                )
                start = time.perf_counter()
                evaluate.score(evaluate.prepare(model, task, node, settings, "tiny-ioi"), sae)
                times[coverage].append(time.perf_counter() - start)
        print(f"B = {n_bootstrap}:")
        for coverage, seconds in times.items():
            print(f"  coverage_prompts {coverage}: {', '.join(f'{s:.2f}' for s in seconds)} s")
        best = {c: min(s) for c, s in times.items()}
        ratio = best[DEFAULT_COVERAGE_PROMPTS] / best[DEFAULT_N_PROMPTS]
        print(f"  ratio ({DEFAULT_COVERAGE_PROMPTS} / {DEFAULT_N_PROMPTS}, best of {repeats}): "
              f"{ratio:.3f}")


if __name__ == "__main__":
    main()
