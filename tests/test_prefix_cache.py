"""Prefix-cached interventions and work shared across SAEs.

An intervention at position p of block l recomputes only positions p..END of blocks l.. and
attends to the clean run's keys and values for positions < p
(:func:`saebench.model.suffix_logits_at`). These tests pin it to the path it replaces
(:func:`saebench.model.resume_logits_at`, the whole sequence from block l): the END logits
agree to 1e-4 at every kind of node the scorer supports, at END and at S2 (where p and END
both vary per prompt), on a random GPT-2-architecture model and on tiny-ioi, in batches that
do not divide the prompts evenly. Models whose attention the suffix pass cannot reproduce fall
back, as does every batch past the memory budget. Scoring several SAEs on one shared
preparation gives exactly the metrics of separate runs (random SAEs built here, so that the
test does not depend on the shipped ones matching the shipped model).
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

from saebench import model as model_access
from saebench.evaluate import EvalSettings, evaluate, evaluate_many
from saebench.node import Node
from saebench.runner import NodeRunner, clean_run
from saebench.sae import SAE

N_PROMPTS, BATCH = 40, 16
"""Batches of 16, 16 and 8 prompts."""

NODE_KINDS: list[tuple[str, int | None]] = [
    ("blocks.0.hook_resid_pre", None),
    ("blocks.1.hook_resid_pre", None),
    ("blocks.1.hook_resid_mid", None),
    ("blocks.1.hook_resid_post", None),
    ("blocks.2.hook_resid_post", None),  # the last block's output: straight to the unembedding
    ("blocks.1.attn.hook_z", 2),
    ("blocks.1.attn.hook_z", None),  # all heads concatenated
    ("blocks.1.attn.hook_q", 1),
    ("blocks.1.attn.hook_k", 0),
    ("blocks.1.attn.hook_v", None),
    ("blocks.1.attn.hook_result", 3),
    ("blocks.1.attn.hook_result", None),
    ("blocks.1.mlp.hook_pre", None),
    ("blocks.1.mlp.hook_post", None),
]


def _with_attn_result(model):
    """``hook_result`` only fires when the model computes per-head results."""
    model.set_use_attn_result(True)
    return model


@pytest.fixture(scope="module")
def models():
    """3-layer models with per-head results on, each with its IOI task."""
    from saebench.model import load_model, random_gpt2
    from saebench.task import load_task

    out = {}
    for name, model in (
        ("random-gpt2", random_gpt2(seed=1, n_layers=3)),
        ("tiny-ioi", load_model("tiny-ioi")),
    ):
        _with_attn_result(model)
        out[name] = (model, load_task("ioi", tokenizer=model.tokenizer))
    return out


def perturbed(acts_ND: torch.Tensor, seed: int) -> torch.Tensor:
    """a + ε with ε ~ N(0, std(a)²), from a local generator."""
    g = torch.Generator().manual_seed(seed)
    return acts_ND + torch.randn(acts_ND.shape, generator=g) * acts_ND.std()


def end_logits_both_ways(runner: NodeRunner, new_ND: torch.Tensor):
    """END logits [N, V] with the node's vector replaced by ``new_ND``: prefix-cached, and
    resumed over the whole sequence, pass by pass from the runner's clean state."""
    fast, full = [], []
    node = runner.node
    for step in runner.passes:
        sl = step.rows
        pos_B, end_B = runner.positions_N[sl], runner.prompts.positions["END"][sl]
        assert step.kv is not None, "the fast path was not taken"
        with torch.no_grad():
            fast.append(
                model_access.suffix_logits_at(
                    runner.model,
                    step.resid_BLD,
                    node.layer,
                    step.kv,
                    pos_B,
                    [(node.hook_name, node.replace_hook(torch.zeros_like(pos_B), new_ND[sl]))],
                    end_B,
                )
            )
            full.append(
                model_access.resume_logits_at(
                    runner.model,
                    step.resid_BLD,
                    node.layer,
                    [(node.hook_name, node.replace_hook(pos_B, new_ND[sl]))],
                    end_B,
                )
            )
    return torch.cat(fast), torch.cat(full)


@pytest.mark.parametrize("model_name", ["random-gpt2", "tiny-ioi"])
@pytest.mark.parametrize("position", ["END", "S2"])
@pytest.mark.parametrize(("hook", "head"), NODE_KINDS, ids=[f"{h}[{k}]" for h, k in NODE_KINDS])
def test_prefix_cached_logits_equal_the_resumed_ones(models, model_name, position, hook, head):
    model, task = models[model_name]
    node = Node(hook, position, head)
    node.check(model)
    prompts = task.prompts("test", N_PROMPTS, 0)
    if position == "S2":  # p and END both vary per prompt: the suffix is ragged
        assert prompts.positions["S2"].unique().numel() > 1
        assert (prompts.positions["END"] - prompts.positions["S2"]).unique().numel() > 1
    runner = NodeRunner(model, task, node, prompts, batch_size=BATCH, progress=False)
    assert runner.prefix_cached_prompts == N_PROMPTS
    # the three batches (their lengths differ) share one zero-padded pass at these vocabularies
    assert len(runner.passes) == 1
    new_ND = perturbed(runner.acts_ND, seed=len(hook) + (head or 0))
    fast_NV, full_NV = end_logits_both_ways(runner, new_ND)
    clean_NV, _ = end_logits_both_ways(runner, runner.acts_ND)
    if not (hook == "blocks.2.hook_resid_post" and position != "END"):  # no block after it
        assert (full_NV - clean_NV).abs().max() > 1e-3  # the edit does something
    torch.testing.assert_close(fast_NV, full_NV, atol=1e-4, rtol=0)
    # and through the runner: the same metric and predictions as the resumed runner's
    slow = NodeRunner(
        model, task, node, prompts, batch_size=BATCH, progress=False, prefix_cache=False
    )
    assert slow.prefix_cached_prompts == 0
    got, expected = runner.patched(new_ND), slow.patched(new_ND)
    torch.testing.assert_close(got.metric_N, expected.metric_N, atol=1e-4, rtol=0)
    assert torch.equal(got.argmax_N, expected.argmax_N)


def test_recording_keys_and_values_leaves_the_clean_run_unchanged(models):
    model, task = models["random-gpt2"]
    nodes = [Node("blocks.1.hook_resid_pre", "END"), Node("blocks.2.attn.hook_z", "S2", 1)]
    prompts = task.prompts("test", N_PROMPTS, 0)
    with_kv = clean_run(model, task, nodes, prompts, BATCH, progress=False)
    without = clean_run(model, task, nodes, prompts, BATCH, progress=False, prefix_cache=False)
    assert all(kv is not None and kv.first_layer == 1 for kv in with_kv.kv)
    assert all(kv is None for kv in without.kv)
    torch.testing.assert_close(with_kv.outcome.metric_N, without.outcome.metric_N)
    for node in nodes:
        torch.testing.assert_close(with_kv.acts[node], without.acts[node])
    # keys and values of blocks 1.., batch 0: [B, L', H, d_head], L' cut after the last END
    kv = with_kv.kv[0]
    length = int(prompts.positions["END"][:BATCH].max()) + 1
    assert len(kv.keys_BLHE) == model.cfg.n_layers - 1
    assert kv.keys_BLHE[0].shape == (BATCH, length, model.cfg.n_heads, model.cfg.d_head)
    assert kv.nbytes == 2 * (model.cfg.n_layers - 1) * kv.keys_BLHE[0].numel() * 4


def _small_model(**overrides):
    from saebench.model import build_model, gpt2_tokenizer

    cfg = dict(
        n_layers=3,
        d_model=64,
        d_head=16,
        n_heads=4,
        d_mlp=128,
        d_vocab=50257,
        n_ctx=64,
        act_fn="gelu_new",
        normalization_type="LN",
        seed=2,
        default_prepend_bos=True,
    )
    return build_model(dict(cfg, **overrides), tokenizer=gpt2_tokenizer())


def test_rotary_grouped_query_models_take_the_exact_fast_path(ioi_task):
    """Rotary positions come from the attention mask (cumsum − 1), so the stale slots between
    a prompt's start and the batch's largest start are skipped exactly; grouped-query keys
    and values are cached per key-value head."""
    model = _small_model(
        positional_embedding_type="rotary",
        rotary_dim=8,
        normalization_type="RMS",
        n_key_value_heads=2,
        act_fn="silu",
        gated_mlp=True,
    )
    assert model_access.prefix_cache_unsupported(model) is None
    for node in (Node("blocks.1.hook_resid_pre", "S2"), Node("blocks.1.attn.hook_k", "END", 1)):
        prompts = ioi_task.prompts("test", N_PROMPTS, 0)
        runner = NodeRunner(model, ioi_task, node, prompts, batch_size=BATCH, progress=False)
        assert runner.prefix_cached_prompts == N_PROMPTS
        fast_NV, full_NV = end_logits_both_ways(runner, perturbed(runner.acts_ND, seed=3))
        torch.testing.assert_close(fast_NV, full_NV, atol=1e-4, rtol=0)


def test_alibi_models_fall_back_with_one_warning(ioi_task, caplog, monkeypatch):
    """ALiBi biases scores by slot distance, which the cached layout does not keep: the
    runner resumes the whole sequence, and says so once."""
    monkeypatch.setattr("saebench.runner._warned", set())
    model = _small_model(positional_embedding_type="alibi")
    assert "alibi" in model_access.prefix_cache_unsupported(model)
    node = Node("blocks.1.hook_resid_pre", "END")
    prompts = ioi_task.prompts("test", N_PROMPTS, 0)
    with caplog.at_level(logging.WARNING, logger="saebench.runner"):
        runner = NodeRunner(model, ioi_task, node, prompts, batch_size=BATCH, progress=False)
        NodeRunner(model, ioi_task, node, prompts, batch_size=BATCH, progress=False)
    assert runner.prefix_cached_prompts == 0
    assert sum("alibi" in r.getMessage() for r in caplog.records) == 1
    new_ND = perturbed(runner.acts_ND, seed=4)
    expected = NodeRunner(
        model, ioi_task, node, prompts, batch_size=BATCH, progress=False, prefix_cache=False
    ).patched(new_ND)
    got = runner.patched(new_ND)
    assert torch.equal(got.metric_N, expected.metric_N)


def test_batches_past_the_cache_budget_resume_the_whole_sequence(models):
    model, task = models["tiny-ioi"]
    node = Node("blocks.1.attn.hook_z", "S2", 0)
    prompts = task.prompts("test", N_PROMPTS, 0)
    full_run = clean_run(model, task, [node], prompts, BATCH, progress=False)
    sizes = [kv.nbytes for kv in full_run.kv]
    assert sizes[1] > sizes[2]  # 16 prompts against 8
    full = NodeRunner(model, task, node, prompts, BATCH, progress=False, clean=full_run)
    budgeted = NodeRunner(
        model,
        task,
        node,
        prompts,
        batch_size=BATCH,
        progress=False,
        cache_budget_mb=(sizes[0] + sizes[2] + 1) / 2**20,  # batch 1 does not fit after 0
    )
    # batch 1 resumes the whole sequence, so no pass can merge across it
    assert [(p.rows, p.kv is not None) for p in budgeted.passes] == [
        (slice(0, 16), True),
        (slice(16, 32), False),
        (slice(32, 40), True),
    ]
    assert budgeted.prefix_cached_prompts == 24
    new_ND = perturbed(full.acts_ND, seed=5)
    got, expected = budgeted.patched(new_ND), full.patched(new_ND)
    torch.testing.assert_close(got.metric_N, expected.metric_N, atol=1e-4, rtol=0)
    assert torch.equal(got.argmax_N, expected.argmax_N)


def _same(a: dict, b: dict) -> bool:
    """Equal dictionaries, NaN equal to NaN (``edit_score`` is NaN when sup = noint)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            if not (isinstance(y, dict) and _same(x, y)):
                return False
        elif not (x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))):
            return False
    return True


def small_sae(architecture: str, d: int, f: int, seed: int, k: int | None = None) -> SAE:
    """A random SAE with unit decoder rows, encoder Wᵈᵉᶜᵀ and bias −0.3 (a sparse code)."""
    g = torch.Generator().manual_seed(seed)
    W_dec_FD = torch.nn.functional.normalize(torch.randn(f, d, generator=g), dim=1)
    bias_F = torch.full((f,), -0.3)
    return SAE(architecture, W_dec_FD.T.clone(), W_dec_FD, bias_F, torch.zeros(d), k=k)


def test_several_saes_on_one_preparation_score_exactly_as_separate_runs():
    from saebench.model import load_model
    from saebench.task import load_task

    model = load_model("tiny-ioi")
    task = load_task("ioi", tokenizer=model.tokenizer)
    d = model.cfg.d_model
    saes = [small_sae("topk", d, 96, seed=0, k=4), small_sae("standard", d, 128, seed=1)]
    node = Node("blocks.1.hook_resid_pre", "END")
    settings = EvalSettings(
        n_prompts=120, n_fit_prompts=400, ks=(1, 2, 4), batch_size=50, progress=False
    )
    shared = evaluate_many(model, task, node, [*saes, "supervised:mean"], settings, "tiny-ioi")
    for dictionary, result in zip([*saes, "supervised:mean"], shared, strict=True):
        alone = evaluate(model, task, node, dictionary, settings, "tiny-ioi")
        assert list(result.metrics) == list(alone.metrics)  # same columns, same order
        assert _same(result.metrics, alone.metrics)
        assert _same(result.details, alone.details)
    assert shared[0].metrics["l0"] != shared[1].metrics["l0"]  # two different SAEs
    assert shared[0].metrics["noint_accuracy_io"] == shared[1].metrics["noint_accuracy_io"]


def test_a_width_mismatch_in_any_dictionary_fails_before_the_work(models, monkeypatch):
    model, task = models["tiny-ioi"]

    def no_work(*args, **kwargs):
        raise AssertionError("the node was prepared before the widths were checked")

    monkeypatch.setattr("saebench.evaluate.prepare", no_work)
    sae = small_sae("standard", 64, 32, seed=2)
    node = Node("blocks.1.attn.hook_z", "END", 0)  # width 16, the SAE reads 64
    with pytest.raises(ValueError, match="64-dim vectors but node .* has width 16"):
        evaluate_many(model, task, node, ["supervised:mean", sae], EvalSettings(progress=False))
