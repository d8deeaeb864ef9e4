"""A third-party task plugin, installed as its own package, is found and run by saebench.

The example of the plugin author's guide (``docs/plugins.md``), ``examples/minimal-task-plugin``,
is copied to a temporary directory and pip-installed there (``--target``, offline, no build
isolation), never into the environment running the tests. Subprocesses that see that directory
on ``PYTHONPATH`` then list it with ``saebench tasks``, score the shipped tiny-ioi SAE on it
with ``saebench run`` and run the example's own kit-based tests; without it, it is not listed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "minimal-task-plugin"
SAE = ROOT / "baselines" / "saes" / "tiny-ioi" / "L3-resid_post-END" / "topk-k6-general"
TASK = "object-recall"
ENTRY_POINT = "saebench_example_task.object_recall:ObjectRecallTask"


def _env(site: Path | None, tmp: Path) -> dict[str, str]:
    """The inherited environment, offline and single-threaded, with ``site`` (when given)
    prepended to PYTHONPATH and saebench's cache under ``tmp``."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["SAEBENCH_CACHE"] = str(tmp / "cache")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120):
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}\nstdout:\n{done.stdout}\n"
        f"stderr:\n{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> tuple[Path, Path]:
    """(copy of the example, the directory it is installed into)."""
    tmp = tmp_path_factory.mktemp("third_party_plugin")
    copy = tmp / "minimal-task-plugin"
    shutil.copytree(
        EXAMPLE, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = tmp / "site"
    _run(
        ["-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation", "--quiet"]
        + ["--target", str(site), str(copy)],
        _env(None, tmp),
        cwd=tmp,
    )
    assert (site / "saebench_example_task" / "object_recall.py").is_file()
    return copy, site


def _listed(stdout: str) -> dict[str, str]:
    """``saebench tasks`` output (``name<TAB>module:object`` lines) as a dict."""
    return dict(line.split("\t", 1) for line in stdout.splitlines() if "\t" in line)


def test_saebench_tasks_lists_the_plugin_only_where_it_is_installed(plugin, tmp_path):
    _, site = plugin
    with_plugin = _listed(_run(["-m", "saebench", "tasks"], _env(site, tmp_path), tmp_path).stdout)
    assert with_plugin.get(TASK) == ENTRY_POINT
    assert with_plugin.get("ioi") == "saebench_tasks.ioi:IOITask"  # the shipped ones stay

    without = _listed(_run(["-m", "saebench", "tasks"], _env(None, tmp_path), tmp_path).stdout)
    assert "ioi" in without
    assert TASK not in without, (
        f"{TASK} is listed without the test's install: it is installed in this environment "
        f"(pip uninstall saebench-example-task), so this test cannot tell what made it visible"
    )


def test_saebench_run_scores_an_sae_on_the_installed_plugin(plugin, tmp_path):
    _, site = plugin
    out = tmp_path / "x.json"
    args = ["-m", "saebench", "run", "--task", TASK, "--model", "tiny-ioi", "--sae", str(SAE)]
    args += ["--n-prompts", "64", "--n-fit-prompts", "256", "--k", "1,4", "--no-cache"]
    args += ["--coverage-min-prompts", "1"]  # 64 prompts: every value counts
    args += ["--no-leaderboard", "--quiet", "--json-out", str(out)]
    _run(args, _env(site, tmp_path), tmp_path)

    record = json.loads(out.read_text())
    assert record["identity"]["task"] == TASK
    assert record["identity"]["task_version"] == "1"  # ObjectRecallTask.version
    assert record["identity"]["hook"] == "blocks.3.hook_resid_post"
    assert record["identity"]["position"] == "END"
    metrics = record["metrics"]
    for key in ("clean_logit_diff", "fvu", "sufficiency", "necessity", "sup_fvu"):
        assert key in metrics, key
    for attr in ("name", "object"):  # every attribute of the plugin is scored
        for key in (f"noint_accuracy_{attr}", f"edit_accuracy_{attr}_k4", f"f1_coverage_{attr}"):
            assert key in metrics, key
    not_finite = {
        k: v for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)
    }
    # the aware edit at budget 1 is NaN by definition (no exchange fits; docs/metrics.md §5),
    # and so is the normalised score of an attribute whose supervised edit does no better than
    # no intervention (its denominator is 0)
    by_definition = {
        f"aware_edit_{m}_{a}_k1"
        for m in ("accuracy", "magnitude", "distance")
        for a in ("name", "object")
    }
    by_definition |= {
        f"edit_score_{a}_k{k}"
        for a in ("name", "object")
        for k in (1, 4)
        if metrics[f"sup_edit_accuracy_{a}"] == metrics[f"noint_accuracy_{a}"]
    }
    assert set(not_finite) == by_definition, f"metrics that are not finite numbers: {not_finite}"
    assert metrics["l0"] == 6.0  # the SAE is TopK with k = 6
    assert 0 <= metrics["fvu"] and 0 <= metrics["sup_fvu"] < 1


def test_the_examples_own_kit_tests_pass_against_the_installed_package(plugin, tmp_path):
    copy, site = plugin
    # cwd is an empty directory, so the package is imported from the install, not the copy
    done = _run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(copy / "tests" / "test_task.py")],
        _env(site, tmp_path),
        tmp_path,
    )
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout
