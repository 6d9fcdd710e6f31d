"""Install Pebble and pebble-challtestsrv from Debian's archive, without root.

``python -m acmelite.testing install-pebble [--dir DIR] [--force]`` calls
:func:`install_pebble`; the default directory is the per-user cache that
:func:`acmelite.testing.binaries.find_pebble` looks in.

Theory of operation: ``apt-get`` runs with a private configuration — a sources list that names
one suite, its own index and cache, no status file, no lock, and no drop to the ``_apt`` user —
all inside a fresh work directory of mode 0700 beside the destination, so the system's apt setup
is neither read nor changed and no other local user can plant or swap a file in it.
``apt-get download --print-uris pebble`` names the file apt is going to fetch and its SHA-256
(taken from the index, whose signature apt checked against Debian's keyring);
``apt-get download pebble`` fetches it; exactly that file, with that size and hash, is unpacked
with ``dpkg-deb``. The new tree replaces the old one by renames, so a half-unpacked install never
looks installed, and a lock file keeps two concurrent installs from unpacking over each other.
The newest package comes from ``unstable``; the next suite is the fallback.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from acmelite.testing.binaries import (
    BIN_SUBDIR,
    PebbleBinaries,
    PebbleError,
    default_pebble_dir,
    find_pebble,
)

__all__ = [
    "DEFAULT_MIRROR",
    "DEFAULT_SUITES",
    "KEYRING",
    "InstallError",
    "install_pebble",
    "is_installed",
]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITES = ("unstable", "trixie")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
EXECUTABLES = ("pebble", "pebble-challtestsrv")
_DEB_NAME = re.compile(r"pebble_[A-Za-z0-9.+~%-]+_[a-z0-9]+\.deb")
_APT_TIMEOUT = 300


class InstallError(PebbleError):
    """The installation failed; the message says at which step and why."""


def is_installed(dest: Path) -> bool:
    """Whether ``dest`` holds a complete install (both executables and a VERSION file)."""
    version = dest / "VERSION"
    return (
        version.is_file()
        and version.stat().st_size > 0
        and all(os.access(dest / BIN_SUBDIR / name, os.X_OK) for name in EXECUTABLES)
    )


def install_pebble(
    dest: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    mirror: str = DEFAULT_MIRROR,
    suites: Sequence[str] = DEFAULT_SUITES,
    progress: Callable[[str], None] | None = None,
) -> PebbleBinaries:
    """Install into ``dest`` (default: the per-user cache) unless it is there already.

    Returns what :func:`find_pebble` finds at ``dest``. Raises :class:`InstallError`.
    """
    target = Path(dest) if dest is not None else default_pebble_dir()
    target = target.expanduser().absolute()
    report = progress or (lambda _message: None)
    if not suites:
        raise ValueError("suites must name at least one Debian suite")
    if not force and is_installed(target):
        return _found(target)
    _check_tools()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and is_installed(target):  # another process finished meanwhile
            return _found(target)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.install-", dir=target.parent))
        try:
            os.chmod(work, 0o700)
            suite, deb = _download(work, mirror, suites, report)
            root = _unpack(work, deb, suite)
            _swap(root, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report(f"install-pebble: from Debian {suite}: {deb.name}")
    return _found(target)


def _found(target: Path) -> PebbleBinaries:
    return find_pebble(target / BIN_SUBDIR / "pebble")


def _check_tools() -> None:
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise InstallError(
                f"'{tool}' not found: installing Pebble needs a Debian-like system; elsewhere "
                "install pebble and pebble-challtestsrv yourself and set "
                "ACMELITE_PEBBLE_BIN=/path/to/pebble, or run a Pebble with pebble-compose.yml"
            )
    if not os.access(KEYRING, os.R_OK):
        raise InstallError(f"{KEYRING} missing; install the debian-archive-keyring package")


def _download(
    work: Path, mirror: str, suites: Sequence[str], report: Callable[[str], None]
) -> tuple[str, Path]:
    """The first suite that yields the package: (suite, path of the verified .deb)."""
    failures = []
    for suite in suites:
        report(f"install-pebble: fetching the package index of Debian {suite} ...")
        try:
            return suite, _fetch(work / suite, mirror, suite)
        except InstallError as exc:
            report(f"install-pebble: could not get pebble from Debian {suite}: {exc}")
            failures.append(f"{suite}: {exc}")
    raise InstallError("failed for every suite; " + "; ".join(failures))


def _fetch(state: Path, mirror: str, suite: str) -> Path:
    for sub in ("", "lists", "lists/partial", "cache", "cache/archives", "cache/archives/partial"):
        (state / sub).mkdir(mode=0o700)
    (state / "deb").mkdir(mode=0o700)
    sources = state / "sources.list"
    sources.write_text(f"deb [signed-by={KEYRING}] {mirror} {suite} main\n", encoding="utf-8")
    options = [
        f"-oDir::Etc::SourceList={sources}",
        "-oDir::Etc::SourceParts=/dev/null",
        "-oDir::Etc::Preferences=/dev/null",
        "-oDir::Etc::PreferencesParts=/dev/null",
        f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::Cache={state / 'cache'}",
        "-oDir::State::status=/dev/null",
        "-oDebug::NoLocking=1",
        "-oAcquire::Languages=none",
        # apt, run as root, would fetch as the _apt user, who cannot enter a 0700 directory.
        f"-oAPT::Sandbox::User={pwd.getpwuid(os.getuid()).pw_name}",
        "-q",
    ]
    deb_dir = state / "deb"
    _apt([*options, "update"], cwd=state)
    listing = _apt([*options, "download", "--print-uris", "pebble"], cwd=deb_dir)
    name, size, sha256 = _parse_print_uris(listing)
    _apt([*options, "download", "pebble"], cwd=deb_dir)
    deb = deb_dir / name
    try:
        data = deb.read_bytes()
    except OSError as exc:
        raise InstallError(f"apt-get reported {name} but did not write it ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != size or digest != sha256:
        raise InstallError(
            f"{name} is not the file apt reported: {len(data)} bytes, sha256 {digest} "
            f"instead of {size} bytes, sha256 {sha256}"
        )
    return deb


def _parse_print_uris(output: str) -> tuple[str, int, str]:
    """``'URL' FILE SIZE SHA256:HEX`` from ``apt-get download --print-uris``: (file, size, hex)."""
    for line in output.splitlines():
        if not line.startswith("'"):
            continue
        try:
            _url, name, size, checksum = shlex.split(line)
        except ValueError:
            continue
        algorithm, _, digest = checksum.partition(":")
        if (
            _DEB_NAME.fullmatch(name)
            and size.isdigit()
            and algorithm.upper() == "SHA256"
            and re.fullmatch(r"[0-9a-f]{64}", digest)
        ):
            return name, int(size), digest
    raise InstallError(
        f"apt-get --print-uris named no pebble .deb with a SHA256: {output[-300:]!r}"
    )


def _apt(args: list[str], *, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "APT_CONFIG"}
    env["LC_ALL"] = "C"
    try:
        proc = subprocess.run(
            ["apt-get", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_APT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"apt-get {args[-1]} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise InstallError(f"apt-get {args[-1]} exited with {proc.returncode}: {tail}")
    return proc.stdout


def _unpack(work: Path, deb: Path, suite: str) -> Path:
    root = work / "root"
    version = _dpkg_deb(["-f", str(deb), "Version"]).strip()
    _dpkg_deb(["-x", str(deb), str(root)])
    for name in EXECUTABLES:
        if not os.access(root / BIN_SUBDIR / name, os.X_OK):
            raise InstallError(f"{deb.name} has no executable {BIN_SUBDIR / name}")
    (root / "VERSION").write_text(f"{version or 'unknown'}\n", encoding="utf-8")
    (root / "SUITE").write_text(f"{suite}\n", encoding="utf-8")
    os.chmod(root, 0o755)  # noqa: S103 - executables for everyone, writable by us only
    return root


def _dpkg_deb(args: list[str]) -> str:
    proc = subprocess.run(
        ["dpkg-deb", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise InstallError(f"dpkg-deb {args[0]} failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def _swap(root: Path, target: Path) -> None:
    """Put ``root`` at ``target`` by renames; an old install is removed only afterwards."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    root.rename(target)
    shutil.rmtree(old, ignore_errors=True)
