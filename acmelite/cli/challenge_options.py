"""The challenge options of ``acmelite issue``: parsed into one ``ChallengeConfig``.

Any installed solver is named with ``--dns NAME`` or ``--http-solver NAME`` and given its
options with ``--dns-option``/``--http-option KEY=VALUE``. The older flags (``--dns-server``,
``--tsig-*``, ``--dns-hook``, ``--webroot``, ``--http-port``, ...) are shorthands for the
built-in solvers' options, listed once in :data:`SHORTHANDS`. No solver is built here:
:func:`acmelite.solvers.solver_for` does that, for ``issue``, ``renew`` and the library.

Building the parser imports nothing heavy (``acmelite --help`` stays fast).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..constants import CHALLENGE_TYPES

if TYPE_CHECKING:
    from ..solvers.registry import ChallengeConfig

__all__ = ["SHORTHANDS", "TSIG_SECRET_ENV", "add_challenge_arguments", "challenge_config"]

#: The legacy environment variable of the TSIG secret (``ACMELITE_DNS_TSIG_SECRET`` too).
TSIG_SECRET_ENV = "ACMELITE_TSIG_SECRET"  # noqa: S105 - a variable name, not a secret

#: Shorthand flag (its argparse dest) -> (challenge type, option of the solver).
SHORTHANDS: dict[str, tuple[str, str]] = {
    "http_port": ("http-01", "port"),
    "http_address": ("http-01", "address"),
    "webroot": ("http-01", "path"),
    "dns_server": ("dns-01", "server"),
    "tsig_key_name": ("dns-01", "tsig-key-name"),
    "tsig_secret_file": ("dns-01", "tsig-secret"),
    "tsig_algorithm": ("dns-01", "tsig-algorithm"),
    "dns_zone": ("dns-01", "zone"),
    "dns_hook": ("dns-01", "command"),
    "dns_propagation_timeout": ("dns-01", "propagation-timeout"),
    "dns_resolver": ("dns-01", "resolver"),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _key_value(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def add_challenge_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--challenge`` and the http-01 and dns-01 options (in their own groups)."""
    c = parser.add_argument_group(
        "challenges", "How the CA validates the names; `acmelite plugins` lists the solvers."
    )
    c.add_argument("--challenge", default="http-01", choices=CHALLENGE_TYPES)
    h = parser.add_argument_group("http-01")
    h.add_argument(
        "--http-solver",
        metavar="NAME",
        help="the http-01 solver (default: standalone, or webroot with --webroot)",
    )
    h.add_argument(
        "--http-option",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="an option of the http-01 solver (repeatable; VALUE @PATH reads a file)",
    )
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
    d = parser.add_argument_group(
        "dns-01", "Publish the challenge in DNS (needed for wildcard names)."
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
    d.add_argument("--dns-zone", metavar="ZONE", help="rfc2136: the zone (default: by SOA)")
    d.add_argument(
        "--dns-hook",
        metavar="CMD",
        help="hook: run 'CMD present|cleanup RECORD. VALUE' for each TXT value",
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


def challenge_config(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[ChallengeConfig, dict[str, str]]:
    """The :class:`ChallengeConfig` the options describe, and values for this run only.

    The second item maps environment variable names to values given inline that must not
    be stored (``--tsig-secret``). Every mistake is a usage error (``parser.error``, exit
    2): a solver that is not installed, an option it does not take, a secret given
    inline, dns-01 options without ``--challenge dns-01``.
    """
    from ..solvers.registry import (
        ChallengeConfig,
        SolverConfigError,
        check_config,
        environment_name,
    )

    kind: str = args.challenge
    given = {dest: getattr(args, dest) for dest in SHORTHANDS if getattr(args, dest, None)}
    wrong = [_flag(d) for d, (t, _) in SHORTHANDS.items() if d in given and t != kind]
    if kind != "dns-01":
        wrong += [f for f, v in (("--dns", args.dns), ("--dns-option", args.dns_option),
                                 ("--tsig-secret", args.tsig_secret)) if v]  # fmt: skip
    if kind != "http-01":
        wrong += [f for f, v in (("--http-solver", args.http_solver),
                                 ("--http-option", args.http_option)) if v]  # fmt: skip
    if wrong:
        parser.error(f"{', '.join(wrong)} go with --challenge {_other(kind)}, not {kind}")
    if kind == "dns-01":
        if not args.dns:
            parser.error("--challenge dns-01 needs --dns NAME (rfc2136, hook or a plugin)")
        solver, pairs, flag = args.dns, args.dns_option, "--dns-option"
    else:
        solver = args.http_solver or ("webroot" if args.webroot else "standalone")
        pairs, flag = args.http_option, "--http-option"
    options: dict[str, str] = {}
    for dest, value in given.items():
        option = SHORTHANDS[dest][1]
        options[option] = "@" + value if dest == "tsig_secret_file" else value
    for key, value in pairs:
        if key in options:
            parser.error(f"{flag} {key}=... is given twice (or also by its shorthand flag)")
        options[key] = value
    runtime: dict[str, str] = {}
    if kind == "dns-01" and args.tsig_secret:
        runtime[environment_name("dns-01", "tsig-secret")] = args.tsig_secret
    config = ChallengeConfig(type=kind, solver=solver, options=options)
    try:
        info = check_config(config)
    except SolverConfigError as exc:
        shorthand = next((d for d in given if SHORTHANDS[d][1] == exc.option), None)
        if shorthand is not None:
            parser.error(f"{_flag(shorthand)} is not an option of solver {solver!r}: {exc}")
        parser.error(str(exc))
    if runtime and info.option("tsig-secret") is None:
        parser.error(f"--tsig-secret is not an option of solver {solver!r}")
    return config, runtime


def _other(kind: str) -> str:
    return "dns-01" if kind == "http-01" else "http-01"
