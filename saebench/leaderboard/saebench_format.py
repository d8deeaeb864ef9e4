"""Leaderboard rows as SAEBench eval-results JSON (``leaderboard export --format saebench``).

SAEBench (github.com/adamkarvonen/SAEBench, PyPI ``sae-bench``) stores one JSON per SAE and eval
type, shaped by its pydantic dataclass ``sae_bench.evals.base_eval_output.BaseEvalOutput``:

- ``eval_type_id`` (str), ``eval_config`` (object), ``eval_id`` (str, a UUID),
  ``datetime_epoch_millis`` (int, 0 ≤ t ≤ 9999999999999),
- ``eval_result_metrics``: categories → *flat* ``{metric: number}`` objects (no nesting),
- ``eval_result_details`` (list of flat objects, optional), ``eval_result_unstructured`` (any),
- ``sae_bench_commit_hash`` (str), ``sae_lens_id``, ``sae_lens_release_id``,
  ``sae_lens_version`` (str or null), ``sae_cfg_dict`` (object or null; SAEBench's own plots
  read ``architecture``, ``d_sae`` and, when present, ``training_tokens`` from it).

:func:`row_to_saebench` maps one leaderboard row (a CSV row suffices; a run JSON adds the
sae-lens version and the per-attribute details) onto that shape:

- ``eval_type_id`` is ``saebench_{task}_supervised`` (IOI: ``saebench_ioi_supervised``):
  prefixed so it never collides with SAEBench's own ids (``core``, ``scr``, ``absorption``...),
  per task because the metric set follows the task's attributes, and ``supervised`` because
  every metric is read against the supervised dictionaries at the node.
- ``eval_config``: the evaluation settings and node (``model_name`` as SAEBench's configs name
  the model; ``task``, ``task_version``, ``model_processing``, ``hook``, ``head``,
  ``position``, ``n_prompts``, ``n_fit_prompts``, ``seed``, ``ks``, ``tau``).
- ``eval_result_metrics``: the row's flat metric names grouped by :func:`metric_category`
  (``approximation`` metrics.md §4, ``control`` §5, ``interpretability`` §6,
  ``supervised_reference`` for every ``sup_`` metric, ``other`` for columns saebench does not
  know). NaN and ±inf are written as JSON ``null``; per-k metrics of a k the row's ``ks`` does
  not hold are left out.
- ``eval_result_details``: one flat object per (attribute, k) with that edit's five numbers.
- ``eval_id``: a UUID derived from the row's identity, settings and date, so exporting the
  same row twice gives the same id (one row is one run).
- ``sae_bench_commit_hash``: saebench's ``git_commit`` of the run (the commit of the benchmark
  that ran it, which is what SAEBench records), ``"Unknown"`` when absent as SAEBench does.
- ``sae_cfg_dict``: what the row knows of the SAE's config in SAELens names (``architecture``,
  ``d_in``, ``d_sae``, ``k``, ``l1_coefficient``, ``training_tokens``, ``model_name``,
  ``hook_name``, ``hook_layer``, ``hook_head_index``, ``model_from_pretrained_kwargs``), flat as
  SAEBench standardises it and under ``metadata`` as SAELens v6 nests it; unknown values are
  left out rather than written as null.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from saebench.leaderboard.schema import (
    ATTRIBUTE_METRICS_TAIL,
    CORE_METRICS,
    DESCRIPTIVE_COLUMNS,
    FLAG_COLUMNS,
    K_METRICS,
    KEY_COLUMNS,
    PROVENANCE_COLUMNS,
    attributes_in,
    ks_in,
    parse_metric,
)

METRIC_CATEGORIES: tuple[str, ...] = (
    "approximation",
    "control",
    "interpretability",
    "supervised_reference",
    "other",
)
"""Categories of ``eval_result_metrics``, in output order (empty ones are left out)."""

APPROXIMATION_EXTRA: tuple[str, ...] = ("meanabl_logit_diff",)
"""Approximation metrics (metrics.md §4) that the leaderboard schema stores as extra columns."""

RESULTS_SUFFIX = "_eval_results.json"
"""File-name suffix SAEBench gives its result files (``{release}_{id}_eval_results.json``)."""

UNKNOWN_COMMIT = "Unknown"
"""``sae_bench_commit_hash`` when the row has no commit (SAEBench's own fallback)."""

_EVAL_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/saebench/eval_id")
_NON_METRIC_COLUMNS = frozenset(
    KEY_COLUMNS + DESCRIPTIVE_COLUMNS + PROVENANCE_COLUMNS + FLAG_COLUMNS
)
_PROVENANCE_TEXT = ("sae_name", "sae_id", "sae_hash", "data_source", "saebench_version")
_PROVENANCE_TEXT += ("git_commit", "date")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LAYER_RE = re.compile(r"\d+")


def eval_type_id(task: str) -> str:
    """The ``eval_type_id`` of a saebench result on ``task``.

    >>> eval_type_id("ioi")
    'saebench_ioi_supervised'
    """
    return f"saebench_{task}_supervised"


def metric_category(column: str) -> str:
    """The ``eval_result_metrics`` category of a metric column (see :data:`METRIC_CATEGORIES`).

    >>> [metric_category(c) for c in ("fvu", "edit_score_io_k2", "noint_accuracy_s",
    ...     "f1_coverage_pos", "sup_edit_accuracy_io", "sup_lstsq_fvu", "my_metric")]
    ['approximation', 'control', 'control', 'interpretability', 'supervised_reference', \
'supervised_reference', 'other']
    """
    if column.startswith("sup_"):
        return "supervised_reference"
    if column in APPROXIMATION_EXTRA:
        return "approximation"
    parsed = parse_metric(column)
    if parsed is None:
        return "other"
    name = parsed[0]
    if name in CORE_METRICS:
        return "approximation"
    if name in K_METRICS or name == "noint_accuracy":
        return "control"
    if name in ATTRIBUTE_METRICS_TAIL:
        return "interpretability"
    return "other"


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: object) -> float | None:
    """A finite float, or None for a missing, NaN or infinite value (JSON has no NaN)."""
    if _missing(value):
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _integer(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _text(value: object) -> str | None:
    return None if _missing(value) else str(value)


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _ks(row: Mapping[str, object]) -> list[int]:
    text = _text(row.get("ks"))
    if text is not None:
        return [int(k) for k in text.split(",") if k.strip()]
    return ks_in(c for c, v in row.items() if not _missing(v))


def _epoch_millis(date: str | None) -> int:
    """Milliseconds since the epoch of an ISO 8601 date (UTC if it has no zone); 0 if unknown."""
    if date is None:
        return 0
    try:
        moment = datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0, int(moment.timestamp() * 1000))


def _model_processing(value: object) -> dict[str, Any]:
    text = _text(value)
    if text is None:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    return parsed if isinstance(parsed, dict) else {"raw": parsed}


def eval_config(row: Mapping[str, object]) -> dict[str, Any]:
    """The ``eval_config`` object: the node and the evaluation settings of the row."""
    return {
        "model_name": _text(row.get("model")),
        "model_processing": _model_processing(row.get("model_processing")),
        "task": _text(row.get("task")),
        "task_version": _text(row.get("task_version")),
        "hook": _text(row.get("hook")),
        "head": _integer(row.get("head")),
        "position": _text(row.get("position")),
        "n_prompts": _integer(row.get("n_prompts")),
        "n_fit_prompts": _integer(row.get("n_fit_prompts")),
        "seed": _integer(row.get("seed")),
        "ks": _ks(row),
        "tau": _number(row.get("tau")),
    }


def metric_columns(row: Mapping[str, object]) -> list[str]:
    """The row's metric columns: every numeric (or empty) column that is not key, descriptive
    or provenance, without per-k columns of a k outside the row's ``ks``."""
    ks = set(_ks(row))
    columns = []
    for column, value in row.items():
        if column in _NON_METRIC_COLUMNS or not (_missing(value) or _is_number(value)):
            continue
        parsed = parse_metric(column)
        if parsed is not None and parsed[2] is not None and ks and parsed[2] not in ks:
            continue
        columns.append(column)
    return columns


def eval_result_metrics(row: Mapping[str, object]) -> dict[str, dict[str, float | None]]:
    """The row's metrics grouped by :func:`metric_category`, in :data:`METRIC_CATEGORIES`
    order; missing and non-finite values are None."""
    grouped: dict[str, dict[str, float | None]] = {name: {} for name in METRIC_CATEGORIES}
    for column in metric_columns(row):
        grouped[metric_category(column)][column] = _number(row[column])
    return {name: metrics for name, metrics in grouped.items() if metrics}


def eval_result_details(row: Mapping[str, object]) -> list[dict[str, Any]]:
    """One flat object per (attribute, k): ``attribute``, ``k`` and the editing metrics
    (:data:`~saebench.leaderboard.schema.K_METRICS`) of that edit size."""
    columns = metric_columns(row)
    details = []
    for attribute in attributes_in(columns):
        for k in ks_in(columns):
            cells = {name: row.get(f"{name}_{attribute}_k{k}") for name in K_METRICS}
            if all(_missing(v) for v in cells.values()):
                continue
            details.append(
                {"attribute": attribute, "k": k}
                | {name: _number(value) for name, value in cells.items()}
            )
    return details


def sae_cfg_dict(row: Mapping[str, object]) -> dict[str, Any]:
    """The SAE's config in SAELens names, as far as the row states it (unknown keys omitted)."""
    hook = _text(row.get("hook"))
    layer = _LAYER_RE.search(hook) if hook else None
    metadata = {
        "model_name": _text(row.get("model")),
        "hook_name": hook,
        "hook_layer": int(layer.group(0)) if layer else None,
        "hook_head_index": _integer(row.get("head")),
        "model_from_pretrained_kwargs": _model_processing(row.get("model_processing")),
    }
    config = {
        "architecture": _text(row.get("architecture")),
        "d_in": _integer(row.get("d_in")),
        "d_sae": _integer(row.get("d_sae")),
        "k": _integer(row.get("k")),
        "l1_coefficient": _number(row.get("l1_coefficient")),
        "training_tokens": _integer(row.get("training_tokens")),
    }
    flat = {key: value for key, value in (config | metadata).items() if value is not None}
    flat["metadata"] = {key: value for key, value in metadata.items() if value is not None}
    return flat


def _sae_lens_version(run_record: Mapping[str, Any] | None) -> str | None:
    versions = ((run_record or {}).get("provenance") or {}).get("versions") or {}
    return _text(versions.get("sae-lens") or versions.get("sae_lens"))


def eval_id(row: Mapping[str, object]) -> str:
    """A UUID naming the run behind the row: the same row always gets the same id."""
    parts = [_text(row.get(c)) or "" for c in (*KEY_COLUMNS, "date")]
    config = json.dumps(eval_config(row), sort_keys=True)
    return str(uuid.uuid5(_EVAL_ID_NAMESPACE, "\x1f".join([*parts, config])))


def row_to_saebench(
    row: Mapping[str, object] | pd.Series, run_record: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One leaderboard row (CSV cells or typed values) as a SAEBench eval-results dict.

    ``run_record`` (the run's JSON, optional) adds ``sae_lens_version`` and the run's
    ``details`` (per-attribute occlusion, over-splitting...) to ``eval_result_unstructured``.
    The result is strict JSON: :func:`dumps` it (NaN is already None).
    """
    row = dict(row.items())
    extra = {
        column: _text(value)
        for column, value in row.items()
        if column not in _NON_METRIC_COLUMNS and not (_missing(value) or _is_number(value))
    }
    provenance = {column: _text(row.get(column)) for column in _PROVENANCE_TEXT} | {
        "wall_time_s": _number(row.get("wall_time_s")),
        "shared_wall_time_s": _number(row.get("shared_wall_time_s")),
    }
    unstructured: dict[str, Any] = {
        "saebench": provenance,
        "metric_definitions": "docs/metrics.md of saebench (approximation §4, control §5, "
        "interpretability §6; sup_ metrics are the supervised dictionaries at the node)",
    }
    if extra:
        unstructured["extra_columns"] = extra
    if run_record is not None and run_record.get("details") is not None:
        unstructured["run_details"] = _strict(run_record["details"])
    return {
        "eval_type_id": eval_type_id(_text(row.get("task")) or "unknown"),
        "eval_config": eval_config(row),
        "eval_id": eval_id(row),
        "datetime_epoch_millis": _epoch_millis(_text(row.get("date"))),
        "eval_result_metrics": eval_result_metrics(row),
        "eval_result_details": eval_result_details(row),
        "eval_result_unstructured": unstructured,
        "sae_bench_commit_hash": _text(row.get("git_commit")) or UNKNOWN_COMMIT,
        "sae_lens_id": _text(row.get("sae_lens_id")),
        "sae_lens_release_id": _text(row.get("sae_lens_release")),
        "sae_lens_version": _sae_lens_version(run_record),
        "sae_cfg_dict": sae_cfg_dict(row),
    }


def _strict(value: Any) -> Any:
    """``value`` with every NaN / ±inf float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def dumps(record: Mapping[str, Any]) -> str:
    """Strict JSON text of a record (NaN / ±inf as null; never the non-standard ``NaN``)."""
    return json.dumps(_strict(record), indent=2, allow_nan=False) + "\n"


def result_filename(row: Mapping[str, object]) -> str:
    """``{sae_name}_{hook}[_h{head}]_{position}_{sae_hash[:8]}_eval_results.json``, with every
    character outside ``[A-Za-z0-9._-]`` replaced by ``_``.

    >>> result_filename({"sae_name": "sweep/trainer_3", "hook": "blocks.1.hook_resid_pre",
    ...                  "head": None, "position": "END", "sae_hash": "0123456789abcdef"})
    'sweep_trainer_3_blocks.1.hook_resid_pre_END_01234567_eval_results.json'
    """
    head = _integer(row.get("head"))
    parts = [
        _text(row.get("sae_name")) or "sae",
        _text(row.get("hook")) or "node",
        *([f"h{head}"] if head is not None else []),
        _text(row.get("position")) or "",
        (_text(row.get("sae_hash")) or "")[:8],
    ]
    stem = _UNSAFE.sub("_", "_".join(p for p in parts if p)).strip("._") or "sae"
    return stem + RESULTS_SUFFIX


def _rows(frame: pd.DataFrame | Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    if isinstance(frame, pd.DataFrame):
        return [dict(row) for _, row in frame.iterrows()]
    return [dict(row) for row in frame]


def write_saebench_results(
    frame: pd.DataFrame | Iterable[Mapping[str, object]],
    out_dir: str | Path,
    run_records: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Path]:
    """Write one SAEBench eval-results JSON per row into ``out_dir``; return the paths.

    ``run_records`` maps an ``eval_id`` (:func:`eval_id`) to that run's JSON record. Two rows
    whose :func:`result_filename` coincides (same SAE name, node and hash prefix under another
    model or task) get the first 8 characters of their ``eval_id`` appended, so no file is
    overwritten.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = _rows(frame)
    records = [row_to_saebench(r, (run_records or {}).get(eval_id(r))) for r in rows]
    names = [result_filename(r) for r in rows]
    paths = []
    for name, record in zip(names, records, strict=True):
        if names.count(name) > 1:
            name = name.removesuffix(RESULTS_SUFFIX) + f"_{record['eval_id'][:8]}" + RESULTS_SUFFIX
        path = out / name
        path.write_text(dumps(record), encoding="utf-8")
        paths.append(path)
    return paths


def run_records_in(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Run JSONs under ``directory`` (recursively), keyed by the :func:`eval_id` of the
    leaderboard row they produced (identity, settings and date). Other JSON files are skipped."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(directory).rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("identity"), dict):
            continue
        row = dict(record["identity"]) | {"date": (record.get("provenance") or {}).get("date")}
        found[eval_id(row)] = record
    return found


def read_saebench_results(directory: str | Path) -> pd.DataFrame:
    """Read the ``*_eval_results.json`` files of ``directory`` (ours or SAEBench's own) into
    one flat frame: a row per file with ``eval_type_id``, ``sae_lens_release_id``,
    ``sae_lens_id``, ``eval_config`` entries, ``architecture`` / ``d_sae`` from ``sae_cfg_dict``
    and every metric under its own name (categories flattened, as SAEBench's plots do)."""
    rows = []
    for path in sorted(Path(directory).glob("*" + RESULTS_SUFFIX)):
        record = json.loads(path.read_text(encoding="utf-8"))
        cfg = record.get("sae_cfg_dict") or {}
        row: dict[str, Any] = {
            "file": path.name,
            "eval_type_id": record.get("eval_type_id"),
            "eval_id": record.get("eval_id"),
            "sae_lens_release_id": record.get("sae_lens_release_id"),
            "sae_lens_id": record.get("sae_lens_id"),
            "architecture": cfg.get("architecture"),
            "d_sae": cfg.get("d_sae"),
        }
        row |= {k: v for k, v in (record.get("eval_config") or {}).items() if k not in row}
        for metrics in (record.get("eval_result_metrics") or {}).values():
            row |= {k: (math.nan if v is None else v) for k, v in metrics.items()}
        rows.append(row)
    return pd.DataFrame(rows)
