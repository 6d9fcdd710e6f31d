"""The part every DNS-01 solver shares: plan, remember, publish, wait (RFC 8555 §8.4).

A batch of tasks becomes a list of :class:`TxtRecord` — one per value, at the end of the
CNAME chain that starts at the task's record (``task.dns_record``: ``_acme-challenge.<name>``
for dns-01, ``_<account label>._acme-challenge.<name>`` for dns-account-01,
``_validation-persist.<name>`` for a dns-persist-01 record), with its zone when the solver or
the propagation check needs it. ``example.test`` and ``*.example.test`` share one record name
and keep two values there: solvers add values and remove only their own, never the whole
record set.

Every value is remembered *before* it is published, so :meth:`cleanup` also removes what a
half-done :meth:`perform` (an error, Ctrl-C) may have left behind, and nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

import dns.exception

from ..challenges import ChallengeTask, SolverOption
from ..constants import DNS_CHALLENGE_TYPES
from ..errors import CleanupFailed, DnsQueryError, InvalidInput, SolverError
from .propagation import Expectation, PropagationSettings, wait_for_txt
from .query import Lookup, Server
from .zone import absolute, find_zone, follow_cname, nameservers

__all__ = [
    "PROPAGATION_OPTIONS",
    "DnsChallengeSolver",
    "TxtRecord",
    "number_option",
    "propagation_from_options",
]

log = logging.getLogger(__name__)

_K = TypeVar("_K")
_V = TypeVar("_V")
_MAX_WORKERS = 16


#: The options every built-in DNS-01 solver takes for its propagation check.
PROPAGATION_OPTIONS = (
    SolverOption(
        name="propagation-timeout",
        help="seconds to wait until every authoritative nameserver serves the values"
        " (0 skips the check)",
        default="120",
    ),
    SolverOption(
        name="resolver",
        help="HOST[:PORT]: check propagation (and look names up) at this server instead of"
        " the zone's authoritative nameservers",
    ),
    SolverOption(
        name="nameserver-port",
        help="the port the zone's authoritative nameservers are asked on",
        default="53",
    ),
)


def number_option(options: Mapping[str, str], name: str, *, integer: bool = False) -> float:
    """The value of option ``name`` as a number >= 0; :class:`InvalidInput` naming it."""
    text = options[name]
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise InvalidInput(f"option {name}={text!r} is not {kind}") from None
    if not value >= 0:
        raise InvalidInput(f"option {name}={text!r} must be >= 0")
    return value


def propagation_from_options(options: Mapping[str, str]) -> PropagationSettings:
    """:class:`PropagationSettings` from the :data:`PROPAGATION_OPTIONS` values."""
    return PropagationSettings(
        timeout=number_option(options, "propagation-timeout"),
        resolver=options.get("resolver") or None,
        nameserver_port=int(number_option(options, "nameserver-port", integer=True)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TxtRecord:
    """One TXT value to publish: ``name`` is where (after CNAMEs), ``origin`` the task's record."""

    name: str
    value: str
    origin: str
    identifier: str
    zone: str = ""


def parallel(fn: Callable[[_K], _V], items: Iterable[_K]) -> tuple[dict[_K, _V], dict[_K, str]]:
    """``fn`` over distinct ``items`` from a thread pool: (results, failure messages)."""
    keys = list(dict.fromkeys(items))
    results: dict[_K, _V] = {}
    failures: dict[_K, str] = {}
    if not keys:
        return results, failures

    def one(key: _K) -> None:
        try:
            results[key] = fn(key)
        except (DnsQueryError, SolverError, dns.exception.DNSException) as exc:
            failures[key] = str(exc)

    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(keys))) as pool:
        list(pool.map(one, keys))
    return results, failures


class DnsChallengeSolver:
    """Base of the DNS-01 solvers. Subclasses publish and unpublish a batch of records.

    Its ``challenge_type`` is dns-01; it publishes the TXT record of any task whose challenge
    is answered in DNS (:data:`~acmelite.constants.DNS_CHALLENGE_TYPES`).

    Subclasses implement :meth:`_publish` and :meth:`_unpublish` (and may add
    :meth:`_lookup_servers`), and set ``_needs_zone`` when publishing needs each record's zone.
    """

    challenge_type: ClassVar[str] = "dns-01"
    _needs_zone: ClassVar[bool] = False

    def __init__(self, *, propagation: PropagationSettings | None = None) -> None:
        self.propagation = propagation if propagation is not None else PropagationSettings()
        self._remembered: dict[tuple[str, str], TxtRecord] = {}
        self._lock = threading.Lock()

    # -- the Solver protocol ------------------------------------------------------------------

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        """Publish every value, then wait once until every nameserver serves them all."""
        records = self._plan(tasks)
        with self._lock:
            for record in records:
                self._remembered[(record.origin, record.value)] = record
        log.info("publishing %d TXT value(s) with %s", len(records), type(self).__name__)
        self._publish(records)
        if self.propagation.enabled:
            self._wait(records)

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        """Remove the values ``perform`` published (or began to) for ``tasks``; only those.

        Raises :class:`CleanupFailed` naming the records it could not remove; they are not
        tried again by a later ``cleanup``.
        """
        with self._lock:
            records = [
                record
                for task in tasks
                if (record := self._remembered.pop((task.dns_record, task.dns_value), None))
            ]
        if not records:
            return
        log.info("removing %d TXT value(s) with %s", len(records), type(self).__name__)
        try:
            self._unpublish(records)
        except SolverError as exc:
            failed = set(exc.identifiers)
            left = [r for r in records if r.identifier in failed] or list(records)
            listing = [f'{r.name} TXT "{r.value}"' for r in left]
            raise CleanupFailed(
                f"{exc}; could not remove: {', '.join(listing)}",
                records=listing,
                identifiers=exc.identifiers,
            ) from None

    # -- for subclasses -----------------------------------------------------------------------

    def _publish(self, records: Sequence[TxtRecord]) -> None:
        raise NotImplementedError

    def _unpublish(self, records: Sequence[TxtRecord]) -> None:
        raise NotImplementedError

    def _lookup(self) -> Lookup:
        """Who answers CNAME, SOA and NS lookups: ``propagation.resolver`` if set, else
        :meth:`_lookup_servers` and then the system resolver."""
        resolver = self.propagation.resolver_server
        if resolver is not None:
            return Lookup([resolver])
        return Lookup(self._lookup_servers(), use_system=True)

    def _lookup_servers(self) -> list[Server]:
        """Servers asked before the system resolver (rfc2136: the primary it updates)."""
        return []

    def _zone_for(self, name: str) -> str:
        return find_zone(self._lookup(), name)

    # -- planning and waiting -----------------------------------------------------------------

    def _plan(self, tasks: Sequence[ChallengeTask]) -> list[TxtRecord]:
        for task in tasks:
            if task.challenge.type not in DNS_CHALLENGE_TYPES:
                raise InvalidInput(
                    f"{type(self).__name__} answers dns-01, not {task.challenge.type} ({task.name})"
                )
        lookup = self._lookup()
        origins = [task.dns_record for task in tasks]
        targets, failures = parallel(lambda origin: follow_cname(lookup, origin), origins)
        _raise_failures("could not look up", failures, tasks)
        for origin, target in targets.items():
            if target != absolute(origin):
                log.info("%s is a CNAME; publishing at %s", origin, target)
        records = [
            TxtRecord(
                name=targets[task.dns_record],
                value=task.dns_value,
                origin=task.dns_record,
                identifier=task.name,
            )
            for task in tasks
        ]
        check = self.propagation
        if self._needs_zone or (check.enabled and check.resolver is None):
            zones, failures = parallel(self._zone_for, [r.name for r in records])
            _raise_failures("could not find the DNS zone of", failures, tasks, targets)
            records = [replace(r, zone=zones[r.name]) for r in records]
        return records

    def _wait(self, records: Sequence[TxtRecord]) -> None:
        check = self.propagation
        resolver = check.resolver_server
        servers: dict[str, list[Server]] = {}
        if resolver is None:
            lookup = self._lookup()
            servers, failures = parallel(
                lambda zone: nameservers(lookup, zone, port=check.nameserver_port),
                [r.zone for r in records],
            )
            if failures:
                raise SolverError(
                    "could not find the nameservers of "
                    + "; ".join(f"zone {zone}: {why}" for zone, why in failures.items()),
                    identifiers=[r.identifier for r in records if r.zone in failures],
                )
        grouped: dict[str, list[TxtRecord]] = {}
        for record in records:
            grouped.setdefault(record.name, []).append(record)
        expectations = [
            Expectation(
                record=name,
                values=frozenset(r.value for r in group),
                servers=(resolver,) if resolver else tuple(servers[group[0].zone]),
                identifiers=tuple(r.identifier for r in group),
                recursive=resolver is not None,
            )
            for name, group in grouped.items()
        ]
        wait_for_txt(expectations, check)


def _raise_failures(
    what: str,
    failures: dict[str, str],
    tasks: Sequence[ChallengeTask],
    targets: dict[str, str] | None = None,
) -> None:
    if not failures:
        return
    failed = set(failures)
    identifiers = [
        task.name
        for task in tasks
        if (targets[task.dns_record] if targets else task.dns_record) in failed
    ]
    raise SolverError(
        "; ".join(f"{what} {name}: {why}" for name, why in failures.items()),
        identifiers=identifiers,
    )
