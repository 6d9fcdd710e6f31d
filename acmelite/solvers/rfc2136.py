"""The ``rfc2136`` DNS-01 solver: dynamic updates (RFC 2136) signed with TSIG (RFC 8945).

Works with any server that takes signed updates: BIND, Knot, PowerDNS, Windows DNS. Each
zone gets one update per batch: ``perform`` adds every value of the order (RFC 2136 §2.5.1
adds to the record set — the apex and the wildcard value live side by side), ``cleanup``
deletes exactly those values (§2.5.4, rdata-specific delete) and leaves any other TXT value
at the name alone. Deleting a value that is not there is not an error, which is what lets
``cleanup`` follow a half-done ``perform``.

All records of a set share one TTL (RFC 2181 §5.2), so a server changes the set's TTL to
that of an added record: before adding, the primary is asked for the record set, and a set
that exists keeps its TTL — ``ttl`` applies to new sets only. Why an update failed is read
from the whole answer, per kind of server (:mod:`acmelite.dns.update`).

The TSIG secret stays inside a key object whose ``repr`` hides it; it is never logged and
never part of an error message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping, Sequence
from typing import ClassVar

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from ..challenges import SolverOption
from ..dns.challenge import (
    PROPAGATION_OPTIONS,
    DnsChallengeSolver,
    TxtRecord,
    number_option,
    parallel,
    propagation_from_options,
)
from ..dns.propagation import PropagationSettings
from ..dns.query import Server, ask, parse_server
from ..dns.update import send_update
from ..dns.zone import absolute, in_zone
from ..errors import DnsQueryError, InvalidInput, SolverError

__all__ = ["TSIG_ALGORITHMS", "Rfc2136Solver", "parse_tsig_key"]

log = logging.getLogger(__name__)

TSIG_ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}


_KEY_CLAUSE = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.DOTALL)
_ALGORITHM = re.compile(r"algorithm\s+\"?([A-Za-z0-9.-]+)\"?\s*;")
_SECRET = re.compile(r'secret\s+"([^"]*)"\s*;')
#: Knot's key file (``keymgr -t NAME``): a YAML ``key:`` list of ``id``/``algorithm``/``secret``.
_KNOT_ITEM = re.compile(r"^\s*-\s*id:\s*\"?([^\s\"]+)\"?\s*$", re.MULTILINE)
_KNOT_FIELD = re.compile(r"^\s*(algorithm|secret):\s*\"?([^\s\"]+)\"?\s*$", re.MULTILINE)
#: ``ALGORITHM:NAME:SECRET``, as ``kdig -y`` takes it and ``keymgr -t`` prints it first.
_ONE_LINE = re.compile(r"^\s*#?\s*(hmac-[a-z0-9]+):([^:\s]+):([A-Za-z0-9+/=]+)\s*$", re.MULTILINE)


def parse_tsig_key(
    text: str, key_name: str | None = None, *, source: str = "the TSIG secret"
) -> tuple[str, str, str]:
    """``(name, algorithm, secret)`` from the bare base64 secret, BIND ``key "name" {
    algorithm ...; secret "..."; };`` clauses (``tsig-keygen``), Knot's key file (``keymgr
    -t``: a ``key:`` list of ``id``, ``algorithm``, ``secret``) or ``ALGORITHM:NAME:SECRET``
    (``kdig -y``); name and algorithm may be "". With several keys ``key_name`` picks one.
    Errors name ``source``, never the secret."""
    keys = _key_entries(text, source)
    if not keys:
        secret = text.strip()
        if not secret or any(c.isspace() for c in secret):
            raise InvalidInput(
                f"{source} holds neither a base64 secret nor a key (BIND key clause, Knot key"
                " file, ALGORITHM:NAME:SECRET)"
            )
        return "", "", secret
    wanted = key_name.rstrip(".").lower() if key_name else None
    for name, algorithm, secret in keys:
        if wanted is None or name.rstrip(".").lower() == wanted:
            if not secret:
                raise InvalidInput(f"the key {name!r} in {source} has no secret")
            return name, algorithm, secret
    names = ", ".join(dict.fromkeys(repr(name) for name, _, _ in keys))
    raise InvalidInput(f"no key {key_name!r} in {source} (it has {names})")


def _key_entries(text: str, source: str) -> list[tuple[str, str, str]]:
    """Every key in ``text``, in any of the formats :func:`parse_tsig_key` reads."""
    found: list[tuple[str, str, str]] = []
    for name, body in _KEY_CLAUSE.findall(text):
        secret_match = _SECRET.search(body)
        algorithm_match = _ALGORITHM.search(body)
        found.append((name, algorithm_match.group(1) if algorithm_match else "",
                      secret_match.group(1) if secret_match else ""))  # fmt: skip
    if found:
        return found
    items = list(_KNOT_ITEM.finditer(text))
    if items and re.search(r"^key:\s*$", text, re.MULTILINE):
        for index, item in enumerate(items):
            end = items[index + 1].start() if index + 1 < len(items) else len(text)
            fields = dict(_KNOT_FIELD.findall(text[item.end() : end]))
            found.append((item.group(1), fields.get("algorithm", ""), fields.get("secret", "")))
        return found
    return [(name, algorithm, secret) for algorithm, name, secret in _ONE_LINE.findall(text)]


class _Key(dns.tsig.Key):
    """A TSIG key whose ``repr`` leaves out the secret (dnspython's shows it)."""

    def __repr__(self) -> str:
        return f"<TSIG key {self.name} {self.algorithm} secret=<redacted>>"


class Rfc2136Solver(DnsChallengeSolver):
    """Publish ``_acme-challenge`` TXT values by TSIG-signed dynamic update.

    ``server`` (``HOST[:PORT]``) is the primary that takes updates. Without ``zone`` each
    record's zone is found by walking up SOA queries, asked of ``propagation.resolver`` if
    set, else of ``server`` and then the system resolver. A ``zone`` applies to the records
    inside it; CNAME targets elsewhere still have their zone looked up.
    """

    _needs_zone = True
    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(name="server", help="HOST[:PORT] of the primary nameserver", required=True),
        SolverOption(
            name="tsig-key-name",
            help="the TSIG key's name (default: from a BIND key file given as tsig-secret)",
        ),
        SolverOption(
            name="tsig-secret",
            help="the base64 TSIG secret, or a key file: BIND's (tsig-keygen), Knot's"
            " (keymgr -t) or ALGORITHM:NAME:SECRET",
            required=True,
            secret=True,
            env=("ACMELITE_TSIG_SECRET",),
        ),
        SolverOption(
            name="tsig-algorithm",
            help="the TSIG algorithm (default: from the key file, else hmac-sha256)",
        ),
        SolverOption(name="zone", help="the zone to update (default: found by SOA queries)"),
        SolverOption(
            name="ttl",
            help="TTL of new TXT record sets (an existing set keeps its own)",
            default="60",
        ),
        *PROPAGATION_OPTIONS,
    )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Rfc2136Solver:
        """Build from the string options of :attr:`options` (see the registry)."""
        given_name = options.get("tsig-key-name") or None
        file_name, file_algorithm, secret = parse_tsig_key(
            options["tsig-secret"], given_name, source="the TSIG secret (option tsig-secret)"
        )
        key_name = given_name or file_name
        if not key_name:
            raise InvalidInput(
                "solver 'rfc2136' needs option 'tsig-key-name' (the secret is no key file"
                " that names its key)"
            )
        return cls(
            options["server"],
            key_name,
            secret,
            tsig_algorithm=options.get("tsig-algorithm") or file_algorithm or "hmac-sha256",
            zone=options.get("zone") or None,
            ttl=int(number_option(options, "ttl", integer=True)),
            propagation=propagation_from_options(options),
        )

    def __init__(
        self,
        server: str,
        tsig_key_name: str,
        tsig_secret: str,
        *,
        tsig_algorithm: str = "hmac-sha256",
        zone: str | None = None,
        ttl: int = 60,
        propagation: PropagationSettings | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(propagation=propagation)
        self.server: Server = parse_server(server)
        try:
            self.tsig_key_name = absolute(tsig_key_name)
        except dns.exception.DNSException as exc:
            raise InvalidInput(f"bad TSIG key name {tsig_key_name!r}: {exc}") from None
        algorithm = TSIG_ALGORITHMS.get(tsig_algorithm.lower().rstrip("."))
        if algorithm is None:
            known = ", ".join(TSIG_ALGORITHMS)
            raise InvalidInput(f"unknown TSIG algorithm {tsig_algorithm!r}; use one of {known}")
        self.tsig_algorithm = tsig_algorithm.lower().rstrip(".")
        self._key = _Key(self.tsig_key_name, _decode_secret(tsig_secret, tsig_key_name), algorithm)
        try:
            self.zone = absolute(zone) if zone else None
        except dns.exception.DNSException as exc:
            raise InvalidInput(f"bad DNS zone {zone!r}: {exc}") from None
        if not 0 <= ttl <= 2**31 - 1:
            raise InvalidInput(f"bad TTL {ttl}")
        self.ttl = ttl
        self.timeout = timeout

    def __repr__(self) -> str:
        return (
            f"Rfc2136Solver(server={self.server.hostport!r}, "
            f"tsig_key_name={self.tsig_key_name!r}, tsig_algorithm={self.tsig_algorithm!r}, "
            f"zone={self.zone!r}, ttl={self.ttl})"
        )

    def _lookup_servers(self) -> list[Server]:
        return [self.server]

    def _zone_for(self, name: str) -> str:
        if self.zone is not None and in_zone(name, self.zone):
            return self.zone
        return super()._zone_for(name)

    def _publish(self, records: Sequence[TxtRecord]) -> None:
        self._update_zones(records, add=True, ttls=self._current_ttls(records))

    def _unpublish(self, records: Sequence[TxtRecord]) -> None:
        self._update_zones(records, add=False)

    def _current_ttls(self, records: Sequence[TxtRecord]) -> dict[str, int]:
        """The TTL of each record set that exists already, as the primary serves it."""

        def ttl(name: str) -> int | None:
            try:
                response = ask(self.server, name, dns.rdatatype.TXT, recursion=False,
                               timeout=min(self.timeout, 3.0))  # fmt: skip
            except DnsQueryError as exc:
                log.debug("no TTL for %s from %s: %s", name, self.server, exc)
                return None
            owner = dns.name.from_text(name)
            sets = [r for r in response.answer if r.rdtype == dns.rdatatype.TXT and r.name == owner]
            return sets[0].ttl if sets else None

        found, _ = parallel(ttl, [record.name for record in records])
        return {name: value for name, value in found.items() if value is not None}

    def _update_zones(
        self, records: Sequence[TxtRecord], *, add: bool, ttls: Mapping[str, int] | None = None
    ) -> None:
        """One update per zone; every zone is tried before the failures are raised."""
        by_zone: dict[str, list[TxtRecord]] = {}
        for record in records:
            by_zone.setdefault(record.zone, []).append(record)
        failures: list[str] = []
        failed: list[str] = []
        for zone, group in by_zone.items():
            update = dns.update.UpdateMessage(zone, keyring={self._key.name: self._key})
            for record in group:
                rdata = dns.rdtypes.ANY.TXT.TXT(
                    dns.rdataclass.IN, dns.rdatatype.TXT, _strings(record.value)
                )
                if add:
                    ttl = (ttls or {}).get(record.name, self.ttl)
                    update.add(dns.name.from_text(record.name), ttl, rdata)
                else:
                    update.delete(dns.name.from_text(record.name), rdata)
            try:
                self._send(update, zone)
            except SolverError as exc:
                failures.append(str(exc))
                failed.extend(r.identifier for r in group)
            else:
                log.info(
                    "%s %d TXT value(s) %s zone %s at %s",
                    "added" if add else "deleted",
                    len(group),
                    "to" if add else "from",
                    zone,
                    self.server.hostport,
                )
        if failures:
            raise SolverError("; ".join(failures), identifiers=failed)

    def _send(self, update: dns.update.UpdateMessage, zone: str) -> None:
        send_update(update, self.server, zone=zone, key=self._key,
                    algorithm=self.tsig_algorithm, timeout=self.timeout)  # fmt: skip


def _strings(value: str) -> list[bytes]:
    """A TXT value as character-strings of at most 255 octets (RFC 1035 §3.3.14): a long
    dns-persist-01 record spans several, which resolvers join again."""
    data = value.encode("utf-8")
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


def _decode_secret(secret: str, key_name: str) -> bytes:
    """The TSIG secret as bytes; the error never shows the secret itself."""
    text = "".join(secret.split())
    if not text:
        raise InvalidInput(f"the TSIG secret for key {key_name!r} is empty")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"the TSIG secret for key {key_name!r} is not valid base64") from None
