"""Non-finite numbers from an SAE: refused before its metrics are computed, or flagged.

An SAE whose weights are finite can still give NaN or infinite codes (weights so large that
float32 overflows, an ``encode`` that returns NaN). Every metric computed from such codes is
NaN and would be written as an empty cell, so :func:`check_codes` refuses the SAE with a
message saying why. :func:`non_finite_metrics` lists what is left over after scoring (metrics
that are undefined for a reason of their own are not listed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

SHARED_PREFIXES = ("sup_", "noint_", "clean_", "meanabl_")
"""Metrics of the supervised reference and the clean run, not of the SAE."""
MAY_BE_UNDEFINED = re.compile(
    r"edit_score_.*"
    r"|aware_edit_(accuracy|magnitude|distance)_.*_k1"
    r"|(f1_coverage|f1_mean_best|latents_per_value)_.*"
)
"""SAE metrics NaN by definition in some cases: the normalised score where the supervised
edit is no better than no edit, the aware edit at k = 1 where no exchange fits the budget
(docs/metrics.md §5), coverage where no value has enough evaluation prompts (§6)."""


def undefined_by_definition(name: str) -> bool:
    """Whether the metric ``name`` may be NaN by its definition (:data:`MAY_BE_UNDEFINED`).

    >>> undefined_by_definition("aware_edit_accuracy_io_k1"), undefined_by_definition("l0")
    (True, False)
    """
    return MAY_BE_UNDEFINED.fullmatch(name) is not None


class NonFiniteError(ValueError):
    """The SAE gives NaN or infinite codes or reconstructions."""


def check_codes(dictionary: Any, inputs: list[tuple[str, Any, Mapping]]) -> None:
    """Raise :class:`NonFiniteError` unless ``dictionary``'s codes and reconstructions of
    every ``(name, x_ND, labels)`` of ``inputs`` are finite."""
    from saebench.evaluate import encode

    for what, x_ND, labels in inputs:
        codes_NF = encode(dictionary, x_ND, labels)
        bad_N = ~torch.isfinite(codes_NF).all(1)
        part = "codes"
        if not bad_N.any():
            bad_N = ~torch.isfinite(dictionary.decode(codes_NF).float()).all(1)
            part = "reconstructions"
        if bad_N.any():
            raise NonFiniteError(
                f"the SAE's {part} are NaN or infinite on {int(bad_N.sum())} of {len(bad_N)} "
                f"{what} inputs (weights too large for float32, or NaN from its encode): its "
                "metrics would be empty, so it is not scored"
            )


def non_finite_metrics(metrics: Mapping[str, Any]) -> list[str]:
    """The SAE's metrics that are NaN or infinite and not undefined by definition.

    >>> non_finite_metrics({"l0": float("nan"), "sup_fvu": float("nan"), "fvu": 0.5,
    ...                     "edit_score_io_k1": float("nan")})
    ['l0']
    """
    return [
        name
        for name, value in metrics.items()
        if isinstance(value, float)
        and not math.isfinite(value)
        and not name.startswith(SHARED_PREFIXES)
        and not undefined_by_definition(name)
    ]
