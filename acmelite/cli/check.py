"""``acmelite check``: why a TLS endpoint's certificate fails for a name, and the fix.

Exit codes (scripts rely on them; when several problems are found, the first in this
order wins: name, validity, trust):

====  ==========================================================================
0     all good (a certificate inside ``--warn-days`` is flagged, but still 0)
2     usage error: a bad option, name, target, ``--cert`` file or CA bundle
10    name mismatch: no SAN covers the name
11    the certificate (or one in its chain) is expired or not yet valid
12    untrusted chain: self-signed, untrusted root, missing intermediate, invalid
13    unreachable, or the TLS handshake failed
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInput, NetworkError
from ..names import is_ip, normalize_name, was_converted
from ..text import printable, printable_lines
from .common import add_output_arguments

if TYPE_CHECKING:
    from ..diagnose import Report

__all__ = [
    "EXIT_EXPIRED",
    "EXIT_MISMATCH",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_UNTRUSTED",
    "EXIT_USAGE",
    "add_parser",
    "exit_code",
    "render",
    "run",
]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_MISMATCH = 10
EXIT_EXPIRED = 11
EXIT_UNTRUSTED = 12
EXIT_UNREACHABLE = 13

_EXIT_BY_PROBLEM = {
    "name-mismatch": EXIT_MISMATCH,
    "validity": EXIT_EXPIRED,
    "trust": EXIT_UNTRUSTED,
}
_PROBLEM_WORDS = {
    "name-mismatch": "name mismatch",
    "validity": "not within its validity period",
    "trust": "untrusted chain",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check",
        help="say why a TLS endpoint's certificate fails for a name",
        description="Connect to HOST[:PORT] (or read a PEM chain with --cert) and report the"
        " certificate's names, validity and chain, whether it covers --name by RFC 9525 rules,"
        " and the SANs and `acmelite issue` command that would fix it.",
        epilog="exit codes: 0 ok; 10 name mismatch; 11 expired or not yet valid; 12 untrusted\n"
        "chain; 13 unreachable or handshake failed; 2 usage. With several problems the first\n"
        "of 10, 11, 12 is used.\n\n"
        "examples:\n"
        "  acmelite check api-2-0-4.team-ns.svc.clusterset.local:8443\n"
        "  acmelite check 10.0.0.7:443 --name api.internal --ca-bundle internal-root.pem\n"
        "  kubectl get secret web-tls -o jsonpath='{.data.tls\\.crt}' | base64 -d |\n"
        "      acmelite check --cert - --name www.example.com",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="HOST[:PORT]",
        help="endpoint to connect to (port 443 by default; IPv6 as [::1]:443)",
    )
    p.add_argument(
        "--name",
        metavar="NAME",
        help="the name clients use (default: HOST); a DNS name or an IP address",
    )
    p.add_argument("--sni", metavar="NAME", help="TLS server name to send (default: --name)")
    p.add_argument(
        "--cert",
        metavar="FILE|-",
        help="check this PEM chain instead of connecting ('-' reads stdin)",
    )
    p.add_argument(
        "--ca-bundle",
        metavar="PATH",
        help="trust anchors for the chain check (default: the system bundle)",
    )
    p.add_argument(
        "--warn-days",
        type=_non_negative_int,
        default=14,
        metavar="N",
        help="flag a certificate that expires within N days (default 14)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="connect and handshake timeout (default 10)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_output_arguments(p)
    p.set_defaults(func=run)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def exit_code(report: Report) -> int:
    """The exit code for a report: the first problem in the order name, validity, trust."""
    problems = report.problems
    return _EXIT_BY_PROBLEM[problems[0]] if problems else EXIT_OK


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every `acmelite` command builds this parser, and these
    # pull in cryptography (see docs/performance.md, start-up).
    from ..diagnose import diagnose
    from ..tlsprobe import fetch_chain, load_pem_chain, split_host_port

    target: dict[str, object] = {}
    try:
        if (args.target is None) == (args.cert is None):
            return _usage("give HOST[:PORT] or --cert FILE|-, not both and not neither")
        if args.cert is not None:
            if not args.name:
                return _usage("--cert needs --name: the name clients use to reach the server")
            name = args.name
            target = {"cert": args.cert}
            chain = load_pem_chain(_read_cert(args.cert), source=_source(args.cert))
        else:
            host, port = split_host_port(args.target)
            name = args.name or host
            sni_text = args.sni if args.sni is not None else name
            sni = None if not sni_text or is_ip(sni_text) else normalize_name(sni_text)
            connect_host = host if is_ip(host) else normalize_name(host)
            target = {"host": connect_host, "port": port, "sni": sni}
            chain = fetch_chain(connect_host, port, sni=sni, timeout=args.timeout)
        report = diagnose(chain, name, ca_bundle=args.ca_bundle, warn_days=args.warn_days)
    except InvalidInput as exc:
        return _usage(str(exc))
    except NetworkError as exc:
        return _unreachable(args, target, exc)
    code = exit_code(report)
    if args.json:
        doc = {"ok": code == EXIT_OK, "target": target, **report.to_json(), "exit_code": code}
        print(json.dumps(doc, indent=2))
    elif not args.quiet:
        print(render(report, target, code))
    return code


def _read_cert(where: str) -> bytes:
    if where == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(where).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read --cert {where}: {exc.strerror or exc}") from exc


def _source(where: str) -> str:
    return "stdin" if where == "-" else where


def _usage(message: str) -> int:
    from .output import UsageError, fail

    return fail(UsageError(message), None, EXIT_USAGE)


def _unreachable(args: argparse.Namespace, target: dict[str, object], exc: NetworkError) -> int:
    from .hints import message
    from .output import error_json

    text = message(exc, args)
    print(f"acmelite: error: {printable_lines(text)}", file=sys.stderr)
    if args.json:
        doc = {**error_json(exc, message=text, exit_code=EXIT_UNREACHABLE), "target": target}
        print(json.dumps(doc, indent=2))
    return EXIT_UNREACHABLE


def render(report: Report, target: dict[str, object], code: int) -> str:
    """The human report: what was checked, the certificate, three verdicts, the fix."""
    check = report.name_check
    shown = check.name
    if was_converted(check.requested, check.name):
        shown = f"{check.requested} ({check.name})"
    if "cert" in target:
        where = "stdin" if target["cert"] == "-" else str(target["cert"])
        lines = [f"Checking {shown} against the certificate in {where}", ""]
    else:
        host, port, sni = target["host"], target["port"], target["sni"]
        at = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        lines = [f"Checking {shown} at {at} (SNI {sni or 'none'})", ""]
    leaf = report.leaf
    key = f"{leaf.key_type} {leaf.key_size}" + (f" ({leaf.key_detail})" if leaf.key_detail else "")
    if leaf.invalid:
        key = "(unreadable)"
    span = f"{_when(leaf.not_before)} to {_when(leaf.not_after)}"
    lines += [
        "Certificate",
        f"  subject   {leaf.subject}",
        f"  DNS SANs  {', '.join(leaf.dns_sans) or '(none)'}",
        f"  IP SANs   {', '.join(leaf.ip_sans) or '(none)'}",
        f"  issuer    {leaf.issuer}",
        f"  valid     {span}",
        f"  key       {key}",
        f"  serial    {leaf.serial}",
    ]
    for position, cert in enumerate(report.chain, start=1):
        label = "sent" if position == 1 else ""
        lines.append(f"  {label:<8}  {position}. {cert.subject}")
    lines.append("")
    if check.matched:
        lines.append(f"Name      ok    {check.matched_by} covers {check.name}")
    elif leaf.invalid:
        lines.append(f"Name      ?     {check.note}")
    else:
        lines.append(f"Name      FAIL  no SAN covers {check.name}")
        lines += [f"                why not: {m.reason}" for m in check.near_misses]
        if check.note:
            lines.append(f"                {check.note}")
        fixes = " or ".join(check.fixing_sans)
        if len(check.fixing_sans) > 1:
            fixes += " (a wildcard needs --challenge dns-01)"
        lines.append(f"                fixing SANs: {fixes}")
    validity = report.validity
    mark = "FAIL" if not validity.ok else "WARN" if validity.expiring_soon else "ok  "
    lines.append(f"Validity  {mark}  {validity.detail}")
    trust = report.chain_check
    if trust.ok:
        lines.append(f"Chain     ok    {trust.detail}")
    else:
        lines.append(f"Chain     FAIL  {trust.verdict.value}: {trust.detail}")
    if report.suggested_command:
        what = "plus the missing one" if not check.matched else "to replace this one"
        lines += [
            "",
            f"Fix: issue a certificate with the endpoint's current names {what}:",
            f"  {report.suggested_command}",
        ]
    words = ", ".join(_PROBLEM_WORDS[p] for p in report.problems) or "ok"
    lines += ["", f"Result: {words} (exit {code})"]
    # Every field came from the probed host (subject, SANs, issuer): one escaped line each.
    return "\n".join(printable(line) for line in lines)


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
