"""Writing output files safely: atomic writes, writability checks, and a fallback for results.

- :func:`atomic_write` writes to a temporary file in the target's directory, ``fsync``s it
  and renames it over the target, so a reader sees the old file or the new one, never a torn
  one. A new file gets mode ``0o666 & ~umask`` (0644 under the usual umask 022), a replaced
  file keeps its mode.
- :func:`check_writable` says, before any work, why a path could not be written (a
  directory, under a file, in a directory without write permission, a device or FIFO),
  without creating anything.
- :func:`save_unsaved` writes a result whose real destination failed to
  :func:`unsaved_dir` (``$SAEBENCH_CACHE/unsaved`` or ``~/.cache/saebench/unsaved``, else the
  system temp directory), so no computed result is lost.

No torch here: the CLI imports this module before it decides to load anything.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import socket
import stat
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


class OutputPathError(OSError):
    """An output path that cannot be written; the message names it and says why."""


_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(path: str | Path) -> str | None:
    """What the existing ``path`` (symlinks followed) is when it is neither a regular file nor
    a directory (``"a character device"``, ``"a FIFO"``, ...), else None. Such a file is never
    read as a table or record (a FIFO blocks, ``/dev/zero`` never ends) nor replaced by a
    write (renaming over ``/dev/null`` would replace the device itself)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), None)


def check_regular(path: str | Path, what: str = "output") -> None:
    """:class:`OutputPathError` when ``path`` exists and is :func:`special_kind`."""
    kind = special_kind(path)
    if kind is not None:
        raise OutputPathError(errno.EINVAL, f"{what} {path}: is {kind}, not a regular file")


def default_cache_dir() -> Path:
    """``$SAEBENCH_CACHE`` or ``~/.cache/saebench``."""
    return Path(os.environ.get("SAEBENCH_CACHE", Path.home() / ".cache" / "saebench"))


def new_file_mode() -> int:
    """The mode a new file gets under the current umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` and flush it to disk (the one place bytes reach the disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename).

    Creates the parent directories. A new file gets :func:`new_file_mode`, an existing one
    keeps its mode. On any failure the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    check_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = new_file_mode()
    clean_stale_temps(path)
    prefix = f".{path.name}.{_writer_tag()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where possible
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


STALE_TEMP_S = 3600.0
"""Age after which a temp file of :func:`atomic_write` whose writer cannot be identified is
stale."""


def _writer_tag() -> str:
    """``HOST-PID`` of this process (host hashed to 8 hex digits), part of its temp files'
    names so that a temp file left by a killed writer can be recognised."""
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return f"{host}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def clean_stale_temps(path: str | Path) -> None:
    """Remove the temp files :func:`atomic_write` left beside ``path`` when its writer was
    killed (``.NAME.HOST-PID.XXXX.tmp`` whose process of this host is gone, or any
    ``.NAME.*.tmp`` older than :data:`STALE_TEMP_S`); a live writer's are kept."""
    path = Path(path)
    prefix, host = f".{path.name}.", _writer_tag().split("-")[0]
    try:
        candidates = [
            p
            for p in path.parent.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(".tmp")
        ]
    except OSError:
        return
    for candidate in candidates:
        tag = candidate.name[len(prefix) :].split(".")[0]
        tag_host, _, pid = tag.partition("-")
        try:
            if tag_host == host and pid.isdigit():
                stale = not _pid_alive(int(pid))
            else:
                stale = time.time() - candidate.stat().st_mtime > STALE_TEMP_S
            if stale and candidate.is_file():
                candidate.unlink()
        except OSError:
            continue


def check_writable(path: str | Path, what: str = "output") -> None:
    """Raise :class:`OutputPathError` when ``path`` could not be written as a file.

    Checks, creating nothing: ``path`` is not a directory; its nearest existing ancestor is a
    directory (not a file) that this process may write into; an existing ``path`` may be
    replaced. Message: ``WHAT PATH: why``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(errno.EISDIR, f"{what} {path}: is a directory, not a file")
    check_regular(path, what)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(
            errno.ENOTDIR, f"{what} {path}: {ancestor} is a file, so no directory can be made there"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(errno.EACCES, f"{what} {path}: directory {ancestor} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(errno.EACCES, f"{what} {path}: file is not writable")


def unsaved_dir() -> Path:
    """Where results go when their destination cannot be written:
    ``$SAEBENCH_CACHE/unsaved`` (``~/.cache/saebench/unsaved``)."""
    return default_cache_dir() / "unsaved"


def save_unsaved(name: str, data: bytes | str) -> Path:
    """Write ``data`` under :func:`unsaved_dir` (else the system temp directory) as
    ``DATE-NAME``; returns the path written. Raises ``OSError`` only when both fail."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "result"
    error: OSError | None = None
    for folder in (unsaved_dir(), Path(tempfile.gettempdir()) / "saebench-unsaved"):
        try:
            return atomic_write(folder / f"{stamp}-{os.getpid()}-{safe}", data)
        except OSError as err:
            error = err
    assert error is not None
    raise error


def strict_json_value(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±Infinity) replaced by None, recursively,
    so that ``json.dumps(..., allow_nan=False)`` writes strict JSON (``null``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json_value(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            return strict_json_value(value.item())  # numpy / torch scalars
    return value


def dumps_strict(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``value``: NaN and ±Infinity become ``null``; other objects that
    JSON has no type for are written with ``str``."""
    return json.dumps(strict_json_value(value), indent=indent, default=str, allow_nan=False)
