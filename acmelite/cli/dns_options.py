"""The DNS-01 options of ``acmelite issue``, and the solver they describe.

``add_dns_arguments(parser)`` adds the options; ``build_dns_solver(args)`` turns the parsed
options into a solver. The TSIG secret comes from ``--tsig-secret``, ``--tsig-secret-file``
(the bare base64 secret, or a BIND key file as ``tsig-keygen`` writes it) or the
environment variable ``ACMELITE_TSIG_SECRET``, in that order; it is never printed.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInput

if TYPE_CHECKING:
    from ..solvers.base import Solver

#: The choices of ``--dns`` and ``--tsig-algorithm``, written out so that building the
#: parser (every ``acmelite`` command, ``--help`` too) does not import dnspython; a unit
#: test keeps them equal to ``solvers.dns01.DNS_SOLVERS`` and ``TSIG_ALGORITHMS``.
DNS_SOLVERS = ("rfc2136", "hook")
TSIG_ALGORITHM_NAMES = (
    "hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512",
)  # fmt: skip

__all__ = ["TSIG_SECRET_ENV", "add_dns_arguments", "build_dns_solver", "read_tsig_key_file"]

TSIG_SECRET_ENV = "ACMELITE_TSIG_SECRET"  # noqa: S105 - a variable name, not a secret

_KEY_CLAUSE = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.DOTALL)
_ALGORITHM = re.compile(r"algorithm\s+\"?([A-Za-z0-9.-]+)\"?\s*;")
_SECRET = re.compile(r'secret\s+"([^"]*)"\s*;')


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds: {text!r}")
    return value


def add_dns_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--dns*`` and ``--tsig-*`` options to ``parser`` (in their own group)."""
    group = parser.add_argument_group(
        "dns-01", "Publish the challenge in DNS (needed for wildcard names)."
    )
    group.add_argument(
        "--dns",
        choices=DNS_SOLVERS,
        help="how to publish _acme-challenge TXT records: RFC 2136 update, or your hook",
    )
    group.add_argument(
        "--dns-server", metavar="HOST[:PORT]", help="rfc2136: the primary nameserver to update"
    )
    group.add_argument("--tsig-key-name", metavar="NAME", help="rfc2136: the TSIG key's name")
    secret = group.add_mutually_exclusive_group()
    secret.add_argument(
        "--tsig-secret",
        metavar="BASE64",
        help=f"rfc2136: the TSIG secret (visible to other users; prefer --tsig-secret-file "
        f"or ${TSIG_SECRET_ENV})",
    )
    secret.add_argument(
        "--tsig-secret-file",
        metavar="PATH",
        help="rfc2136: a file with the base64 secret, or a BIND key file from tsig-keygen",
    )
    group.add_argument(
        "--tsig-algorithm",
        choices=TSIG_ALGORITHM_NAMES,
        default=None,
        help="rfc2136: the TSIG algorithm (default: from the key file, else hmac-sha256)",
    )
    group.add_argument(
        "--dns-zone",
        metavar="ZONE",
        help="rfc2136: the zone to update (default: found by SOA queries)",
    )
    group.add_argument(
        "--dns-hook",
        metavar="CMD",
        help="hook: run 'CMD present|cleanup RECORD. VALUE' for each TXT value",
    )
    group.add_argument(
        "--dns-propagation-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=120.0,
        help="wait up to this long until every authoritative nameserver serves the values "
        "(default 120; 0 skips the check)",
    )
    group.add_argument(
        "--dns-resolver",
        metavar="HOST[:PORT]",
        help="check propagation (and look names up) at this server instead of the zone's "
        "authoritative nameservers",
    )


def read_tsig_key_file(path: str | Path, key_name: str | None = None) -> tuple[str, str, str]:
    """Read a TSIG key file: ``(name, algorithm, secret)``; name and algorithm may be "".

    The file holds either the bare base64 secret or BIND ``key "name" { algorithm ...;
    secret "..."; };`` clauses; with several clauses ``key_name`` picks one.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(f"cannot read the TSIG secret file {path}: {reason}") from None
    clauses = _KEY_CLAUSE.findall(text)
    if not clauses:
        secret = text.strip()
        if not secret or any(c.isspace() for c in secret):
            raise InvalidInput(
                f"the TSIG secret file {path} holds neither a base64 secret nor a key clause"
            )
        return "", "", secret
    wanted = key_name.rstrip(".").lower() if key_name else None
    for name, body in clauses:
        if wanted is None or name.rstrip(".").lower() == wanted:
            secret_match = _SECRET.search(body)
            if secret_match is None:
                raise InvalidInput(f"the key {name!r} in {path} has no secret")
            algorithm_match = _ALGORITHM.search(body)
            algorithm = algorithm_match.group(1) if algorithm_match else ""
            return name, algorithm, secret_match.group(1)
    names = ", ".join(repr(name) for name, _ in clauses)
    raise InvalidInput(f"no key {key_name!r} in {path} (it has {names})")


def build_dns_solver(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> Solver:
    """The DNS-01 solver the parsed options describe.

    Raises :class:`InvalidInput` for missing or conflicting options — or, given ``parser``,
    reports them with ``parser.error`` (exit status 2).
    """
    env = os.environ if environ is None else environ
    try:
        return _build(args, env)
    except InvalidInput as exc:
        if parser is not None:
            parser.error(str(exc))
        raise


def _build(args: argparse.Namespace, env: Mapping[str, str]) -> Solver:
    kind = getattr(args, "dns", None)
    if kind is None:
        raise InvalidInput(f"--challenge dns-01 needs --dns {{{','.join(DNS_SOLVERS)}}}")
    key_name: str | None = getattr(args, "tsig_key_name", None)
    algorithm: str | None = getattr(args, "tsig_algorithm", None)
    secret: str | None = getattr(args, "tsig_secret", None)
    secret_file: str | None = getattr(args, "tsig_secret_file", None)
    if secret is not None and secret_file is not None:
        raise InvalidInput("give --tsig-secret or --tsig-secret-file, not both")
    if secret_file is not None:
        file_name, file_algorithm, secret = read_tsig_key_file(secret_file, key_name)
        key_name = key_name or file_name or None
        algorithm = algorithm or file_algorithm or None
    elif secret is None and kind == "rfc2136":
        secret = env.get(TSIG_SECRET_ENV) or None
    from ..solvers.dns01 import solver_from_options

    return solver_from_options(
        dns=kind,
        server=getattr(args, "dns_server", None),
        tsig_key_name=key_name,
        tsig_secret=secret,
        tsig_algorithm=algorithm or "hmac-sha256",
        zone=getattr(args, "dns_zone", None),
        hook=getattr(args, "dns_hook", None),
        propagation_timeout=getattr(args, "dns_propagation_timeout", 120.0),
        resolver=getattr(args, "dns_resolver", None),
    )
