"""Files on disk: atomic writes, private-key modes, and certificate output directories.

Every file is written to a temporary file in its own directory (created with its final
mode, so a key is 0600 from its first byte), fsync-ed, and renamed over the target.

An output directory switches all four files at once. Its layout::

    out/privkey.pem   -> .live/privkey.pem        (and cert, chain, fullchain)
    out/.live         -> .versions/<n>
    out/.versions/<n>/{privkey,cert,chain,fullchain}.pem

A new certificate goes into a new version directory; only when all of it is on disk
does one ``rename`` of the ``.live`` link make it current. A crash at any moment leaves
either the old set or the new set, never a key from one and a certificate from another.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .errors import AcmeliteError, DirectoryLocked, InvalidInput

__all__ = [
    "BUNDLE_FILES",
    "PRIVATE_DIR_MODE",
    "PUBLIC_DIR_MODE",
    "OutputLock",
    "atomic_write",
    "check_output_dir",
    "check_owner",
    "check_trusted",
    "ensure_dir",
    "ensure_private_dir",
    "trusted_stat",
    "write_output_dir",
]

#: The files of an output directory, with their modes.
BUNDLE_FILES: Mapping[str, int] = {
    "privkey.pem": 0o600,
    "cert.pem": 0o644,
    "chain.pem": 0o644,
    "fullchain.pem": 0o644,
}
_KEEP_VERSIONS = 3
#: Directories that hold keys (``--out``, the account key's directory, version directories).
PRIVATE_DIR_MODE = 0o700
#: Every other directory acmelite creates (missing parents, webroot challenge directories).
PUBLIC_DIR_MODE = 0o755


def ensure_private_dir(path: Path) -> list[Path]:
    """``path`` as a directory for keys: created 0700 (missing parents 0755), whatever the umask.

    An existing ``path`` must belong to the user running acmelite: keys are never written
    into (nor read from) a directory another user controls. Returns the directories
    created, outermost first.
    """
    return ensure_dir(path, mode=PRIVATE_DIR_MODE)


def ensure_dir(path: Path, *, mode: int = PUBLIC_DIR_MODE) -> list[Path]:
    """Create ``path`` with exactly ``mode`` and each missing parent with exactly 0755.

    ``mkdir(parents=True)`` gives the parents ``0777 & ~umask`` — 0777 under umask 000,
    which lets any local user swap a directory acmelite made; here every directory is
    created by its own ``mkdir`` and then set to its mode through a descriptor opened with
    ``O_NOFOLLOW``, so the mode is exact and never applied to a planted link. An existing
    ``path`` owned by another user is refused (:func:`check_owner`).
    """
    missing: list[Path] = []
    probe = Path(os.path.abspath(path))
    while not probe.exists() and not probe.is_symlink():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if not missing:
        if not path.is_dir():
            raise InvalidInput(f"{path} exists and is not a directory")
        check_owner(path)
        return []
    created: list[Path] = []
    for directory in reversed(missing):
        wanted = mode if directory == missing[0] else PUBLIC_DIR_MODE
        try:
            os.mkdir(directory, wanted)
        except FileExistsError:
            if not directory.is_dir():
                raise InvalidInput(f"{directory} exists and is not a directory") from None
            check_owner(directory)
            continue
        except OSError as exc:
            raise InvalidInput(f"cannot create directory {directory}: {exc.strerror}") from None
        _set_dir_mode(directory, wanted)
        created.append(directory)
    return created


def _set_dir_mode(directory: Path, mode: int) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InvalidInput(f"cannot open the new directory {directory}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def check_owner(path: Path) -> None:
    """Refuse a directory for keys that belongs to another user than the one running us."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InvalidInput(f"cannot inspect {path}: {exc.strerror}") from None
    if info.st_uid != os.geteuid():
        raise InvalidInput(
            f"{path} belongs to {describe_owner(info.st_uid)}, not to"
            f" {describe_owner(os.geteuid())} who runs acmelite: refusing to keep keys in a"
            " directory another user controls"
        )


def check_trusted(
    directory: str | os.PathLike[str],
    *,
    files: Sequence[str] = (),
    up_to: str | os.PathLike[str] | None = None,
) -> None:
    """Refuse configuration that another local user could have written.

    ``renewal.json`` is executable configuration — its hooks run as whoever runs acmelite,
    usually root — so it is used only when nobody else could have written it or swapped the
    directory it is in: the ``files`` of ``directory`` that exist, ``directory`` itself, and
    every directory above it up to ``up_to`` (the tree root of ``renew --all-under``,
    included) must be owned by the running user or root and not writable by group or
    others. Raises :class:`InvalidInput` (code ``untrusted-config``) naming the first path
    that is not, its owner and its mode.
    """
    here = Path(os.path.abspath(directory))
    paths = [here / name for name in files if os.path.lexists(here / name)]
    paths.append(here)
    if up_to is not None:
        top = Path(os.path.abspath(up_to))
        if top != here and top not in here.parents:
            raise ValueError(f"{here} is not below {top}")
        paths += [p for p in here.parents if p == top or top in p.parents]
    me = os.geteuid()
    for path in paths:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise InvalidInput(f"cannot inspect {path}: {exc.strerror}") from None
        if trusted_stat(info, me):
            continue
        mode = stat.S_IMODE(info.st_mode)
        why = "is writable by others" if info.st_uid in (me, 0) else "belongs to another user"
        raise InvalidInput(
            f"{path} {why} (owner {describe_owner(info.st_uid)}, mode {mode:04o}): refusing"
            f" the configuration in {here}, which runs commands as"
            f" {describe_owner(me)}; only files and directories of that user or root,"
            " writable by nobody else, are used",
            code="untrusted-config",
        )


def trusted_stat(info: os.stat_result, me: int) -> bool:
    """The rule of :func:`check_trusted` for one ``os.stat`` result: owned by ``me`` or
    root, and writable by neither group nor others."""
    return info.st_uid in (me, 0) and not info.st_mode & 0o022


def describe_owner(uid: int) -> str:
    """``nobody (uid 65534)``; ``uid 1234`` when the user has no name."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_output_dir(path: str | os.PathLike[str]) -> None:
    """Refuse, before anything is written, an output directory this process cannot use: a
    path that exists and is no directory, or a directory (or, for a new one, its nearest
    existing parent) that this user may not write. Raises :class:`InvalidInput`."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InvalidInput(f"{target} exists and is not a directory")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidInput(f"cannot create {target}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == target else f" (to create {target})"
        raise InvalidInput(f"{existing} is not writable by this user{where}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically; the file never exists with another mode."""
    target = Path(path)
    directory = target.parent
    fd, tmp = _create_temp(directory, target.name, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _create_temp(directory: Path, name: str, mode: int) -> tuple[int, str]:
    for _ in range(100):
        tmp = directory / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            # O_EXCL + the final mode: the file is born with its permissions (umask may
            # only tighten them), so a private key is never readable by others.
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), str(tmp)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InvalidInput(f"cannot write in {directory}: {exc.strerror}") from None
    raise AcmeliteError(f"cannot create a temporary file in {directory}")  # pragma: no cover


def write_output_dir(out: str | Path, files: Mapping[str, bytes]) -> Path:
    """Install ``files`` (names from :data:`BUNDLE_FILES`) in ``out`` as one new version.

    Returns the version directory. Earlier files stay untouched until the final rename.
    """
    root = Path(out)
    ensure_private_dir(root)
    versions = root / ".versions"
    if versions.is_symlink():
        raise InvalidInput(f"{versions} is a symbolic link; refusing to write keys through it")
    ensure_private_dir(versions)
    version = _new_version_dir(versions)
    try:
        for name, data in files.items():
            atomic_write(version / name, data, mode=BUNDLE_FILES.get(name, 0o644))
    except BaseException:
        # An error or a signal before the switch: no half-written version is left behind.
        for child in version.iterdir():
            with contextlib.suppress(OSError):
                child.unlink()
        with contextlib.suppress(OSError):
            version.rmdir()
        raise
    _fsync_dir(versions)
    _swap_link(root / ".live", os.path.join(".versions", version.name))
    for name in files:
        link = root / name
        target = os.path.join(".live", name)
        if not (link.is_symlink() and os.readlink(link) == target):
            _swap_link(link, target)
    _fsync_dir(root)
    _prune(versions, keep=version.name)
    return version


def _new_version_dir(versions: Path) -> Path:
    """``.versions/<seq>-<time>``: names sort in creation order, whatever the clock says."""
    seqs = [int(p.name.split("-", 1)[0]) for p in versions.iterdir() if p.name[:6].isdigit()]
    seq = max(seqs, default=0) + 1
    while True:
        version = versions / f"{seq:06d}-{time.strftime('%Y%m%dT%H%M%S')}"
        try:
            os.mkdir(version, PRIVATE_DIR_MODE)
        except FileExistsError:
            seq += 1
            continue
        _set_dir_mode(version, PRIVATE_DIR_MODE)
        return version


def _swap_link(link: Path, target: str) -> None:
    tmp = link.parent / f".{link.name}.{os.urandom(4).hex()}.lnk"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _prune(versions: Path, *, keep: str) -> None:
    entries = sorted(
        p for p in versions.iterdir() if p.name[:6].isdigit() and p.is_dir() and not p.is_symlink()
    )
    for old in entries[:-_KEEP_VERSIONS]:
        if old.name == keep:
            continue
        for child in old.iterdir():
            with contextlib.suppress(OSError):
                child.unlink()
        with contextlib.suppress(OSError):
            old.rmdir()


class OutputLock:
    """An exclusive lock on an output directory, so two runs never interleave their files."""

    def __init__(self, out: str | Path, *, wait: float = 0.0) -> None:
        self.path = Path(out) / ".lock"
        self.wait = wait
        self._fd: int | None = None
        self._made_dirs: list[Path] = []

    def __enter__(self) -> OutputLock:
        self._made_dirs = ensure_private_dir(self.path.parent)
        try:
            # O_NOFOLLOW: a planted .lock link must not make us create or open its target.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise AcmeliteError(f"cannot open the lock file {self.path}: {why}") from None
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    os.close(fd)
                    raise DirectoryLocked(
                        f"{self.path.parent} is locked by another acmelite run; try again when"
                        " it has finished",
                        path=str(self.path.parent),
                    ) from None
                time.sleep(0.1)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            if self._made_dirs and os.listdir(self.path.parent) == [self.path.name]:
                # Nothing was installed in a directory this run created: leave no trace.
                with contextlib.suppress(OSError):
                    self.path.unlink()
                    for made in reversed(self._made_dirs):
                        made.rmdir()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def locked(out: str | Path, *, wait: float = 0.0) -> Iterator[None]:
    """``with locked(out): ...`` — see :class:`OutputLock`."""
    with OutputLock(out, wait=wait):
        yield
