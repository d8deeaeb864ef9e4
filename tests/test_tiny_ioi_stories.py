"""tiny-ioi's training text (stories), its evaluation sets, the ``ioi-order`` task variant,
and the circuit of the shipped model."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from saebench.model import gpt2_tokenizer, load_model
from saebench.testing import check_task
from saebench.tiny_ioi.circuit import head_table
from saebench.tiny_ioi.evaluate import (
    counting_adversarial_stories,
    held_out_shape_stories,
    preamble_stories,
    story_prompts,
)
from saebench.tiny_ioi.stories import (
    FINALS,
    HELD_OUT_FINALS,
    HELD_OUT_INTROS,
    HELD_OUT_MIDDLES,
    HELD_OUT_PREAMBLES,
    INTROS,
    Shapes,
    general_corpus,
    ioi_corpus,
    ioi_story,
    training_mixture,
    vocabulary_texts,
    word_lists,
)
from saebench.tiny_ioi.tokenizer import build_tokenizer, hf_tokenizer
from saebench_tasks.ioi import ORDER_WORDS, IOIOrderTask, IOITask

NAMES = set(word_lists()["names"])


@pytest.fixture(scope="module")
def tokenizer():
    return hf_tokenizer(build_tokenizer(vocabulary_texts()))


def _names_in(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z]+", text) if w in NAMES]


def _shape_pattern(shape: str) -> re.Pattern:
    """A shape as a regex: slots match one word, a leading capital either case."""
    shape = shape.rstrip(".,")
    first = f"[{shape[0].upper()}{shape[0].lower()}]" if shape[0].isalpha() else ""
    rest = shape[1:] if first else shape
    return re.compile(first + re.sub(r"\\\[[A-Z0-9]+\\\]", r"\\w+", re.escape(rest)))


def test_every_word_of_every_text_is_known_to_the_stories_tokenizer(tokenizer):
    texts, _ = training_mixture(3000, seed=0)
    texts += [s.text for s in held_out_shape_stories(200, 0) + preamble_stories(200, 0)]
    texts += [s.text for s in counting_adversarial_stories(200, 0)]
    for text in texts:
        assert tokenizer.unk_token_id not in tokenizer.encode(text, add_special_tokens=False), text


def test_the_answer_is_the_pair_member_who_is_not_the_last_clause_subject():
    rng = np.random.default_rng(0)
    for _ in range(500):
        story = ioi_story(rng, Shapes.train())
        intro_names = _names_in(story.parts["intro"])
        assert set(intro_names[:2]) == {story.io, story.s}
        assert intro_names[0] == (story.s if story.s_first else story.io)
        assert _names_in(story.parts["final"])[-1] == story.s  # S2: the final clause's subject
        assert story.text.endswith(" to")
        # the preamble is about other people
        assert not {story.io, story.s} & set(_names_in(story.parts["preamble"]))


def test_former_and_latter_name_s_by_its_place_in_the_pair():
    rng = np.random.default_rng(1)
    for _ in range(200):
        story = ioi_story(rng, Shapes.train(), former=True)
        word = "former" if story.s_first else "latter"
        assert f"the {word} " in story.parts["final"].lower()
        assert story.s not in _names_in(story.parts["final"])
        assert not story.parts["middle"]


def test_training_names_io_once_and_s_twice_and_the_counting_set_reverses_that():
    """In training, counting would give the answer (the least-named name); the
    counting-adversarial set names IO most, so only a model that did not learn to count
    passes it."""
    texts = [t for t in ioi_corpus(2000, seed=2, former_fraction=0.0) if t]
    for text in texts:
        prompt, answer = text[: text.rindex(" ")], text[text.rindex(" ") + 1 : -1]
        names = _names_in(prompt)
        assert (names.count(answer), names.count(names[-1])) == (1, 2), text
    for story in counting_adversarial_stories(200, seed=0):
        names = _names_in(story.text)
        assert (names.count(story.io), names.count(story.s)) == (3, 2), story.text


def test_held_out_shapes_are_never_in_the_training_text():
    training = " ".join(training_mixture(6000, seed=0)[0])
    for shape in HELD_OUT_INTROS + HELD_OUT_FINALS + HELD_OUT_PREAMBLES:
        assert _shape_pattern(shape).search(training) is None, shape
    # the held-out middles are general sentences, never between an IOI story's intro and end
    rng = np.random.default_rng(5)
    middles = " ".join(ioi_story(rng, Shapes.train()).parts["middle"] for _ in range(3000))
    for shape in HELD_OUT_MIDDLES:
        assert _shape_pattern(shape).search(middles) is None, shape
    # while the trained ones are there
    for shape in INTROS[:5] + FINALS[:5]:
        assert _shape_pattern(shape).search(training) is not None, shape


def test_names_recur_in_general_stories():
    stories = general_corpus(2000, seed=0)
    multi = [s for s in stories if s.count(".") >= 2]
    recurring = [s for s in multi if max(map(_names_in(s).count, set(_names_in(s))), default=0) > 1]
    assert len(recurring) / len(multi) > 0.7


def test_evaluation_sets_have_their_stated_properties():
    for story in counting_adversarial_stories(100, seed=3):
        names = _names_in(story.text)
        assert names.count(story.io) == 3 and names.count(story.s) == 2
    for story in preamble_stories(100, seed=3):
        assert 1 <= story.text.count(". ") - 1 <= 3  # 1-3 sentences before the two of the template
        assert _names_in(story.text)[-1] == story.s
    prompts = story_prompts(gpt2_tokenizer(), held_out_shape_stories(20, seed=3))
    assert prompts.tokens_BL.shape[0] == 20 and (prompts.answer_B != prompts.wrong_B).all()


@pytest.mark.parametrize("which", ["gpt2", "stories"])
def test_ioi_order_passes_the_plugin_kit(which, tokenizer):
    tok = gpt2_tokenizer() if which == "gpt2" else tokenizer
    task = IOIOrderTask(tokenizer=tok)
    assert check_task(task, n=16, tokenizer=tok)[-1] == "splits"


def test_ioi_order_prompts_and_the_pos_counterfactual(tokenizer):
    task = IOIOrderTask(tokenizer=tokenizer)
    prompts = task.prompts("test", 50, seed=0)
    cf = task.counterfactual(prompts, "pos", seed=1)
    rows = torch.arange(50)
    for p in range(50):
        pos = int(prompts.attributes["pos"][p])  # 0: ABB (IO first, S second: "the latter")
        assert f"the {ORDER_WORDS[pos]} " in prompts.texts[p].lower()
        assert f"the {ORDER_WORDS[1 - pos]} " in cf.texts[p].lower()
    # the same IO and S, in the other order: the answer is unchanged
    assert torch.equal(cf.answer_B, prompts.answer_B) and torch.equal(cf.wrong_B, prompts.wrong_B)
    io, s1 = prompts.positions["IO"], prompts.positions["S1"]
    assert torch.equal(cf.tokens_BL[rows, s1], prompts.tokens_BL[rows, io])
    # S2 holds the order word, never a name
    s2_tokens = set(prompts.tokens_BL[rows, prompts.positions["S2"]].tolist())
    assert s2_tokens == set(task.order_ids)


def test_ioi_order_refuses_a_tokenizer_without_the_order_words():
    tok = hf_tokenizer(build_tokenizer(["Then, Mary and John went to the store."] * 3))
    with pytest.raises(ValueError, match="former"):
        IOIOrderTask(tokenizer=tok)


def test_circuit_of_the_shipped_model():
    """docs/tiny-ioi.md §2 on the shipped weights: no duplicate-token head; heads 0.0, 0.1, 1.0
    and 1.1 gather IO, S1 and S2 at END (a third each: S counted twice); head 0.3 brings S2 to
    END, and the model needs it (ablated, the LD turns negative) and reads S from it (patching
    its ``s`` counterfactual output changes most answers); on ``ioi-order`` head 0.3 attends
    from END to the order word and to the pair's name it refers to, and carries ``pos``."""
    model = load_model("tiny-ioi")
    ioi = head_table(model, IOITask(tokenizer=model.tokenizer), n=64, seed=0)
    clean_ld = float(ioi["clean_ld"])
    assert (ioi["attn_s2_s1"] - ioi["attn_s2_io"]).max() < 0.1  # S2 does not single out S1
    for layer, head in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        for key in ("attn_end_io", "attn_end_s1", "attn_end_s2"):
            assert 0.25 < ioi[key][layer, head] < 0.45, (layer, head, key)
    assert ioi["attn_end_s2"][0, 3] > 0.9
    others = np.delete(ioi["ablate_ld"].flatten(), 3)  # every head but 0.3
    assert ioi["ablate_ld"][0, 3] < 0 < 0.8 * clean_ld < others.min()
    patch_s = ioi["patch_s"][0, 3]  # no other head carries S nearly as much
    assert patch_s < 0.4 and np.delete(ioi["patch_s"].flatten(), 3).min() > patch_s + 0.4
    assert ioi["patch_pos"].min() >= 0.95  # plain IOI: the model reads S's identity
    order = head_table(model, IOIOrderTask(tokenizer=model.tokenizer), n=64, seed=0)
    assert order["attn_end_s2"][0, 3] + order["attn_end_s1"][0, 3] > 0.9
    assert min(order["attn_end_s2"][0, 3], order["attn_end_s1"][0, 3]) > 0.3
    assert order["ablate_ld"][0, 3] < 0.2 * float(order["clean_ld"])
    patch_pos = order["patch_pos"][0, 3]  # no other head carries the order nearly as much
    assert patch_pos < 0.8 and np.delete(order["patch_pos"].flatten(), 3).min() > patch_pos + 0.15
