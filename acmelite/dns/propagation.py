"""Waiting until the DNS serves every TXT value (RFC 8555 §8.4, before answering the challenge).

The CA resolves ``_acme-challenge.<name>`` itself, through its own resolvers, at a moment we do
not control. The values must therefore be on every authoritative nameserver of the zone — a
secondary that lags behind the primary is exactly the one the CA may ask. So each nameserver
is asked directly, without recursion, until it serves every expected value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import dns.rdatatype

from ..errors import DnsQueryError, InvalidInput, SolverError
from .query import Server, ask, parse_server

__all__ = ["Expectation", "PropagationSettings", "wait_for_txt"]

log = logging.getLogger(__name__)

_MAX_WORKERS = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class PropagationSettings:
    """How to check that the TXT values are served before the CA is asked to look.

    ``timeout`` 0 skips the check. ``resolver`` (``HOST[:PORT]``) replaces the zone's
    nameservers with that one server, asked with recursion desired; it also answers the
    lookups (CNAME, SOA, NS) of the solvers. ``nameserver_port`` is the port the zone's
    nameservers are asked on (53; tests change it). The poll interval starts at
    ``poll_interval`` and grows to ``max_poll_interval``.
    """

    timeout: float = 120.0
    resolver: str | None = None
    nameserver_port: int = 53
    poll_interval: float = 0.1
    max_poll_interval: float = 2.0
    query_timeout: float = 2.0

    def __post_init__(self) -> None:
        if not self.timeout >= 0:
            raise InvalidInput(f"DNS propagation timeout must be >= 0 seconds, not {self.timeout}")
        if not 0 < self.poll_interval <= self.max_poll_interval:
            raise InvalidInput("DNS poll interval must be > 0 and <= the maximum interval")
        if not self.query_timeout > 0:
            raise InvalidInput("DNS query timeout must be > 0 seconds")
        if not 0 < self.nameserver_port < 65536:
            raise InvalidInput(f"bad nameserver port {self.nameserver_port}")
        if self.resolver is not None:
            parse_server(self.resolver)

    @property
    def enabled(self) -> bool:
        return self.timeout > 0

    @property
    def resolver_server(self) -> Server | None:
        return parse_server(self.resolver) if self.resolver is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """``record`` must serve every one of ``values`` at every one of ``servers``."""

    record: str
    values: frozenset[str]
    servers: tuple[Server, ...]
    identifiers: tuple[str, ...] = ()
    recursive: bool = False


@dataclass(slots=True)
class _Check:
    expectation: Expectation
    server: Server
    seen: frozenset[str] = frozenset()
    error: str = ""

    @property
    def missing(self) -> list[str]:
        return sorted(self.expectation.values - self.seen)


def txt_values(server: Server, record: str, *, recursive: bool, timeout: float) -> frozenset[str]:
    """The TXT strings ``server`` serves at ``record`` (character-strings joined)."""
    response = ask(server, record, dns.rdatatype.TXT, recursion=recursive, timeout=timeout)
    return frozenset(
        b"".join(rdata.strings).decode("utf-8", "replace")
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    )


def wait_for_txt(
    expectations: Sequence[Expectation],
    settings: PropagationSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every server serves every expected value; raise on timeout.

    Theory of operation: every (record, server) pair is one pending check. Each round asks
    all pending pairs at once, from a thread pool, and drops the ones that are satisfied, so
    ten names cost what one costs. Between rounds the loop sleeps, starting at
    ``poll_interval`` (an update to a primary is usually visible at once) and growing by half
    each round up to ``max_poll_interval`` (a secondary may wait for NOTIFY and a transfer).
    At the deadline the checks still pending become one :class:`SolverError` that names each
    record, the values it lacks and the nameservers that lack them.
    """
    pending = [_Check(e, s) for e in expectations for s in e.servers]
    if not pending:
        return
    start = clock()
    deadline = start + settings.timeout
    interval = settings.poll_interval
    workers = min(_MAX_WORKERS, len(pending))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="acmelite-dns") as pool:
        while True:
            query_timeout = min(settings.query_timeout, max(deadline - clock(), 0.05))
            results = list(pool.map(partial(_run, timeout=query_timeout), pending))
            pending = [check for check, done in zip(pending, results, strict=True) if not done]
            now = clock()
            if not pending:
                log.info("all TXT values are served by every nameserver after %.2f s", now - start)
                return
            if now >= deadline:
                raise _timeout_error(pending, settings.timeout)
            sleep(min(interval, deadline - now))
            interval = min(interval * 1.5, settings.max_poll_interval)


def _run(check: _Check, timeout: float) -> bool:
    expectation = check.expectation
    try:
        check.seen = txt_values(
            check.server, expectation.record, recursive=expectation.recursive, timeout=timeout
        )
        check.error = ""
    except DnsQueryError as exc:
        check.error = str(exc)
        log.debug("propagation check: %s", exc)
        return False
    done = expectation.values <= check.seen
    if not done:
        log.debug(
            "propagation check: %s lacks %d value(s) at %s",
            check.server,
            len(check.missing),
            expectation.record,
        )
    return done


def _timeout_error(pending: Sequence[_Check], timeout: float) -> SolverError:
    by_record: dict[str, list[_Check]] = {}
    for check in pending:
        by_record.setdefault(check.expectation.record, []).append(check)
    parts: list[str] = []
    identifiers: list[str] = []
    for record, checks in by_record.items():
        values = ", ".join(repr(v) for v in sorted(checks[0].expectation.values))
        where = []
        for check in checks:
            if check.error:
                where.append(f"{check.server} (last query: {check.error})")
            elif len(check.missing) < len(check.expectation.values):
                lacking = ", ".join(repr(v) for v in check.missing)
                where.append(f"{check.server} (lacks {lacking})")
            else:
                where.append(f"{check.server}")
        parts.append(f"{record} TXT {values} still missing at " + ", ".join(where))
        identifiers.extend(i for i in checks[0].expectation.identifiers if i not in identifiers)
    return SolverError(
        f"DNS propagation timed out after {timeout:g} s: " + " | ".join(parts),
        identifiers=identifiers,
    )
