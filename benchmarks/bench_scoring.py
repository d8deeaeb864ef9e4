"""Where saebench's scoring time goes, and what its shortcuts buy (run on demand).

Every number is CPU time of this process (``time.process_time``; subprocesses: their
``getrusage`` CPU time) with torch on one thread, the best of ``--repeats`` interleaved
repetitions. In one run it measures:

1. **One intervention** (replace the node's vector, metric and argmax at END) on 256 prompts in
   one batch, three ways: *full*, the hooked forward pass of the whole prompts with logits at
   every position (``model.run_with_hooks``); *resume*, the forward pass resumed at the node's
   block over the whole sequence, logits at END only (``NodeRunner(prefix_cache=False)``);
   *prefix*, positions p..END only from the node's block on, attending to the clean prefix's
   keys and values (``NodeRunner``). At ``blocks.8.hook_resid_pre`` (END and S2) of a
   random-init GPT-2-Small-shaped model (12 layers, d_model 768, 12 heads, d_mlp 3072,
   vocabulary 50257; compute does not depend on the weights) and at
   ``blocks.2.hook_resid_pre`` (END, S2) of tiny-ioi.
2. **Several SAEs at one node** (tiny-ioi, the shipped ``L3-resid_post-END`` SAEs, default
   settings: 1000 prompts, ks 1..32, warm supervised-dictionary cache): K standalone scorings
   against one shared scoring of the K SAEs; the marginal cost of an extra SAE is
   (T_shared − T_standalone) ÷ (K − 1), T_standalone the mean single run. Measured in-process
   (``evaluate`` against ``evaluate_many``) and as ``saebench run`` processes (one ``--sae``
   each, against one process with K ``--sae``; includes Python start-up and imports). Then
   in-process at GPT-2 Small's shape: two random TopK SAEs (d_sae 24576, k 32) at
   ``blocks.8.hook_resid_pre`` @ END, ``--n-prompts`` prompts, fit on ``--gpt2-fit-prompts``
   from a warm cache, one round. On tiny-ioi (width 64) an SAE's own 38 one-row interventions
   cost about as much as the shared passes; at GPT-2's shape the shared full-sequence passes
   (clean run, counterfactual activations) dominate.
3. **The greedy edit** at d_sae 24576, D 768, on prompts whose numbers m of changed latents
   follow a skewed distribution (mean ≈ 150, max ≈ 420): chunks of 256 prompts in prompt
   order padded to the chunk's largest m (the former implementation, kept here as reference)
   against ``control.greedy_edit`` (prompts sorted by m, chunks padded to their own m).
4. With ``--compare-threads``: wall time of the prefix and resume paths with 1 and 2 torch
   threads (the ``--threads`` default).

Targets, checked at the end: prefix ≥ 5× faster than resume at GPT-2 shape, END; an extra SAE
≤ 0.5× a standalone run (each way of measuring it is printed).

    python benchmarks/bench_scoring.py [--repeats 3] [--skip-gpt2] [--skip-sharing]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from saebench.evaluate import EvalSettings, evaluate, evaluate_many, prepare
from saebench.metrics.control import _greedy_chunk, greedy_edit
from saebench.model import build_model, gpt2_tokenizer, load_model
from saebench.node import Node
from saebench.runner import NodeRunner, clean_run
from saebench.sae import SAE
from saebench.sae.formats import load_sae
from saebench.task import load_task

ROOT = Path(__file__).resolve().parents[1]
SAE_DIR = ROOT / "baselines" / "saes" / "tiny-ioi" / "L3-resid_post-END"
SHARED_SAES = ("topk-k6-general", "standard-l12.5-task", "batchtopk-k6-task", "gated-l12.5-general")
GPT2_SMALL_SHAPE = dict(
    n_layers=12,
    d_model=768,
    n_heads=12,
    d_head=64,
    d_mlp=3072,
    d_vocab=50257,
    n_ctx=1024,
    act_fn="gelu_new",
    normalization_type="LN",
    seed=0,
    default_prepend_bos=True,
)


def best_cpu(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best CPU time of each function over ``repeats`` rounds, the functions interleaved."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    return best


def full_forward(model, node: Node, prompts, new_ND: torch.Tensor) -> Callable[[], None]:
    """The naive intervention: the whole prompts through the whole model, logits everywhere."""
    hook = node.replace_hook(prompts.positions[node.position], new_ND)

    @torch.no_grad()
    def run() -> None:
        model.run_with_hooks(prompts.tokens_BL, fwd_hooks=[(node.hook_name, hook)])

    return run


def edits(runner: NodeRunner, acts_ND: torch.Tensor) -> Callable[[], object]:
    """Interventions a → s·a with a new s each call (a runner returns a repeated one from
    memory, which would time nothing)."""
    scales = iter(torch.linspace(0.5, 0.6, 1000).tolist())
    return lambda: runner.patched(acts_ND * next(scales))


def bench_interventions(name: str, model, layer: int, args) -> dict[str, float]:
    """Section 1 for one model: per-intervention CPU time at END (all three ways) and S2."""
    task = load_task("ioi", tokenizer=model.tokenizer)
    prompts = task.prompts("test", args.n_prompts, 0)
    nodes = [Node(f"blocks.{layer}.hook_resid_pre", position) for position in ("END", "S2")]
    batch = args.n_prompts
    clean = clean_run(model, task, nodes, prompts, batch, progress=False)
    times: dict[str, float] = {}
    for node in nodes:
        fast = NodeRunner(model, task, node, prompts, batch, progress=False, clean=clean)
        slow = NodeRunner(
            model, task, node, prompts, batch, progress=False, clean=clean, prefix_cache=False
        )
        assert fast.prefix_cached_prompts == len(prompts) and slow.prefix_cached_prompts == 0
        new_ND = fast.acts_ND * 0.5
        fns = {"resume": edits(slow, fast.acts_ND), "prefix": edits(fast, fast.acts_ND)}
        if node.position == "END":
            fns["full"] = full_forward(model, node, prompts, new_ND)
        got = best_cpu(fns, args.repeats)
        drift = (fast.patched(new_ND).metric_N - slow.patched(new_ND).metric_N).abs().max()
        for way, seconds in got.items():
            times[f"{node.position}/{way}"] = seconds
        line = "  ".join(
            f"{way} {got[way]:7.3f}s" for way in ("full", "resume", "prefix") if way in got
        )
        speedup = got["resume"] / got["prefix"]
        print(
            f"  {name:<17} {str(node):<28} {line}   resume/prefix x{speedup:.1f}"
            f"   max |Δ metric| {drift:.1e}",
            flush=True,
        )
    return times


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def saebench_run(saes: list[str], cache_dir: str, out_dir: str) -> float:
    """CPU time of one ``saebench run`` process scoring ``saes`` (outputs in ``out_dir``)."""
    command = [sys.executable, "-m", "saebench", "run", "--model", "tiny-ioi", "--quiet"]
    for sae in saes:
        command += ["--sae", sae]
    command += ["--cache-dir", cache_dir, "--threads", "1", "--no-leaderboard"]
    command += ["--json-out", os.path.join(out_dir, "{sae}.json")]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    before = child_cpu()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
    return child_cpu() - before


def bench_sharing(args) -> dict[str, float]:
    """Section 2: marginal cost of an extra SAE at a shared node, in-process and as processes."""
    model = load_model("tiny-ioi")
    task = load_task("ioi", tokenizer=model.tokenizer)
    paths = [str(SAE_DIR / name) for name in SHARED_SAES[: args.n_saes]]
    saes = [load_sae(path) for path in paths]
    node = Node(saes[0].meta.hook_name, "END")
    cache_dir = tempfile.mkdtemp(prefix="saebench-bench-")
    settings = EvalSettings(progress=False, cache_dir=Path(cache_dir))
    evaluate(model, task, node, saes[0], settings, "tiny-ioi")  # warm the supervised cache
    k = len(saes)
    fns: dict[str, Callable[[], object]] = {
        f"alone {i}": (lambda s=sae: evaluate(model, task, node, s, settings, "tiny-ioi"))
        for i, sae in enumerate(saes)
    }
    fns["shared"] = lambda: evaluate_many(model, task, node, saes, settings, "tiny-ioi")
    got = best_cpu(fns, args.repeats)
    alone = sum(got[f"alone {i}"] for i in range(k)) / k
    marginal = (got["shared"] - alone) / (k - 1)
    print(
        f"  in-process, {k} SAEs at {node} (1000 prompts): standalone evaluate {alone:.2f}s, "
        f"evaluate_many {got['shared']:.2f}s, extra SAE {marginal:.2f}s = "
        f"{marginal / alone:.2f} x standalone",
        flush=True,
    )
    out: dict[str, float] = {"inproc_alone": alone, "inproc_marginal": marginal}
    if args.skip_processes:
        return out
    out_dir = tempfile.mkdtemp(prefix="saebench-bench-runs-")
    process_fns: dict[str, Callable[[], object]] = {
        f"alone {i}": (lambda p=path: saebench_run([p], cache_dir, out_dir))
        for i, path in enumerate(paths)
    }
    process_fns["shared"] = lambda: saebench_run(paths, cache_dir, out_dir)
    best = {name: float("inf") for name in process_fns}
    for _ in range(args.process_repeats):
        for name, fn in process_fns.items():
            best[name] = min(best[name], fn())
    alone_p = sum(best[f"alone {i}"] for i in range(k)) / k
    marginal_p = (best["shared"] - alone_p) / (k - 1)
    print(
        f"  as processes (best of {args.process_repeats}): `saebench run --sae A` "
        f"{alone_p:.2f}s, with {k} --sae {best['shared']:.2f}s, extra SAE {marginal_p:.2f}s = "
        f"{marginal_p / alone_p:.2f} x standalone",
        flush=True,
    )
    out.update(process_alone=alone_p, process_marginal=marginal_p)
    return out


def random_topk_sae(d_in: int, d_sae: int, k: int, seed: int) -> SAE:
    """A TopK SAE with random unit decoder rows and a tied encoder (costs what a trained one
    costs: scoring does not depend on the weight values)."""
    generator = torch.Generator().manual_seed(seed)
    W_dec_FD = torch.randn(d_sae, d_in, generator=generator)
    W_dec_FD /= W_dec_FD.norm(dim=1, keepdim=True)
    return SAE("topk", W_dec_FD.T.clone(), W_dec_FD, torch.zeros(d_sae), torch.zeros(d_in), k=k)


def bench_sharing_gpt2(model, layer: int, args) -> dict[str, float]:
    """Section 2 at GPT-2 Small's shape, in-process: two random TopK SAEs (d_sae 24576, k 32)
    at ``blocks.{layer}.hook_resid_pre`` @ END, ``--n-prompts`` prompts, supervised fit from a
    warm cache; standalone ``evaluate`` of each against one ``evaluate_many`` of both (one
    round: each takes minutes)."""
    task = load_task("ioi", tokenizer=model.tokenizer)
    node = Node(f"blocks.{layer}.hook_resid_pre", "END")
    d = model.cfg.d_model
    saes = [random_topk_sae(d, 24576, 32, seed) for seed in (0, 1)]
    settings = EvalSettings(
        n_prompts=args.n_prompts,
        n_fit_prompts=args.gpt2_fit_prompts,
        batch_size=args.n_prompts,
        progress=False,
        cache_dir=Path(tempfile.mkdtemp(prefix="saebench-bench-gpt2-")),
    )
    prepare(model, task, node, settings)  # warm the supervised cache
    fns: dict[str, Callable[[], object]] = {
        f"alone {i}": (lambda s=sae: evaluate(model, task, node, s, settings))
        for i, sae in enumerate(saes)
    }
    fns["shared"] = lambda: evaluate_many(model, task, node, saes, settings)
    got = best_cpu(fns, 1)
    alone = (got["alone 0"] + got["alone 1"]) / 2
    marginal = got["shared"] - alone
    print(
        f"  in-process, 2 SAEs (d_sae 24576) at {node} of the GPT-2-shaped model "
        f"({args.n_prompts} prompts): standalone evaluate {alone:.1f}s, evaluate_many "
        f"{got['shared']:.1f}s, extra SAE {marginal:.1f}s = {marginal / alone:.2f} x standalone",
        flush=True,
    )
    return {"gpt2_inproc_alone": alone, "gpt2_inproc_marginal": marginal}


def padded_greedy(diff_ND, delta_NF, W_dec_FD, ks, chunk: int = 256):
    """The former greedy edit: chunks of ``chunk`` prompts in prompt order, each padded to its
    largest m (the same per-chunk kernel, ``control._greedy_chunk``, without the sorting by
    m). Returns the sum and chosen latents at max(ks), and the largest chunk's float64
    elements rows · m · (D + m)."""
    n, k = delta_NF.shape[0], max(ks)
    sums, chosen, peak = [], [], 0
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        m = max(1, int((delta_NF[rows] != 0).sum(1).max()))
        peak = max(peak, delta_NF[rows].shape[0] * m * (W_dec_FD.shape[1] + m))
        sum_ND, chosen_NF = _greedy_chunk(diff_ND[rows], delta_NF[rows], W_dec_FD, [k])[k]
        sums.append(sum_ND.float())
        chosen.append(chosen_NF)
    return torch.cat(sums), torch.cat(chosen), peak


def bench_greedy(args) -> None:
    """Section 3: the greedy edit, padded in prompt order against sorted by m."""
    g = torch.Generator().manual_seed(0)
    n, f, d = args.greedy_prompts, 24576, 768
    W_dec_FD = torch.nn.functional.normalize(torch.randn(f, d, generator=g), dim=1)
    m_N = (torch.rand(n, generator=g) ** 2.5 * 390 + 30).long()
    delta_NF = torch.zeros(n, f)
    for p in range(n):
        idx = torch.randperm(f, generator=g)[: m_N[p]]
        delta_NF[p, idx] = torch.randn(len(idx), generator=g)
    diff_ND = delta_NF @ W_dec_FD + 0.1 * torch.randn(n, d, generator=g)
    ks = [1, 2, 4, 8, 16, 32]
    results: dict[str, object] = {}

    def old() -> None:
        results["old"] = padded_greedy(diff_ND, delta_NF, W_dec_FD, ks)

    def new() -> None:
        results["new"] = greedy_edit(diff_ND, delta_NF, W_dec_FD, ks)

    got = best_cpu({"padded": old, "sorted": new}, max(1, args.repeats - 1))
    old_sum, old_chosen, peak = results["old"]  # type: ignore[misc]
    new_sum, new_chosen = results["new"][32]  # type: ignore[index]
    same = torch.equal(old_sum, new_sum) and torch.equal(old_chosen, new_chosen)
    real = int((m_N * (d + m_N)).sum())
    print(
        f"  {n} prompts, d_sae {f}, m mean {m_N.float().mean():.0f} max {int(m_N.max())}, k = 32: "
        f"padded {got['padded']:.2f}s, sorted {got['sorted']:.2f}s "
        f"(x{got['padded'] / got['sorted']:.1f}); float64 elements of the largest padded chunk "
        f"{peak / 1e6:.0f}M vs Σ m(D + m) {real / 1e6:.0f}M over all prompts; identical: {same}",
        flush=True,
    )


def bench_threads(model, layer: int, name: str, args) -> None:
    """Section 4: wall time per intervention with 1 and 2 torch threads."""
    task = load_task("ioi", tokenizer=model.tokenizer)
    prompts = task.prompts("test", args.n_prompts, 0)
    node = Node(f"blocks.{layer}.hook_resid_pre", "END")
    fast = NodeRunner(model, task, node, prompts, args.n_prompts, progress=False)
    slow = NodeRunner(
        model, task, node, prompts, args.n_prompts, progress=False, prefix_cache=False
    )
    runs = {"prefix": edits(fast, fast.acts_ND), "resume": edits(slow, fast.acts_ND)}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        best = {"prefix": float("inf"), "resume": float("inf")}
        for _ in range(args.repeats):
            for way, run in runs.items():
                start = time.perf_counter()
                run()
                best[way] = min(best[way], time.perf_counter() - start)
        print(
            f"  {name:<17} {threads} thread{'s' if threads > 1 else ' '}: wall prefix "
            f"{best['prefix']:.3f}s, resume {best['resume']:.3f}s",
            flush=True,
        )
    torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-prompts", type=int, default=256)
    parser.add_argument("--n-saes", type=int, default=len(SHARED_SAES))
    parser.add_argument("--process-repeats", type=int, default=1)
    parser.add_argument("--greedy-prompts", type=int, default=256)
    parser.add_argument("--skip-gpt2", action="store_true")
    parser.add_argument("--skip-sharing", action="store_true")
    parser.add_argument("--gpt2-fit-prompts", type=int, default=2000)
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--skip-greedy", action="store_true")
    parser.add_argument("--compare-threads", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, float] = {}

    print(f"1. one intervention, {args.n_prompts} prompts, CPU seconds (best of {args.repeats})")
    tiny = load_model("tiny-ioi")
    gpt2 = None
    if not args.skip_gpt2:
        gpt2 = build_model(GPT2_SMALL_SHAPE, tokenizer=gpt2_tokenizer())
        for key, value in bench_interventions("gpt2-small-shape", gpt2, 8, args).items():
            results[f"gpt2 {key}"] = value
    for key, value in bench_interventions("tiny-ioi", tiny, 2, args).items():
        results[f"tiny {key}"] = value

    sharing: dict[str, float] = {}
    if not args.skip_sharing:
        print(f"2. several SAEs at one node, CPU seconds (best of {args.repeats})")
        sharing = bench_sharing(args)
        if gpt2 is not None:
            sharing.update(bench_sharing_gpt2(gpt2, 8, args))
    if not args.skip_greedy:
        print("3. greedy edit, CPU seconds")
        bench_greedy(args)
    if args.compare_threads:
        print("4. threads, wall seconds per intervention")
        if gpt2 is not None:
            bench_threads(gpt2, 8, "gpt2-small-shape", args)
        bench_threads(tiny, 2, "tiny-ioi", args)

    print("targets")
    if "gpt2 END/prefix" in results:
        speedup = results["gpt2 END/resume"] / results["gpt2 END/prefix"]
        print(
            f"  prefix vs resume at GPT-2 shape, END: x{speedup:.1f} (target >= 5): "
            f"{'met' if speedup >= 5 else 'NOT met'}"
        )
    for label, key in (
        ("in-process, tiny-ioi", "inproc"),
        ("as processes, tiny-ioi", "process"),
        ("in-process, GPT-2 shape", "gpt2_inproc"),
    ):
        if f"{key}_alone" in sharing:
            ratio = sharing[f"{key}_marginal"] / sharing[f"{key}_alone"]
            print(
                f"  extra SAE / standalone run, {label}: {ratio:.2f} (target <= 0.5): "
                f"{'met' if ratio <= 0.5 else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
