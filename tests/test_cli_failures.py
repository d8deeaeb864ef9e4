"""Every way `saebench run` can fail on its inputs or outputs: one `error:` line, exit code 2,
no traceback, no pre-existing file changed, and no computed result lost.

Most cases are refused before any scoring (and those about options before any model is
loaded); the few that need a finished evaluation (disk full at the end, a live lock holder)
share the small settings of `BASE`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_cli import write_sae
from test_leaderboard_store import make_row

from saebench import run as run_module
from saebench.cli import main
from saebench.leaderboard import store
from saebench.leaderboard.store import LockTimeout, holder_path, lock_path, upsert_row

SMALL = ["--n-prompts", "40", "--n-fit-prompts", "300", "--k", "1,2", "--no-cache", "--quiet"]
SMALL += ["--threads", "1"]


@pytest.fixture(scope="module")
def sae(tmp_path_factory) -> Path:
    return write_sae(tmp_path_factory.mktemp("sae") / "my-sae")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes."""
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fails_cleanly(args: list[str], *mentions: str) -> str:
    """Run the CLI; assert exit 2, one `error:` line on stderr naming ``mentions``, nothing
    on stdout about it, no traceback. Returns the error line."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    # log warnings about the tiny fitting set are not part of the failure's message
    lines = [line for line in result.stderr.splitlines() if not line.startswith("WARNING ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for mention in mentions:
        assert mention in lines[0], lines[0]
    return lines[0]


def run_args(sae: Path, tmp: Path, **paths: str) -> list[str]:
    csv = paths.get("leaderboard", str(tmp / "lb.csv"))
    js = paths.get("json_out", str(tmp / "runs" / "{sae}.json"))
    return ["run", "--sae", str(sae), *SMALL, "--leaderboard", csv, "--json-out", js]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model is loaded: the case must be refused before."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(run_module, "load_model", refuse)


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    """A pre-existing leaderboard row and JSON that no failure may touch."""
    upsert_row(tmp_path / "lb.csv", make_row(1))
    (tmp_path / "runs").mkdir()
    # an earlier run's record at the SAE's default JSON path (a run may replace a run record,
    # never another JSON: saebench.validation.outputs.is_run_record)
    old = {"config": {}, "identity": {"sae_name": "my-sae"}, "provenance": {}, "metrics": {}}
    (tmp_path / "runs" / "my-sae.json").write_text(json.dumps(old) + "\n")
    return tmp_path


# ------------------------------------------------------------------ bad output paths


@pytest.mark.parametrize(
    ("option", "make", "mention"),
    [
        ("leaderboard", lambda t: (t / "lbdir").mkdir() or t / "lbdir", "is a directory"),
        ("leaderboard", lambda t: t / "lb.csv" / "x.csv", "is a file"),
        ("json_out", lambda t: t / "runs", "is a directory"),
        ("json_out", lambda t: t / "runs" / "my-sae.json" / "{sae}.json", "is a file"),
    ],
)
def test_unwritable_output_path_fails_before_scoring(
    sae, existing, no_model, option, make, mention
) -> None:
    target = make(existing)
    before = snapshot(existing)
    fails_cleanly(run_args(sae, existing, **{option: str(target)}), mention)
    assert snapshot(existing) == before


def test_read_only_leaderboard_directory_fails_before_scoring(
    sae, existing, no_model, monkeypatch
) -> None:
    locked_dir = existing / "ro"
    locked_dir.mkdir()
    real_access = os.access
    # tests run as root, for whom a read-only directory is writable: say it is not
    monkeypatch.setattr(
        "saebench.io_utils.os.access",
        lambda p, mode: False if Path(p) == locked_dir else real_access(p, mode),
    )
    before = snapshot(existing)
    fails_cleanly(run_args(sae, existing, leaderboard=str(locked_dir / "lb.csv")), "not writable")
    assert snapshot(existing) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_read_only_leaderboard_directory_for_real(sae, existing, no_model) -> None:
    locked_dir = existing / "ro"
    locked_dir.mkdir(mode=0o555)
    fails_cleanly(run_args(sae, existing, leaderboard=str(locked_dir / "lb.csv")), "not writable")


def test_unreadable_sae_directory_is_one_line(existing, no_model, monkeypatch) -> None:
    folder = existing / "locked-sae"
    folder.mkdir()

    def denied(path: Path) -> bool:  # what stat() raises in a directory without permission
        raise PermissionError(errno.EACCES, "Permission denied", str(path / "cfg.json"))

    monkeypatch.setattr("saebench.discover._is_sae_dir", denied)
    before = snapshot(existing)
    fails_cleanly(run_args(folder, existing), "Permission denied", "locked-sae")
    assert snapshot(existing) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read a directory without permission")
def test_unreadable_sae_directory_for_real(sae, existing, no_model) -> None:
    folder = existing / "locked-sae"
    folder.mkdir(mode=0o000)
    try:
        fails_cleanly(run_args(folder, existing), "locked-sae")
    finally:
        folder.chmod(0o755)


# ------------------------------------------------------------------ bad options, found early


@pytest.mark.parametrize(
    ("extra", "mention"),
    [
        (["--device", "bogus"], "not a torch device"),
        (["--position", "XYZ"], "--position 'XYZ' is not a position of task 'ioi'"),
        (["--task", "nope"], "no task plugin named 'nope'"),
        (["--hook", "blocks.one.resid"], "not a TransformerLens hook name"),
        (["--n-prompts", "10000000"], "at most 100,000"),
        (["--n-fit-prompts", "10000000"], "at most 100,000"),
    ],
)
def test_bad_option_fails_before_any_model(sae, existing, no_model, extra, mention) -> None:
    before = snapshot(existing)
    fails_cleanly([*run_args(sae, existing), *extra], mention)
    assert snapshot(existing) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_cpu_only_torch_fails_before_any_model(sae, existing, no_model) -> None:
    fails_cleanly([*run_args(sae, existing), "--device", "cuda"], "no CUDA")


# ------------------------------------------------------------------ failures at the end


def test_disk_full_saves_the_result_and_names_where(sae, existing, monkeypatch) -> None:
    monkeypatch.setenv("SAEBENCH_CACHE", str(existing / "cache"))
    real = run_module.atomic_write

    def full(path, data):
        if Path(path).parent == existing / "runs":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(run_module, "atomic_write", full)
    before = snapshot(existing)
    line = fails_cleanly(run_args(sae, existing), "No space left on device", "saved in")
    saved = Path(line.rsplit("saved in ", 1)[1])
    assert saved.parent == existing / "cache" / "unsaved"
    record = json.loads(saved.read_text())
    assert record["identity"]["sae_name"] == "my-sae" and "sufficiency" in record["metrics"]
    after = snapshot(existing)
    assert {p: b for p, b in after.items() if p in before} == before


def test_live_lock_holder_is_named_after_a_bounded_wait(sae, existing) -> None:
    csv = existing / "lb.csv"
    holder = _hold_lock(csv)
    try:
        before = snapshot(existing)
        start = time.monotonic()
        line = fails_cleanly(
            [*run_args(sae, existing), "--lock-timeout", "0.5"], f"pid {holder.pid}", "saved in"
        )
        assert time.monotonic() - start < 60
        assert socket.gethostname() in line and "--lock-timeout" in line
        # the JSON came first: the result is there, the leaderboard untouched
        assert str(existing / "runs" / "my-sae.json") in line
        assert snapshot(existing)[str(csv)] == before[str(csv)]
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------ the lock itself


def _hold_lock(csv: Path) -> subprocess.Popen:
    """A process that takes ``csv``'s lock (writing its holder sidecar) and sleeps."""
    code = (
        "import sys, time\n"
        "from saebench.leaderboard.store import locked\n"
        "with locked(sys.argv[1], timeout=10):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(csv)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "ready"
    return process


def test_live_holder_times_out_with_its_pid_and_host(tmp_path: Path) -> None:
    csv = tmp_path / "lb.csv"
    holder = _hold_lock(csv)
    try:
        start = time.monotonic()
        with pytest.raises(LockTimeout, match=rf"pid {holder.pid} on {socket.gethostname()}"):
            upsert_row(csv, make_row(1), lock_timeout=0.5)
        assert 0.4 < time.monotonic() - start < 10
        assert not csv.exists()
    finally:
        holder.kill()
        holder.wait()
    upsert_row(csv, make_row(1), lock_timeout=5)  # its holder gone, the lock is free
    assert csv.exists() and not holder_path(csv).exists()


def test_lock_timeout_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(store.LOCK_TIMEOUT_ENV, "2.5")
    assert store.default_lock_timeout() == 2.5
    monkeypatch.delenv(store.LOCK_TIMEOUT_ENV)
    assert store.default_lock_timeout() == store.LOCK_TIMEOUT_S == 30.0


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_lock_of_a_dead_holder_is_broken(tmp_path: Path, monkeypatch, caplog) -> None:
    from filelock import SoftFileLock

    # a lock file without flock (as on a network filesystem) blocks until removed
    monkeypatch.setattr(store, "FileLock", SoftFileLock)
    csv = tmp_path / "lb.csv"
    lock_path(csv).write_text("")
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "since": "2026-01-01T00:00:00"}
    holder_path(csv).write_text(json.dumps(stale))
    with caplog.at_level(logging.WARNING):
        upsert_row(csv, make_row(1), lock_timeout=10)
    assert "stale lock" in caplog.text
    assert len(store.read_rows(csv)[1]) == 1 and not holder_path(csv).exists()


def test_soft_lock_of_a_live_holder_is_not_broken(tmp_path: Path, monkeypatch) -> None:
    from filelock import SoftFileLock

    monkeypatch.setattr(store, "FileLock", SoftFileLock)
    csv = tmp_path / "lb.csv"
    lock_path(csv).write_text("")
    live = {"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}
    holder_path(csv).write_text(json.dumps(live))
    with pytest.raises(LockTimeout, match=f"pid {os.getpid()}"):
        upsert_row(csv, make_row(1), lock_timeout=0.6)
    assert not csv.exists()


# ------------------------------------------------------------------ leaderboard show


def test_leaderboard_show_errors_like_run(tmp_path: Path) -> None:
    fails_cleanly(["leaderboard", "show", str(tmp_path / "none.csv")], "no such leaderboard")
    csv = tmp_path / "lb.csv"
    upsert_row(csv, make_row(1))
    fails_cleanly(["leaderboard", "show", str(csv), "--sort", "nope"], "nope")


# ------------------------------------------------------------------ start-up


def test_help_imports_no_torch() -> None:
    code = "import sys; import saebench.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_the_cli_the_run_config_and_the_scorer_share_one_set_of_defaults() -> None:
    from saebench import defaults
    from saebench.cli.run import run as run_command
    from saebench.evaluate import EvalSettings

    options = {p.name: p.default for p in run_command.params}
    config, settings = run_module.RunConfig(sae="x"), EvalSettings()
    expected = {
        "n_prompts": defaults.DEFAULT_N_PROMPTS,
        "n_fit_prompts": defaults.DEFAULT_N_FIT_PROMPTS,
        "cache_budget_mb": defaults.DEFAULT_CACHE_BUDGET_MB,
    }
    for name, value in expected.items():
        assert options[name] == getattr(config, name) == getattr(settings, name) == value, name
    assert tuple(config.ks) == settings.ks == defaults.DEFAULT_KS
    assert options["ks"] == ",".join(map(str, defaults.DEFAULT_KS))
    assert options["leaderboard"] is None and options["json_out"] is None  # the results folder
    assert config.leaderboard == defaults.default_leaderboard()
    assert config.json_out == defaults.default_json_out()


# ------------------------------------------------------------------ the supervised cache


def _dictionary():
    from saebench.supervised import SupervisedDictionary

    features = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return SupervisedDictionary("mean", features, torch.ones(4), {"io": 3}, torch.ones(3) > 0)


@pytest.mark.parametrize("damage", ["truncate", "drop_sidecar", "garbage_sidecar"])
def test_damaged_cache_entry_is_refitted_with_a_warning(tmp_path, caplog, damage) -> None:
    from saebench.cache import cached_supervised

    fits = []

    def fit():
        fits.append(1)
        return _dictionary()

    description = {"model": "m", "node": "n"}
    cached_supervised(description, tmp_path, fit)
    (entry,) = (tmp_path / "supervised").glob("*.safetensors")
    sidecar = entry.with_suffix(".json")
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:20])
    elif damage == "drop_sidecar":
        sidecar.unlink()
    else:
        sidecar.write_text("{")
    with caplog.at_level(logging.WARNING):
        again = cached_supervised(description, tmp_path, fit)
    assert len(fits) == 2 and "refitting" in caplog.text
    assert torch.equal(again.features_FD, _dictionary().features_FD)
    # healed: the next call reads the rewritten entry without fitting
    assert torch.equal(cached_supervised(description, tmp_path, fit).bias_D, torch.ones(4))
    assert len(fits) == 2
    assert sorted(p.name for p in (tmp_path / "supervised").iterdir()) == sorted(
        [entry.name, sidecar.name]
    )
