"""Asking the DNS for dns-persist-01 records, like the CA will (draft-ietf-acme-dns-persist §4).

:func:`check_records` finds each record's zone (after CNAMEs) and asks every one of its
authoritative nameservers directly — or one resolver, recursively — and evaluates each answer
with :func:`acmelite.persist.evaluate`. A record that one nameserver lacks is a problem,
named with that server: the CA may ask exactly that one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidInput
from ..persist import PersistRecord, Requirement, Verdict, evaluate, record_name
from .challenge import parallel
from .propagation import txt_values
from .query import Lookup, Server, parse_server
from .zone import find_zone, follow_cname, nameservers

__all__ = ["CheckSettings", "NameReport", "check_error_message", "check_records"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckSettings:
    """Where records are looked for. By default at every authoritative nameserver of the
    record's zone (found through ``lookup_server``, else the system resolver), on
    ``nameserver_port``; with ``resolver``, at that one server, recursively.
    ``timeout`` bounds each query."""

    resolver: str | None = None
    lookup_server: str | None = None
    nameserver_port: int = 53
    timeout: float = 3.0

    def __post_init__(self) -> None:
        for server in (self.resolver, self.lookup_server):
            if server is not None:
                parse_server(server)
        if not 0 < self.nameserver_port < 65536:
            raise InvalidInput(f"bad nameserver port {self.nameserver_port}")
        if not self.timeout > 0:
            raise InvalidInput(f"the DNS query timeout must be > 0 s, not {self.timeout}")

    def lookup(self) -> Lookup:
        server = self.resolver or self.lookup_server
        if server is not None:
            return Lookup([parse_server(server)], timeout=self.timeout)
        return Lookup(use_system=True, timeout=self.timeout)


@dataclass(frozen=True, slots=True, kw_only=True)
class NameReport:
    """The record of one name as the DNS serves it: ``record`` is its name (``target``
    the end of its CNAME chain), ``servers`` those asked; ``valid`` the record every one
    of them serves, else ``problems`` that name the servers."""

    name: str
    record: str
    target: str
    servers: tuple[str, ...]
    valid: PersistRecord | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.valid is not None and not self.problems

    def line(self) -> str:
        """One line for a person: ``NAME: ok (...)`` or ``NAME: problem; problem``."""
        if self.ok and self.valid is not None:
            return f"{self.name}: ok ({self.record} TXT {self.valid.to_text()!r})"
        return f"{self.name} ({self.record}): " + "; ".join(self.problems)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "record": self.record,
            "target": self.target,
            "servers": list(self.servers),
            "ok": self.ok,
            "valid": self.valid.to_text() if self.valid is not None else None,
            "persist_until": (
                self.valid.expires.isoformat()
                if self.valid is not None and self.valid.expires is not None
                else None
            ),
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


def check_records(
    requirements: Sequence[Requirement],
    settings: CheckSettings | None = None,
    *,
    now: dt.datetime | None = None,
) -> list[NameReport]:
    """Ask the DNS for each requirement's record and :func:`evaluate` every answer; one
    :class:`NameReport` per requirement, in order. Lookups and queries run in parallel."""
    settings = settings or CheckSettings()
    now = now or dt.datetime.now(dt.timezone.utc)
    lookup = settings.lookup()
    records = {r.name: record_name(r.name) for r in requirements}
    places, failures = parallel(lambda record: _servers(lookup, record, settings),
                                records.values())  # fmt: skip
    pairs = [(target, server) for target, servers in places.values() for server in servers]
    answers, errors = parallel(
        lambda pair: txt_values(pair[1], pair[0], recursive=settings.resolver is not None,
                                timeout=settings.timeout),
        pairs,
    )  # fmt: skip
    reports = []
    for requirement in requirements:
        record = records[requirement.name]
        if record in failures:
            problem = f"cannot be looked up: {failures[record]}"
            reports.append(NameReport(name=requirement.name, record=record, target=record,
                                      servers=(), valid=None, problems=(problem,)))  # fmt: skip
            continue
        target, servers = places[record]
        verdicts: dict[Server, Verdict] = {}
        for server in servers:
            if (target, server) in errors:
                verdicts[server] = Verdict(problems=(f"no answer ({errors[(target, server)]})",))
            else:
                verdicts[server] = evaluate(answers[(target, server)], requirement, now=now)
        reports.append(_merge(requirement.name, record, target, verdicts))
    return reports


def _servers(lookup: Lookup, record: str, settings: CheckSettings) -> tuple[str, list[Server]]:
    if settings.resolver is not None:
        return record, [parse_server(settings.resolver)]
    target = follow_cname(lookup, record)
    zone = find_zone(lookup, target)
    return target, nameservers(lookup, zone, port=settings.nameserver_port)


def _merge(name: str, record: str, target: str, verdicts: Mapping[Server, Verdict]) -> NameReport:
    """One report from each server's verdict: valid only if valid everywhere (the CA may
    ask any of them); each problem once, with the servers that have it."""
    where: dict[str, list[str]] = {}
    for server, verdict in verdicts.items():
        for problem in verdict.problems:
            where.setdefault(problem, []).append(str(server))
    problems = tuple(f"{problem} at {_and(servers)}" for problem, servers in where.items())
    valid = [v.valid for v in verdicts.values() if v.valid is not None]
    record_ok = None
    if valid and len(valid) == len(verdicts):
        # Valid everywhere; the one that expires first is the one to watch.
        record_ok = min(valid, key=lambda r: (r.persist_until is None, r.persist_until or 0))
    warnings = tuple(dict.fromkeys(w for v in verdicts.values() for w in v.warnings))
    if target != record and record_ok is not None:
        log.info("%s is a CNAME to %s", record, target)
    return NameReport(name=name, record=record, target=target,
                      servers=tuple(str(s) for s in verdicts), valid=record_ok,
                      problems=problems, warnings=warnings)  # fmt: skip


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_error_message(reports: Sequence[NameReport]) -> str:
    """One line naming every name whose record is not ready, and why."""
    return "dns-persist-01 record not ready: " + " | ".join(r.line() for r in reports if not r.ok)
