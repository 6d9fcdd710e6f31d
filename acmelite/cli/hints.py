"""What to do about an error, in the command line's words: the one table of hints.

Library errors say what failed, with data (``code``, the problem document); only here do
flag names appear. :func:`hint` looks the error up by that data, never by its message.
"""

from __future__ import annotations

import argparse

from ..errors import AcmeliteError, ProblemError

__all__ = ["hint", "message"]

#: ``AcmeliteError.code`` -> what to do.
BY_CODE = {
    "tls-verification": "if the ACME server uses a private CA, pass its root with --ca-bundle",
    "unreachable": "check --server and the network",
    "port-in-use": "stop the server holding it, use --webroot DIR, or pick --http-port",
    "port-denied": "run as root, give the binary CAP_NET_BIND_SERVICE, or use --webroot DIR",
    "dns-notauth": "point --dns-server at the zone's primary or set --dns-zone",
    "eab-key-length": "check --eab-hmac-alg against what the CA gave you",
    "account-not-found": "pass --agree-tos to create one",
    "wildcard-needs-dns": "add --challenge dns-01 and a --dns solver",
    "not-a-directory": "is --server the CA's ACME directory URL (for example"
    " https://acme-v02.api.letsencrypt.org/directory, or an alias such as letsencrypt)?",
    "not-tls": "check the port: acmelite check needs the TLS port (443 by default)",
    "tls-port-in-use": "stop the server holding it, pick --tls-port, or let a server of yours"
    " answer with --tls-solver NAME",
    "tls-port-denied": "run as root, give the binary CAP_NET_BIND_SERVICE, or pick --tls-port",
}

#: A problem type (RFC 8555 §6.7, short form) -> what to do.
BY_PROBLEM = {
    "externalAccountRequired": "this CA requires External Account Binding: pass --eab-kid and"
    " --eab-hmac-key from your CA account",
}


def hint(exc: AcmeliteError, args: argparse.Namespace | None = None) -> str:
    """The advice for ``exc`` ("" if there is none); ``args`` are the parsed options."""
    if exc.code in BY_CODE:
        return BY_CODE[exc.code]
    if exc.code == "eab-refused":
        kid = getattr(args, "eab_kid", None)
        return (
            f"the CA refused the External Account Binding of key id {kid!r}: check --eab-kid,"
            " --eab-hmac-key and --eab-hmac-alg against your CA account (some CAs accept each"
            " key id only once)"
        )
    if exc.code == "persist-issuer":
        if getattr(args, "command", "") == "persist":
            return "pass --issuer DOMAIN"
        return "pass --persist-option issuer=DOMAIN"
    if isinstance(exc, ProblemError) and exc.problem.short_type in BY_PROBLEM:
        return BY_PROBLEM[exc.problem.short_type]
    return ""


def message(exc: AcmeliteError, args: argparse.Namespace | None = None) -> str:
    """``exc``'s message and, if there is one, its hint: ``what failed; what to do``."""
    advice = hint(exc, args)
    return f"{exc}; {advice}" if advice else str(exc)
