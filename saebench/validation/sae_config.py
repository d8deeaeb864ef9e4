"""Types of the fields of an SAE's config (SAELens ``cfg.json``, dictionary_learning
``config.json``), checked before the weights are read so that a wrong type is reported as
that field's problem (``d_in must be an integer, not str '64'``), not as a crash further on.
Fields that are absent or null are fine (defaults apply); unknown fields are not checked."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


def _int(low: int = 0) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and value >= low:
                return None  # 64.0: an integer written as a float
            return f"must be an integer, not {_kind(value)}"
        return None if value >= low else f"must be {low} or more (got {value})"

    return check


def _str(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {_kind(value)}"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {_kind(value)}"


def _dict(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"must be a JSON object, not {_kind(value)}"


def _str_or_bool(value: Any) -> str | None:
    return None if isinstance(value, str | bool) else f"must be a string, not {_kind(value)}"


def _positive(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {_kind(value)}"
    if not math.isfinite(value) or value <= 0:
        return f"must be a finite positive number (got {value})"
    return None


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


SAELENS_FIELDS: dict[str, Callable[[Any], str | None]] = {
    "d_in": _int(1),
    "d_sae": _int(1),
    "k": _int(1),
    "dtype": _str,
    "architecture": _str,
    "activation_fn": _str,
    "activation_fn_str": _str,
    "activation_fn_kwargs": _dict,
    "model_name": _str,
    "hook_name": _str,
    "hook_head_index": _int(0),
    "prepend_bos": _bool,
    "apply_b_dec_to_input": _bool,
    "normalize_activations": _str_or_bool,
    "reshape_activations": _str,
    "model_from_pretrained_kwargs": _dict,
    "finetuning_scaling_factor": _bool,
    "rescale_acts_by_decoder_norm": _bool,
    "metadata": _dict,
}
"""The SAELens fields saebench reads, top level or under ``metadata``."""
METADATA_FIELDS: dict[str, Callable[[Any], str | None]] = {
    **{k: v for k, v in SAELENS_FIELDS.items() if k != "metadata"},
    "sae_name": _str,
    "saebench_kind": _str,
    "data_source": _str,
    "training_position": _str,
    "training_task": _str,
    "training_architecture": _str,
    "training_architecture_details": _dict,
}
NESTED_K = ("activation_fn_kwargs", "training_architecture_details")
"""Objects whose ``k`` is read as the SAE's k."""


def config_problem(raw: Mapping[str, Any]) -> str | None:
    """What is wrong with the types of a SAELens config (``FIELD must be ...``), or None.

    >>> config_problem({"d_in": 64, "k": 6, "metadata": {"sae_name": "x"}}) is None
    True
    >>> config_problem({"d_in": "64"})
    "d_in must be an integer, not str '64'"
    >>> config_problem({"k": 6.5}), config_problem({"k": [6]})
    ('k must be an integer, not float 6.5', 'k must be an integer, not list [6]')
    >>> config_problem({"metadata": "hello"})
    "metadata must be a JSON object, not str 'hello'"
    """
    for where, table, fields in (("", raw, SAELENS_FIELDS), ("metadata.", None, METADATA_FIELDS)):
        if table is None:
            table = raw.get("metadata")
            if not isinstance(table, dict):
                continue
        for name, check in fields.items():
            value = table.get(name)
            if value is None:
                continue
            problem = check(value)
            if problem is not None:
                return f"{where}{name} {problem}"
        for name in NESTED_K:
            nested = table.get(name)
            if isinstance(nested, dict) and nested.get("k") is not None:
                problem = _int(1)(nested["k"])
                if problem is not None:
                    return f"{where}{name}.k {problem}"
    return None


def scaling_problem(value: Any) -> str | None:
    """What is wrong with a ``scaling_factor`` (a finite positive number), or None."""
    return None if value is None else _positive(value)


DL_TRAINER_FIELDS: dict[str, Callable[[Any], str | None]] = {
    "activation_dim": _int(1),
    "dict_size": _int(1),
    "k": _int(1),
    "layer": _int(0),
    "lm_name": _str,
    "submodule_name": _str,
    "dict_class": _str,
}
"""The dictionary_learning ``config.json`` ``trainer`` fields saebench reads."""


def dl_config_problem(raw: Mapping[str, Any]) -> str | None:
    """What is wrong with the types of a dictionary_learning config, or None.

    >>> dl_config_problem({"trainer": {"dict_size": "128"}})
    "trainer.dict_size must be an integer, not str '128'"
    """
    for name in ("trainer", "buffer"):
        if raw.get(name) is not None and _dict(raw[name]) is not None:
            return f"{name} {_dict(raw[name])}"
    trainer = raw.get("trainer") or {}
    for name, check in DL_TRAINER_FIELDS.items():
        if trainer.get(name) is not None and (problem := check(trainer[name])) is not None:
            return f"trainer.{name} {problem}"
    return None
