"""Property-based tests of issue 18: generated option values, ``cfg.json`` files and sweep
specs either score (exit 0, every SAE metric finite) or are refused (exit 2, exactly one
``error:`` line, no traceback, every pre-existing file byte-identical). Bounded examples,
with small settings and a shared supervised cache, so the module runs in well under a
minute."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cli import write_sae
from test_leaderboard_store import make_row

from saebench.cli import main
from saebench.leaderboard.store import upsert_row
from saebench.validation.finite import undefined_by_definition

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAST = ["--n-prompts", "10", "--n-fit-prompts", "10", "--quiet", "--threads", "1"]
PROPERTY = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("props")
    return {"sae": write_sae(root / "sae"), "cache": root / "cache", "root": root}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def check_outcome(args: list[str], work: Path, json_out: Path | None) -> None:
    """The property: exit 0 with finite metrics, or exit 2 with one error line and every
    pre-existing file under ``work`` byte-identical."""
    before = snapshot(work)
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception
    )
    if result.exit_code == 0:
        if json_out is not None:
            metrics = json.loads(json_out.read_text())["metrics"]
            for name, value in metrics.items():
                if not undefined_by_definition(name):
                    assert value is not None and math.isfinite(value), (name, value)
        return
    assert result.exit_code == 2, (result.exit_code, result.output)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("WARNING ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    assert snapshot(work) == before


def workspace(world) -> Path:
    work = Path(tempfile.mkdtemp(dir=world["root"]))
    upsert_row(work / "lb.csv", make_row(1))
    (work / "runs").mkdir()
    return work


texts = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e999", "", " ", "abc", "1,2", "0.5",
                     "99999999999999999999999", "-0", "1e-300", "2", "10", "1.5"]),
    st.text(max_size=6),
)
OPTIONS = ["--tau", "--seed", "--k", "--batch-size", "--lock-timeout", "--cache-budget",
           "--n-prompts", "--head", "--position", "--threads", "--device"]


@PROPERTY
@given(option=st.sampled_from(OPTIONS), value=texts)
def test_option_values_score_or_fail_cleanly(world, option, value):
    work = workspace(world)
    try:
        out = work / "runs" / "r.json"
        args = ["run", "--sae", str(world["sae"]), *FAST, "--k", "1",
                "--cache-dir", str(world["cache"]), "--leaderboard", str(work / "lb.csv"),
                "--json-out", str(out), option, value]
        check_outcome(args, work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 200), st.floats(allow_nan=False),
              st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=2),
                            st.dictionaries(st.text(max_size=4), inner, max_size=2)),
    max_leaves=4,
)
CFG_KEYS = ["d_in", "d_sae", "k", "architecture", "activation_fn", "activation_fn_kwargs",
            "dtype", "hook_name", "hook_head_index", "model_name", "metadata", "prepend_bos",
            "apply_b_dec_to_input", "normalize_activations", "reshape_activations",
            "model_from_pretrained_kwargs"]


@PROPERTY
@given(changes=st.dictionaries(st.sampled_from(CFG_KEYS), json_values, min_size=1, max_size=3))
def test_generated_cfg_json_scores_or_fails_cleanly(world, changes):
    work = workspace(world)
    try:
        sae = work / "sae"
        shutil.copytree(world["sae"], sae)
        raw = json.loads((sae / "cfg.json").read_text())
        raw.update(changes)
        (sae / "cfg.json").write_text(json.dumps(raw))
        out = work / "runs" / "r.json"
        args = ["run", "--sae", str(sae), *FAST, "--k", "1", "--cache-dir", str(world["cache"]),
                "--leaderboard", str(work / "lb.csv"), "--json-out", str(out)]
        check_outcome(args, work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


toml_values = st.one_of(
    st.integers(-5, 3000), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(['"x"', '"END"', '"cpu"', "[1, 2]", "[]", "[0]", '"lb.csv"',
                     '"runs/{sae}.json"', '"{sae}/../../x.json"', '"runs/{bogus}.json"']),
)
SPEC_KEYS = ["tau", "seed", "ks", "batch_size", "lock_timeout", "cache_budget_mb", "position",
             "device", "checkpoints", "n_prompts", "task", "json_out", "leaderboard", "model"]


def toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(
            value
        ) else repr(value)
    return str(value)


@PROPERTY
@given(changes=st.dictionaries(st.sampled_from(SPEC_KEYS), toml_values, min_size=1, max_size=3))
def test_generated_sweep_specs_score_or_fail_cleanly(world, changes):
    work = workspace(world)
    try:
        lines = {"n_prompts": "10", "n_fit_prompts": "10", "ks": "[1]",
                 "cache_dir": f'"{world["cache"]}"', "leaderboard": f'"{work / "lb.csv"}"',
                 "json_out": f'"{work / "runs" / "{sae}.json"}"'}
        for key, value in changes.items():
            text = toml(value)
            if key in ("json_out", "leaderboard") and text.startswith('"'):
                text = f'"{work}/{text[1:]}'
            lines[key] = text
        spec = work / "s.toml"
        spec.write_text("[sweep]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items())
                        + f'\n[[sae]]\npath = "{world["sae"]}"\n')
        result_args = ["sweep", str(spec), "--quiet"]
        before = snapshot(work)
        result = CliRunner().invoke(main, result_args)
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        if result.exit_code == 0:
            for path in (work / "runs").rglob("*.json"):
                metrics = json.loads(path.read_text())["metrics"]
                assert all(v is not None and math.isfinite(v) for k, v in metrics.items()
                           if not undefined_by_definition(k))
            return
        # refused (2), or a job that failed at run time (1, the sweep's convention): one error
        # line each way, and no pre-existing file touched
        assert result.exit_code in (1, 2), result.output
        errors = [x for x in result.stderr.splitlines() if not x.startswith("WARNING ")]
        assert len([x for x in errors if x.startswith("error: ")]) == 1, result.stderr
        after = snapshot(work)
        assert all(after.get(k) == v for k, v in before.items())
    finally:
        shutil.rmtree(work, ignore_errors=True)
