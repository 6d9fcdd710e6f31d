"""``python -m acmelite.testing install-pebble [--dir DIR] [--force]``.

Installs Pebble and pebble-challtestsrv from Debian's archive (see
:mod:`acmelite.testing.install`) into the per-user cache, where the ``acmelite`` pytest plugin
and :class:`~acmelite.testing.PebbleServer` find them. Environment: ``ACMELITE_DEBIAN_MIRROR``
(default http://deb.debian.org/debian), ``ACMELITE_PEBBLE_SUITES`` (default
"unstable trixie").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from acmelite.testing.binaries import PebbleError, default_pebble_dir
from acmelite.testing.install import DEFAULT_MIRROR, DEFAULT_SUITES, install_pebble


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m acmelite.testing",
        description="Test servers for ACME clients: install Pebble for acmelite.testing.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    install = commands.add_parser(
        "install-pebble",
        help="install pebble and pebble-challtestsrv from Debian's archive (no root needed)",
        description=(
            "Download Debian's pebble package with a private apt configuration and unpack "
            "it into DIR; a no-op when DIR already holds it."
        ),
    )
    install.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"install directory (default: {default_pebble_dir()}, from XDG_CACHE_HOME)",
    )
    install.add_argument("--force", action="store_true", help="reinstall even if installed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    suites = os.environ.get("ACMELITE_PEBBLE_SUITES", "").split() or list(DEFAULT_SUITES)
    mirror = os.environ.get("ACMELITE_DEBIAN_MIRROR") or DEFAULT_MIRROR
    try:
        binaries = install_pebble(
            args.dir,
            force=args.force,
            mirror=mirror,
            suites=suites,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except PebbleError as exc:
        print(f"install-pebble: {exc}", file=sys.stderr)
        return 1
    print(f"pebble {binaries.version} installed: {binaries.pebble}")
    print(f"pebble-challtestsrv: {binaries.challtestsrv}")
    if args.dir is not None and args.dir.absolute() != default_pebble_dir():
        print(f"outside the per-user cache: set ACMELITE_PEBBLE_BIN={binaries.pebble} to use it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
