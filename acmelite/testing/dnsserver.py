"""What the DNS servers the tests start have in common: looking at TXT records, changing them.

:class:`ZoneWriter` is the seam the DNS conformance kit (:mod:`acmelite.testing.dns_conformance`)
uses to put "someone else's" value into a zone; :class:`~acmelite.testing.bind.BindServer`,
:class:`~acmelite.testing.knot.KnotServer` and
:class:`~acmelite.testing.powerdns.PowerDnsServer` implement it. The functions here ask a
server directly (no recursion), over TCP so that a large record set is never truncated.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

__all__ = [
    "Change",
    "ZoneWriter",
    "axfr_txt",
    "in_zone",
    "query_txt",
    "server_version",
    "terminate",
    "tsig_update",
    "zone_of",
]

Change = Callable[[dns.update.UpdateMessage, dns.name.Name], None]


@runtime_checkable
class ZoneWriter(Protocol):
    """Adds and removes TXT values behind the back of the solver under test."""

    def add_txt(self, name: str, value: str, *, ttl: int = 60) -> None:
        """Add one TXT value at ``name`` with ``ttl`` (the record set's TTL if it is new)."""

    def delete_txt(self, name: str, value: str | None = None) -> None:
        """Delete one TXT value at ``name``, or every TXT value there."""


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


def query_txt(host: str, port: int, name: str, *, timeout: float = 5.0) -> tuple[set[str], int]:
    """The TXT strings at ``name`` and their TTL (-1 without any), asked of one server."""
    query = dns.message.make_query(_fqdn(name), dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    response = dns.query.tcp(query, host, port=port, timeout=timeout)
    values: set[str] = set()
    ttl = -1
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT and rrset.name == dns.name.from_text(_fqdn(name)):
            values.update(b"".join(rdata.strings).decode() for rdata in rrset)
            ttl = rrset.ttl
    return values, ttl


def server_version(host: str, port: int, *, timeout: float = 2.0) -> str:
    """What the server answers to ``version.bind CH TXT`` ("" when it says nothing)."""
    query = dns.message.make_query("version.bind.", dns.rdatatype.TXT, dns.rdataclass.CH)
    response = dns.query.udp(query, host, port=port, timeout=timeout)
    return " ".join(
        b"".join(rdata.strings).decode("utf-8", "replace")
        for rrset in response.answer
        for rdata in rrset
    )


def axfr_txt(host: str, port: int, zones: tuple[str, ...]) -> dict[str, set[str]]:
    """Every TXT record of ``zones`` by zone transfer, as ``{fqdn: values}``."""
    found: dict[str, set[str]] = {}
    for zone in zones:
        origin = dns.name.from_text(zone)
        transferred = dns.zone.Zone(origin)
        dns.query.inbound_xfr(host, transferred, port=port, timeout=5)
        for name, rdataset in transferred.iterate_rdatasets(dns.rdatatype.TXT):
            owner = name.derelativize(origin).to_text()
            found.setdefault(owner, set()).update(
                b"".join(rdata.strings).decode() for rdata in rdataset
            )
    return found


def tsig_update(
    host: str,
    port: int,
    zone: str,
    name: str,
    change: Change,
    *,
    key_name: str,
    secret: str,
    algorithm: str = "hmac-sha256",
) -> None:
    """One signed update of ``name`` in ``zone``; RuntimeError unless the server says NOERROR."""
    origin = dns.name.from_text(zone)
    key = dns.tsig.Key(key_name, secret, algorithm)
    update = dns.update.UpdateMessage(origin, keyring={key.name: key})
    change(update, dns.name.from_text(_fqdn(name)).relativize(origin))
    response = dns.query.tcp(update, host, port=port, timeout=5)
    if response.rcode() != dns.rcode.NOERROR:
        raise RuntimeError(f"update of {name} failed: {dns.rcode.to_text(response.rcode())}")


def in_zone(name: str, zone: str) -> bool:
    name = name.rstrip(".").lower()
    zone = zone.rstrip(".").lower()
    return name == zone or name.endswith("." + zone)


def zone_of(name: str, zones: tuple[str, ...]) -> str:
    """The longest of ``zones`` that holds ``name``; ValueError if none does."""
    zone = max((z for z in zones if in_zone(name, z)), key=len, default=None)
    if zone is None:
        raise ValueError(f"{name} is in none of the zones {list(zones)}")
    return zone


def terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a server process and wait for it (killed after 10 s)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
