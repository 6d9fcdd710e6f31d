"""The built-in DNS-01 solvers (RFC 8555 §8.4) and one factory to build them from options.

* :class:`Rfc2136Solver` — TSIG-signed dynamic updates to your primary nameserver;
* :class:`HookSolver` — a command of yours that talks to any DNS provider.

Both publish every value of an order first, wait once until every authoritative nameserver
serves them all (:class:`PropagationSettings`), and at cleanup remove only their own values.
The machinery they share lives in :mod:`acmelite.dns`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..dns.challenge import DnsChallengeSolver, TxtRecord
from ..dns.propagation import PropagationSettings
from ..errors import InvalidInput
from .hook import HookSolver
from .rfc2136 import TSIG_ALGORITHMS, Rfc2136Solver

__all__ = [
    "DNS_SOLVERS",
    "TSIG_ALGORITHMS",
    "DnsChallengeSolver",
    "HookSolver",
    "PropagationSettings",
    "Rfc2136Solver",
    "TxtRecord",
    "solver_from_options",
]

DNS_SOLVERS = ("rfc2136", "hook")


def solver_from_options(
    *,
    dns: str,
    server: str | None = None,
    tsig_key_name: str | None = None,
    tsig_secret: str | None = None,
    tsig_algorithm: str = "hmac-sha256",
    zone: str | None = None,
    ttl: int = 60,
    hook: str | Sequence[str] | None = None,
    propagation_timeout: float = 120.0,
    resolver: str | None = None,
) -> DnsChallengeSolver:
    """Build the DNS-01 solver named ``dns`` (``"rfc2136"`` or ``"hook"``).

    The keyword names follow the CLI options (``--dns-server`` is ``server``, ...). Missing or
    contradictory options raise :class:`InvalidInput` naming the option.
    """
    propagation = PropagationSettings(timeout=propagation_timeout, resolver=resolver)
    if dns == "rfc2136":
        if hook is not None:
            raise InvalidInput("--dns-hook goes with --dns hook, not --dns rfc2136")
        missing = [
            option
            for option, value in (
                ("--dns-server HOST[:PORT]", server),
                ("--tsig-key-name NAME", tsig_key_name),
                ("--tsig-secret or --tsig-secret-file", tsig_secret),
            )
            if not value
        ]
        if missing or server is None or tsig_key_name is None or tsig_secret is None:
            raise InvalidInput("--dns rfc2136 needs " + ", ".join(missing))
        return Rfc2136Solver(
            server,
            tsig_key_name,
            tsig_secret,
            tsig_algorithm=tsig_algorithm,
            zone=zone,
            ttl=ttl,
            propagation=propagation,
        )
    if dns == "hook":
        if not hook:
            raise InvalidInput("--dns hook needs --dns-hook CMD")
        extra = [
            option
            for option, value in (
                ("--dns-server", server),
                ("--tsig-key-name", tsig_key_name),
                ("--tsig-secret", tsig_secret),
                ("--dns-zone", zone),
            )
            if value
        ]
        if extra:
            raise InvalidInput(f"{', '.join(extra)} go with --dns rfc2136, not --dns hook")
        return HookSolver(hook, propagation=propagation)
    raise InvalidInput(f"unknown DNS solver {dns!r}; use one of {', '.join(DNS_SOLVERS)}")
