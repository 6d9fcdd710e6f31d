"""One writer per zone at a time: a lock shared by the threads of this process and by other
acmelite processes of the same user.

Provider APIs change a record set by reading it, adding a value and writing it back
(PowerDNS's ``PATCH`` replaces the whole set; so do most dns-lexicon providers and many
hooks). Two writers at once lose one of the values, or make the provider fail (PowerDNS
with SQLite answers ``database is locked``). :func:`zone_lock` serialises them:

* a :class:`threading.Lock` per key, for the threads of one run (several orders in
  ``issue_many``, two solvers in one process);
* an exclusive ``flock`` on ``<runtime dir>/acmelite-locks/<hash of the key>.lock``, for
  other acmelite processes (two cron jobs renewing names of one zone). The directory is the
  user's ``$XDG_RUNTIME_DIR``, else a ``acmelite-locks-<uid>`` directory in the temporary
  directory, created 0700 and used only when it belongs to this user and is no symlink.

Waiting is bounded: after ``timeout`` seconds :class:`~acmelite.errors.SolverError` says who
was waited for. Where ``fcntl`` does not exist, the lock is per process only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import SolverError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["lock_directory", "zone_lock"]

log = logging.getLogger(__name__)

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_POLL = 0.05


def lock_directory() -> Path | None:
    """Where the lock files live, created if missing; None if no safe place exists."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        directory = Path(runtime) / "acmelite-locks"
    else:
        directory = Path(tempfile.gettempdir()) / f"acmelite-locks-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        log.debug("no zone lock directory %s: %s", directory, exc)
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        log.warning("not using %s for zone locks: not a private directory of this user",
                    directory)  # fmt: skip
        return None
    return directory


@contextmanager
def zone_lock(*key: str, zone: str, timeout: float = 120.0) -> Iterator[None]:
    """Hold the lock of ``zone`` (with ``key`` naming the writer: solver, API URL) while
    the block runs; :class:`SolverError` naming the zone after ``timeout`` seconds."""
    text = "\0".join((*key, zone.rstrip(".").lower()))
    with _locks_guard:
        lock = _locks.setdefault(text, threading.Lock())
    deadline = time.monotonic() + timeout
    if not lock.acquire(timeout=max(timeout, 0.0)):
        raise _busy(zone, timeout, "another thread of this process")
    try:
        with _file_lock(text, zone, deadline, timeout):
            yield
    finally:
        lock.release()


@contextmanager
def _file_lock(text: str, zone: str, deadline: float, timeout: float) -> Iterator[None]:
    directory = lock_directory() if fcntl is not None else None
    if directory is None:
        yield
        return
    name = hashlib.sha256(text.encode()).hexdigest()[:32] + ".lock"
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(directory / name, flags, 0o600)
    except OSError as exc:
        log.debug("zone lock file %s: %s; locking in this process only", name, exc)
        yield
        return
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(zone, timeout, "another acmelite process") from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _busy(zone: str, timeout: float, who: str) -> SolverError:
    return SolverError(
        f"zone {zone.rstrip('.')} is being changed by {who}: still waiting after {timeout:g} s"
    )
