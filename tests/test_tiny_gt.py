"""The embedded tiny-gt model: tokenizer, training text, Greater-Than performance, retraining,
and the supervised ``yy`` edit that the Greater-Than leaderboard relies on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from saebench.cli import main
from saebench.evaluate import EvalSettings, evaluate
from saebench.leaderboard import read_leaderboard
from saebench.model import EMBEDDED_MODELS_DIR, gpt2_tokenizer, load_model
from saebench.node import Node
from saebench.run import RunConfig, resolve
from saebench.task import check_readable
from saebench.testing import check_task
from saebench.tiny_gt.corpus import (
    HELD_OUT_TEMPLATE,
    RANGE_TEMPLATES,
    general_corpus,
    noun_span_decay,
    nouns,
    span_decay,
    span_probabilities,
    training_mixture,
    typical_span,
    year_range_corpus,
)
from saebench.tiny_gt.evaluate import gt_scores, held_out_prompts
from saebench.tiny_gt.train import (
    TrainConfig,
    end_year_weights,
    tiny_gt_tokenizer,
    train_tiny_gt,
)
from saebench.tiny_ioi.evaluate import end_logits
from saebench_tasks.greater_than import CENTURIES, GreaterThanTask

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = EMBEDDED_MODELS_DIR / "tiny-gt"
SHIPPED_NODE = Node("blocks.1.hook_resid_pre", "END")
SHIPPED_SAE = str(ROOT / "baselines/saes/tiny-gt/L0-z-h0-END/topk-k6-task")


@pytest.fixture(scope="module")
def model():
    return load_model("tiny-gt")


@pytest.fixture(scope="module")
def task(model):
    return GreaterThanTask(tokenizer=model.tokenizer, prepend_bos=True)


def test_shipped_files_exist_and_total_under_2_mb():
    names = {"config.json", "model.safetensors", "tokenizer.json", "training.json"}
    assert names <= {p.name for p in MODEL_DIR.iterdir()}
    assert sum(p.stat().st_size for p in MODEL_DIR.iterdir()) < 2_000_000


def test_years_are_cut_as_gpt2_cuts_them(model):
    tok = model.tokenizer
    ids = tok.encode(" 1732", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids) == ["Ġ17", "32"]
    assert tok.decode(ids) == " 1732"
    # every two-digit number is one token, every century one token with its space
    assert all(len(tok.encode(f"{y:02d}", add_special_tokens=False)) == 1 for y in range(100))
    assert all(len(tok.encode(f" {c}", add_special_tokens=False)) == 1 for c in CENTURIES)
    train_tok = tiny_gt_tokenizer()  # the one training builds: reads every training text
    texts, _ = training_mixture(400, seed=0, range_fraction=0.8, batch_size=8)
    for text in year_range_corpus(100, seed=0) + general_corpus(100, seed=0) + texts:
        assert train_tok.unk_token_id not in train_tok.encode(text, add_special_tokens=False), text


def test_greater_than_plugin_keeps_every_year_and_noun_and_its_contracts(task):
    # every start year 01..98 (00's first and 99's last are dropped per century)
    assert task.attribute_values("yy") == [f"{y:02d}" for y in range(1, 99)]
    assert task.attribute_values("century") == [str(c) for c in CENTURIES]
    assert len(task.nouns) == 69
    check_task(task, n=64, seed=0)


def test_training_ranges_end_after_they_start_and_general_years_do_not():
    def years(text: str) -> list[int]:
        return [int(w.strip(".,")) for w in text.split() if w.strip(".,").isdigit()]

    texts = year_range_corpus(4000, seed=0)  # each after 0-2 general sentences
    ranges = [years(t)[-2:] for t in texts]  # the range's years come last
    spans = [b - a for a, b in ranges]
    assert min(spans) >= 1
    # P(d) ∝ r^(d-1) + w·[d = D_noun], r = clip(r_noun^f_century): the drawn spans follow it
    words = [[w.strip(".,") for w in t.split()] for t in texts]
    noun_of = [[w for w in ws if w in nouns()][-1] for ws in words]  # the range's noun is last
    p_B = [span_probabilities(a % 100, span_decay(n, a // 100), typical_span(n))
           for (a, _), n in zip(ranges, noun_of, strict=True)]  # fmt: skip
    d_B = np.array(spans)
    assert np.mean(d_B == 1) == pytest.approx(np.mean([p[0] for p in p_B]), abs=0.03)
    typical_B = np.array([typical_span(n) for n in noun_of])
    at_typical = [p[t - 1] if t <= len(p) else 0.0 for p, t in zip(p_B, typical_B, strict=True)]
    expected = np.mean(at_typical)
    assert np.mean(d_B == typical_B) == pytest.approx(expected, abs=0.02)
    # YY + 1 is the most likely end year for every event, century and start year
    assert all(span_probabilities(yy, span_decay(n, c), typical_span(n)).argmax() == 0
               for n in nouns() for c in CENTURIES for yy in range(0, 99, 7))  # fmt: skip
    decays = sorted(noun_span_decay(n) for n in nouns())
    assert decays[0] == pytest.approx(0.1) and decays[-1] == pytest.approx(0.75)
    assert len({span_decay(n, c) for n in nouns() for c in CENTURIES}) > 300  # event x century
    # 0, 1 or 2 sentences with other nouns, centuries and years come first
    n_sentences = np.bincount([t.count(". ") - (". It was" in t) for t in texts], minlength=3)
    assert n_sentences.argmax() == 0 and (n_sentences[1:] > 400).all()
    pairs = [years(t) for t in general_corpus(2000, seed=0)]
    later = [b > a for a, b in (p for p in pairs if len(p) == 2)]
    assert 0.4 < np.mean(later) < 0.6
    assert HELD_OUT_TEMPLATE not in RANGE_TEMPLATES


def test_end_year_weights_mark_the_end_year_of_range_rows_only(model):
    tok = model.tokenizer
    rows = [
        tok.encode(text, add_special_tokens=False)
        for text in ("The war ran from 1732 to 1735.", "The war of 1732 was long.")
    ]
    length = max(len(r) for r in rows)
    tokens_BL = torch.tensor([r + [tok.pad_token_id] * (length - len(r)) for r in rows])
    digits = torch.tensor([tok.convert_tokens_to_ids(f"{y:02d}") for y in range(100)])
    weights_BL = end_year_weights(tokens_BL, torch.tensor([True, False]), digits, 3.0)
    assert tok.convert_ids_to_tokens(int(tokens_BL[0, weights_BL[0].argmax()])) == "35"
    assert weights_BL[0].sum() == length - 1 + 3.0
    assert (weights_BL[1] == 1).all()


def test_shipped_model_does_greater_than_on_the_test_split(model, task):
    prompts = task.prompts("test", 500, seed=123)
    scores = gt_scores(task, end_logits(model, prompts), prompts)
    assert scores["mean_pd"] >= 0.5
    assert scores["frac_pd_positive"] >= 0.95
    assert scores["accuracy"] >= 0.9  # the top token is YY + 1


def test_shipped_model_does_greater_than_on_a_template_it_never_saw(model, task):
    prompts = held_out_prompts(task, 300, seed=123)
    assert gt_scores(task, end_logits(model, prompts), prompts)["mean_pd"] >= 0.5


def test_supervised_yy_edit_moves_the_prediction_as_the_counterfactual_does(model, task):
    """By hand, outside the scorer: u_v = mean of the END residual over train prompts with
    yy = v; a − u_yy + u_yy' must make the model predict the counterfactual's YY' + 1."""
    hook, rows = SHIPPED_NODE.hook_name, torch.arange(400)
    fit = task.prompts("train", 4000, seed=5)
    with torch.no_grad():
        _, cache = model.run_with_cache(fit.tokens_BL, names_filter=hook)
    acts_ND = cache[hook][torch.arange(len(fit)), fit.positions["END"]]
    n_values = len(task.attribute_values("yy"))
    counts_V = torch.bincount(fit.attributes["yy"], minlength=n_values).float()
    means_VD = torch.zeros(n_values, acts_ND.shape[1]).index_add_(0, fit.attributes["yy"], acts_ND)
    means_VD /= counts_V[:, None]

    prompts = task.prompts("test", 400, seed=6)
    cf = task.counterfactual(prompts, "yy", seed=7)
    end_B = prompts.positions["END"]

    def edit(resid_BLD, hook):
        resid_BLD = resid_BLD.clone()
        delta_BD = means_VD[cf.attributes["yy"]] - means_VD[prompts.attributes["yy"]]
        resid_BLD[rows, end_B] += delta_BD
        return resid_BLD

    clean_B = end_logits(model, prompts).argmax(-1)
    edited_B = end_logits(model, prompts, [(hook, edit)]).argmax(-1)
    assert (clean_B == prompts.answer_B).float().mean() >= 0.9
    assert (edited_B == cf.answer_B).float().mean() >= 0.8
    assert (edited_B == prompts.answer_B).float().mean() <= 0.1


def test_retraining_with_the_same_seed_gives_bitwise_the_same_weights():
    cfg = TrainConfig(seed=3, steps=40, warmup_steps=10)
    runs = [train_tiny_gt(cfg, show_progress=False) for _ in range(2)]
    (model_a, _, _, losses_a), (model_b, _, _, losses_b) = runs
    assert losses_a.tolist() == losses_b.tolist()
    state_b = model_b.state_dict()
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, state_b[name]), name
    assert losses_a[0] > 0.8 * math.log(len(model_a.tokenizer))
    assert losses_a[-5:].mean() < 0.6 * losses_a[0]  # it learns
    other = train_tiny_gt(TrainConfig(seed=4, steps=40, warmup_steps=10), False)[0]
    assert not torch.equal(other.W_E, model_a.W_E)


def test_training_record_matches_the_shipped_weights(model, task):
    record = json.loads((MODEL_DIR / "training.json").read_text())
    assert record["command"].startswith("saebench model train tiny-gt")
    shipped = record["metrics"]
    prompts = task.prompts("test", shipped["n_prompts"], shipped["prompt_seed"])
    scores = gt_scores(task, end_logits(model, prompts), prompts)
    assert scores["mean_pd"] == pytest.approx(shipped["test"]["mean_pd"], abs=1e-5)


def test_cli_scores_the_shipped_sae_on_greater_than_offline(tmp_path):
    out = tmp_path / "run.json"
    args = ["run", "--task", "greater-than", "--model", "tiny-gt", "--sae", SHIPPED_SAE]
    args += ["--n-prompts", "300", "--no-leaderboard", "--no-cache", "--json-out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())["metrics"]
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    assert len(numbers) > 40
    assert all(math.isfinite(v) for v in numbers.values()), [
        k for k, v in numbers.items() if not math.isfinite(v)
    ]
    assert metrics["sup_edit_accuracy_yy"] >= 0.8
    assert metrics["noint_accuracy_yy"] <= 0.5
    assert metrics["clean_logit_diff"] >= 0.5  # the task metric: mean probability difference


def test_the_causal_map_puts_yy_at_every_shipped_leaderboard_node(model):
    """leaderboard/map/tiny-gt-greater-than/map.csv (``saebench map``): every node of the
    shipped Greater-Than leaderboard is causal (noint ≤ 0.5) and editable (sup ≥ 0.8) for
    ``yy``; ``noun`` and ``century`` are causal nowhere (the answer is two digits greater than
    YY whatever the event and the century), and one map cell recomputes on the shipped weights."""
    causal_map = pd.read_csv(ROOT / "leaderboard/map/tiny-gt-greater-than/map.csv")
    per_position = (model.cfg.n_layers + 1) + 4 * model.cfg.n_layers * model.cfg.n_heads
    assert len(causal_map) == per_position * 4 * 3  # NOUN, XX1, YY, END × 3 attributes
    yy = causal_map[causal_map["attribute"] == "yy"].set_index("node")
    shipped = read_leaderboard(ROOT / "leaderboard/tiny-gt.csv")
    nodes = {str(Node(r.hook, r.position, None if pd.isna(r.head) else int(r.head)))
             for r in shipped.itertuples()}  # fmt: skip
    assert nodes
    for node in nodes:
        assert yy.loc[node, "noint_accuracy"] <= 0.5 and yy.loc[node, "sup_edit_accuracy"] >= 0.8
    others = causal_map[causal_map["attribute"] != "yy"]
    assert (others["noint_accuracy"] > 0.5).all()

    task = GreaterThanTask(tokenizer=model.tokenizer)
    settings = EvalSettings(
        n_prompts=int(causal_map["n_prompts"].iloc[0]),
        n_fit_prompts=int(causal_map["n_fit_prompts"].iloc[0]),
        seed=int(causal_map["seed"].iloc[0]),
        ks=(1,),
        cache_dir=None,
        progress=False,
    )
    metrics = evaluate(model, task, SHIPPED_NODE, "supervised:mean", settings).metrics
    cell = yy.loc[str(SHIPPED_NODE)]
    assert metrics["noint_accuracy_yy"] == pytest.approx(cell["noint_accuracy"], abs=1e-6)
    assert metrics["sup_edit_accuracy_yy"] == pytest.approx(cell["sup_edit_accuracy"], abs=1e-6)


@pytest.mark.parametrize(
    ("sae_dir", "task", "hint"),
    [("tiny-gt/L0-z-h0-END/topk-k6-task", "ioi", "tiny-ioi"),
     ("tiny-ioi/L3-resid_post-END/topk-k6-task", "greater-than", "tiny-gt")],
)  # fmt: skip
def test_a_task_the_models_vocabulary_lacks_is_refused_with_the_right_model(sae_dir, task, hint):
    """tiny-gt's tokenizer writes IOI's names as <|unk|>, one token each: without the check,
    IOI would be scored on prompts of unknown words."""
    args = ["run", "--sae", str(ROOT / "baselines/saes" / sae_dir), "--task", task]
    result = CliRunner().invoke(main, args + ["--no-leaderboard", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "single known tokens" in result.output and hint in result.output


def test_prompts_with_the_unknown_token_are_refused(model, task):
    prompts = task.prompts("test", 8, seed=0)
    check_readable(prompts, model.tokenizer, "greater-than")  # the task's own: readable
    prompts.tokens_BL[3, 2] = model.tokenizer.unk_token_id
    with pytest.raises(ValueError, match=r"1 of 8 prompts of task 'greater-than' contain"):
        check_readable(prompts, model.tokenizer, "greater-than")

    class UnknownYears(GreaterThanTask):  # a plugin whose counterfactual writes a word the
        def counterfactual(self, prompts, attribute, seed):  # model does not know
            out = super().counterfactual(prompts, attribute, seed)
            out.tokens_BL[::2, 2] = self.tokenizer.unk_token_id
            return out

    settings = EvalSettings(n_prompts=10, n_fit_prompts=50, cache_dir=None, progress=False)
    with pytest.raises(ValueError, match="5 of 10 prompts of task 'greater-than' contain"):
        evaluate(model, UnknownYears(tokenizer=model.tokenizer), SHIPPED_NODE, "supervised:mean",
                 settings)  # fmt: skip
    # GPT-2's unknown token is its BOS (<|endoftext|>): nothing to check there
    gpt2 = GreaterThanTask(tokenizer=gpt2_tokenizer())
    check_readable(gpt2.prompts("test", 8, seed=0), gpt2_tokenizer(), "greater-than")


def test_scoring_an_sae_away_from_where_it_was_trained_warns(caplog):
    config = RunConfig(sae=SHIPPED_SAE, task="greater-than", position="YY")
    with caplog.at_level("WARNING", logger="saebench.run"):
        resolve(config)
    assert "trained on activations at END and is scored at YY" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="saebench.run"):
        resolve(RunConfig(sae=SHIPPED_SAE, task="ioi", position="END"))
    assert "trained on task 'greater-than' and is scored on 'ioi'" in caplog.text
    assert "scored at" not in caplog.text


def test_coverage_of_yy_tells_trained_saes_from_a_random_dictionary_at_every_node():
    """Issue 22's acceptance, on the committed leaderboard: at every node of
    leaderboard/tiny-gt.csv the random dictionary's ``f1_coverage_yy`` is ≤ 0.2 and below the
    best trained SAE's by a margin larger than both 95% intervals (``_lo``/``_hi``, metrics.md
    §11), and no node is a token embedding (where any sparse code separates the 98 vectors)."""
    shipped = read_leaderboard(ROOT / "leaderboard/tiny-gt.csv")
    trained = shipped["architecture"].isin(["standard", "gated", "topk", "batchtopk"])
    nodes = shipped.groupby(["hook", "head", "position"], dropna=False)
    assert len(nodes) >= 1
    for (hook, _, position), rows in nodes:
        assert hook not in ("hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre"), hook
        random = rows[rows["architecture"] == "random"].iloc[0]
        best = rows[trained.loc[rows.index]].sort_values("f1_coverage_yy").iloc[-1]
        cov, lo, hi = (f"f1_coverage_yy{s}" for s in ("", "_lo", "_hi"))
        assert random[cov] <= 0.2, (hook, position, random[cov])
        margin = best[cov] - random[cov]
        widths = (random[hi] - random[lo], best[hi] - best[lo])
        assert margin > max(widths), (hook, position, best["sae_name"], margin, widths)
        assert best[lo] > random[hi], (hook, position, best["sae_name"])
