"""Default settings of a run, in one place and without importing torch (``saebench --help``
reads them). The library (``saebench.evaluate``, ``saebench.runner``, ``saebench.run``,
``saebench.api``) and the CLI's options all take them from here."""

from __future__ import annotations

DEFAULT_N_PROMPTS = 1000
"""Evaluation prompts (test split)."""
DEFAULT_N_FIT_PROMPTS = 10_000
"""Prompts the supervised dictionaries are fitted on by default. The mean dictionary
estimates one vector per name from the prompts that contain it, so it needs many: on
tiny-ioi at ``blocks.1.hook_resid_pre`` @ END the supervised necessity is 0.50 / 0.86 /
0.90 / 0.93 with 1000 / 4000 / 8000 / 16000 fitting prompts (200 evaluation prompts).
The paper fitted on 20,000."""
DEFAULT_KS: tuple[int, ...] = (1, 2, 4, 6, 8, 16, 32)
"""Numbers of latents an SAE edit may use (docs/metrics.md §5); 2, 4 and 6 are the paper's
small budgets, which the Pareto views use (docs/metrics.md §11)."""
DEFAULT_CACHE_BUDGET_MB = 1024.0
"""Bound on the attention keys and values one clean run keeps (MB); see
:mod:`saebench.runner`."""
RESULTS_ENV = "SAEBENCH_RESULTS"
"""Environment variable naming the user's results folder."""
DEFAULT_RESULTS_DIR = "saebench-results"
"""The user's results folder when ``$SAEBENCH_RESULTS`` is unset (relative to the working
directory; git-ignored in a checkout). A run never writes the shipped leaderboards
(``leaderboard/*.csv``) unless they are named explicitly (``--leaderboard``; the Makefile's
``leaderboard`` targets and the ``sweeps/*-leaderboard.toml`` specs do)."""
DEFAULT_LEADERBOARD = DEFAULT_RESULTS_DIR + "/{model}.csv"
"""Leaderboard CSV of ``saebench run`` when ``$SAEBENCH_RESULTS`` is unset
(:func:`default_leaderboard`)."""
DEFAULT_JSON_OUT = DEFAULT_RESULTS_DIR + "/runs/{model}/{sae}-{task}-{node}.json"
"""Per-run JSON of ``saebench run`` when ``$SAEBENCH_RESULTS`` is unset
(:func:`default_json_out`)."""


def results_dir() -> str:
    """``$SAEBENCH_RESULTS``, else :data:`DEFAULT_RESULTS_DIR` (as a template: braces doubled).

    >>> import os; os.environ.pop(RESULTS_ENV, None) and None; results_dir()
    'saebench-results'
    """
    import os

    folder = os.environ.get(RESULTS_ENV, "").strip() or DEFAULT_RESULTS_DIR
    return folder.rstrip("/").replace("{", "{{").replace("}", "}}") or "/"


def default_leaderboard() -> str:
    """The user's leaderboard CSV template: ``{results}/{model}.csv``."""
    return results_dir() + "/{model}.csv"


def default_json_out() -> str:
    """The user's per-run JSON template: ``{results}/runs/{model}/{sae}-{task}-{node}.json``."""
    return results_dir() + "/runs/{model}/{sae}-{task}-{node}.json"


PROTOCOLS: tuple[str, ...] = ("saebench", "paper")
"""Evaluation protocols of ``saebench run --protocol`` (docs/metrics.md §10): ``saebench``,
the defaults above; ``paper``, Makelov, Lange & Nanda's setting (:data:`PAPER_PROTOCOL`)."""
PAPER_PROTOCOL: dict[str, object] = {"n_prompts": 5000, "n_fit_prompts": 20_000, "ks": (2,)}
"""Settings ``--protocol paper`` fills in where they are not given explicitly: 5,000 evaluation
prompts, supervised dictionaries fitted on 20,000 prompts, the edit budget k = 2 only. The
protocol also fits over all names (:data:`PAPER_FIT_SPLIT`), draws the counterfactual names
from the other vocabulary half (the IOI option ``counterfactual_names="other_half"``) and
clips the normalised score (:data:`PAPER_SCORE_CLIP`)."""
PAPER_FIT_SPLIT = "all"
"""Split of the paper protocol's fitting prompts: names (and places, objects) from both
halves."""
PAPER_SCORE_CLIP: tuple[float, float] = (0.0, 2.0)
"""The paper clips the normalised edit score to [0, 2] in its figures."""
PAPER_TASK_OPTIONS: dict[str, dict[str, str]] = {"ioi": {"counterfactual_names": "other_half"}}
"""Task plugin options of the paper protocol, per task; it is defined for these tasks only."""
PAPER_VERSION_SUFFIX = "+paper"
"""Appended to a row's ``task_version`` under the paper protocol: its prompts and
counterfactuals differ, so its rows never mix with the default protocol's."""


def paper_preset(given: dict[str, object]) -> dict[str, object]:
    """The settings of ``--protocol paper`` (:data:`~saebench.defaults.PAPER_PROTOCOL`:
    ``n_prompts``, ``n_fit_prompts``, ``ks``) with the ones in ``given`` kept.

    >>> paper_preset({"n_prompts": 200})
    {'n_prompts': 200, 'n_fit_prompts': 20000, 'ks': (2,)}
    """
    return {key: given.get(key, value) for key, value in PAPER_PROTOCOL.items()}


MAX_N_PROMPTS = 100_000
"""Most ``--n-prompts`` / ``--n-fit-prompts`` a run accepts. Prompts, their activations and
logits are held in memory for the whole run (10 million tiny-ioi prompts grew past 4 GB, and
GPT-2 Small needs far more per prompt), so larger values are refused at once rather than
failing after minutes."""
DEFAULT_COVERAGE_MIN_PROMPTS = 10
"""A value counts in F1 coverage (and the other summaries of docs/metrics.md §6) only when at
least this many evaluation prompts have it: with fewer, a latent that fires on one or two of
them reaches F1 ≥ τ by chance (a random dictionary's ``f1_coverage_io`` is 0.14 at 300
prompts, 2 per value, and 0.000 at 3000)."""
DEFAULT_COVERAGE_PROMPTS = 3000
"""Prompts the interpretability metrics (F1 coverage and the rest of docs/metrics.md §6–7) are
computed on, whatever ``n_prompts`` is: their own sample of the test split, drawn with the run's
seed as ``n_prompts`` prompts would be. At 3000 every value of the shipped tasks' attributes has
at least :data:`DEFAULT_COVERAGE_MIN_PROMPTS` prompts (tiny-ioi: 132 names, 12–39 prompts each,
median 22; tiny-gt: 98 years, 16 or more each), so coverage is measured over every value;
at 300 prompts no name had 10 and coverage was NaN, at 1000 only 29 of 132 did."""
