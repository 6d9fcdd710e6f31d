"""The inventory index of a certificate tree: ``ROOT/.acmelite-inventory.json``.

``acmelite list`` walks a tree and describes each certificate directory from three files
(``renewal.json``, ``.renewal-state.json``, ``cert.pem``); reading the directories and
parsing the files is nearly all the time of a list of thousands. The index keeps, per
directory, what the last list found:

- its *listing* — whether it holds a ``renewal.json`` and its subdirectories — under the
  directory's own inode, mtime and ctime (any entry added, removed or renamed changes
  them), so an unchanged directory is not read again;
- its *record* (JSON) under the *signature* of the three files (device, inode, size,
  mtime and ctime of each, or its absence) and the span of time the record stays true (a
  not-due certificate becomes due at its moment).

acmelite replaces these files by renaming a new inode over them, and ``ctime`` cannot be
set from user space, so a changed file has a new signature. Like git's index, an entry
whose directory or files changed less than :data:`RACY_SECONDS` before it was taken is
not kept (a second change within the file system's timestamp granularity could
otherwise go unseen).

The index is a cache, never a source: a missing, unreadable, corrupt or untrusted index
(not owned by this user or root, or writable by group or others, or in such a
directory) is ignored, and the list is the same without it. It is written atomically,
0600, only when an entry changed, and only where this user may write (a tree this user
may only read is listed uncached). Nothing secret is in it — the names, servers, dates
and errors ``list --json`` prints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import AcmeliteError
from .storage import atomic_write, trusted_stat

__all__ = ["INDEX_FILE", "INDEX_VERSION", "InventoryIndex", "Signature", "signature"]

log = logging.getLogger(__name__)

INDEX_FILE = ".acmelite-inventory.json"
INDEX_VERSION = 1
#: Entries younger than this (by their files' ctime) are not stored.
RACY_SECONDS = 2.0

#: Per file (in the order given to :func:`signature`): ``[dev, ino, size, mtime_ns,
#: ctime_ns]``, or None when the file does not exist.
Signature = list[list[int] | None]


def signature(
    directory: str,
    files: Sequence[str],
    *,
    trusted: Sequence[str] = (),
    directory_stat: os.stat_result | None = None,
) -> Signature | None:
    """The signature of ``files`` in ``directory`` (symbolic links followed), or None when
    it cannot be relied on: the first file is missing, a file cannot be inspected, or
    ``directory`` or one of the ``trusted`` files fails
    :func:`acmelite.storage.check_trusted`'s rule (the caller then reads the files, and
    reports what is wrong). ``directory_stat`` saves a ``stat`` of the directory."""
    me = os.geteuid()
    try:
        here = directory_stat or os.stat(directory)
    except OSError:
        return None
    if not trusted_stat(here, me):
        return None
    base = directory.rstrip("/")
    sig: Signature = []
    for name in files:  # one loop, no helper: a warm list signs 10,000 directories
        try:
            info = os.stat(f"{base}/{name}")  # (join() costs more)
        except FileNotFoundError:
            if not sig:  # the first file is the record's own
                return None
            sig.append(None)
            continue
        except OSError:
            return None
        if name in trusted and not trusted_stat(info, me):
            return None
        sig.append([info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns])
    return sig


def _scan(directory: str, marker: str) -> tuple[bool, list[str]] | None:
    """Whether ``directory`` holds ``marker`` (not a directory), and its subdirectories that
    are not hidden (symbolic links neither followed nor classified: that would cost a
    ``stat`` per ``cert.pem`` link); None when it cannot be read."""
    try:
        with os.scandir(directory) as entries:
            subdirs, found = [], False
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("."):
                        subdirs.append(entry.name)
                elif entry.name == marker:
                    found = True
    except OSError:
        return None
    return found, sorted(subdirs)


def content_digest(directory: str, files: Sequence[str]) -> str | None:
    """SHA-256 over the contents of ``files`` (each length-prefixed; a missing one counts
    as absent), or None when one cannot be read."""
    digest = hashlib.sha256()
    for name in files:
        try:
            with open(os.path.join(directory, name), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            digest.update(b"-")
            continue
        except OSError:
            return None
        digest.update(b"%d:" % len(data))
        digest.update(data)
    return digest.hexdigest()


def _racy(sig: Signature, *, entry_time: int | None = None) -> bool:
    """Whether a file of ``sig`` changed less than :data:`RACY_SECONDS` before
    ``entry_time`` (nanoseconds; default now)."""
    limit = (entry_time or time.time_ns()) - int(RACY_SECONDS * 1e9)
    return any(f is not None and f[4] > limit for f in sig)


def _holds(entry: Mapping[str, object], stamp: float) -> bool:
    """Whether ``stamp`` (seconds) is in the span of ``entry``."""
    start, end = entry.get("from"), entry.get("until")
    if not isinstance(start, (int, float)) or not (end is None or isinstance(end, (int, float))):
        return False
    return start <= stamp and (end is None or stamp < end)


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """What :meth:`InventoryIndex.probe` found for one directory: the stored ``record``
    (None: read the files), the files' ``signature`` (None: not to be stored, e.g. a file
    fails the trust rule) and, for files that just changed, their ``digest``."""

    directory: str
    signature: Signature | None
    record: object = None
    digest: str | None = None


def _dir_key(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns]


class InventoryIndex:
    """The index of the tree at ``root`` (see the module's description).

    A record is made of ``files`` of a directory (the first one marks a directory that
    has a record); ``trusted`` are those that must pass the trust rule before a stored
    record is used. :meth:`load` reads the index (or starts empty); :meth:`walk` finds
    the directories; :meth:`probe` and :meth:`store` look up and replace one directory's
    record; :meth:`save` writes the index back when anything changed, without the
    directories a walk did not meet. ``context`` is what else the records depend on (who
    reads, the default account key): an index written in another context is not used.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        context: Mapping[str, object],
        files: Sequence[str],
        trusted: Sequence[str] = (),
    ) -> None:
        if not files:
            raise ValueError("an index needs the files a record is made of")
        self.root = Path(os.path.abspath(root))
        self.path = self.root / INDEX_FILE
        self.context = dict(context)
        self.files, self.trusted = tuple(files), tuple(trusted)
        self.marker = files[0]
        self._dirs: dict[str, dict[str, object]] = {}
        self._records: dict[str, dict[str, object]] = {}
        self._seen_dirs: set[str] = set()
        self._seen_records: set[str] = set()
        self._changed = False

    def __repr__(self) -> str:
        return f"InventoryIndex({str(self.root)!r}, {len(self._records)} records)"

    def __len__(self) -> int:
        return len(self._records)

    @classmethod
    def load(
        cls,
        root: str | os.PathLike[str],
        *,
        context: Mapping[str, object],
        files: Sequence[str],
        trusted: Sequence[str] = (),
    ) -> InventoryIndex:
        """The index of ``root``, empty when there is none to trust (see the module)."""
        index = cls(root, context=context, files=files, trusted=trusted)
        try:
            index._read()
        except (OSError, ValueError, AcmeliteError) as exc:
            log.debug("not using %s: %s", index.path, exc)
            index._dirs, index._records = {}, {}
            index._changed = True  # replace it
        return index

    def _read(self) -> None:
        me = os.geteuid()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return
        with os.fdopen(fd, "rb") as handle:
            if not (trusted_stat(os.fstat(fd), me) and trusted_stat(os.stat(self.root), me)):
                raise ValueError("not owned by this user or root, or writable by others")
            data = json.loads(handle.read())
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            raise ValueError("not an index of this version")
        if data.get("context") != self.context:
            raise ValueError("written in another context")
        dirs, records = data.get("dirs"), data.get("records")
        if not isinstance(dirs, dict) or not isinstance(records, dict):
            raise ValueError("no directories or records")
        self._dirs = {k: v for k, v in dirs.items() if isinstance(v, dict)}
        self._records = {k: v for k, v in records.items() if isinstance(v, dict)}

    # -- the walk ---------------------------------------------------------------------------

    def walk(self) -> Iterator[tuple[str, os.stat_result]]:
        """The directories at and below the root that hold the marker file, top-down in
        name order (as ``os.walk`` with sorted, non-hidden subdirectories), each with its
        ``stat``; a directory that cannot be read is skipped. A directory unchanged since
        the index was written is not read again."""
        stack = [str(self.root)]
        while stack:
            here = stack.pop()
            try:
                info = os.stat(here)
            except OSError:
                continue
            self._seen_dirs.add(here)
            listing = self._listing(here, info)
            if listing is None:
                listing = _scan(here, self.marker)
                if listing is None:
                    continue
                self._put_listing(here, info, listing)
            found, subdirs = listing
            if found:
                yield here, info
            base = here.rstrip("/")
            stack.extend(f"{base}/{name}" for name in reversed(subdirs))

    def _listing(self, here: str, info: os.stat_result) -> tuple[bool, list[str]] | None:
        entry = self._dirs.get(here)
        if entry is None or entry.get("stat") != _dir_key(info):
            return None
        found, subdirs = entry.get("found"), entry.get("subdirs")
        if not isinstance(found, bool) or not isinstance(subdirs, list):
            return None
        if not all(isinstance(s, str) and s and "/" not in s and s[0] != "." for s in subdirs):
            return None
        return found, subdirs

    def _put_listing(
        self, here: str, info: os.stat_result, listing: tuple[bool, list[str]]
    ) -> None:
        # The root's listing is not kept: writing the index changes it every time.
        if here == str(self.root) or info.st_ctime_ns > time.time_ns() - RACY_SECONDS * 1e9:
            self._dirs.pop(here, None)
            return
        self._dirs[here] = {"stat": _dir_key(info), "found": listing[0], "subdirs": listing[1]}
        self._changed = True

    # -- records ----------------------------------------------------------------------------

    def probe(self, directory: str, info: os.stat_result, *, now: dt.datetime) -> Probe:
        """Look ``directory`` (whose ``stat`` is ``info``) up: :attr:`Probe.record` is its
        stored record if its files are unchanged and ``now`` is in the record's span.
        Otherwise, hand the probe to :meth:`store` with the record read from the files.

        A record stored while a file was younger than :data:`RACY_SECONDS` carries the
        SHA-256 of the files, and is used only when they still have it (read here, before
        the caller reads them: a change in between shows at the next probe)."""
        self._seen_records.add(directory)
        sig = signature(directory, self.files, trusted=self.trusted, directory_stat=info)
        if sig is None:
            return Probe(directory=directory, signature=None)
        entry = self._records.get(directory)
        digest = None
        if entry is not None and entry.get("signature") == sig and _holds(entry, now.timestamp()):
            stored = entry.get("digest")
            if stored is None:
                return Probe(directory=directory, signature=sig, record=entry.get("record"))
            digest = content_digest(directory, self.files)
            if digest == stored:
                if not _racy(sig, entry_time=time.time_ns()):  # old enough now: no digest
                    entry["digest"] = None
                    self._changed = True
                return Probe(directory=directory, signature=sig, record=entry.get("record"))
        if digest is None and _racy(sig, entry_time=time.time_ns()):
            digest = content_digest(directory, self.files)
        return Probe(directory=directory, signature=sig, digest=digest)

    def store(
        self, probe: Probe, record: object, *, since: dt.datetime, until: dt.datetime | None
    ) -> None:
        """Keep ``record`` (JSON) for the directory of ``probe``: true from ``since`` until
        ``until`` (None: as long as the files stay the same)."""
        if probe.signature is None or (probe.digest is None and _racy(probe.signature)):
            if self._records.pop(probe.directory, None) is not None:
                self._changed = True
            return
        self._records[probe.directory] = {
            "signature": probe.signature,
            "digest": probe.digest,
            "from": since.timestamp(),
            "until": None if until is None else until.timestamp(),
            "record": record,
        }
        self._changed = True

    def save(self) -> bool:
        """Write the index if anything changed, keeping only the directories seen since it
        was loaded; False when it could not be written (logged at debug level)."""
        for table, seen in ((self._dirs, self._seen_dirs), (self._records, self._seen_records)):
            for gone in [d for d in table if d not in seen]:
                del table[gone]
                self._changed = True
        if not self._changed:
            return True
        body = {"version": INDEX_VERSION, "context": self.context, "dirs": self._dirs,
                "records": self._records}  # fmt: skip
        data = json.dumps(body, separators=(",", ":")).encode() + b"\n"
        try:
            atomic_write(self.path, data, mode=0o600)
        except (OSError, AcmeliteError) as exc:
            log.debug("cannot write %s: %s", self.path, exc)
            return False
        self._changed = False
        return True
