"""Issue 18 (reliability): one test per numbered failure, each through the CLI (or the API for
API items): the exit code, exactly one ``error:`` line, no traceback, and every pre-existing
file byte-identical. Most are refused before any model is loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cli import write_sae
from test_cli_failures import SMALL, fails_cleanly, snapshot
from test_leaderboard_store import make_row

from saebench.cli import main
from saebench.leaderboard.store import upsert_row


@pytest.fixture(scope="module")
def sae(tmp_path_factory) -> Path:
    return write_sae(tmp_path_factory.mktemp("sae") / "my-sae")


def leaderboard_with_rows(path: Path, n: int = 3) -> Path:
    for i in range(n):
        upsert_row(path, make_row(i))
    return path


def spec_file(path: Path, sweep: str, saes: list[str]) -> Path:
    entries = "".join(f'\n[[sae]]\npath = "{s}"\n' for s in saes)
    path.write_text(f"[sweep]\n{sweep}\n{entries}")
    return path


# 1. Data loss: an output that is another output ------------------------------------------


@pytest.mark.parametrize(
    "json_out",
    [
        "{root}/lb.csv",
        "{root}/./lb.csv",
        "{root}/sub/../lb.csv",
        "{root}/link.csv",
        "{root}/hard.csv",
        "{root}/lb.csv.lock",
        "{root}/lb.csv.lock.holder",
    ],
)
def test_1_a_json_over_the_leaderboard_is_refused_and_no_row_is_lost(sae, tmp_path, json_out):
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    (tmp_path / "sub").mkdir()
    os.symlink(csv, tmp_path / "link.csv")
    os.link(csv, tmp_path / "hard.csv")
    before = snapshot(tmp_path)
    fails_cleanly(
        [
            "run",
            "--sae",
            str(sae),
            *SMALL,
            "--leaderboard",
            str(csv),
            "--json-out",
            json_out.format(root=tmp_path),
        ],
        "leaderboard",
    )
    assert snapshot(tmp_path) == before


def test_1_a_json_over_a_file_that_is_not_json_or_an_input_is_refused(sae, tmp_path):
    other = leaderboard_with_rows(tmp_path / "other.csv")
    before = snapshot(tmp_path)
    fails_cleanly(
        ["run", "--sae", str(sae), *SMALL, "--no-leaderboard", "--json-out", str(other)],
        "not a saebench run record",
    )
    fails_cleanly(
        ["run", "--sae", str(sae), *SMALL, "--no-leaderboard", "--json-out", str(sae / "cfg.json")],
        "cfg.json",
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "content",
    [
        '{"old": true}',
        '{"architecture": "relu", "d_in": 64, "d_sae": 128}',  # another SAE's cfg.json
        '{"spec": "s.toml", "jobs": [], "results": []}',  # a sweep's record
        '{"config": {}, "identity": {}, "provenance": {}}',  # no metrics
        '{"config": 1, "identity": {}, "provenance": {}, "metrics": {}}',
        "[1, 2]",
        "null",
    ],
)
def test_1_a_json_over_an_existing_json_that_is_not_a_run_record_is_refused(
    sae, tmp_path, content
):
    target = tmp_path / "cfg.json"
    target.write_text(content)
    before = snapshot(tmp_path)
    fails_cleanly(
        ["run", "--sae", str(sae), *SMALL, "--no-leaderboard", "--json-out", str(target)],
        "not a saebench run record",
    )
    assert snapshot(tmp_path) == before


def test_1_one_sae_json_over_another_saes_leaderboard_is_refused(tmp_path):
    a = write_sae(tmp_path / "saes" / "a", seed=1)
    write_sae(tmp_path / "saes" / "b", seed=2)
    csv = leaderboard_with_rows(tmp_path / "b.csv")
    before = snapshot(tmp_path)
    # a's JSON is tmp/b.csv, which is b's leaderboard (templated with {sae})
    fails_cleanly(
        [
            "run",
            "--sae",
            str(a.parent / "*"),
            *SMALL,
            "--leaderboard",
            str(tmp_path / "{sae}.csv"),
            "--json-out",
            str(tmp_path / "b.csv"),
        ],
        "leaderboard",
    )
    assert snapshot(tmp_path) == before
    assert csv.read_bytes() == before[str(csv)]


def test_1_a_sweep_spec_whose_json_is_its_leaderboard_is_refused(sae, tmp_path):
    csv = leaderboard_with_rows(tmp_path / "lb3.csv")
    spec = spec_file(
        tmp_path / "s.toml",
        f'model = "random-gpt2"\nleaderboard = "{csv}"\njson_out = "{csv}"\nn_prompts = 40\n'
        "n_fit_prompts = 300\nks = [1, 2]\ncache_dir = false",
        [str(sae)],
    )
    before = snapshot(tmp_path)
    fails_cleanly(["sweep", str(spec), "--quiet"], "lb3.csv")
    assert snapshot(tmp_path) == before


# 2. A write outside the requested folder --------------------------------------------------


@pytest.mark.parametrize("template", ["runs/{sae}.json", "runs/{model}/{sae}-{node}.json"])
def test_2_a_templated_json_stays_under_its_folder(tmp_path, monkeypatch, template):
    root = tmp_path / "root"
    write_sae(root, seed=3)  # the SAE is the folder root itself, given as ".."
    (root / "sub").mkdir()
    monkeypatch.chdir(root / "sub")
    before = snapshot(tmp_path)
    result = CliRunner().invoke(
        main, ["run", "--sae", "..", *SMALL, "--no-leaderboard", "--json-out", template]
    )
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.rglob("*.json") if str(p) not in before]
    assert len(written) == 1
    assert (root / "sub" / "runs") in written[0].parents, written


@pytest.mark.parametrize("name", ["../../escaped", "/etc/x", "..", "a/../../b", "\\..\\x"])
def test_2_names_and_model_names_cannot_climb(tmp_path, name):
    from saebench.validation.outputs import fill_template

    path = fill_template(
        str(tmp_path / "runs/{model}/{sae}.json"), {"sae": name, "model": name}, "json"
    )
    assert Path(path).resolve().is_relative_to((tmp_path / "runs").resolve())


def test_2_a_symlink_under_the_folder_cannot_lead_out(sae, tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "runs" / "my-sae")
    before = snapshot(tmp_path)
    fails_cleanly(
        [
            "run",
            "--sae",
            str(sae),
            *SMALL,
            "--no-leaderboard",
            "--json-out",
            str(tmp_path / "runs" / "{sae}" / "x.json"),
        ],
        "leaves the folder",
    )
    assert snapshot(tmp_path) == before and not any(outside.iterdir())


@pytest.mark.parametrize(
    "template",
    [
        "{sae!r}.json",
        "{sae:>9}.json",
        "{sae.upper}.json",
        "{sae[0]}.json",
        "{0}.json",
        "{}.json",
        "{sae",
    ],
)
def test_2_only_bare_placeholders_are_filled_in(sae, tmp_path, template):
    before = snapshot(tmp_path)
    fails_cleanly(
        [
            "run",
            "--sae",
            str(sae),
            *SMALL,
            "--no-leaderboard",
            "--json-out",
            str(tmp_path / template),
        ],
        "--json-out",
    )
    assert snapshot(tmp_path) == before


# 3. Silent wrong or missing numbers -------------------------------------------------------


def test_3_identical_saes_in_one_call_are_refused_not_merged_into_one_row(tmp_path):
    for name in "abcd":
        write_sae(tmp_path / "saes" / name, seed=7)  # four copies of one SAE
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    before = snapshot(tmp_path)
    fails_cleanly(
        [
            "run",
            "--sae",
            str(tmp_path / "saes" / "*"),
            *SMALL,
            "--leaderboard",
            str(csv),
            "--json-out",
            str(tmp_path / "runs" / "{sae}.json"),
        ],
        "identical weights",
    )
    assert snapshot(tmp_path) == before


def edit_sae(src: Path, dst: Path, cfg: dict | None = None, scale: float = 1.0, dtype=None) -> Path:
    """A copy of the SAE at ``src`` with config fields replaced, weights scaled or cast."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    raw = json.loads((dst / "cfg.json").read_text())
    raw.update(cfg or {})
    (dst / "cfg.json").write_text(json.dumps(raw))
    state = load_file(dst / "sae_weights.safetensors")
    state = {k: (v.double() * scale).to(dtype or v.dtype) for k, v in state.items()}
    save_file(state, dst / "sae_weights.safetensors")
    return dst


def test_3_huge_weights_are_an_error_not_empty_metrics(sae, tmp_path):
    huge = edit_sae(sae, tmp_path / "huge", scale=1e30)
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    before = snapshot(tmp_path)
    fails_cleanly(
        ["run", "--sae", str(huge), *SMALL, "--leaderboard", str(csv),
         "--json-out", str(tmp_path / "runs" / "{sae}.json")],
        "NaN or infinite",
    )
    assert snapshot(tmp_path) == before


def test_3_the_api_refuses_an_sae_whose_encode_returns_nan(random_model, tmp_path):
    import torch

    from saebench.api import evaluate_sae
    from saebench.sae.formats import load_sae

    class NaNEncode:
        def __init__(self, sae):
            self.sae = sae
            self.W_dec = sae.W_dec_FD
            self.cfg = {"hook_name": "blocks.1.hook_resid_pre"}

        def encode(self, x):
            return self.sae.encode(x) * torch.nan

        def decode(self, f):
            return self.sae.decode(torch.nan_to_num(f))

    inner = load_sae(str(write_sae(tmp_path / "inner")))
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate_sae(NaNEncode(inner), random_model, hook="blocks.1.hook_resid_pre",
                     n_prompts=40, n_fit_prompts=300, ks=[1], cache_dir=None, progress=False)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_5_half_precision_saes_are_scored_in_float32(sae, tmp_path, dtype):
    import json

    import torch

    half = edit_sae(sae, tmp_path / dtype, cfg={"dtype": dtype}, dtype=getattr(torch, dtype))
    out = tmp_path / "run.json"
    result = CliRunner().invoke(
        main, ["run", "--sae", str(half), *SMALL, "--no-leaderboard", "--json-out", str(out)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["fvu"] is not None and metrics["l0"] is not None


@pytest.mark.parametrize(
    ("cfg", "mention"),
    [
        ({"metadata": "hello"}, "metadata must be a JSON object"),
        ({"architecture": "topk", "k": [6]}, "k must be an integer"),
        ({"architecture": "topk", "k": 6.5}, "k must be an integer"),
        ({"d_in": "64"}, "d_in must be an integer"),
        ({"hook_name": 3}, "hook_name must be a string"),
        ({"metadata": {"sae_name": ["x"]}}, "metadata.sae_name"),
        ({"activation_fn_kwargs": {"k": "6"}}, "activation_fn_kwargs.k"),
        ({"prepend_bos": "yes"}, "prepend_bos"),
    ],
)
def test_6_cfg_json_with_wrong_types_names_the_field(sae, tmp_path, cfg, mention):
    bad = edit_sae(sae, tmp_path / "bad", cfg=cfg)
    before = snapshot(tmp_path)
    fails_cleanly(["run", "--sae", str(bad), *SMALL, "--no-leaderboard"], mention, "cfg.json")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["times3", "nan", "shape"])
def test_3_6_a_damaged_cache_entry_is_refitted_with_a_warning(sae, tmp_path, damage, caplog):
    import json

    import torch
    from safetensors.torch import load_file, save_file

    cache = tmp_path / "cache"
    args = ["run", "--sae", str(sae), *[a for a in SMALL if a != "--no-cache"],
            "--cache-dir", str(cache), "--no-leaderboard"]
    first = CliRunner().invoke(main, [*args, "--json-out", str(tmp_path / "a.json")])
    assert first.exit_code == 0, first.output
    for entry in (cache / "supervised").glob("*.safetensors"):
        state = load_file(entry)
        if damage == "times3":
            state["features_FD"] = state["features_FD"] * 3
        elif damage == "nan":
            state["features_FD"][0, 0] = torch.nan
        else:
            state["features_FD"] = state["features_FD"][:-2]
            state["present_F"] = state["present_F"][:-2]
        save_file(state, entry)
    second = CliRunner().invoke(main, [*args, "--json-out", str(tmp_path / "b.json")])
    assert second.exit_code == 0, second.output
    assert "refitting" in caplog.text and "Traceback" not in second.output
    a, b = (json.loads((tmp_path / n).read_text())["metrics"] for n in ("a.json", "b.json"))
    assert a == b


# 3/6. Settings: one validation for the CLI, sweep specs and the API -----------------------


@pytest.mark.parametrize(
    ("extra", "mention"),
    [
        (["--tau", "nan"], "--tau"),
        (["--tau", "inf"], "--tau"),
        (["--seed", "-1"], "--seed"),
        (["--lock-timeout", "nan"], "--lock-timeout"),
        (["--cache-budget", "nan"], "--cache-budget"),
        (["--n-prompts", "abc"], "--n-prompts"),
        (["--batch-size", "0"], "--batch-size"),
        (["--k", "x"], "--k"),
        (["--bogus"], "--bogus"),
    ],
)
def test_6_bad_option_values_are_one_error_line_naming_the_option(sae, tmp_path, extra, mention):
    before = snapshot(tmp_path)
    fails_cleanly(["run", "--sae", str(sae), *SMALL, "--no-leaderboard", *extra], mention)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("line", "mention"),
    [
        ("tau = 2.0", "tau"),
        ("tau = nan", "tau"),
        ("position = 7", "position"),
        ("batch_size = 0", "batch_size"),
        ('lock_timeout = "soon"', "lock_timeout"),
        ('seed = "x"', "seed"),
        ("device = 5", "device"),
        ("cache_budget_mb = -5", "cache_budget_mb"),
        ('checkpoints = "yes"', "checkpoints"),
        ('position = "NOWHERE"', "NOWHERE"),
        ('task = "no-such-task"', "no-such-task"),
    ],
)
def test_6_sweep_spec_values_of_the_wrong_type_or_range_fail_before_any_job(
    sae, tmp_path, line, mention
):
    spec = spec_file(tmp_path / "s.toml", f"cache_dir = false\n{line}", [str(sae)])
    before = snapshot(tmp_path)
    fails_cleanly(["sweep", str(spec), "--quiet"], mention)
    assert snapshot(tmp_path) == before


def test_6_a_sweep_entry_name_of_the_wrong_type_is_refused(sae, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(f'[sweep]\ncache_dir = false\n[[sae]]\npath = "{sae}"\nname = 5\n')
    fails_cleanly(["sweep", str(spec), "--quiet"], "name")


def test_5_a_binary_sweep_spec_is_one_error_line(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_bytes(bytes(range(256)) * 4)
    fails_cleanly(["sweep", str(spec), "--quiet"], "not valid TOML")


def test_6_the_api_names_a_bad_setting(sae):
    from saebench.api import evaluate_sae

    for kwargs, mention in (({"tau": float("nan")}, "tau="), ({"seed": -1}, "seed="),
                            ({"ks": [0]}, "ks=")):
        with pytest.raises(ValueError, match=mention):
            evaluate_sae(str(sae), "random-gpt2", **kwargs)


def test_6_the_api_refuses_a_nan_decoder_in_one_line(random_model, tmp_path):
    import torch

    from saebench.api import evaluate_sae
    from saebench.sae.formats import load_sae

    inner = load_sae(str(write_sae(tmp_path / "inner")))

    class NaNDecoder:
        W_dec = inner.W_dec_FD.clone()
        W_dec[0, 0] = torch.nan
        cfg = {"hook_name": "blocks.1.hook_resid_pre"}

        def encode(self, x):
            return inner.encode(x)

        def decode(self, f):
            return f @ self.W_dec

    with pytest.raises(ValueError, match="NaN/inf"):
        evaluate_sae(NaNDecoder(), random_model, hook="blocks.1.hook_resid_pre",
                     n_prompts=40, n_fit_prompts=300, ks=[1], cache_dir=None, progress=False)


# 4. A hang: k beyond the width ------------------------------------------------------------


def test_4_a_huge_k_is_capped_at_the_width_and_said_so(sae, tmp_path, caplog):
    import json
    import time

    out = tmp_path / "run.json"
    start = time.perf_counter()
    result = CliRunner().invoke(
        main, ["run", "--sae", str(sae), *SMALL[:4], "--k", "1,99999999999999999999999",
               *SMALL[6:], "--no-leaderboard", "--json-out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - start < 120
    assert "capped at k = 128" in caplog.text
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["edit_accuracy_io_k99999999999999999999999"] is not None


def test_4_greedy_edits_beyond_the_width_equal_the_full_width_edit():
    import torch

    from saebench.metrics.control import greedy_edit

    g = torch.Generator().manual_seed(0)
    diff, delta, W = torch.randn(5, 4, generator=g), torch.randn(5, 6, generator=g), torch.randn(
        6, 4, generator=g
    )
    out = greedy_edit(diff, delta, W, [6, 10**30])
    assert torch.equal(out[6][0], out[10**30][0]) and torch.equal(out[6][1], out[10**30][1])


# 5. Tracebacks and crashes ----------------------------------------------------------------


def test_5_a_glob_over_a_symlink_loop_is_one_error_line(tmp_path):
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "d" / "loop", tmp_path / "d" / "loop")
    before = snapshot(tmp_path)
    fails_cleanly(["run", "--sae", str(tmp_path / "d" / "*"), *SMALL, "--no-leaderboard"],
                  "no SAE matches")
    assert snapshot(tmp_path) == before


def test_5_map_checks_out_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    before = snapshot(tmp_path)
    fails_cleanly(["map", "--model", "tiny-ioi", "--out", str(tmp_path / "file" / "m")],
                  "is a file")
    assert snapshot(tmp_path) == before


def test_5_map_keeps_its_map_when_the_late_write_fails(tmp_path, monkeypatch):
    import saebench.causal_map

    monkeypatch.setenv("SAEBENCH_CACHE", str(tmp_path / "cache"))

    def refuse(frame, out_dir):
        raise NotADirectoryError(20, "Not a directory", str(out_dir))

    monkeypatch.setattr(saebench.causal_map, "write_map", refuse)
    line = fails_cleanly(
        ["map", "--model", "tiny-ioi", "--positions", "END", "--hooks", "resid",
         "--n-prompts", "20", "--n-fit-prompts", "100", "--no-cache", "--quiet",
         "--out", str(tmp_path / "m")],
        "the map is saved in",
    )
    saved = Path(line.rsplit("saved in ", 1)[1])
    assert saved.is_file() and "noint_accuracy" in saved.read_text()


def test_5_threads_beyond_the_cores_are_capped(sae, tmp_path):
    out = tmp_path / "run.json"
    result = CliRunner().invoke(
        main, ["run", "--sae", str(sae), *SMALL[:-2], "--threads", "100000",
               "--no-leaderboard", "--json-out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()


# 7. Smaller --------------------------------------------------------------------------------


def test_7_stale_temp_and_holder_files_are_cleaned_and_formulas_escaped(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    from saebench.io_utils import _writer_tag
    from saebench.leaderboard.store import has_row, holder_path, read_leaderboard

    csv = leaderboard_with_rows(tmp_path / "lb.csv", 1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = _writer_tag().split("-")[0]
    stale = tmp_path / f".lb.csv.{host}-{dead}.abcd.tmp"
    stale.write_text("partial")
    holder_path(csv).write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(),
                                            "since": "x"}))
    has_row(csv, make_row(5))
    assert not stale.exists() and not holder_path(csv).exists()

    upsert_row(csv, make_row(2, sae_name="=cmd|calc", data_source="@SUM(1)"))
    text = csv.read_text()
    assert "'=cmd|calc" in text and "'@SUM(1)" in text
    frame = read_leaderboard(csv)
    assert "=cmd|calc" in set(frame["sae_name"]) and "@SUM(1)" in set(frame["data_source"])


def test_7_an_sae_above_the_memory_limit_is_refused_before_its_work(tmp_path):
    big = write_sae(tmp_path / "big", f=4096)
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    before = snapshot(tmp_path)
    fails_cleanly(
        ["run", "--sae", str(big), *SMALL, "--max-memory", "1", "--leaderboard", str(csv),
         "--json-out", str(tmp_path / "runs" / "{sae}.json")],
        "--max-memory",
    )
    assert snapshot(tmp_path) == before
    fails_cleanly(["run", "--sae", str(big), *SMALL, "--max-memory", "nan"], "--max-memory")


@pytest.mark.parametrize("option", ["--markdown", "--readme"])
def test_1_a_leaderboard_export_over_its_own_csv_is_refused(tmp_path, option):
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    before = snapshot(tmp_path)
    fails_cleanly(["leaderboard", "export", str(csv), option, str(csv)], "refusing to overwrite")
    assert snapshot(tmp_path) == before


# The API refuses what the CLI refuses (one shared check) -----------------------------------

API_SMALL = {"n_prompts": 40, "n_fit_prompts": 300, "ks": [1, 2], "cache_dir": None,
             "progress": False}


def test_3_the_api_refuses_identical_saes_that_would_share_one_row(tmp_path, monkeypatch):
    from saebench import api
    from saebench.sae.formats import load_sae

    for name in "ab":
        write_sae(tmp_path / "saes" / name, seed=7)  # two copies of one SAE
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    before = snapshot(tmp_path)
    monkeypatch.setattr(api, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    paths = [str(tmp_path / "saes" / n) for n in "ab"]
    objects = [load_sae(p) for p in paths]
    for saes in (paths, objects, [paths[0], objects[1]]):
        with pytest.raises(ValueError, match="identical weights"):
            api.evaluate_saes(saes, "random-gpt2", leaderboard=csv,
                              json_out=str(tmp_path / "runs" / "{sae}.json"), **API_SMALL)
    # two distinct SAE objects of one class (no names) would write one JSON: refused
    class Plain:
        def __init__(self, sae):
            self.W_dec, self.encode, self.decode = sae.W_dec_FD, sae.encode, sae.decode
            self.cfg = {"hook_name": "blocks.1.hook_resid_pre"}

    other = load_sae(str(write_sae(tmp_path / "saes" / "c", seed=8)))
    with pytest.raises(ValueError, match="would both write"):
        api.evaluate_saes([Plain(objects[0]), Plain(other)], "random-gpt2",
                          hook="blocks.1.hook_resid_pre",
                          json_out=str(tmp_path / "runs" / "{sae}.json"), **API_SMALL)
    assert {p: b for p, b in snapshot(tmp_path).items() if p in before} == before
    assert not (tmp_path / "runs").exists()


def test_7_the_api_has_max_memory_through_the_shared_settings_check(tmp_path, random_model):
    from saebench.api import evaluate_sae

    big = write_sae(tmp_path / "big", f=4096)
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    before = snapshot(tmp_path)
    for bad in (float("nan"), -1, "lots", True):
        with pytest.raises(ValueError, match="max_memory_mb="):
            evaluate_sae(str(big), random_model, max_memory_mb=bad, **API_SMALL)
    with pytest.raises(ValueError, match="more than max_memory_mb= 1 MB"):
        evaluate_sae(str(big), random_model, max_memory_mb=1, leaderboard=csv,
                     json_out=str(tmp_path / "runs" / "{sae}.json"), **API_SMALL)
    assert snapshot(tmp_path) == before


# Special files: never read as a record or table, never replaced --------------------------


def _special_files(root: Path) -> list[Path]:
    """A FIFO (a read blocks) and, as root, a null and a zero device of our own (renaming over
    a device replaces the device; reading /dev/zero never ends)."""
    import stat

    made = [root / "fifo"]
    os.mkfifo(made[0])
    if os.geteuid() == 0:
        for name, minor in (("null", 3), ("zero", 5)):
            os.mknod(root / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
            made.append(root / name)
    return made


def _specials(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_mode, p.lstat().st_rdev) for p in root.iterdir()
            if not p.is_file() and not p.is_dir()}


def test_1_a_device_or_fifo_output_is_refused_never_read_or_replaced(sae, tmp_path):
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    specials = _special_files(tmp_path)
    (tmp_path / "link.json").symlink_to(specials[-1])
    kinds = _specials(tmp_path)
    before = snapshot(tmp_path)
    for special in [*specials, tmp_path / "link.json"]:
        fails_cleanly(["run", "--sae", str(sae), *SMALL, "--no-leaderboard",
                       "--json-out", str(special)], "not a saebench run record")
        fails_cleanly(["run", "--sae", str(sae), *SMALL, "--leaderboard", str(special),
                       "--json-out", str(tmp_path / "runs" / "{sae}.json")], "not a regular file")
        fails_cleanly(["leaderboard", "show", str(special)], "not a leaderboard file")
    assert snapshot(tmp_path) == before and _specials(tmp_path) == kinds
    assert csv.read_bytes() == before[str(csv)]


def test_1_atomic_write_never_renames_over_a_special_file(tmp_path):
    from saebench.io_utils import OutputPathError, atomic_write

    for special in _special_files(tmp_path):
        with pytest.raises(OutputPathError, match="not a regular file"):
            atomic_write(special, "x")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_5_leaderboard_plot_out_a_file_is_one_error_line(tmp_path):
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    (tmp_path / "notes.txt").write_text("keep me\n")
    fifo = _special_files(tmp_path)[0]
    before = snapshot(tmp_path)
    fails_cleanly(["leaderboard", "plot", str(csv), "--out", str(tmp_path / "notes.txt")],
                  "is a file")
    fails_cleanly(["leaderboard", "plot", str(csv), "--out", str(fifo)], "not a directory")
    fails_cleanly(["leaderboard", "plot", str(csv), "--out", str(tmp_path / "notes.txt" / "p")],
                  "notes.txt")
    assert snapshot(tmp_path) == before


def test_6_an_sae_name_with_a_newline_fails_on_one_error_line(sae, tmp_path):
    import shutil

    shutil.copytree(sae, tmp_path / "saes" / "ok")
    broken = tmp_path / "saes" / "x\ny"
    shutil.copytree(sae, broken)
    (broken / "cfg.json").write_text("[" * 100_000 + "]" * 100_000)  # nested too deeply
    result = CliRunner().invoke(main, ["run", "--sae", str(tmp_path / "saes" / "*"), *SMALL,
                                       "--no-leaderboard", "--json-out",
                                       str(tmp_path / "runs" / "{sae}.json")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if not line.startswith("WARNING ")]
    assert len(lines) == 1 and lines[0].startswith("error: x y: "), lines
    assert "nested too deeply" in lines[0] and "cfg.json" in lines[0]
    assert (tmp_path / "runs" / "ok.json").exists()


def test_6_empty_output_paths_and_an_overlong_sweep_path_are_one_error_line(sae, tmp_path):
    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    before = snapshot(tmp_path)
    for option in ("--leaderboard", "--json-out"):
        fails_cleanly(["run", "--sae", str(sae), *SMALL, option, " "], "is empty")
    spec = spec_file(tmp_path / "s.toml", f'model = "random-gpt2"\nleaderboard = "{csv}"',
                     ["a" * 5000])
    result = CliRunner().invoke(main, ["sweep", str(spec), "--quiet"])
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "File name too long" in lines[0] and len(lines[0]) < 300
    assert {p: b for p, b in snapshot(tmp_path).items() if p != str(spec)} == before


def test_7_leaderboard_export_on_a_full_disk_is_one_error_line(tmp_path, monkeypatch):
    import errno

    from saebench import io_utils

    csv = leaderboard_with_rows(tmp_path / "lb.csv")
    (tmp_path / "lb.md").write_text("old tables\n")
    real = io_utils.atomic_write

    def full(path, data):
        if Path(path).parent == tmp_path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(io_utils, "atomic_write", full)
    before = snapshot(tmp_path)
    fails_cleanly(["leaderboard", "export", str(csv), "--markdown", str(tmp_path / "lb.md")],
                  "No space left on device", "lb.md")
    fails_cleanly(["leaderboard", "export", str(csv), "--markdown", str(tmp_path / "x" / "y"),
                   "--readme", str(tmp_path / "R.md")], "No space left on device", "R.md")
    after = snapshot(tmp_path)  # the pre-existing files byte-identical, no temp file left
    assert {p: b for p, b in after.items() if p in before} == before
    assert set(after) - set(before) <= {str(tmp_path / "x" / "y")}


def test_6_the_api_checks_outputs_before_work_and_reads_ks_once(sae, tmp_path, monkeypatch):
    from saebench import api

    (tmp_path / "runs").mkdir()
    monkeypatch.setattr(api, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    before = snapshot(tmp_path)
    with pytest.raises(OSError, match="is a directory"):
        api.evaluate_sae(str(sae), "random-gpt2", json_out=tmp_path / "runs",
                         **{**API_SMALL, "ks": (k for k in (1, 2))})
    assert snapshot(tmp_path) == before
    monkeypatch.undo()
    result = api.evaluate_sae(str(sae), "random-gpt2", **{**API_SMALL, "ks": (k for k in (1, 2))})
    assert result.config["ks"] == (1, 2) and "sufficiency" in result.metrics


@pytest.mark.parametrize(
    ("extra", "mention"),
    [
        (["--steps", "-1"], "--steps"),
        (["--seed", "-5"], "--seed"),
        (["--seed", "99999999999999999999"], "--seed"),
        (["--out", "{root}/notes.txt/sub"], "is a file"),
    ],
)
def test_5_6_model_train_refuses_bad_options_and_out_before_training(tmp_path, extra, mention):
    (tmp_path / "notes.txt").write_text("keep me\n")
    before = snapshot(tmp_path)
    args = ["model", "train", "tiny-ioi", "--out", str(tmp_path / "m")]
    fails_cleanly([*args, *(e.format(root=tmp_path) for e in extra)], mention)
    assert snapshot(tmp_path) == before and not (tmp_path / "m").exists()
