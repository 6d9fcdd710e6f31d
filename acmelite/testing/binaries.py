"""Where the Pebble executables are: looked up in one fixed order, standard library only.

Lookup order (:func:`find_pebble`):

1. the ``pebble_bin`` argument, then ``$ACMELITE_PEBBLE_BIN`` (the path of ``pebble``;
   ``pebble-challtestsrv`` is expected beside it, else on ``PATH``);
2. the per-user cache that ``python -m acmelite.testing install-pebble`` fills:
   ``$XDG_CACHE_HOME/acmelite/pebble`` (``~/.cache/acmelite/pebble``), see
   :func:`default_pebble_dir`;
3. ``PATH`` (a distribution's ``pebble`` package, or one you built).

This module imports nothing but the standard library, so the pytest plugin can name what is
missing without loading requests or cryptography.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "INSTALL_COMMAND",
    "PebbleBinaries",
    "PebbleError",
    "PebbleNotFound",
    "default_pebble_dir",
    "find_pebble",
]

INSTALL_COMMAND = "python -m acmelite.testing install-pebble"
"""The command that installs Pebble into the per-user cache (:func:`default_pebble_dir`)."""

_INSTALL_HINT = (
    f"install it with `{INSTALL_COMMAND}`, or set ACMELITE_PEBBLE_BIN=/path/to/pebble"
    " (or run one with pebble-compose.yml and set ACMELITE_TEST_PEBBLE_URL)"
)
BIN_SUBDIR = Path("usr", "bin")
"""Where the executables are below an install directory (the layout of the Debian package)."""


class PebbleError(RuntimeError):
    """Base for the Pebble harness's own failures."""


class PebbleNotFound(PebbleError):
    """No Pebble executables were found; the message says where they were looked for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PebbleBinaries:
    """Where the executables are and which Pebble release they are."""

    pebble: Path
    challtestsrv: Path | None
    version: str


def default_pebble_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user install directory: ``$XDG_CACHE_HOME/acmelite/pebble``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache`` (XDG Base Directory Specification); a relative
    value is ignored, as the specification asks.
    """
    env = os.environ if environ is None else environ
    cache = env.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return base / "acmelite" / "pebble"


def install_hint() -> str:
    """What to do when Pebble is missing, for error messages and pytest skip reasons."""
    return _INSTALL_HINT


def find_pebble(
    pebble_bin: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> PebbleBinaries:
    """Locate ``pebble`` and ``pebble-challtestsrv``; raise :class:`PebbleNotFound` if absent.

    The order is the module's: ``pebble_bin``, ``$ACMELITE_PEBBLE_BIN``, the per-user cache,
    ``PATH``. An explicit path that is not an executable is an error, not a reason to look on.
    """
    env = os.environ if environ is None else environ
    source, explicit = "pebble_bin", pebble_bin
    if explicit is None:
        source, explicit = "ACMELITE_PEBBLE_BIN", env.get("ACMELITE_PEBBLE_BIN")
    if explicit:
        pebble = Path(explicit)
        if not _is_executable(pebble):
            raise PebbleNotFound(f"Pebble not found at {pebble} ({source}); {_INSTALL_HINT}")
        return _binaries(pebble.resolve(), env)
    cached = default_pebble_dir(env) / BIN_SUBDIR / "pebble"
    if _is_executable(cached):
        return _binaries(cached.resolve(), env)
    on_path = shutil.which("pebble", path=env.get("PATH", os.defpath))
    if on_path:
        return _binaries(Path(on_path).resolve(), env)
    raise PebbleNotFound(
        f"Pebble not found (ACMELITE_PEBBLE_BIN is unset, nothing in {cached.parent}, "
        f"no pebble on PATH); {_INSTALL_HINT}"
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _binaries(pebble: Path, env: Mapping[str, str]) -> PebbleBinaries:
    beside = pebble.parent / "pebble-challtestsrv"
    challtestsrv = beside if _is_executable(beside) else None
    if challtestsrv is None:
        found = shutil.which("pebble-challtestsrv", path=env.get("PATH", os.defpath))
        challtestsrv = Path(found) if found else None
    return PebbleBinaries(pebble=pebble, challtestsrv=challtestsrv, version=pebble_version(pebble))


def pebble_version(pebble: Path) -> str:
    """The release: the installer's VERSION file, else ``-version`` unless it says "dev"."""
    version_file = pebble.parent.parent.parent / "VERSION"
    if version_file.is_file():
        return version_file.read_text(encoding="utf-8").strip() or "unknown"
    return _reported_version(pebble)


@functools.lru_cache(maxsize=8)
def _reported_version(pebble: Path) -> str:
    try:
        out = subprocess.run(
            [str(pebble), "-version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    version = out.rpartition(":")[2].strip()
    if version and version != "dev":
        return version
    if pebble == Path("/usr/bin/pebble") and shutil.which("dpkg-query"):
        query = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "pebble"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if query.returncode == 0 and query.stdout.strip():
            return query.stdout.strip()
    return "unknown"
