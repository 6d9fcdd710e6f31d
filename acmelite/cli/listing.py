"""``acmelite list``: the inventory of certificate directories, from their files alone.

(The module is ``listing``: a submodule ``list`` would shadow the builtin in the package.)

One line (or, with ``--json``, one object) per directory: names, issuer, serial, validity,
the renewal window and the moment picked in it, last renewal, failures, next attempt and a
pending deploy hook (:func:`acmelite.inventory.inventory`). No request is sent and no lock
taken, so it is fast and safe beside a running ``renew``. ``--metrics-file`` writes the same
as Prometheus metrics (:mod:`acmelite.metrics`).

Exit status:
    0  every directory is readable (and, with --expiring-within, none expires that soon)
    1  a directory has no readable renewal.json, or with --expiring-within DAYS a
       certificate expires within DAYS days (only those are listed then: cron stays quiet
       until something needs a person)
    2  usage error
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import TYPE_CHECKING

from .common import add_output_arguments
from .renew import add_all_under, add_metrics_argument, check_metrics_file, check_roots

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    from ..inventory import CertificateRecord

__all__ = ["add_parser", "json_array", "render_line", "run"]

log = logging.getLogger("acmelite.cli")

_EXAMPLES = """examples:
  acmelite list --all-under /var/lib/acmelite/certs
  acmelite list --all-under /var/lib/acmelite/certs --expiring-within 14   # cron alert
  acmelite list --json /var/lib/acmelite/certs/web"""


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be 0 or more days, not {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "list",
        help="list certificate directories: expiry, renewal window, failures (no request)",
        description="Describe each certificate directory from its files alone: names,"
        " issuer, serial, validity, the renewal window and the moment picked in it, last"
        " renewal, failures and next attempt, a pending deploy hook. Exit status: 0 all"
        " well, 1 an unreadable directory or (with --expiring-within) a certificate that"
        " expires too soon.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dirs", nargs="*", type=str, metavar="DIR", help="certificate directories")
    add_all_under(p)
    p.add_argument("--json", action="store_true", help="one JSON object per directory (a list)")
    p.add_argument(
        "--expiring-within",
        type=_days,
        metavar="DAYS",
        help="list only the certificates that expire within DAYS days, and exit 1 if any"
        " does (an alert for cron)",
    )
    add_metrics_argument(p)
    add_output_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """parse -> :func:`~acmelite.inventory.survey` -> render (and the metrics file)."""
    from ..inventory import collector_paused

    with collector_paused():  # until the records are printed, not only while surveyed
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..inventory import survey
    from ..renewal import now_utc
    from .common import default_account_key
    from .output import EXIT_ERROR, EXIT_OK, UsageError

    if not args.dirs and not args.all_under:
        raise UsageError("nothing to list: give DIR ... or --all-under PATH")
    check_roots(args.all_under)
    check_metrics_file(args.metrics_file)
    now = now_utc()
    records = survey(
        args.dirs, args.all_under, now=now, default_account_key=str(default_account_key())
    )
    shown = records
    if args.expiring_within is not None:
        days = args.expiring_within
        shown = [r for r in records if r.status == "unreadable" or r.expires_within(days, now=now)]
    if args.json:
        print(json_array(r.to_json() for r in shown))
    elif shown:
        # one write, not one print per directory: a fleet's listing is 10,000 lines
        sys.stdout.write("".join(f"{render_line(rec, now=now)}\n" for rec in shown))
    if args.metrics_file is not None:
        from .. import metrics

        metrics.write(args.metrics_file, records)
    unreadable = sum(r.status == "unreadable" for r in records)
    if args.expiring_within is not None:
        expiring = len(shown) - unreadable
        if expiring:
            log.warning(
                "%d of %d certificate(s) expire within %g days",
                expiring,
                len(records),
                args.expiring_within,
            )
        if expiring or unreadable:
            return EXIT_ERROR
    return EXIT_ERROR if unreadable else EXIT_OK


def json_array(items: Iterable[object]) -> str:
    """A JSON array with one item per line: ``json``'s C encoder writes each (``indent=``
    would take its pure-Python one, three times slower over a fleet's 10,000 objects), and a
    line per directory suits ``grep`` as well as ``jq``."""
    body = ",\n".join(f"  {json.dumps(item)}" for item in items)
    return f"[\n{body}\n]" if body else "[]"


def printable(text: str) -> str:
    """``text`` with control characters escaped (a certificate's or a server's text)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def render_line(rec: CertificateRecord, *, now: dt.datetime) -> str:
    """``DIR: STATUS: names; expires ...; renew at ...`` and what else there is to know."""
    from ..renewal import when as _when

    if rec.status == "unreadable":
        return f"{rec.path}: unreadable: {printable(rec.error)}"
    parts = [", ".join(rec.names)]
    if rec.not_after is None:
        parts.append("no readable cert.pem")
    else:
        left = (rec.not_after - now).total_seconds() / 86400
        ago = f"in {left:.0f} days" if left >= 0 else f"{-left:.0f} days ago"
        parts.append(f"expires {_when(rec.not_after)} ({ago})")
        parts.append(f"issuer {printable(rec.issuer)}, serial {rec.serial}")
    if rec.renew_at is not None:
        source = "ARI window" if rec.window_source == "ari" else "lifetime window"
        window = ""
        if rec.window is not None:
            window = f"; {source} {_when(rec.window.start)} .. {_when(rec.window.end)}"
        parts.append(f"renew at {_when(rec.renew_at)}{window}")
    if rec.failures:
        parts.append(f"{rec.failures} failed attempt(s), last: {printable(rec.last_error)}")
    elif rec.last_error:
        parts.append(printable(rec.last_error))
    if rec.next_attempt is not None and rec.next_attempt > now:
        parts.append(f"next attempt {_when(rec.next_attempt)}")
    if rec.deploy_pending:
        parts.append("deploy hook pending")
    return f"{rec.path}: {rec.status}: " + "; ".join(parts)
