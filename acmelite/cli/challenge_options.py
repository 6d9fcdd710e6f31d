"""The challenge options of ``acmelite issue``: parsed into one ``ChallengeConfig``.

Any installed solver is named with ``--dns NAME``, ``--http-solver NAME`` or ``--tls-solver
NAME`` and given its options with ``--dns-option``/``--http-option``/``--tls-option
KEY=VALUE`` (``--persist-option`` for the dns-persist-01 check). The older flags
(``--dns-server``, ``--tsig-*``, ``--dns-hook``, ``--webroot``, ``--http-port``,
``--tls-port``, ...) are shorthands for the built-in solvers' options, listed once in
:data:`SHORTHANDS`. No solver is built here: :func:`acmelite.solvers.solver_for` does that,
for ``issue``, ``renew`` and the library.

Building the parser imports nothing heavy (``acmelite --help`` stays fast).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..constants import CHALLENGE_TYPES

if TYPE_CHECKING:
    from ..solvers.registry import ChallengeConfig, SolverInfo

__all__ = [
    "SHORTHANDS",
    "TSIG_SECRET_ENV",
    "add_challenge_arguments",
    "add_dns_arguments",
    "challenge_config",
    "dns_config",
]

#: The legacy environment variable of the TSIG secret (``ACMELITE_DNS_TSIG_SECRET`` too).
TSIG_SECRET_ENV = "ACMELITE_TSIG_SECRET"  # noqa: S105 - a variable name, not a secret

#: Shorthand flag (its argparse dest) -> (the flags' group: a challenge type, option).
SHORTHANDS: dict[str, tuple[str, str]] = {
    "http_port": ("http-01", "port"),
    "http_address": ("http-01", "address"),
    "webroot": ("http-01", "path"),
    "tls_port": ("tls-alpn-01", "port"),
    "tls_address": ("tls-alpn-01", "address"),
    "dns_server": ("dns-01", "server"),
    "tsig_key_name": ("dns-01", "tsig-key-name"),
    "tsig_secret_file": ("dns-01", "tsig-secret"),
    "tsig_algorithm": ("dns-01", "tsig-algorithm"),
    "dns_zone": ("dns-01", "zone"),
    "dns_hook": ("dns-01", "command"),
    "dns_hook_batch": ("dns-01", "batch"),
    "dns_propagation_timeout": ("dns-01", "propagation-timeout"),
    "dns_resolver": ("dns-01", "resolver"),
    "dns_nameserver_port": ("dns-01", "nameserver-port"),
}

#: The generic flags (argparse dest, flag) of each group.
_GENERIC = {
    "http-01": (("http_solver", "--http-solver"), ("http_option", "--http-option")),
    "tls-alpn-01": (("tls_solver", "--tls-solver"), ("tls_option", "--tls-option")),
    "dns-01": (("dns", "--dns"), ("dns_option", "--dns-option"), ("tsig_secret", "--tsig-secret")),
    "dns-persist-01": (("persist_option", "--persist-option"),),
}
#: The group of flags that configures each challenge type's solver.
_GROUP = {"dns-account-01": "dns-01"}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _key_value(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _option_flag(group: argparse._ArgumentGroup, name: str, what: str) -> None:
    group.add_argument(
        f"--{name}-option",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help=f"an option of the {what} (repeatable; VALUE @PATH reads a file at every run)",
    )


def add_challenge_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--challenge`` and the options of each challenge type (in their own groups)."""
    c = parser.add_argument_group(
        "challenges",
        "How the CA validates the names (docs/challenges.md says which to pick);"
        " `acmelite plugins` lists the solvers.",
    )
    c.add_argument("--challenge", default="http-01", choices=CHALLENGE_TYPES)
    c.add_argument(
        "--fallback",
        choices=("dns-01",),
        help="with --challenge dns-persist-01: answer dns-01 (with --dns) where the CA offers"
        " no dns-persist-01 challenge",
    )
    h = parser.add_argument_group("http-01")
    h.add_argument(
        "--http-solver",
        metavar="NAME",
        help="the http-01 solver (default: standalone, or webroot with --webroot)",
    )
    _option_flag(h, "http", "http-01 solver")
    h.add_argument(
        "--http-port", metavar="PORT", help="standalone: the port to listen on (default 80)"
    )
    h.add_argument(
        "--http-address", metavar="ADDR", help="standalone: the address to listen on (default: all)"
    )
    h.add_argument(
        "--webroot",
        metavar="DIR",
        help="webroot: write the answers under DIR/.well-known/acme-challenge/ for your server",
    )
    t = parser.add_argument_group("tls-alpn-01", "Answer on port 443 (RFC 8737).")
    t.add_argument(
        "--tls-solver",
        metavar="NAME",
        help="the tls-alpn-01 solver (default: tls-alpn, a TLS server of acmelite's own)",
    )
    _option_flag(t, "tls", "tls-alpn-01 solver")
    t.add_argument(
        "--tls-port", metavar="PORT", help="tls-alpn: the port to listen on (default 443)"
    )
    t.add_argument(
        "--tls-address", metavar="ADDR", help="tls-alpn: the address to listen on (default: all)"
    )
    add_dns_arguments(parser)
    p = parser.add_argument_group(
        "dns-persist-01",
        "A persistent record (`acmelite persist`) validates the names: no DNS change, no DNS"
        " credentials.",
    )
    _option_flag(p, "persist", "record check (issuer, resolver, lookup-server, nameserver-port)")


def add_dns_arguments(parser: argparse.ArgumentParser) -> None:
    """The dns-01 solver's flags: ``--dns NAME``, ``--dns-option`` and the shorthands."""
    d = parser.add_argument_group(
        "dns-01", "Publish the challenge in DNS (dns-01 and dns-account-01; needed for wildcards)."
    )
    d.add_argument(
        "--dns",
        metavar="NAME",
        help="the dns-01 solver: rfc2136 (RFC 2136 update), hook (your command), or a plugin",
    )
    d.add_argument(
        "--dns-option",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="an option of the dns-01 solver (repeatable; VALUE @PATH reads a file at every"
        " run; also from $ACMELITE_DNS_<KEY>)",
    )
    d.add_argument("--dns-server", metavar="HOST[:PORT]", help="rfc2136: the primary to update")
    d.add_argument("--tsig-key-name", metavar="NAME", help="rfc2136: the TSIG key's name")
    secret = d.add_mutually_exclusive_group()
    secret.add_argument(
        "--tsig-secret",
        metavar="BASE64",
        help=f"rfc2136: the TSIG secret (visible to other users, and not stored: prefer"
        f" --tsig-secret-file or ${TSIG_SECRET_ENV})",
    )
    secret.add_argument(
        "--tsig-secret-file",
        metavar="PATH",
        help="rfc2136: a file with the base64 secret, or a BIND key file from tsig-keygen",
    )
    d.add_argument(
        "--tsig-algorithm",
        metavar="NAME",
        help="rfc2136: the TSIG algorithm (default: from the key file, else hmac-sha256)",
    )
    d.add_argument(
        "--dns-zone", metavar="ZONE", help="the zone of the records (default: by SOA queries)"
    )
    d.add_argument(
        "--dns-hook",
        metavar="CMD",
        help="hook: run 'CMD present|cleanup RECORD. VALUE' for each TXT value",
    )
    d.add_argument(
        "--dns-hook-batch",
        action="store_true",
        help="hook: run 'CMD present|cleanup' once per zone, the records as JSON on stdin",
    )
    d.add_argument(
        "--dns-propagation-timeout",
        metavar="SECONDS",
        help="wait up to this long until every authoritative nameserver serves the values"
        " (default 120; 0 skips the check)",
    )
    d.add_argument(
        "--dns-resolver",
        metavar="HOST[:PORT]",
        help="check propagation (and look names up) at this server instead of the zone's"
        " authoritative nameservers",
    )
    d.add_argument(
        "--dns-nameserver-port",
        metavar="PORT",
        help="ask the zone's authoritative nameservers on this port (default 53)",
    )


def challenge_config(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[ChallengeConfig, dict[str, str]]:
    """The :class:`ChallengeConfig` the options describe, and values for this run only.

    The second item maps environment variable names to values given inline that must not
    be stored (``--tsig-secret``). Every mistake is a usage error (``parser.error``, exit
    2): a solver that is not installed, an option it does not take, a secret given
    inline, options of another challenge type (dns-01 options without ``--challenge
    dns-01``, say).
    """
    from ..solvers.registry import ChallengeConfig

    kind: str = args.challenge
    fallback = getattr(args, "fallback", None)
    if fallback and kind != "dns-persist-01":
        parser.error("--fallback goes with --challenge dns-persist-01")
    groups = {_GROUP.get(kind, kind)} | ({"dns-01"} if fallback else set())
    wrong: list[tuple[str, str]] = []  # (flag, the challenge type it goes with)
    for dest, (group, _) in SHORTHANDS.items():
        if getattr(args, dest, None) and group not in groups:
            wrong.append((_flag(dest), group))
    for group, flags in _GENERIC.items():
        wrong += [(flag, group) for dest, flag in flags
                  if group not in groups and getattr(args, dest, None)]  # fmt: skip
    if wrong:
        owner = wrong[0][1]
        where = f"--challenge {owner}"
        if owner == "dns-01" and kind == "dns-persist-01":
            where += " or --fallback dns-01"
        parser.error(f"{', '.join(f for f, _ in wrong)} go with {where}, not {kind}")
    if kind in ("dns-01", "dns-account-01"):
        if not args.dns:
            parser.error(f"--challenge {kind} needs --dns NAME (rfc2136, hook or a plugin)")
        return dns_config(args, parser, kind=kind)
    runtime: dict[str, str] = {}
    if kind == "dns-persist-01":
        fallback_config = None
        if fallback:
            if not args.dns:
                parser.error("--fallback dns-01 needs --dns NAME (rfc2136, hook or a plugin)")
            fallback_config, runtime = dns_config(args, parser, kind="dns-01")
        options = _options("dns-persist-01", args.persist_option, "--persist-option", args,
                           parser)  # fmt: skip
        config = ChallengeConfig(type=kind, solver="persist", options=options,
                                 fallback=fallback_config)  # fmt: skip
    elif kind == "tls-alpn-01":
        options = _options("tls-alpn-01", args.tls_option, "--tls-option", args, parser)
        config = ChallengeConfig(type=kind, solver=args.tls_solver or "tls-alpn", options=options)
    else:
        solver = args.http_solver or ("webroot" if args.webroot else "standalone")
        options = _options("http-01", args.http_option, "--http-option", args, parser)
        config = ChallengeConfig(type=kind, solver=solver, options=options)
    _check(config, args, parser)
    return config, runtime


def dns_config(
    args: argparse.Namespace, parser: argparse.ArgumentParser, *, kind: str = "dns-01"
) -> tuple[ChallengeConfig, dict[str, str]]:
    """The dns-01 solver's configuration from :func:`add_dns_arguments`' flags (``--dns``
    is given), for challenge type ``kind``; and the inline secret for this run only."""
    from ..solvers.registry import ChallengeConfig, environment_name

    options = _options("dns-01", args.dns_option, "--dns-option", args, parser)
    runtime: dict[str, str] = {}
    if args.tsig_secret:
        runtime[environment_name("dns-01", "tsig-secret")] = args.tsig_secret
    config = ChallengeConfig(type=kind, solver=args.dns, options=options)
    info = _check(config, args, parser)
    if runtime and info.option("tsig-secret") is None:
        parser.error(f"--tsig-secret is not an option of solver {args.dns!r}")
    return config, runtime


def _options(
    group: str,
    pairs: list[tuple[str, str]],
    flag: str,
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
) -> dict[str, str]:
    """The group's shorthand flags and ``KEY=VALUE`` pairs as solver options."""
    options: dict[str, str] = {}
    for dest, (owner, option) in SHORTHANDS.items():
        value = getattr(args, dest, None)
        if owner == group and value:
            value = "true" if value is True else value  # a switch: --dns-hook-batch
            options[option] = "@" + value if dest == "tsig_secret_file" else value
    for key, value in pairs:
        if key in options:
            parser.error(f"{flag} {key}=... is given twice (or also by its shorthand flag)")
        options[key] = value
    return options


def _check(
    config: ChallengeConfig, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> SolverInfo:
    """``check_config`` with its refusals as usage errors naming the shorthand flag."""
    from ..solvers.registry import SolverConfigError, check_config

    try:
        return check_config(config)
    except SolverConfigError as exc:
        given = [d for d, (g, o) in SHORTHANDS.items() if getattr(args, d, None)
                 and o == exc.option]  # fmt: skip
        if given:
            parser.error(f"{_flag(given[0])} is not an option of solver {config.solver!r}: {exc}")
        parser.error(str(exc))
