"""``acmelite renew``: renew the certificates that are due and leave the rest.

Each directory was written by ``acmelite issue --out DIR``; its ``renewal.json`` says how
to issue again and ``.renewal-state.json`` remembers the ARI window, the moment picked in
it and past failures (see :mod:`acmelite.renewal`). Safe to run from cron every hour: a
certificate that is not due costs at most one ARI request per ``Retry-After``, and one
that failed waits out its back-off without a single request.

Exit status:
    0  nothing renewed and nothing failed (not due, backing off, --dry-run)
    1  at least one certificate failed (its old files keep serving)
    2  usage error
    3  at least one certificate renewed, none failed
    4  with --verify: a renewed certificate is not what the endpoint serves (see --verify)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import DEFAULT_TIMEOUT
from ..text import printable_lines
from .common import add_output_arguments, seconds
from .verify_options import EXIT_NOT_SERVED, add_verify_arguments, verify_installed

if TYPE_CHECKING:
    from ..managed import RenewalResult

__all__ = ["EXIT_RENEWED", "add_parser", "run"]

log = logging.getLogger("acmelite.cli")

EXIT_RENEWED = 3

_EXAMPLES = """examples:
  acmelite renew /etc/acmelite/example.com
  acmelite renew --all-under /etc/acmelite --json   # every certificate below, from cron
  acmelite renew --dry-run --all-under /etc/acmelite   # what would happen, changing nothing"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "renew",
        help="renew the certificates that are due",
        description="Renew the certificates in the given output directories that are due:"
        " inside the CA's ARI window (RFC 9773), else when a third of the lifetime remains"
        " (half for certificates of 10 days or less). Exit status: 0 nothing renewed and"
        " nothing failed, 3 renewed at least one and none failed, 1 any failed.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "dirs",
        nargs="*",
        type=Path,
        metavar="DIR",
        help="output directories written by 'acmelite issue --out'",
    )
    p.add_argument(
        "--all-under",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="also every directory below PATH that holds a renewal.json",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="renew now, due or not, even while backing off after failures",
    )
    p.add_argument(
        "--reuse-key",
        action="store_true",
        help="keep the current private key instead of making a new one",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="decide and print, change nothing (no order, no file written)",
    )
    p.add_argument(
        "--refresh-ari",
        action="store_true",
        help="ask the CA for the renewal window now, ignoring the cached answer (e.g. after"
        " news of a mass revocation)",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on one certificate after this long (default {DEFAULT_TIMEOUT:.0f})",
    )
    p.add_argument(
        "--json", action="store_true", help="print each certificate's decision as JSON on stdout"
    )
    add_verify_arguments(p)
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """parse -> :class:`ManagedCertificate` per directory -> ``renew()`` -> render."""
    from ..errors import InvalidInput
    from .output import EXIT_ERROR, EXIT_OK, UsageError

    if not args.dirs and not args.all_under:
        raise UsageError("nothing to renew: give DIR ... or --all-under PATH")
    missing = [root for root in args.all_under if not root.is_dir()]
    if missing:
        raise InvalidInput(f"--all-under {missing[0]}: no such directory")
    dirs = _directories(args.dirs, args.all_under)
    if not dirs:
        roots = ", ".join(str(r) for r in args.all_under)
        if args.json:
            print(json.dumps({"ok": True, "certificates": []}, indent=2))
        else:
            print(f"no certificates under {roots} yet")
        return EXIT_OK
    results = [_renew_dir(d, root, args) for d, root in dirs.items()]
    # A renewal whose cleanup failed is renewed, with an error: the run says so (exit 1).
    failed = any(r.status == "failed" or r.error is not None for r in results)
    if args.json:
        listing = [r.to_json() for r in results]
        print(json.dumps({"ok": not failed, "certificates": listing}, indent=2))
    else:
        for result in results:
            print(printable_lines(_line(result)))
    verified = [verify_installed(args, r.path, r.names) for r in results if r.status == "renewed"]
    if failed:
        return EXIT_ERROR
    if any(verified):
        return EXIT_NOT_SERVED
    return EXIT_RENEWED if any(r.status == "renewed" for r in results) else EXIT_OK


def _directories(dirs: Sequence[Path], roots: Sequence[Path]) -> dict[Path, Path | None]:
    """Each directory to renew, with the ``--all-under`` root it was found below (None for
    a DIR named on the command line): everything up to that root must be trusted."""
    from ..config import CONFIG_FILE

    found: dict[Path, Path | None] = {Path(os.path.abspath(d)): None for d in dirs}
    for root in roots:
        top = Path(os.path.abspath(root))
        for here, subdirs, files in os.walk(top):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            if CONFIG_FILE in files:
                found.setdefault(Path(here), top)
    return found


def _renew_dir(path: Path, root: Path | None, args: argparse.Namespace) -> RenewalResult:
    from ..errors import AcmeliteError
    from ..managed import ManagedCertificate, RenewalResult
    from .common import default_account_key
    from .hints import message

    try:
        cert = ManagedCertificate.open(
            path, default_account_key=str(default_account_key()), tree_root=root
        )
    except AcmeliteError as exc:
        log.error("%s: %s", path, message(exc, args))
        return RenewalResult(path=path, status="failed", reason=str(exc), error=exc)
    return cert.renew(
        force=args.force, dry_run=args.dry_run, reuse_key=args.reuse_key, timeout=args.timeout,
        refresh_ari=args.refresh_ari,
    )  # fmt: skip


def _line(result: RenewalResult) -> str:
    text = f"{result.path}: {result.status}: {result.reason}"
    if result.next_check is not None and result.status != "renewed":
        text += f"; next check {result.next_check.strftime('%Y-%m-%d %H:%M UTC')}"
    return text
