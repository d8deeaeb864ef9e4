"""One validation of a run's settings, shared by the CLI, sweep specs and the API.

:func:`check_settings` checks each known setting's type and range before any model is
loaded, and raises :class:`SettingsError` naming the setting as the caller spells it
(``--n-prompts`` on the command line, ``[sweep] n_prompts`` in a spec, ``n_prompts=`` in the
API). Unknown names are ignored (the caller rejects them), ``None`` where a setting may be
absent is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from saebench.defaults import MAX_N_PROMPTS

MAX_SEED = 2**32 - 1
"""Largest seed: every derived seed (fit, counterfactuals) stays a valid numpy/torch seed."""


class SettingsError(ValueError):
    """A setting of the wrong type or out of range; the message names it."""


def _int(value: Any, low: int | None = None, high: int | None = None) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, not {_kind(value)}"
    if low is not None and value < low or high is not None and value > high:
        if high is None:
            return f"must be {low} or more (got {value})"
        return f"must be an integer from {low:,} to {high:,} (got {value})"
    return None


def _number(value: Any, low: float, high: float = math.inf) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {_kind(value)}"
    if not math.isfinite(value):
        return f"must be a finite number (got {value})"
    if not low <= value <= high:
        return f"must be {low:g} or more (got {value:g})" if high == math.inf else (
            f"must be from {low:g} to {high:g} (got {value:g})"
        )
    return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {_kind(value)}"
    if not value.strip() or "\0" in value:
        return f"must be a non-empty string without NUL bytes (got {value!r})"
    return None


def _ks(value: Any) -> str | None:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
        return f"must be a non-empty list of positive integers, not {_kind(value)}"
    if not value:
        return "must be a non-empty list of positive integers (got an empty one)"
    for k in value:
        if _int(k, 1) is not None:
            return f"must be a list of positive integers (got {k!r})"
    return None


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {_kind(value)}"


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


RULES: dict[str, Callable[[Any], str | None]] = {
    "task": _text,
    "model": _text,
    "hook": _text,
    "position": _text,
    "device": _text,
    "name": _text,
    "head": lambda v: _int(v, 0),
    "n_prompts": lambda v: _int(v, 10, MAX_N_PROMPTS),
    "n_fit_prompts": lambda v: _int(v, 10, MAX_N_PROMPTS),
    "coverage_prompts": lambda v: _int(v, 10, MAX_N_PROMPTS),
    "coverage_min_prompts": lambda v: _int(v, 1, MAX_N_PROMPTS),
    "n_bootstrap": lambda v: _int(v, 0),
    "ks": _ks,
    "seed": lambda v: _int(v, 0, MAX_SEED),
    "batch_size": lambda v: _int(v, 1),
    "tau": lambda v: _number(v, 0.0, 1.0),
    "cache_budget_mb": lambda v: _number(v, 0.0),
    "lock_timeout": lambda v: _number(v, 0.0),
    "threads": lambda v: _int(v, 1),
    "max_memory_mb": lambda v: _number(v, 0.0),
    "checkpoints": _bool,
    "causal_max_noint": lambda v: _number(v, 0.0, 1.0),
    "editable_min_sup": lambda v: _number(v, 0.0, 1.0),
}
"""Each setting's check: None when the value is fine, else what is wrong."""
OPTIONAL = {
    "model", "task", "hook", "head", "position", "name", "device", "lock_timeout", "max_memory_mb"
}
"""Settings that may be None (absent: the SAE's own, or a default)."""
CLI_NAMES = {
    "ks": "--k",
    "cache_budget_mb": "--cache-budget",
    "max_memory_mb": "--max-memory",
    "n_bootstrap": "--bootstrap",
}


def label(name: str, style: str) -> str:
    """How ``style`` (``cli``, ``spec``, ``api``) spells setting ``name``.

    >>> label("n_prompts", "cli"), label("ks", "spec"), label("tau", "api")
    ('--n-prompts', '[sweep] ks', 'tau=')
    """
    if style == "cli":
        return CLI_NAMES.get(name, "--" + name.replace("_", "-"))
    if style == "spec":
        return f"[sweep] {name}"
    return f"{name}="


def check_settings(values: Mapping[str, Any], style: str = "api", where: str = "") -> None:
    """Raise :class:`SettingsError` on the first setting of ``values`` of the wrong type or out
    of range (``where`` prefixes the message, e.g. the spec's path).

    >>> check_settings({"tau": 0.5, "ks": [1, 2], "seed": 0})
    >>> check_settings({"tau": float("nan")}, "cli")
    Traceback (most recent call last):
    ...
    saebench.validation.settings.SettingsError: --tau must be a finite number (got nan)
    >>> check_settings({"coverage_prompts": 3000, "coverage_min_prompts": 4000}, "cli")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    saebench.validation.settings.SettingsError: --coverage-min-prompts 4000 is more than ...
    """
    for name, value in values.items():
        rule = RULES.get(name)
        if rule is None or (value is None and name in OPTIONAL):
            continue
        problem = rule(value)
        if problem is not None:
            prefix = f"{where}: " if where else ""
            raise SettingsError(f"{prefix}{label(name, style)} {problem}")
    cov, least = values.get("coverage_prompts"), values.get("coverage_min_prompts")
    if isinstance(cov, int) and isinstance(least, int) and least > cov:
        prefix = f"{where}: " if where else ""
        raise SettingsError(
            f"{prefix}{label('coverage_min_prompts', style)} {least} is more than "
            f"{label('coverage_prompts', style)} {cov}: no attribute value could have that many "
            "of the coverage prompts, so F1 coverage would never be measured"
        )
