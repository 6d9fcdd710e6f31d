"""The ``rfc2136`` DNS-01 solver: dynamic updates (RFC 2136) signed with TSIG (RFC 8945).

Works with any server that takes signed updates: BIND, Knot, PowerDNS, Windows DNS. Each
zone gets one update per batch: ``perform`` adds every value of the order (RFC 2136 §2.5.1
adds to the record set — the apex and the wildcard value live side by side), ``cleanup``
deletes exactly those values (§2.5.4, rdata-specific delete) and leaves any other TXT value
at the name alone. Deleting a value that is not there is not an error, which is what lets
``cleanup`` follow a half-done ``perform``.

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
import dns.message
import dns.name
import dns.query
import dns.rcode
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
    propagation_from_options,
)
from ..dns.propagation import PropagationSettings
from ..dns.query import Lookup, Server, parse_server, resolve_address
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


def parse_tsig_key(
    text: str, key_name: str | None = None, *, source: str = "the TSIG secret"
) -> tuple[str, str, str]:
    """``(name, algorithm, secret)`` from the bare base64 secret or BIND ``key "name" {
    algorithm ...; secret "..."; };`` clauses (``tsig-keygen``); name and algorithm may be
    "". With several clauses ``key_name`` picks one. Errors name ``source``, never the
    secret."""
    clauses = _KEY_CLAUSE.findall(text)
    if not clauses:
        secret = text.strip()
        if not secret or any(c.isspace() for c in secret):
            raise InvalidInput(f"{source} holds neither a base64 secret nor a key clause")
        return "", "", secret
    wanted = key_name.rstrip(".").lower() if key_name else None
    for name, body in clauses:
        if wanted is None or name.rstrip(".").lower() == wanted:
            secret_match = _SECRET.search(body)
            if secret_match is None:
                raise InvalidInput(f"the key {name!r} in {source} has no secret")
            algorithm_match = _ALGORITHM.search(body)
            algorithm = algorithm_match.group(1) if algorithm_match else ""
            return name, algorithm, secret_match.group(1)
    names = ", ".join(repr(name) for name, _ in clauses)
    raise InvalidInput(f"no key {key_name!r} in {source} (it has {names})")


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
            help="the base64 TSIG secret, or a BIND key file (tsig-keygen output)",
            required=True,
            secret=True,
            env=("ACMELITE_TSIG_SECRET",),
        ),
        SolverOption(
            name="tsig-algorithm",
            help="the TSIG algorithm (default: from the key file, else hmac-sha256)",
        ),
        SolverOption(name="zone", help="the zone to update (default: found by SOA queries)"),
        SolverOption(name="ttl", help="TTL of the TXT records", default="60"),
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
                "solver 'rfc2136' needs option 'tsig-key-name' (the secret is no BIND key"
                " file that names its key)"
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

    def _lookup(self) -> Lookup:
        resolver = self.propagation.resolver_server
        if resolver is not None:
            return Lookup([resolver])
        return Lookup([self.server], use_system=True)

    def _zone_for(self, name: str) -> str:
        if self.zone is not None and in_zone(name, self.zone):
            return self.zone
        return super()._zone_for(name)

    def _publish(self, records: Sequence[TxtRecord]) -> None:
        self._update_zones(records, add=True)

    def _unpublish(self, records: Sequence[TxtRecord]) -> None:
        self._update_zones(records, add=False)

    def _update_zones(self, records: Sequence[TxtRecord], *, add: bool) -> None:
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
                    update.add(dns.name.from_text(record.name), self.ttl, rdata)
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
        server = self.server.hostport
        key = f"TSIG key {self.tsig_key_name.rstrip('.')!r}"
        where = f"{server} for zone {zone.rstrip('.')}"
        try:
            address = resolve_address(self.server.host)
            response = dns.query.tcp(update, address, port=self.server.port, timeout=self.timeout)
        except DnsQueryError as exc:
            raise SolverError(
                f"cannot send the update for zone {zone.rstrip('.')}: {exc}"
            ) from None
        except dns.tsig.PeerBadSignature:
            raise SolverError(f"{key} rejected by {where}: BADSIG — check the secret") from None
        except dns.tsig.PeerBadKey:
            raise SolverError(
                f"{key} rejected by {where}: BADKEY — the server does not know a key "
                f"of this name and algorithm ({self.tsig_algorithm})"
            ) from None
        except dns.tsig.PeerBadTime:
            raise SolverError(
                f"{key} rejected by {where}: BADTIME — the clocks differ too much"
            ) from None
        except dns.tsig.PeerError as exc:
            raise SolverError(f"{key} rejected by {where}: {type(exc).__name__}") from None
        except dns.exception.Timeout:
            raise SolverError(
                f"DNS server {where} did not answer the update within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise SolverError(
                f"could not send the update to DNS server {where}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        except dns.exception.DNSException as exc:
            # Includes a response whose own TSIG does not verify; never echo the key.
            raise SolverError(f"bad answer from DNS server {where}: {type(exc).__name__}") from None
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        if rcode == dns.rcode.REFUSED:
            raise SolverError(
                f"server {server} refused the update for zone {zone.rstrip('.')}: the "
                f"{key} may not update this name (check update-policy)"
            )
        if rcode == dns.rcode.NOTAUTH:
            raise SolverError(
                f"server {server} is not authoritative for zone {zone.rstrip('.')} (NOTAUTH)",
                code="dns-notauth",
            )
        raise SolverError(f"server {where} answered {dns.rcode.to_text(rcode)} to the update")


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
