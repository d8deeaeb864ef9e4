"""The plugin kit: :func:`check_task` checks every contract the scorer relies on.

A task plugin's own test calls it on an instance built with a real tokenizer::

    from saebench.testing import check_task

    def test_mytask_keeps_the_task_contracts():
        check_task(MyTask(tokenizer=my_tokenizer()), n=64, seed=0)

Each broken contract raises :class:`TaskContractError` (an ``AssertionError``, so pytest shows
it as a failed assertion) whose message starts with the contract's name in brackets and names
the prompt, the attribute and what broke, e.g.
``[counterfactual] counterfactual('io') of prompts('test', n=32, seed=0): prompt 0 also
changes attribute 's' (label 17 -> 40)``.

What the scorer assumes (``saebench.evaluate``, ``saebench.runner``, ``saebench.node``), and
so what is checked (the contract names):

- ``structure``: a :class:`~saebench.task.PromptSet` of ``n`` prompts, ``tokens_BL`` [B, L]
  integer; ``positions`` has exactly ``position_labels`` (which include ``END``), each [B]
  and in [0, L); a label in [0, len(attribute_values(a))) for every attribute;
  ``answer_B``/``wrong_B`` [B] token ids; ``texts`` empty or one per prompt.
- ``padding``: prompts are right-padded: END is the last token of the longest prompt
  (max END = L − 1), and every token after a prompt's END is the one padding id (the task's
  ``pad_id`` when it has one).
- ``determinism``: ``prompts`` and ``counterfactual`` return identical prompts (tokens,
  labels, positions, answers) for the same seed, and ``prompts`` different ones for another.
- ``counterfactual``: for each attribute, the counterfactual (drawn with the scorer's seed,
  ``saebench.evaluate.counterfactual_seed``) changes that attribute's label on every prompt and
  no other label, keeps the token length L and END, keeps every other position unless the
  task declares that the attribute moves it (``counterfactual_moves``), changes at least one
  token of every prompt, leaves the padding alone, and does not modify the prompts it is given.
- ``values`` (tasks that declare ``value_positions``): the token at a value-bearing position
  is the attribute's value: the same value always gives the same token and different values
  different tokens, and with a tokenizer the token decodes to the value string (up to
  surrounding spaces); checked on the prompts and on every counterfactual.
- ``single-token`` (value-bearing attributes, given a tokenizer): every string of
  ``attribute_values`` is one token, as it is or with a leading space.
- ``known-tokens`` (given a tokenizer with an unknown token of its own, as the embedded
  models' word-level ones): no prompt or counterfactual holds it; a word the tokenizer lacks
  would be read by the model as ``<|unk|>``. The ``single-token`` check does not accept a value
  that is the unknown token either.
- ``metric``: ``metric(logits_BV, prompts)`` on random logits of the vocabulary's size is a
  finite floating tensor of shape [B], differentiable in the logits, computed per prompt (a
  sub-batch gives the same rows: the scorer calls it batch by batch) and larger where the
  logits favour ``answer_B`` than where they favour ``wrong_B``.
- ``splits``: both splits give valid prompts and counterfactuals; an attribute the task
  declares in ``disjoint_splits`` takes no value in both ``train`` and ``test`` (prompts and
  counterfactuals together).

The optional declarations (``value_positions``, ``counterfactual_moves``, ``disjoint_splits``,
``pad_id``) are read from the task's attributes (see :class:`saebench.task.Task`) and can be
given to :func:`check_task` instead, which wins over the task's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from saebench.evaluate import counterfactual_seed
from saebench.task import PromptSet, Task, unknown_token_id

CONTRACTS: tuple[str, ...] = (
    "structure",
    "padding",
    "determinism",
    "counterfactual",
    "values",
    "single-token",
    "known-tokens",
    "metric",
    "splits",
)
"""Names of the contracts :func:`check_task` checks, in the order it checks them."""


class TaskContractError(AssertionError):
    """A task breaks a contract the scorer relies on; ``contract`` is its name in
    :data:`CONTRACTS`, the message says which prompt, attribute or position broke it and how."""

    def __init__(self, contract: str, message: str):
        self.contract = contract
        super().__init__(f"[{contract}] {message}")


def _fail(contract: str, message: str) -> None:
    raise TaskContractError(contract, message)


def _first(mask_B: Tensor) -> int:
    """Index of the first True entry of a boolean [B] tensor."""
    return int(mask_B.nonzero()[0, 0])


def _snapshot(prompts: PromptSet) -> PromptSet:
    """A deep copy of ``prompts``' tensors (to tell whether a call modified them)."""
    return PromptSet(
        tokens_BL=prompts.tokens_BL.clone(),
        positions={k: v.clone() for k, v in prompts.positions.items()},
        attributes={k: v.clone() for k, v in prompts.attributes.items()},
        answer_B=prompts.answer_B.clone(),
        wrong_B=prompts.wrong_B.clone(),
        texts=list(prompts.texts),
    )


def _difference(a: PromptSet, b: PromptSet) -> str | None:
    """The first field in which two prompt sets differ, described; None if identical."""
    if a.tokens_BL.shape != b.tokens_BL.shape:
        return f"tokens_BL has shape {tuple(a.tokens_BL.shape)} then {tuple(b.tokens_BL.shape)}"
    if not torch.equal(a.tokens_BL, b.tokens_BL):
        p = _first((a.tokens_BL != b.tokens_BL).any(1))
        return f"prompt {p} has other tokens"
    for kind, x, y in (
        ("position", a.positions, b.positions),
        ("label", a.attributes, b.attributes),
    ):
        if set(x) != set(y):
            return f"{kind} keys {sorted(x)} then {sorted(y)}"
        for key in x:
            if x[key].shape != y[key].shape or not torch.equal(x[key], y[key]):
                return f"{kind} {key!r} differs"
    for name in ("answer_B", "wrong_B"):
        if not torch.equal(getattr(a, name), getattr(b, name)):
            return f"{name} differs"
    return None


def _is_int(t: Tensor) -> bool:
    return not t.dtype.is_floating_point and not t.dtype.is_complex and t.dtype != torch.bool


def _check_structure(
    task: Task, prompts: PromptSet, n: int, where: str, vocab_size: int | None
) -> None:
    """``structure`` and ``padding`` of one prompt set."""
    if not isinstance(prompts, PromptSet):
        _fail("structure", f"{where} returned a {type(prompts).__name__}, not a PromptSet")
    tokens = prompts.tokens_BL
    if tokens.dim() != 2 or not _is_int(tokens):
        _fail(
            "structure",
            f"{where}: tokens_BL must be an integer [B, L] tensor, got "
            f"{tokens.dtype} of shape {tuple(tokens.shape)}",
        )
    n_rows, length = tokens.shape
    if n_rows != n:
        _fail("structure", f"{where}: asked for {n} prompts, got {n_rows}")
    labels = set(task.position_labels)
    if "END" not in labels:
        _fail("structure", f"position_labels {task.position_labels} do not include 'END'")
    if set(prompts.positions) != labels:
        _fail(
            "structure",
            f"{where}: positions has labels {sorted(prompts.positions)}, "
            f"position_labels declares {sorted(labels)}",
        )
    for label, pos in prompts.positions.items():
        if pos.shape != (n_rows,) or not _is_int(pos):
            _fail(
                "structure",
                f"{where}: position {label!r} must be an integer [B] tensor, got "
                f"{pos.dtype} of shape {tuple(pos.shape)}",
            )
        bad = (pos < 0) | (pos >= length)
        if bad.any():
            p = _first(bad)
            _fail(
                "structure",
                f"{where}: prompt {p}: position {label!r} is {int(pos[p])}, outside [0, {length})",
            )
    for attr in task.attributes:
        if attr not in prompts.attributes:
            _fail("structure", f"{where}: no labels for attribute {attr!r}")
        lab = prompts.attributes[attr]
        if lab.shape != (n_rows,) or not _is_int(lab):
            _fail(
                "structure",
                f"{where}: labels of {attr!r} must be an integer [B] tensor, got "
                f"{lab.dtype} of shape {tuple(lab.shape)}",
            )
        n_values = len(task.attribute_values(attr))
        bad = (lab < 0) | (lab >= n_values)
        if bad.any():
            p = _first(bad)
            _fail(
                "structure",
                f"{where}: prompt {p}: label {int(lab[p])} of attribute {attr!r} "
                f"is outside [0, {n_values}) (attribute_values has {n_values})",
            )
    for name in ("answer_B", "wrong_B"):
        ids = getattr(prompts, name)
        if ids.shape != (n_rows,) or not _is_int(ids):
            _fail(
                "structure",
                f"{where}: {name} must be an integer [B] tensor, got "
                f"{ids.dtype} of shape {tuple(ids.shape)}",
            )
        if vocab_size is not None and ((ids < 0) | (ids >= vocab_size)).any():
            p = _first((ids < 0) | (ids >= vocab_size))
            _fail(
                "structure",
                f"{where}: prompt {p}: {name} {int(ids[p])} is not a token id "
                f"(vocabulary size {vocab_size})",
            )
    if prompts.texts and len(prompts.texts) != n_rows:
        _fail("structure", f"{where}: {len(prompts.texts)} texts for {n_rows} prompts")

    end = prompts.positions["END"]
    if int(end.max()) != length - 1:
        _fail(
            "padding",
            f"{where}: the longest prompt ends at END = {int(end.max())} but "
            f"tokens_BL has length {length}: END must be each prompt's last token, prompts "
            f"right-padded to the longest",
        )
    after_BL = torch.arange(length)[None, :] > end[:, None]
    pad_ids = torch.unique(tokens[after_BL]).tolist()
    pad_id = getattr(task, "pad_id", None)
    if pad_ids and (len(pad_ids) > 1 or (pad_id is not None and pad_ids[0] != pad_id)):
        bad = after_BL & (tokens != (pad_id if pad_id is not None else pad_ids[0]))
        p = _first(bad.any(1))
        i = _first(bad[p])
        _fail(
            "padding",
            f"{where}: prompt {p}: token {int(tokens[p, i])} at index {i}, after "
            f"END = {int(end[p])}, is not padding ({pad_id if pad_id is not None else pad_ids[0]}"
            f"): END must be the last token before the padding",
        )


def _check_counterfactual(
    task: Task,
    prompts: PromptSet,
    cf: PromptSet,
    attr: str,
    moves: Iterable[str],
    where: str,
) -> None:
    """``counterfactual``: what changes and what stays between ``prompts`` and ``cf``."""
    if not isinstance(cf, PromptSet):
        _fail("counterfactual", f"{where} returned a {type(cf).__name__}, not a PromptSet")
    if cf.tokens_BL.shape != prompts.tokens_BL.shape:
        _fail(
            "counterfactual",
            f"{where}: tokens_BL has shape {tuple(cf.tokens_BL.shape)}, the "
            f"prompts {tuple(prompts.tokens_BL.shape)}: the token length must stay the same",
        )
    end, cf_end = prompts.positions["END"], cf.positions.get("END")
    if cf_end is None or cf_end.shape != end.shape:
        _fail("counterfactual", f"{where}: no END position of shape [B]")
    if not torch.equal(cf_end, end):
        p = _first(cf_end != end)
        _fail(
            "counterfactual",
            f"{where}: prompt {p}: END moves from {int(end[p])} to "
            f"{int(cf_end[p])}: a counterfactual keeps every prompt's length and END",
        )
    for key, lab in prompts.attributes.items():
        new = cf.attributes.get(key)
        if new is None or new.shape != lab.shape:
            _fail("counterfactual", f"{where}: labels of {key!r} missing or of another shape")
        if key == attr:
            if (new == lab).any():
                p = _first(new == lab)
                _fail(
                    "counterfactual",
                    f"{where}: prompt {p}: attribute {attr!r} keeps its "
                    f"value (label {int(lab[p])}): the counterfactual must change it",
                )
        elif not torch.equal(new, lab):
            p = _first(new != lab)
            _fail(
                "counterfactual",
                f"{where}: prompt {p} also changes attribute {key!r} "
                f"(label {int(lab[p])} -> {int(new[p])}): a counterfactual changes exactly "
                f"one attribute",
            )
    moves = set(moves)
    for label, pos in prompts.positions.items():
        new = cf.positions.get(label)
        if new is None or new.shape != pos.shape:
            _fail("counterfactual", f"{where}: position {label!r} missing or of another shape")
        if label not in moves and not torch.equal(new, pos):
            p = _first(new != pos)
            _fail(
                "counterfactual",
                f"{where}: prompt {p}: position {label!r} moves from "
                f"{int(pos[p])} to {int(new[p])} (if changing {attr!r} is meant to move it, "
                f"declare counterfactual_moves = {{{attr!r}: (..., {label!r})}})",
            )
    same = (cf.tokens_BL == prompts.tokens_BL).all(1)
    if same.any():
        p = _first(same)
        _fail(
            "counterfactual",
            f"{where}: prompt {p} has the same tokens as the original: the "
            f"counterfactual changes no token",
        )
    length = prompts.tokens_BL.shape[1]
    after_BL = torch.arange(length)[None, :] > end[:, None]
    changed_pad = after_BL & (cf.tokens_BL != prompts.tokens_BL)
    if changed_pad.any():
        p = _first(changed_pad.any(1))
        _fail(
            "counterfactual",
            f"{where}: prompt {p}: tokens after END = {int(end[p])} change: "
            f"the counterfactual has another length",
        )


def _value_token_check(
    task: Task,
    sets: list[tuple[PromptSet, str]],
    value_positions: Mapping[str, Iterable[str]],
    tokenizer,
) -> None:
    """``values``: the token at each value-bearing position is the attribute's value, over
    all of ``sets`` together (prompts and their counterfactuals)."""
    for attr, labels in value_positions.items():
        if attr not in task.attributes:
            _fail(
                "values",
                f"value_positions names {attr!r}, not an attribute of the task {task.attributes}",
            )
        values = task.attribute_values(attr)
        token_of: dict[int, tuple[int, str]] = {}
        value_of: dict[int, tuple[int, str]] = {}
        for label in labels:
            if label not in task.position_labels:
                _fail(
                    "values",
                    f"value_positions[{attr!r}] names {label!r}, not a position "
                    f"label {task.position_labels}",
                )
            for prompts, where in sets:
                rows = torch.arange(len(prompts))
                tok_B = prompts.tokens_BL[rows, prompts.positions[label]].tolist()
                lab_B = prompts.attributes[attr].tolist()
                for p, (tok, lab) in enumerate(zip(tok_B, lab_B, strict=True)):
                    here = f"{where}: prompt {p}"
                    if tokenizer is not None:
                        text = tokenizer.decode([tok])
                        if text.strip() != values[lab].strip():
                            _fail(
                                "values",
                                f"{here}: the token at {label} (index "
                                f"{int(prompts.positions[label][p])}) is {text!r}, not the "
                                f"value {values[lab]!r} of attribute {attr!r}",
                            )
                    seen = token_of.setdefault(lab, (tok, f"{here} at {label}"))
                    if seen[0] != tok:
                        _fail(
                            "values",
                            f"{here}: attribute {attr!r} = {values[lab]!r} has token "
                            f"{tok} at {label}, but token {seen[0]} {seen[1]}",
                        )
                    other = value_of.setdefault(tok, (lab, f"{here} at {label}"))
                    if other[0] != lab:
                        _fail(
                            "values",
                            f"{here}: token {tok} at {label} stands for "
                            f"{attr!r} = {values[lab]!r}, but for {values[other[0]]!r} "
                            f"{other[1]}",
                        )


def _single_token_check(task: Task, attrs: Iterable[str], tokenizer) -> None:
    """``single-token``: every value of a value-bearing attribute is one known token."""
    unk = unknown_token_id(tokenizer)
    for attr in attrs:
        for i, value in enumerate(task.attribute_values(attr)):
            encodings = [
                tokenizer.encode(text, add_special_tokens=False) for text in (value, " " + value)
            ]
            if unk is not None and all(ids == [unk] for ids in encodings):
                _fail(
                    "single-token",
                    f"value {i} of attribute {attr!r}, {value!r}, is the tokenizer's unknown "
                    f"token {tokenizer.unk_token!r}: the tokenizer lacks the word",
                )
            lengths = [len(ids) for ids in encodings]
            if min(lengths) != 1:
                _fail(
                    "single-token",
                    f"value {i} of attribute {attr!r}, {value!r}, is "
                    f"{min(lengths)} tokens for the tokenizer (with or without a leading "
                    f"space): a value-bearing attribute takes single-token values",
                )


def _known_token_check(prompts: PromptSet, tokenizer, where: str) -> None:
    """``known-tokens``: no prompt holds the tokenizer's unknown token."""
    unk = unknown_token_id(tokenizer)
    if unk is None:
        return
    hit_BL = prompts.tokens_BL == unk
    if hit_BL.any():
        p = _first(hit_BL.any(1))
        _fail(
            "known-tokens",
            f"{where}: prompt {p}: the token at index {_first(hit_BL[p])} is the tokenizer's "
            f"unknown token {tokenizer.unk_token!r}: the tokenizer lacks a word of the prompt, "
            f"and a model would read {tokenizer.unk_token!r} there",
        )


def _check_metric(task: Task, prompts: PromptSet, vocab_size: int, seed: int, where: str) -> None:
    """``metric``: shape, finiteness, gradient, per-prompt rows, answer over wrong."""
    n_rows = len(prompts)
    gen = torch.Generator().manual_seed(seed)
    logits_BV = torch.randn(n_rows, vocab_size, generator=gen).requires_grad_(True)
    name = f"metric(random logits [{n_rows}, {vocab_size}], {where})"
    out = task.metric(logits_BV, prompts)
    if not isinstance(out, Tensor):
        _fail("metric", f"{name} returned a {type(out).__name__}, not a Tensor")
    if out.shape != (n_rows,):
        _fail(
            "metric",
            f"{name} has shape {tuple(out.shape)}, not [B] = ({n_rows},): one scalar per prompt",
        )
    if not out.dtype.is_floating_point:
        _fail("metric", f"{name} has dtype {out.dtype}, not a floating type")
    if not torch.isfinite(out.detach()).all():
        p = _first(~torch.isfinite(out.detach()))
        _fail("metric", f"{name}: prompt {p}: the metric is {float(out[p].detach())}, not finite")
    if not out.requires_grad:
        _fail("metric", f"{name} does not depend differentiably on the logits")
    (grad_BV,) = torch.autograd.grad(out.sum(), logits_BV, allow_unused=True)
    if grad_BV is None or not torch.isfinite(grad_BV).all():
        _fail("metric", f"{name}: the gradient with respect to the logits is missing or not finite")
    out = out.detach()
    order = torch.arange(n_rows - 1, -1, -1)[: max(1, n_rows // 2)]
    part = task.metric(logits_BV.detach()[order], prompts.select(order))
    if part.shape != (len(order),) or not torch.allclose(part, out[order], atol=1e-5, rtol=1e-4):
        _fail(
            "metric",
            f"{name}: a sub-batch of the prompts (prompts.select) does not give the "
            f"same per-prompt values: the scorer computes the metric batch by batch",
        )
    same = prompts.answer_B == prompts.wrong_B
    if same.any():
        p = _first(same)
        _fail(
            "metric",
            f"{where}: prompt {p}: answer_B and wrong_B are the same token "
            f"{int(prompts.answer_B[p])}",
        )
    rows = torch.arange(n_rows)
    favour_answer = torch.zeros(n_rows, vocab_size)
    favour_answer[rows, prompts.answer_B] = 5.0
    favour_wrong = torch.zeros(n_rows, vocab_size)
    favour_wrong[rows, prompts.wrong_B] = 5.0
    with torch.no_grad():
        good, bad = task.metric(favour_answer, prompts), task.metric(favour_wrong, prompts)
    worse = ~(good > bad)
    if worse.any():
        p = _first(worse)
        _fail(
            "metric",
            f"{where}: prompt {p}: the metric is {float(good[p]):.4g} on logits "
            f"favouring answer_B and {float(bad[p]):.4g} on logits favouring wrong_B: it "
            f"must be larger for the answer",
        )


def _vocab_size(tokenizer, sets: list[PromptSet]) -> int:
    """Size of the logits the metric is tried on: the tokenizer's, and at least every id used."""
    used = 1 + max(
        int(torch.cat([s.tokens_BL.flatten(), s.answer_B, s.wrong_B]).max()) for s in sets
    )
    return max(used, len(tokenizer) if tokenizer is not None else 0)


def check_task(
    task: Task,
    n: int = 32,
    seed: int = 0,
    *,
    splits: tuple[str, ...] = ("test", "train"),
    tokenizer=None,
    vocab_size: int | None = None,
    value_positions: Mapping[str, Iterable[str]] | None = None,
    counterfactual_moves: Mapping[str, Iterable[str]] | None = None,
    disjoint_splits: Iterable[str] | None = None,
) -> list[str]:
    """Check that ``task`` keeps every contract the scorer relies on (module docstring) on
    ``n`` prompts of each split drawn with ``seed``; raise :class:`TaskContractError` at the
    first broken one. Returns the names of the contracts checked (``values`` and
    ``single-token`` only where the task declares value-bearing positions, ``single-token``
    only with a tokenizer, ``known-tokens`` only with a tokenizer that has an unknown token of
    its own).

    ``tokenizer`` defaults to ``task.tokenizer``; ``vocab_size`` (of the random logits the
    metric is tried on) to the tokenizer's size. ``value_positions``, ``counterfactual_moves``
    and ``disjoint_splits`` default to the task's own declarations (:class:`saebench.task.Task`)
    or none. ``n`` ≥ 2.

    >>> from saebench.model import gpt2_tokenizer
    >>> from saebench_tasks.ioi import IOITask
    >>> ioi = IOITask(tokenizer=gpt2_tokenizer())
    >>> check_task(ioi, n=8)[-3:]  # IOITask declares value_positions and the rest
    ['single-token', 'metric', 'splits']
    """
    if n < 2:
        raise ValueError(f"check_task needs n >= 2 prompts (different seeds are compared), got {n}")
    tokenizer = tokenizer if tokenizer is not None else getattr(task, "tokenizer", None)
    if value_positions is None:
        value_positions = getattr(task, "value_positions", None) or {}
    if counterfactual_moves is None:
        counterfactual_moves = getattr(task, "counterfactual_moves", None) or {}
    if disjoint_splits is None:
        disjoint_splits = getattr(task, "disjoint_splits", None) or ()
    disjoint_splits = tuple(disjoint_splits)
    for attr in [*counterfactual_moves, *disjoint_splits]:
        if attr not in task.attributes:
            _fail(
                "structure",
                f"a declaration names {attr!r}, not an attribute of the task {task.attributes}",
            )

    if tokenizer is not None and value_positions:
        _single_token_check(task, value_positions, tokenizer)

    seen: dict[str, dict[str, dict[int, str]]] = {split: {} for split in splits}
    for split in splits:
        where = f"prompts({split!r}, n={n}, seed={seed})"
        prompts = task.prompts(split, n, seed)
        size = (
            vocab_size
            if vocab_size is not None
            else (len(tokenizer) if tokenizer is not None else None)
        )
        _check_structure(task, prompts, n, where, size)
        if tokenizer is not None:
            _known_token_check(prompts, tokenizer, where)

        again = task.prompts(split, n, seed)
        diff = _difference(prompts, again) if isinstance(again, PromptSet) else "not a PromptSet"
        if diff is not None:
            _fail(
                "determinism",
                f"{where} differs between two calls ({diff}): prompts must be a "
                f"function of (split, n, seed)",
            )
        other = task.prompts(split, n, seed + 1)
        if isinstance(other, PromptSet) and _difference(prompts, other) is None:
            _fail(
                "determinism",
                f"{where} and seed={seed + 1} give identical prompts: the seed "
                f"must change the draw",
            )

        sets = [(prompts, where)]
        for i, attr in enumerate(task.attributes):
            cf_seed = counterfactual_seed(seed, i)
            cf_where = f"counterfactual({attr!r}, seed={cf_seed}) of {where}"
            before = _snapshot(prompts)
            cf = task.counterfactual(prompts, attr, cf_seed)
            diff = _difference(before, prompts)
            if diff is not None:
                _fail("counterfactual", f"{cf_where} modified the prompts it was given ({diff})")
            _check_counterfactual(
                task, prompts, cf, attr, counterfactual_moves.get(attr, ()), cf_where
            )
            _check_structure(task, cf, n, cf_where, size)
            if tokenizer is not None:
                _known_token_check(cf, tokenizer, cf_where)
            diff = _difference(cf, task.counterfactual(prompts, attr, cf_seed))
            if diff is not None:
                _fail("determinism", f"{cf_where} differs between two calls ({diff})")
            sets.append((cf, cf_where))
        for attr in disjoint_splits:
            first = seen[split].setdefault(attr, {})
            for s, s_where in sets:
                for p, v in enumerate(s.attributes[attr].tolist()):
                    first.setdefault(v, f"prompt {p} of {s_where}")
        if value_positions:
            _value_token_check(task, sets, value_positions, tokenizer)
        _check_metric(
            task, prompts, vocab_size or _vocab_size(tokenizer, [s for s, _ in sets]), seed, where
        )

    for attr in disjoint_splits:
        for a, split_a in enumerate(splits):
            for split_b in splits[a + 1 :]:
                in_a, in_b = seen[split_a][attr], seen[split_b][attr]
                common = sorted(set(in_a) & set(in_b))
                if common:
                    label = common[0]
                    value = task.attribute_values(attr)[label]
                    _fail(
                        "splits",
                        f"attribute {attr!r} is declared disjoint between splits, "
                        f"but value {value!r} (label {label}) occurs in both: {in_a[label]} "
                        f"and {in_b[label]}",
                    )

    checked = ["structure", "padding", "determinism", "counterfactual"]
    if value_positions:
        checked.append("values")
        if tokenizer is not None:
            checked.append("single-token")
    if tokenizer is not None and unknown_token_id(tokenizer) is not None:
        checked.append("known-tokens")
    checked += ["metric", "splits"]
    return checked
