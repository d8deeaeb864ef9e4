"""Read and upsert leaderboard CSVs without ever losing or corrupting a row.

Every write holds ``<csv>.lock`` (:class:`filelock.FileLock`) for its whole
read-merge-write cycle, writes the new table to a temporary file in the same directory,
``fsync``s it and ``os.replace``s it over the CSV, so a reader sees either the old file or the
new one, never a torn one, and concurrent writers serialise instead of overwriting each other.

A CSV that does not parse (undecodable bytes, NUL bytes, an unterminated quote, a record with
more or fewer fields than the header, a non-numeric metric, a missing key column, a duplicated
header) raises :class:`LeaderboardError` naming the file and the line, and is never
overwritten: fix or move it by hand.

A row is one SAE at one node (its identity) under one set of evaluation settings
(:data:`~saebench.leaderboard.schema.SETTINGS_COLUMNS`). An upsert replaces the row of the
same identity only when the settings are equal too; with other settings it raises
:class:`SettingsConflict` unless ``replace_settings`` is set, so a quick 100-prompt run never
silently replaces a 1000-prompt row. Rows of files written before the settings were recorded
are migrated on read (:func:`~saebench.leaderboard.schema.legacy_settings`), so old CSVs load
and compare as they always did; the next write stores the filled-in cells.

Cells are stored as text exactly as written: floats with :func:`repr` (shortest round-trip
form), integers in decimal, missing values as empty cells.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from saebench.io_utils import atomic_write, clean_stale_temps, special_kind

if TYPE_CHECKING:
    import pandas as pd

from saebench.leaderboard.schema import (
    FLOAT_COLUMNS,
    IDENTITY_COLUMNS,
    INTEGER_COLUMNS,
    REQUIRED_COLUMNS,
    SETTINGS_COLUMNS,
    is_metric,
    legacy_settings,
    ordered_columns,
    sufficiency_uninformative,
)

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 30.0
"""How long a writer waits for the lock by default (``$SAEBENCH_LOCK_TIMEOUT`` overrides it,
``saebench run --lock-timeout`` too) before giving up with a :class:`LockTimeout` that names
the holder."""
LOCK_TIMEOUT_ENV = "SAEBENCH_LOCK_TIMEOUT"
_LOCK_POLL_S = 0.25

_HASH_RE = re.compile(r"^[0-9a-f]{16}$")


class LeaderboardError(Exception):
    """A leaderboard CSV or row that cannot be used; the message names the path and line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}" if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {message}")


class SettingsConflict(LeaderboardError):
    """The leaderboard has a row for this SAE at this node computed with other settings."""

    def __init__(self, path: str | Path, existing: Mapping[str, str], new: Mapping[str, str]):
        self.existing = dict(existing)
        self.differences = settings_differences(existing, new)
        changes = ", ".join(
            f"{column}={old or '?'} (this run: {now or '?'})"
            for column, (old, now) in self.differences.items()
        )
        name = existing.get("sae_name") or existing.get("sae_id") or existing.get("sae_hash")
        super().__init__(
            path,
            f"has a row for {name} at this node computed with {changes}; not replacing it "
            "(--force replaces it; --leaderboard OTHER.csv or --no-leaderboard writes elsewhere)",
        )


class LockTimeout(LeaderboardError):
    """Another process held the CSV's lock for the whole wait; the message names it."""


def lock_path(csv_path: str | Path) -> Path:
    """The lock file guarding ``csv_path``: ``<csv>.lock`` in the same directory."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.name + ".lock")


def holder_path(csv_path: str | Path) -> Path:
    """The sidecar naming the lock's holder: ``<csv>.lock.holder`` (JSON: pid, host, since),
    written while the lock is held and removed on release."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.name + ".lock.holder")


def default_lock_timeout() -> float:
    """``$SAEBENCH_LOCK_TIMEOUT`` (seconds) when set, else :data:`LOCK_TIMEOUT_S`."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    try:
        return max(0.0, float(text)) if text else LOCK_TIMEOUT_S
    except ValueError:
        logger.warning("ignoring %s=%r (not a number of seconds)", LOCK_TIMEOUT_ENV, text)
        return LOCK_TIMEOUT_S


def read_holder(csv_path: str | Path) -> dict | None:
    """The holder the sidecar names (``pid``, ``host``, ``since``), or None."""
    try:
        holder = json.loads(holder_path(csv_path).read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _holder_gone(holder: dict | None) -> bool:
    """Whether ``holder`` is a process of this host that no longer exists (a stale lock)."""
    if not holder or holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return False


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process (it did not say which)"
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


def clean_stale(csv_path: str | Path) -> None:
    """Remove what a writer killed mid-write left beside ``csv_path``: its temp files
    (:func:`saebench.io_utils.clean_stale_temps`) and a holder sidecar naming a process of
    this host that is gone, when the lock is free."""
    clean_stale_temps(csv_path)
    if not _holder_gone(read_holder(csv_path)):
        return
    lock = FileLock(str(lock_path(csv_path)))
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        return
    try:
        if _holder_gone(read_holder(csv_path)):
            with contextlib.suppress(OSError):
                os.unlink(holder_path(csv_path))
    finally:
        lock.release()


@contextlib.contextmanager
def locked(csv_path: str | Path, timeout: float | None = None) -> Iterator[None]:
    """Hold ``<csv>.lock`` for the block; write the holder (pid, host, time) beside it.

    Waits at most ``timeout`` seconds (default :func:`default_lock_timeout`), then raises
    :class:`LockTimeout` naming the holder. A lock whose holder, by its sidecar, was a process
    of this host that no longer exists (a lock file left by a process killed while it held a
    lock without ``flock``, e.g. on a network filesystem) is stale: it is removed and taken.
    With ``flock`` the kernel releases a dead holder's lock by itself.
    """
    timeout = default_lock_timeout() if timeout is None else max(0.0, timeout)
    path = lock_path(csv_path)
    lock = FileLock(str(path))
    deadline = time.monotonic() + timeout
    suspect = None  # a gone holder seen once: broken when seen again a poll later (a new
    # holder writes its sidecar at once, so a sidecar left by a dead one is never seen twice)
    broken = False
    while True:
        try:
            lock.acquire(timeout=min(_LOCK_POLL_S, max(0.0, deadline - time.monotonic())))
            break
        except Timeout:
            holder = read_holder(csv_path)
            gone = _holder_gone(holder) and not broken
            stale = gone and holder == suspect
            suspect = holder if gone else None
            if gone and not stale:  # look once more, even past the deadline, before deciding
                continue
            if stale:  # at most once per call: a lock that cannot be removed is waited for
                logger.warning("%s: breaking a stale lock (%s is gone)", path, _describe(holder))
                broken = True
                with contextlib.suppress(OSError):
                    os.unlink(path)
                with contextlib.suppress(OSError):
                    os.unlink(holder_path(csv_path))
                continue
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    csv_path,
                    f"locked by {_describe(holder)}; gave up after {timeout:g} s (raise "
                    f"--lock-timeout or ${LOCK_TIMEOUT_ENV}, or end that process if it is hung)",
                ) from None
    try:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": stamp}
        with contextlib.suppress(OSError):
            holder_path(csv_path).write_text(json.dumps(holder))
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(holder_path(csv_path))
        lock.release()


def format_cell(value: object) -> str:
    """The CSV text of one value: '' for None/NaN, ``repr`` for floats, ``str`` otherwise.

    >>> [format_cell(v) for v in (None, float("nan"), 0.1, 3, True, "END")]
    ['', '', '0.1', '3', 'True', 'END']
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return format_cell(value.item())  # numpy / torch scalars
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def escape_formula(text: str) -> str:
    """A cell as written to the CSV: text a spreadsheet would run as a formula (starting with
    ``=``, ``+``, ``-``, ``@``, tab or CR, and not a number) gets a leading ``'``, as does text
    that already starts with ``'`` before such a character or another ``'`` (so
    :func:`unescape_formula` restores every cell exactly).

    >>> [escape_formula(t) for t in ("=cmd|calc", "-0.5", "'=x", "'x", "END")]
    ["'=cmd|calc", '-0.5', "''=x", "'x", 'END']
    """
    if text.startswith(_FORMULA_START) and not _is_number_text(text):
        return "'" + text
    if text.startswith("'") and text[1:2] and (text[1] == "'" or text[1] in _FORMULA_START[:6]):
        return "'" + text
    return text


def unescape_formula(text: str) -> str:
    """The cell :func:`escape_formula` wrote.

    >>> [unescape_formula(escape_formula(t)) for t in ("=cmd|calc", "''=x", "'x", "+1")]
    ['=cmd|calc', "''=x", "'x", '+1']
    """
    if text.startswith("'") and text[1:2] and (text[1] == "'" or text[1] in _FORMULA_START):
        return text[1:]
    return text


def normalise_row(row: Mapping[str, object], path: str | Path = "<row>") -> dict[str, str]:
    """Check a row for the required columns and turn every value into its CSV text.

    ``head`` may be None/'' (a whole-layer node) or an integer; ``sae_hash`` must be 16
    lowercase hex characters; metric values must be numbers or empty.
    """
    cells = {str(k): format_cell(v) for k, v in row.items()}
    missing = [c for c in REQUIRED_COLUMNS if c not in cells]
    if missing:
        raise LeaderboardError(path, f"row lacks required column(s) {missing}")
    empty = [c for c in REQUIRED_COLUMNS if c != "head" and cells[c] == ""]
    if empty:
        raise LeaderboardError(path, f"row has empty required column(s) {empty}")
    cells["sae_hash"] = cells["sae_hash"].lower()
    if not _HASH_RE.match(cells["sae_hash"]):
        raise LeaderboardError(
            path, f"sae_hash must be 16 hex characters, got {cells['sae_hash']!r}"
        )
    for column, text in cells.items():
        problem = _cell_problem(column, text)
        if problem:
            raise LeaderboardError(path, f"row: {problem}")
    if cells["head"] != "":
        cells["head"] = str(int(float(cells["head"])))
    return cells


def _cell_problem(column: str, text: str) -> str | None:
    """Why ``text`` is not a valid value for ``column``, or None when it is."""
    if text == "":
        return None
    if column in INTEGER_COLUMNS:
        try:
            value = float(text)
        except ValueError:
            return f"column {column!r} must be an integer, got {text!r}"
        if not value.is_integer():
            return f"column {column!r} must be an integer, got {text!r}"
    elif is_metric(column) or column in FLOAT_COLUMNS:
        try:
            float(text)
        except ValueError:
            kind = "metric" if is_metric(column) else "column"
            return f"{kind} {column!r} must be a number, got {text!r}"
    return None


def _identity(cells: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(cells.get(c, "") for c in IDENTITY_COLUMNS)


def _setting(column: str, text: str) -> object:
    """A settings cell in comparable form (``"1000.0"`` equals ``"1000"``)."""
    if text == "":
        return ""
    try:
        if column in INTEGER_COLUMNS:
            return int(float(text))
        if column in FLOAT_COLUMNS:
            return float(text)
    except ValueError:
        return text
    if column == "ks":
        return tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    return text


def settings_differences(
    old: Mapping[str, str], new: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """Settings columns whose cells differ between two (migrated) rows: column -> (old, new).

    >>> settings_differences({"n_prompts": "1000", "tau": "0.8"}, {"n_prompts": "40", "tau": "0.8"})
    {'n_prompts': ('1000', '40')}
    """
    return {
        column: (old.get(column, ""), new.get(column, ""))
        for column in SETTINGS_COLUMNS
        if _setting(column, old.get(column, "")) != _setting(column, new.get(column, ""))
    }


def migrate(cells: dict[str, str]) -> dict[str, str]:
    """``cells`` with the settings cells of a row written before they were recorded filled in
    (:func:`~saebench.leaderboard.schema.legacy_settings`); a new dict."""
    return {**cells, **legacy_settings(cells)}


def parse_table(path: str | Path, data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """Parse the bytes of a leaderboard CSV into (header, rows of text cells).

    Raises :class:`LeaderboardError` with the 1-based line of the first problem. Empty (or
    whitespace-only) data is an empty leaderboard. Blank lines are skipped.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise LeaderboardError(path, f"not UTF-8 text ({err.reason})", line) from err
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise LeaderboardError(path, "contains a NUL byte", line)
    if text.strip() == "":
        return [], []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    end_line = 0
    while True:
        start_line = end_line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise LeaderboardError(path, f"malformed CSV ({err})", start_line) from err
        end_line = reader.line_num
        if not record:
            continue
        if header is None:
            header = record
            duplicated = sorted({c for c in header if header.count(c) > 1})
            if duplicated:
                raise LeaderboardError(path, f"duplicated column(s) {duplicated}", start_line)
            missing = [c for c in IDENTITY_COLUMNS if c not in header]  # settings may lack
            if missing:
                raise LeaderboardError(path, f"header lacks key column(s) {missing}", start_line)
            continue
        if len(record) != len(header):
            raise LeaderboardError(
                path, f"{len(record)} fields where the header has {len(header)}", start_line
            )
        cells = dict(zip(header, map(unescape_formula, record), strict=True))
        for column, value in cells.items():
            problem = _cell_problem(column, value)
            if problem:
                raise LeaderboardError(path, problem, start_line)
        rows.append(cells)
    if not text.endswith(("\n", "\r")):
        raise LeaderboardError(
            path, "last line has no line ending (truncated file?); if complete, add one", end_line
        )
    return header or [], rows


def read_rows(csv_path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and text rows of ``csv_path``, migrated (:func:`migrate`: every row has the
    settings columns); ``([], [])`` when it does not exist."""
    csv_path = Path(csv_path)
    kind = special_kind(csv_path)
    if kind is not None:  # a FIFO would block, /dev/zero never end
        raise LeaderboardError(csv_path, f"is {kind}, not a leaderboard file")
    try:
        data = csv_path.read_bytes()
    except FileNotFoundError:
        return [], []
    header, rows = parse_table(csv_path, data)
    rows = [migrate(cells) for cells in rows]
    if rows:
        header = ordered_columns([*header, *(c for cells in rows for c in cells)])
    return header, rows


def find_row(csv_path: str | Path, row: Mapping[str, object]) -> dict[str, str] | None:
    """The (migrated) row of ``csv_path`` with ``row``'s identity, whatever its settings; None
    when there is none or the file does not exist. Compare settings with
    :func:`settings_differences`. Raises :class:`LeaderboardError` when the file does not parse.
    """
    key = _identity({str(k): format_cell(v) for k, v in row.items()})
    _, rows = read_rows(csv_path)
    return next((old for old in rows if _identity(old) == key), None)


def has_row(csv_path: str | Path, row: Mapping[str, object]) -> bool:
    """Whether ``csv_path`` has ``row``'s identity computed with ``row``'s settings (the
    decision ``saebench run --skip-existing`` and ``saebench sweep`` take before any work).
    Raises :class:`SettingsConflict` when the row exists with other settings, and
    :class:`LeaderboardError` when the file does not parse."""
    clean_stale(csv_path)
    existing = find_row(csv_path, row)
    if existing is None:
        return False
    new = {column: format_cell(row[column]) for column in SETTINGS_COLUMNS}
    if settings_differences(existing, new):
        raise SettingsConflict(csv_path, existing, new)
    return True


def read_leaderboard(csv_path: str | Path) -> pd.DataFrame:
    """The leaderboard at ``csv_path`` as a DataFrame; never writes.

    Metric columns are floats (NaN when missing), integer columns nullable ``Int64``, every
    other column text ('' when missing). Columns are in schema order. Raises
    :class:`LeaderboardError` (with path and line) when the file does not parse or is absent.
    """
    import pandas as pd

    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise LeaderboardError(csv_path, "no such leaderboard file")
    header, rows = read_rows(csv_path)
    columns = ordered_columns(header)
    frame = pd.DataFrame(rows, columns=columns, dtype=object).fillna("")
    if "sufficiency_uninformative" not in frame.columns and {
        "clean_logit_diff",
        "meanabl_logit_diff",
    } <= set(frame.columns):  # rows written before the flag: derive it (schema.FLAG_COLUMNS)
        flags = [
            sufficiency_uninformative(c or None, m or None)
            for c, m in zip(frame["clean_logit_diff"], frame["meanabl_logit_diff"], strict=True)
        ]
        frame["sufficiency_uninformative"] = ["" if f is None else str(f) for f in flags]
        columns = ordered_columns(frame.columns)
        frame = frame[columns]
    for column in columns:
        if column in INTEGER_COLUMNS:
            frame[column] = pd.array(
                [None if t == "" else int(float(t)) for t in frame[column]], dtype="Int64"
            )
        elif is_metric(column) or column in FLOAT_COLUMNS:
            frame[column] = [math.nan if t == "" else float(t) for t in frame[column]]
            frame[column] = frame[column].astype(float)
        else:
            frame[column] = frame[column].astype(str)
    return frame.copy()  # one block per dtype, not one per column assigned above


def _write_atomically(csv_path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    """Write the table to a temp file next to ``csv_path``, fsync it, and rename it over
    (:func:`saebench.io_utils.atomic_write`)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for cells in rows:
        writer.writerow([escape_formula(cells.get(c, "")) for c in header])
    atomic_write(csv_path, buffer.getvalue())


def upsert_row(
    csv_path: str | Path,
    row: Mapping[str, object],
    replace_settings: bool = False,
    lock_timeout: float | None = None,
) -> None:
    """Insert ``row`` into the leaderboard at ``csv_path``, replacing the row with its identity.

    Identity: (model, model_processing, task, hook, head, position, sae_hash). When that row
    was computed with other settings (:data:`~saebench.leaderboard.schema.SETTINGS_COLUMNS`;
    a row lacking them is migrated first), raises :class:`SettingsConflict` and leaves the
    file untouched, unless ``replace_settings``. A replaced row takes the new row's values
    wholesale (cells the new run lacks become empty: one row, one run); its position in the
    file is kept. A new identity is appended. The header is the union of old and new columns
    in schema order, so no column of an old row is dropped. Creates the file (and its
    directory) when absent; refuses (LeaderboardError, file untouched) when the existing file
    does not parse. Waits at most ``lock_timeout`` seconds for the lock (:func:`locked`).
    """
    csv_path = Path(csv_path)
    cells = migrate(normalise_row(row, csv_path))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with locked(csv_path, lock_timeout):
        header, rows = read_rows(csv_path)
        key = _identity(cells)
        matches = [i for i, old in enumerate(rows) if _identity(old) == key]
        if matches and not replace_settings:
            for index in matches:
                if settings_differences(rows[index], cells):
                    raise SettingsConflict(csv_path, rows[index], cells)
        if matches:
            if len(matches) > 1:
                logger.warning(
                    "%s: %d rows share identity %s; keeping one", csv_path, len(matches), key
                )
            rows[matches[0]] = cells
            for index in reversed(matches[1:]):
                del rows[index]
        else:
            rows.append(cells)
        header = ordered_columns([*header, *cells])
        _write_atomically(csv_path, header, rows)
