"""The ``powerdns`` DNS-01 solver: TXT values through the PowerDNS Authoritative HTTP API.

The API changes a record set only as a whole (``PATCH`` with ``changetype: REPLACE``), so
each change is read, modify, write — under :func:`~acmelite.dns.zonelock.zone_lock`, one
writer at a time in this process and in other acmelite runs. The lock covers the whole
server, not one zone: PowerDNS's SQLite backend locks its one database, and two writes to
different zones at once fail with HTTP 500 (``database is locked``). A 5xx answer or a lost
connection is tried again (three times), reading the record set afresh:

* ``perform`` reads the ``_acme-challenge`` TXT sets of the zone (``GET`` filtered by
  name and type), adds our values to what is there, and writes each set back with the TTL
  it had (``ttl`` for a new set) — other clients' values stay, with their TTL;
* ``cleanup`` reads them again and writes back all but our values (``DELETE`` when ours
  were the last).

The zone is the ``zone`` option for the names inside it, else the longest zone the server
has that holds the name (``GET .../zones?zone=NAME``, walking up). Every request has a
timeout; an error carries the API's own message (``{"error": "..."}``); the API key is sent
as ``X-API-Key`` and is never logged nor part of a message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar
from urllib.parse import quote, urlsplit

import dns.exception
import dns.name

from ..challenges import SolverOption
from ..dns.challenge import (
    PROPAGATION_OPTIONS,
    DnsChallengeSolver,
    TxtRecord,
    number_option,
    propagation_from_options,
)
from ..dns.propagation import PropagationSettings
from ..dns.zone import absolute, in_zone
from ..dns.zonelock import zone_lock
from ..errors import InvalidInput, SolverError
from ..http import ApiError, JsonApi

__all__ = ["PowerDnsSolver"]

log = logging.getLogger(__name__)

#: Tries of one zone's read-modify-write when the server fails (HTTP 5xx, no answer).
_ATTEMPTS = 3
#: Record sets read at once (one GET each) before the one PATCH of a zone.
_READERS = 8


class _Transient(SolverError):
    """A failure worth one more try: the server answered 5xx, or did not answer."""


class PowerDnsSolver(DnsChallengeSolver):
    """Publish ``_acme-challenge`` TXT values with the PowerDNS HTTP API.

    ``api_url`` is the server's web server (``http://ns1:8081``; ``/api/v1`` is added when
    missing), ``api_key`` its ``api-key``. Lookups (CNAME, the zone's nameservers) go to
    ``propagation.resolver`` if set, else to the system resolver. ``timeout`` bounds each API
    request; ``ca_bundle`` verifies an ``https`` API.
    """

    _needs_zone = True
    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(
            name="api-url",
            help="the PowerDNS web server, e.g. http://ns1.example.test:8081",
            required=True,
        ),
        SolverOption(
            name="api-key", help="the API key (api-key in pdns.conf)", required=True, secret=True
        ),
        SolverOption(name="server-id", help="the server in the API", default="localhost"),
        SolverOption(name="zone", help="the zone (default: the longest the server has)"),
        SolverOption(
            name="ttl",
            help="TTL of new TXT record sets (an existing set keeps its own)",
            default="60",
        ),
        SolverOption(name="timeout", help="seconds each API request may take", default="30"),
        SolverOption(
            name="ca-bundle", help="CA certificates (PEM) that verify an https API", path=True
        ),
        *PROPAGATION_OPTIONS,
    )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> PowerDnsSolver:
        """Build from the string options of :attr:`options` (see the registry)."""
        return cls(
            options["api-url"],
            options["api-key"],
            server_id=options.get("server-id") or "localhost",
            zone=options.get("zone") or None,
            ttl=int(number_option(options, "ttl", integer=True)),
            timeout=number_option(options, "timeout"),
            ca_bundle=options.get("ca-bundle") or None,
            propagation=propagation_from_options(options),
        )

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        server_id: str = "localhost",
        zone: str | None = None,
        ttl: int = 60,
        timeout: float = 30.0,
        ca_bundle: str | None = None,
        propagation: PropagationSettings | None = None,
    ) -> None:
        super().__init__(propagation=propagation)
        if not api_key.strip():
            raise InvalidInput("the PowerDNS API key is empty")
        if not server_id or "/" in server_id:
            raise InvalidInput(f"bad PowerDNS server id {server_id!r}")
        if not 0 <= ttl <= 2**31 - 1:
            raise InvalidInput(f"bad TTL {ttl}")
        try:
            self.zone = absolute(zone) if zone else None
        except dns.exception.DNSException as exc:
            raise InvalidInput(f"bad DNS zone {zone!r}: {exc}") from None
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(
                f"bad PowerDNS API URL {api_url!r}: expected http(s)://HOST:PORT (the web server)"
            )
        base = api_url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        self.server_id = server_id
        self.ttl = ttl
        self.api = JsonApi(
            f"{base}/servers/{quote(server_id, safe='')}",
            {"X-API-Key": api_key.strip(), "Accept": "application/json"},
            timeout=timeout if timeout > 0 else 30.0,
            verify=ca_bundle or True,
        )
        self._zones: dict[str, str | None] = {}
        self._zones_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PowerDnsSolver(api={self.api.base_url!r}, zone={self.zone!r}, ttl={self.ttl})"

    # -- which zone -----------------------------------------------------------------------------

    def _zone_for(self, name: str) -> str:
        if self.zone is not None and in_zone(name, self.zone):
            return self.zone
        candidate = dns.name.from_text(name)
        tried = []
        while candidate != dns.name.root:
            text = candidate.to_text().lower()
            tried.append(text)
            if self._has_zone(text):
                return text
            candidate = candidate.parent()
        raise SolverError(
            f"PowerDNS at {self.api.base_url} has no zone that holds {absolute(name)}"
            f" (asked for {', '.join(tried[-3:])}); create it or give the zone option"
        )

    def _has_zone(self, zone: str) -> bool:
        with self._zones_lock:
            if zone in self._zones:
                return self._zones[zone] is not None
        try:
            found = self.api.request("GET", "/zones", params={"zone": zone}).data
        except ApiError as exc:
            raise SolverError(f"cannot list the zones of PowerDNS: {_explain(exc)}") from None
        entries = found if isinstance(found, list) else []
        names = [z.get("name") for z in entries if isinstance(z, dict)]
        hit = next((str(n) for n in names if isinstance(n, str) and n.lower() == zone), None)
        with self._zones_lock:
            self._zones[zone] = hit
        return hit is not None

    # -- read, modify, write ------------------------------------------------------------------

    def _publish(self, records: Sequence[TxtRecord]) -> None:
        self._change(records, add=True)

    def _unpublish(self, records: Sequence[TxtRecord]) -> None:
        self._change(records, add=False)

    def _change(self, records: Sequence[TxtRecord], *, add: bool) -> None:
        """One read-modify-write per zone, under the server's lock; every zone is tried."""
        by_zone: dict[str, list[TxtRecord]] = {}
        for record in records:
            by_zone.setdefault(record.zone, []).append(record)
        failures: dict[str, str] = {}
        with zone_lock("powerdns", zone=self.api.base_url):
            for zone, group in by_zone.items():
                try:
                    self._change_zone_retrying(zone, group, add=add)
                except SolverError as exc:
                    failures[zone] = str(exc)
        if failures:
            raise SolverError(
                "; ".join(failures.values()),
                identifiers=[r.identifier for z in failures for r in by_zone[z]],
            )

    def _change_zone_retrying(self, zone: str, records: Sequence[TxtRecord], *, add: bool) -> None:
        """A server error or a lost connection is tried again, reading afresh each time
        (another writer, e.g. a hook, may hold the SQLite database for a moment)."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self._change_zone(zone, records, add=add)
                return
            except _Transient as exc:
                if attempt == _ATTEMPTS:
                    raise SolverError(str(exc)) from None
                log.info("%s; trying again", exc)
                time.sleep(0.25 * attempt)

    def _change_zone(self, zone: str, records: Sequence[TxtRecord], *, add: bool) -> None:
        path = f"/zones/{quote(zone, safe='')}"
        wanted: dict[str, set[str]] = {}
        for record in records:
            wanted.setdefault(record.name, set()).add(f'"{record.value}"')
        names = list(wanted)
        with ThreadPoolExecutor(max_workers=min(_READERS, len(names))) as pool:  # reads at once
            found = pool.map(lambda n: self._current(path, zone, n), names)
            current = dict(zip(names, found, strict=True))
        rrsets = []
        for name, ours in wanted.items():
            ttl, contents = current[name]
            new = contents | ours if add else contents - ours
            if new == contents:
                continue
            if new:
                rrsets.append({
                    "name": name, "type": "TXT", "ttl": self.ttl if ttl is None else ttl,
                    "changetype": "REPLACE",
                    "records": [{"content": c, "disabled": False} for c in sorted(new)],
                })  # fmt: skip
            else:
                rrsets.append({"name": name, "type": "TXT", "changetype": "DELETE"})
        if not rrsets:
            return
        try:
            self.api.request("PATCH", path, {"rrsets": rrsets})
        except ApiError as exc:
            kind = _Transient if exc.status is None or exc.status >= 500 else SolverError
            raise kind(
                f"PowerDNS refused the change of zone {zone.rstrip('.')}: {_explain(exc)}"
            ) from None
        log.info(
            "%s %d TXT value(s) %s zone %s at %s",
            "added" if add else "deleted",
            len(records),
            "to" if add else "from",
            zone,
            self.api.base_url,
        )

    def _current(self, path: str, zone: str, name: str) -> tuple[int | None, set[str]]:
        """The TTL and the contents of the TXT set at ``name`` (None, empty: no set)."""
        try:
            data = self.api.request(
                "GET", path, params={"rrset_name": name, "rrset_type": "TXT"}
            ).data
        except ApiError as exc:
            kind = _Transient if exc.status is None or exc.status >= 500 else SolverError
            raise kind(
                f"cannot read zone {zone.rstrip('.')} from PowerDNS: {_explain(exc)}"
            ) from None
        rrsets = data.get("rrsets") if isinstance(data, dict) else None
        if not isinstance(rrsets, list):
            raise SolverError(f"PowerDNS answered no record sets for zone {zone.rstrip('.')}")
        for rrset in rrsets:
            if not isinstance(rrset, dict) or rrset.get("type") != "TXT":
                continue
            if str(rrset.get("name", "")).lower() != name:
                continue
            ttl = rrset.get("ttl")
            entries = rrset.get("records")
            contents = {
                str(r["content"]) for r in entries if isinstance(r, dict) and "content" in r
            } if isinstance(entries, list) else set()  # fmt: skip
            return (ttl if isinstance(ttl, int) else None), contents
        return None, set()


def _explain(exc: ApiError) -> str:
    """The API's error, and what a status means for PowerDNS."""
    if exc.status in (401, 403):
        return f"{exc}; the API key is not the server's (api-key in pdns.conf)"
    path = exc.url.split("?", 1)[0]
    if exc.status == 404 and (path.endswith("/zones") or "/zones/" not in path):
        return f"{exc}; check the API URL and server-id"  # the zone list is always there
    if exc.status == 404:
        return f"{exc}; the server has no such zone"
    return str(exc)
