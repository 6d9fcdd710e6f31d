"""``acmelite renew``: renew the certificates that are due and leave the rest.

Each directory was written by ``acmelite issue --out DIR``; its ``renewal.json`` says how
to issue again and ``.renewal-state.json`` remembers the ARI window, the moment picked in
it and past failures (see :mod:`acmelite.renewal`). Safe to run from cron every hour: a
certificate that is not due costs at most one ARI request per ``Retry-After``, and one
that failed waits out its back-off without a single request. The directories are renewed
by one :class:`acmelite.fleet.Fleet` (``--concurrency`` at once, one client per CA account,
``--max-orders``, the CA's rate limits); ``--metrics-file`` writes the Prometheus file of
:mod:`acmelite.metrics` afterwards.

Exit status (the worst outcome of any directory decides):
    0  nothing renewed and nothing failed (not due, backing off, rate-limited, deferred,
       skipped, --dry-run)
    1  at least one certificate failed (its old files keep serving), or was due and not
       tried because its CA failed request after request (ca-unavailable)
    2  usage error
    3  at least one certificate renewed, none failed
    4  with --verify: a renewed certificate is not what the endpoint serves (see --verify)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT
from ..text import printable_lines
from .common import add_output_arguments, seconds
from .verify_options import EXIT_NOT_SERVED, add_verify_arguments, verify_installed

if TYPE_CHECKING:
    from ..managed import RenewalResult

__all__ = [
    "EXIT_RENEWED",
    "add_all_under",
    "add_fleet_arguments",
    "add_metrics_argument",
    "add_parser",
    "check_metrics_file",
    "directories",
    "run",
]

log = logging.getLogger("acmelite.cli")

EXIT_RENEWED = 3

_EXAMPLES = """examples:
  acmelite renew /etc/acmelite/example.com
  acmelite renew --all-under /etc/acmelite --json   # every certificate below, from cron
  acmelite renew --dry-run --all-under /etc/acmelite   # what would happen, changing nothing
  acmelite renew -q --all-under /var/lib/acmelite/certs --concurrency 8 --max-orders 90 \\
      --metrics-file /var/lib/acmelite/metrics/acmelite.prom   # a fleet, hourly"""


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
    add_all_under(p)
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
        metavar="SECONDS",
        help="give up on one certificate after this long (default: the timeout of its"
        f" renewal.json, {DEFAULT_TIMEOUT:.0f} unless issue was given another)",
    )
    p.add_argument(
        "--json", action="store_true", help="print each certificate's decision as JSON on stdout"
    )
    add_fleet_arguments(p)
    add_verify_arguments(p)
    add_output_arguments(p)
    p.set_defaults(func=run)


def add_all_under(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all-under",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="also every directory below PATH that holds a renewal.json (repeatable)",
    )


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def add_metrics_argument(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="write Prometheus metrics of every certificate (and of this run) to PATH,"
        " atomically, for node_exporter's textfile collector (name it *.prom)",
    )


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("many certificates in one run")
    g.add_argument(
        "--concurrency",
        type=_count(1),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"renew up to N certificates at once (default {DEFAULT_CONCURRENCY}); the"
        " certificates of one CA account share one connection",
    )
    g.add_argument(
        "--max-orders",
        type=_count(0),
        metavar="N",
        help="place at most N new orders in this run; the other due certificates wait for"
        " the next run (ARI-directed renewals and the soonest expiries go first)",
    )
    g.add_argument(
        "--random-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="sleep a random time up to SECONDS before the first request, so fleets whose"
        " timers fire together spread out (systemd: RandomizedDelaySec)",
    )
    add_metrics_argument(g)


def check_metrics_file(path: Path | None) -> None:
    """The metrics file must be writable where it is, before any request."""
    from ..errors import InvalidInput

    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InvalidInput(f"--metrics-file {path} is a directory; name a file such as"
                           f" {path / 'acmelite.prom'}")  # fmt: skip
    if not parent.is_dir():
        raise InvalidInput(f"--metrics-file {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"--metrics-file {path}: the directory {parent} is not writable")


def directories(dirs: Sequence[Path], roots: Sequence[Path]) -> list[Path]:
    """The certificate directories of ``dirs`` and below ``roots`` (may be none: a tree
    before its first certificate); a missing root is an error before any request."""
    from ..inventory import discover

    check_roots(roots)
    return discover(dirs, roots)


def check_roots(roots: Sequence[Path]) -> None:
    """A missing ``--all-under`` root is an error before any request."""
    from ..errors import InvalidInput

    for root in roots:
        if not root.is_dir():
            raise InvalidInput(f"--all-under {root}: no such directory")


def tree_roots(dirs: Sequence[Path], roots: Sequence[Path]) -> dict[Path, Path | None]:
    """For each directory, the ``--all-under`` root it was found below (None for a DIR named
    on the command line): every directory up to that root must be trusted (see
    :func:`acmelite.storage.check_trusted`)."""
    tops = [Path(os.path.abspath(r)) for r in roots]
    found: dict[Path, Path | None] = {}
    for path in dirs:
        found[path] = next((top for top in tops if top in path.parents or top == path), None)
    return found


def run(args: argparse.Namespace) -> int:
    """parse -> :class:`~acmelite.fleet.Fleet` over the directories -> ``renew()`` -> render."""
    from ..fleet import Fleet, summary
    from .common import default_account_key
    from .output import EXIT_ERROR, EXIT_OK, UsageError

    if not args.dirs and not args.all_under:
        raise UsageError("nothing to renew: give DIR ... or --all-under PATH")
    dirs = directories(args.dirs, args.all_under)
    check_metrics_file(args.metrics_file)
    if not dirs:
        roots = ", ".join(str(r) for r in args.all_under)
        if args.json:
            print(json.dumps({"ok": True, "certificates": []}, indent=2))
        else:
            print(f"no certificates under {roots} yet")
        return EXIT_OK
    fleet = Fleet(
        dirs,
        tree_roots=tree_roots(dirs, args.all_under),
        concurrency=args.concurrency,
        max_orders=args.max_orders,
        random_delay=args.random_delay,
        timeout=args.timeout,
        default_account_key=str(default_account_key()),
    )
    report = fleet.renew(
        force=args.force, dry_run=args.dry_run, reuse_key=args.reuse_key,
        refresh_ari=args.refresh_ari,
    )  # fmt: skip
    results = report.results
    if args.json:
        listing = [r.to_json() for r in results]
        print(json.dumps({"ok": not report.failed, "certificates": listing}, indent=2))
    else:
        for result in results:
            print(printable_lines(_line(result)))
    if len(results) > 1:
        log.info("%s (%d request(s))", summary(report), sum(report.requests.values()))
    if args.metrics_file is not None:
        from .. import metrics
        from ..inventory import survey

        records = survey(args.dirs, args.all_under, default_account_key=str(default_account_key()))
        metrics.write(args.metrics_file, records, report=report)
    verified = [verify_installed(args, r.path, r.names) for r in results if r.status == "renewed"]
    if report.failed:
        return EXIT_ERROR
    if any(verified):
        return EXIT_NOT_SERVED
    return EXIT_RENEWED if report.renewed else EXIT_OK


def _line(result: RenewalResult) -> str:
    text = f"{result.path}: {result.status}: {result.reason}"
    if result.next_check is not None and result.status != "renewed":
        text += f"; next check {result.next_check.strftime('%Y-%m-%d %H:%M UTC')}"
    return text
