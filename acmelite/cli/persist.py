"""``acmelite persist``: the dns-persist-01 record of this account at this CA — print it,
publish it through any dns-01 solver, check it at the authoritative nameservers.

``record`` prints, per name, ``_validation-persist.<name>. IN TXT "<issuer>; accounturi=<URL>
[; policy=wildcard][; persistUntil=<UNIX time>]"``: the account is that of
``--account-key`` at ``--server``, the issuer domain name the first of the CA's
``caaIdentities`` (``--issuer`` picks another). ``publish`` puts those records in the DNS
with ``--dns NAME`` (and waits until every nameserver serves them); it never removes them.
``check`` says, per name, whether the record lets this account validate it, and what is
wrong otherwise (exit status 1). See docs/challenges.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from typing import TYPE_CHECKING

from .challenge_options import add_dns_arguments, dns_config
from .common import add_account_arguments, add_output_arguments, open_client

if TYPE_CHECKING:
    from ..client import AcmeClient
    from ..persist import PersistRecord

__all__ = ["add_parser", "run"]

log = logging.getLogger("acmelite.cli")

_ACTIONS = {
    "record": "print the dns-persist-01 record of each name for this account and CA",
    "publish": "publish those records through a dns-01 solver (--dns NAME)",
    "check": "check the records at the authoritative nameservers; say what is wrong",
}


_ACTION_EXAMPLES = {
    "record": "acmelite persist record -d api.example.com -d '*.example.com' --for 365",
    "publish": "acmelite persist publish -d api.example.com --for 365 --dns rfc2136 \\\n"
    "      --dns-server ns1.example.com --tsig-secret-file acme.key",
    "check": "acmelite persist check -d api.example.com --json",
}

_EXAMPLES = (
    "examples:\n"
    + "\n".join(f"  {e}" for e in _ACTION_EXAMPLES.values())
    + """
  acmelite issue -d api.example.com --challenge dns-persist-01 --out /etc/acmelite/api"""
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "persist",
        help="print, publish or check the persistent dns-persist-01 records",
        description="The persistent validation records of draft-ietf-acme-dns-persist:"
        " _validation-persist.NAME TXT, bound to this account and CA (docs/challenges.md).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name, text in _ACTIONS.items():
        sub = actions.add_parser(
            name, help=text, description=text[0].upper() + text[1:] + ".",
            epilog=f"example:\n  {_ACTION_EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        sub.add_argument(
            "-d",
            "--domain",
            dest="names",
            action="append",
            default=[],
            metavar="NAME",
            help="a DNS name; *.NAME (or --wildcard) asks for policy=wildcard; repeatable",
        )
        sub.add_argument(
            "--wildcard",
            action="store_true",
            help="policy=wildcard for every name (also allows its wildcard and subdomains)",
        )
        sub.add_argument(
            "--issuer",
            metavar="DOMAIN",
            help="the issuer domain name to write or expect (default: the CA's first"
            " caaIdentities entry; when checking, any of them)",
        )
        if name != "check":
            until = sub.add_mutually_exclusive_group()
            until.add_argument(
                "--until",
                metavar="DATE",
                help="persistUntil: the record is not used for validations after DATE"
                " (YYYY-MM-DD or an ISO 8601 time, UTC unless it says otherwise)",
            )
            until.add_argument(
                "--for", dest="days", type=int, metavar="DAYS", help="persistUntil: DAYS from now"
            )
        else:
            _add_check_arguments(sub)
        if name == "publish":
            add_dns_arguments(sub)
        add_account_arguments(sub)
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        add_output_arguments(sub)
        sub.set_defaults(func=run, parser=sub)


def _add_check_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("where to look")
    g.add_argument(
        "--resolver",
        metavar="HOST[:PORT]",
        help="ask this resolver instead of the zones' authoritative nameservers",
    )
    g.add_argument(
        "--lookup-server",
        metavar="HOST[:PORT]",
        help="find the zones' nameservers through this server (default: the system resolver;"
        " env ACMELITE_DNS_LOOKUP_SERVER)",
    )
    g.add_argument(
        "--nameserver-port",
        metavar="PORT",
        help="the port the nameservers are asked on (default 53; env ACMELITE_DNS_NAMESERVER_PORT)",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInput
    from ..names import parse_identifiers

    if not args.names:
        raise InvalidInput("no names: give at least one -d NAME")
    identifiers = parse_identifiers(args.names)
    if any(i.type == "ip" for i in identifiers):
        raise InvalidInput("dns-persist-01 validates DNS names only, not IP addresses")
    names = [("*." if args.wildcard and not i.value.startswith("*.") else "") + i.value
             for i in identifiers]  # fmt: skip
    if args.action == "check":
        return _check(args, names)
    until = _until(args)
    solver = None
    if args.action == "publish":
        if not args.dns:
            args.parser.error("persist publish needs --dns NAME (rfc2136, hook or a plugin)")
        config, runtime = dns_config(args, args.parser)
        from ..solvers.registry import solver_for

        solver = solver_for(config, environ={**os.environ, **runtime})
    client = open_client(args)
    try:
        records = _records(args, client, names, until)
    finally:
        client.close()
    if solver is not None:
        from ..persist import persist_tasks

        solver.perform(persist_tasks(records))
        log.info("published %d dns-persist-01 record(s)", len(records))
    _print_records(args, records)
    return 0


def _until(args: argparse.Namespace) -> dt.datetime | None:
    from ..errors import InvalidInput

    now = dt.datetime.now(dt.timezone.utc)
    if args.days is not None:
        if args.days <= 0:
            raise InvalidInput(f"--for {args.days}: the number of days must be > 0")
        return now + dt.timedelta(days=args.days)
    if args.until is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(args.until)
    except ValueError:
        raise InvalidInput(f"--until {args.until!r} is not a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    if moment <= now:
        raise InvalidInput(f"--until {args.until} is not in the future")
    return moment


def _records(
    args: argparse.Namespace, client: AcmeClient, names: list[str], until: dt.datetime | None
) -> dict[str, PersistRecord]:
    from ..persist import build_records, choose_issuer

    issuer = choose_issuer(client.directory.caa_identities, args.issuer)
    return build_records(names, account_url=client.account_url, issuer=issuer, until=until)


def _print_records(args: argparse.Namespace, records: dict[str, PersistRecord]) -> None:
    from ..persist import record_name

    if args.json:
        listing = [
            {
                "name": name,
                "record": record_name(name),
                "value": record.to_text(),
                "strings": record.strings(),
                "persist_until": record.expires.isoformat() if record.expires else None,
                "zone_line": record.zone_line(name),
            }
            for name, record in records.items()
        ]
        print(json.dumps(listing, indent=2))
        return
    for name, record in records.items():
        print(record.zone_line(name))


def _check(args: argparse.Namespace, names: list[str]) -> int:
    from ..solvers.persist import PersistSolver
    from ..solvers.registry import ChallengeConfig, solver_for

    options = {
        "issuer": args.issuer,
        "resolver": args.resolver,
        "lookup-server": args.lookup_server,
        "nameserver-port": args.nameserver_port,
    }
    config = ChallengeConfig(
        type="dns-persist-01",
        solver="persist",
        options={k: v for k, v in options.items() if v},
    )
    solver = solver_for(config)
    if not isinstance(solver, PersistSolver):  # the built-in "persist" was replaced
        raise RuntimeError(f"the solver 'persist' is {type(solver).__name__}, not PersistSolver")
    client = open_client(args)
    try:
        reports = solver.check(names, client.account_url, client.directory.caa_identities)
    finally:
        client.close()
    for report in reports:
        for warning in report.warnings:
            log.warning("%s", warning)
    if args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        for report in reports:
            print(report.line(), file=sys.stdout)
    return 0 if all(r.ok for r in reports) else 1
