"""The leaderboard CSV schema: which columns exist, what identifies a row, and column order.

A leaderboard is one UTF-8 CSV file, one row per (SAE, node) evaluation. Columns come in four
groups, always in this order (``leaderboard/SCHEMA.md`` is the long form):

1. key: ``model, model_processing, task, hook, head, position, sae_id, sae_hash``
2. descriptive: ``sae_name, architecture, data_source, d_sae`` and the SAE's hyperparameters
   (``d_in, k, l1_coefficient, training_tokens, sae_lens_release, sae_lens_id``)
3. provenance and settings: ``saebench_version, git_commit, date, seed, n_prompts,
   n_fit_prompts, ks, tau, task_version, coverage_min_prompts, coverage_prompts,
   n_bootstrap, wall_time_s, shared_wall_time_s``
4. metrics, in :func:`metric_sort_key` order, then any column the schema does not know,
   alphabetically.

Row identity is ``(model, model_processing, task, hook, head, position, sae_hash)``: the content
hash of the weights, not their path (``sae_id``), names the SAE, so the same weights loaded from
another path or release id are the same SAE. A row is one SAE at one node under one set of
evaluation settings (:data:`SETTINGS_COLUMNS`): an upsert with the same identity and the same
settings replaces it, and one with other settings is refused unless told to replace
(:func:`saebench.leaderboard.store.upsert_row`). Rows written before the settings were recorded
are read with :func:`legacy_settings`.

>>> ordered_columns(["l0", "sae_hash", "edit_accuracy_io_k2", "model", "date"])
['model', 'sae_hash', 'date', 'l0', 'edit_accuracy_io_k2']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

IDENTITY_COLUMNS: tuple[str, ...] = (
    "model",
    "model_processing",
    "task",
    "hook",
    "head",
    "position",
    "sae_hash",
)
"""Columns whose values together name one SAE at one node (the row's identity)."""

SETTINGS_COLUMNS: tuple[str, ...] = (
    "n_prompts",
    "n_fit_prompts",
    "seed",
    "ks",
    "tau",
    "task_version",
    "coverage_min_prompts",
    "coverage_prompts",
)
"""Evaluation settings a row was computed with (the position is in the identity). Two rows of
one identity with different settings are different results: the store never silently
replaces one by the other."""

LEGACY_TAU = 0.8
"""The F1 threshold read for rows written before ``tau`` was recorded (the only default)."""
LEGACY_COVERAGE_MIN_PROMPTS = 1
"""The ``coverage_min_prompts`` of rows written before it was recorded: every value present in
the evaluation prompts counted (docs/metrics.md §6)."""
LEGACY_TASK_VERSION = "1"
"""The task version of rows written before ``task_version`` was recorded, and of a task plugin
without a ``version`` attribute."""

KEY_COLUMNS: tuple[str, ...] = (
    "model",
    "model_processing",
    "task",
    "hook",
    "head",
    "position",
    "sae_id",
    "sae_hash",
)
"""Identity columns plus ``sae_id`` (where the weights were loaded from), in file order."""

DESCRIPTIVE_COLUMNS: tuple[str, ...] = (
    "sae_name",
    "architecture",
    "data_source",
    "d_sae",
    "d_in",
    "k",
    "l1_coefficient",
    "training_tokens",
    "sae_lens_release",
    "sae_lens_id",
)
"""Display name, architecture or baseline kind, training data source, number of latents, then
the SAE's hyperparameters where its config states them (empty otherwise): input width, active
latents per input, L1 coefficient, training tokens (activation vectors seen), and the sae-lens
release and SAE id it was loaded from."""

PROVENANCE_COLUMNS: tuple[str, ...] = (
    "saebench_version",
    "git_commit",
    "date",
    "seed",
    "n_prompts",
    "n_fit_prompts",
    "ks",
    "tau",
    "task_version",
    "coverage_min_prompts",
    "coverage_prompts",
    "n_bootstrap",
    "wall_time_s",
    "shared_wall_time_s",
)
"""Where every number came from: code version and commit, UTC date, the evaluation settings
(seed, prompt counts, edit sizes ``ks`` as ``"1,2,4"``, F1 threshold, task version, the
coverage rule and the coverage prompts), and the
wall time of scoring: the SAE's own (``wall_time_s``) and the node's SAE-independent
preparation, shared by every SAE scored with it in one process (``shared_wall_time_s``)."""

REQUIRED_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, "sae_name", "architecture")
"""Columns every row must carry (``head`` may be empty; see :func:`normalise_row`)."""

INTEGER_COLUMNS: tuple[str, ...] = (
    "head",
    "d_sae",
    "d_in",
    "k",
    "training_tokens",
    "seed",
    "n_prompts",
    "n_fit_prompts",
    "coverage_min_prompts",
    "coverage_prompts",
    "n_bootstrap",
    "sufficiency_uninformative",
)
"""Non-metric columns holding integers (or empty)."""

FLOAT_COLUMNS: tuple[str, ...] = ("l1_coefficient", "tau", "wall_time_s", "shared_wall_time_s")
"""Non-metric columns holding numbers (or empty)."""

SUPERVISED_ARCHITECTURES: tuple[str, ...] = ("supervised_mean", "supervised_lstsq")
"""Baseline kinds that are supervised dictionaries (plotted as reference stars)."""

ARCHITECTURES: tuple[str, ...] = (
    "standard",
    "topk",
    "gated",
    "jumprelu",
    "batchtopk",
    *SUPERVISED_ARCHITECTURES,
    "pca",
    "random",
    "frozen_decoder",
)
"""Known values of ``architecture``: SAE architectures, then baseline kinds."""

ATTRIBUTE_ORDER: tuple[str, ...] = ("io", "s", "pos")
"""Attributes in display order; other attributes follow alphabetically."""

CORE_METRICS: tuple[str, ...] = (
    "clean_logit_diff",
    "clean_accuracy",
    "l0",
    "fvu",
    "dead_fraction",
    "sufficiency",
    "logit_diff_recovered_vs_meanabl",
    "necessity",
    "sup_sufficiency",
    "sup_logit_diff_recovered_vs_meanabl",
    "sup_necessity",
    "sup_fvu",
)
"""Per-node metrics with no attribute: the task at the node, then approximation (metrics.md §4)."""

ATTRIBUTE_METRICS_HEAD: tuple[str, ...] = (
    "noint_accuracy",
    "sup_edit_accuracy",
    "sup_edit_magnitude",
)
"""Per-attribute control references, listed before the per-k editing metrics (metrics.md §5)."""

K_METRICS: tuple[str, ...] = (
    "edit_accuracy",
    "edit_magnitude",
    "aware_edit_accuracy",
    "aware_edit_magnitude",
    "edit_score",
    "edit_distance",
    "aware_edit_distance",
)
"""Per-attribute, per-k editing metrics, columns ``{name}_{attribute}_k{k}`` (metrics.md §5)."""

ATTRIBUTE_METRICS_TAIL: tuple[str, ...] = (
    "f1_coverage",
    "f1_mean_best",
    "latents_per_value",
    "max_cosine",
)
"""Per-attribute interpretability metrics, columns ``{name}_{attribute}`` (metrics.md §6)."""

FLAG_COLUMNS: tuple[str, ...] = ("sufficiency_uninformative",)
"""Flags derived from a row's metrics, placed right after the metric they qualify:
``sufficiency_uninformative`` is 1 where mean ablation does not lower the task metric at the
node (``meanabl_logit_diff`` ≥ ``clean_logit_diff``), so sufficiency (and ``sup_sufficiency``)
is near or above 1 for any reconstruction and "1 = best" does not hold (metrics.md §11);
0 where it does lower it; empty when either is missing."""


def sufficiency_uninformative(clean: object, meanabl: object) -> int | None:
    """The ``sufficiency_uninformative`` flag from the clean and mean-ablated task metric.

    >>> sufficiency_uninformative(7.16, 12.13), sufficiency_uninformative(7.16, 1.0)
    (1, 0)
    >>> sufficiency_uninformative(7.16, float("nan")) is None
    True
    """
    try:
        clean_f, meanabl_f = float(clean), float(meanabl)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if clean_f != clean_f or meanabl_f != meanabl_f:
        return None
    return int(meanabl_f >= clean_f)


_K_RE = re.compile(r"^(?P<name>" + "|".join(K_METRICS) + r")_(?P<attr>\w+?)_k(?P<k>\d+)$")
_ATTR_RE = re.compile(
    r"^(?P<name>" + "|".join(ATTRIBUTE_METRICS_HEAD + ATTRIBUTE_METRICS_TAIL) + r")_(?P<attr>\w+)$"
)

_GROUP_KEY, _GROUP_DESCRIPTIVE, _GROUP_PROVENANCE, _GROUP_CORE, _GROUP_ATTR, _GROUP_OTHER = range(6)


INTERVAL_SUFFIXES: tuple[str, str] = ("_lo", "_hi")
"""A metric's 95% bootstrap interval is in the columns ``{metric}_lo`` and ``{metric}_hi``
(docs/metrics.md §11), right after the metric."""

INTERVAL_METRICS: tuple[str, ...] = (
    *CORE_METRICS,
    "noint_accuracy",
    "sup_edit_accuracy",
    "edit_accuracy",
    "aware_edit_accuracy",
    "edit_score",
    "f1_coverage",
    "f1_mean_best",
)
"""Metrics (by name, any attribute and k) whose intervals the CSV carries: what tables and
plots show. The run JSON has an interval for every metric."""


def interval_of(column: str) -> tuple[str, str] | None:
    """``(metric, "lo" | "hi")`` for an interval column, else None.

    >>> interval_of("edit_accuracy_io_k2_lo"), interval_of("f1_coverage_io_hi")
    (('edit_accuracy_io_k2', 'lo'), ('f1_coverage_io', 'hi'))
    >>> interval_of("edit_accuracy_io_k2") is None, interval_of("sae_lo") is None
    (True, True)
    """
    for suffix in INTERVAL_SUFFIXES:
        if column.endswith(suffix):
            base = column.removesuffix(suffix)
            if _parse_base(base) is not None:
                return base, suffix[1:]
    return None


def interval_columns(intervals: dict) -> dict[str, float]:
    """The CSV cells ``{m}_lo``, ``{m}_hi`` of the metrics in :data:`INTERVAL_METRICS`.

    >>> interval_columns({"l0": (5.0, 6.0), "max_cosine_io": (0.3, 0.3)})
    {'l0_lo': 5.0, 'l0_hi': 6.0}
    """
    out = {}
    for metric, (lo, hi) in intervals.items():
        parsed = _parse_base(metric)
        if parsed is not None and parsed[0] in INTERVAL_METRICS:
            out[f"{metric}_lo"], out[f"{metric}_hi"] = lo, hi
    return out


def parse_metric(column: str) -> tuple[str, str | None, int | None] | None:
    """Split a metric column into ``(metric, attribute, k)``; None for a non-metric column.

    >>> parse_metric("aware_edit_accuracy_io_k16")
    ('aware_edit_accuracy', 'io', 16)
    >>> parse_metric("f1_coverage_pos")
    ('f1_coverage', 'pos', None)
    >>> parse_metric("l0")
    ('l0', None, None)
    >>> parse_metric("sae_name") is None, parse_metric("f1_coverage_io_lo") is None
    (True, True)
    """
    if interval_of(column) is not None:
        return None
    return _parse_base(column)


def _parse_base(column: str) -> tuple[str, str | None, int | None] | None:
    """:func:`parse_metric` without the interval check."""
    if column in CORE_METRICS:
        return column, None, None
    match = _K_RE.match(column)
    if match:
        return match["name"], match["attr"], int(match["k"])
    match = _ATTR_RE.match(column)
    if match:
        return match["name"], match["attr"], None
    return None


def is_metric(column: str) -> bool:
    """Whether ``column`` is a metric the schema knows, or a metric's interval bound (numeric,
    empty when missing)."""
    return parse_metric(column) is not None or interval_of(column) is not None


def _attribute_rank(attribute: str) -> tuple[int, str]:
    if attribute in ATTRIBUTE_ORDER:
        return ATTRIBUTE_ORDER.index(attribute), ""
    return len(ATTRIBUTE_ORDER), attribute


def column_sort_key(column: str) -> tuple:
    """Sort key giving the schema's column order (key, descriptive, provenance, metrics, other).

    Metrics: core metrics first, then per attribute (io, s, pos, then alphabetical): the
    control references, the per-k editing metrics by increasing k, then interpretability.
    A metric's interval columns follow it (``_lo``, then ``_hi``).
    """
    bound = interval_of(column)
    if bound is not None:
        return (*column_sort_key(bound[0]), 1 if bound[1] == "lo" else 2)
    if column == "sufficiency_uninformative":
        return (*column_sort_key("sufficiency"), 3)
    for group, names in (
        (_GROUP_KEY, KEY_COLUMNS),
        (_GROUP_DESCRIPTIVE, DESCRIPTIVE_COLUMNS),
        (_GROUP_PROVENANCE, PROVENANCE_COLUMNS),
        (_GROUP_CORE, CORE_METRICS),
    ):
        if column in names:
            return (group, names.index(column))
    parsed = parse_metric(column)
    if parsed is None:
        return (_GROUP_OTHER, column)
    name, attribute, k = parsed
    assert attribute is not None
    if k is not None:
        section, index = 1, (k, K_METRICS.index(name))
    elif name in ATTRIBUTE_METRICS_HEAD:
        section, index = 0, (0, ATTRIBUTE_METRICS_HEAD.index(name))
    else:
        section, index = 2, (0, ATTRIBUTE_METRICS_TAIL.index(name))
    return (_GROUP_ATTR, _attribute_rank(attribute), section, index)


def legacy_settings(cells: dict[str, str]) -> dict[str, str]:
    """The settings cells a row written before they were recorded lacks: ``ks`` from the per-k
    metric columns it has values for, ``tau`` :data:`LEGACY_TAU` and ``task_version``
    :data:`LEGACY_TASK_VERSION` (the only values any run had then),
    ``coverage_min_prompts`` :data:`LEGACY_COVERAGE_MIN_PROMPTS`, and ``coverage_prompts``
    the row's ``n_prompts``: before that setting the interpretability metrics were computed on
    the evaluation prompts, which are the prompts ``coverage_prompts`` = ``n_prompts`` draws
    (same split, count and seed). Cells already set are kept.

    >>> legacy_settings({"edit_accuracy_io_k2": "0.5", "edit_accuracy_io_k1": "0.2", "l0": "3"})
    {'ks': '1,2', 'tau': '0.8', 'task_version': '1', 'coverage_min_prompts': '1'}
    >>> legacy_settings({"n_prompts": "1000", "ks": "4", "tau": "0.5", "task_version": "2",
    ...                  "coverage_min_prompts": "9"})
    {'coverage_prompts': '1000'}
    """
    filled = {}
    if not cells.get("ks"):
        ks = ks_in(column for column, text in cells.items() if text != "")
        if ks:
            filled["ks"] = format_ks(ks)
    if not cells.get("tau"):
        filled["tau"] = repr(LEGACY_TAU)
    if not cells.get("task_version"):
        filled["task_version"] = LEGACY_TASK_VERSION
    if not cells.get("coverage_min_prompts"):
        filled["coverage_min_prompts"] = str(LEGACY_COVERAGE_MIN_PROMPTS)
    if not cells.get("coverage_prompts") and cells.get("n_prompts"):
        try:
            filled["coverage_prompts"] = str(int(float(cells["n_prompts"])))
        except ValueError:
            pass
    return filled


def format_ks(ks: Iterable[int]) -> str:
    """The ``ks`` cell: distinct edit sizes ascending, comma-separated.

    >>> format_ks([4, 1, 2, 2])
    '1,2,4'
    """
    return ",".join(str(k) for k in sorted({int(k) for k in ks}))


def metric_sort_key(column: str) -> tuple:
    """Alias of :func:`column_sort_key`, for sorting metric columns alone."""
    return column_sort_key(column)


def ordered_columns(columns: Iterable[str]) -> list[str]:
    """The distinct ``columns`` in schema order."""
    return sorted(dict.fromkeys(columns), key=column_sort_key)


def attributes_in(columns: Iterable[str]) -> list[str]:
    """Attributes that some per-attribute metric column mentions, in display order.

    >>> attributes_in(["edit_accuracy_pos_k2", "f1_coverage_io", "l0"])
    ['io', 'pos']
    """
    found = {p[1] for c in columns if (p := parse_metric(c)) is not None and p[1] is not None}
    return sorted(found, key=_attribute_rank)


def ks_in(columns: Iterable[str]) -> list[int]:
    """Values of k that some per-k metric column mentions, ascending."""
    found = {p[2] for c in columns if (p := parse_metric(c)) is not None and p[2] is not None}
    return sorted(found)
