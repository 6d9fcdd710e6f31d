"""Where a TXT record lives: CNAME chains, zone cuts and a zone's nameservers.

* :func:`follow_cname` — ``_acme-challenge.<name>`` may be a CNAME to a zone the user can
  update (acme-dns style delegation, RFC 8555 §8.4 allows it: the CA follows it too);
* :func:`find_zone` — the zone that holds a name: ask for its SOA, and walk up one label at a
  time until an answer (or the SOA in a negative answer's authority section) names the zone;
* :func:`nameservers` — the zone's NS set and their addresses (glue first).

Names are absolute, lower-case text with the trailing dot (``_acme-challenge.example.test.``).
Every CNAME target must be a host name (:func:`check_hostname`): a DNS answer is not trusted
to be one, and the name ends up in a hook's argv and environment.
"""

from __future__ import annotations

import re

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset

from ..errors import DnsQueryError
from .query import Lookup, Server

__all__ = [
    "MAX_CNAME_HOPS",
    "absolute",
    "check_hostname",
    "find_zone",
    "follow_cname",
    "in_zone",
    "nameservers",
]

MAX_CNAME_HOPS = 8
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)
_SERVICE_LABEL = re.compile(r"_[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


def check_hostname(name: str, *, wildcard: bool = False) -> str | None:
    """Why ``name`` is not an LDH host name, or None when it is one.

    RFC 952/1123 host names: labels of letters, digits and hyphens (not at either end), at
    most 63 characters, 253 in all, the trailing dot optional. Leading labels may start with
    ``_`` (``_acme-challenge``, RFC 8552); with ``wildcard``, the first label may be ``*``.
    A-labels (``xn--...``) are LDH; a name with a backslash escape, a quote, a backtick or a
    space never is.
    """
    text = name[:-1] if name.endswith(".") else name
    labels = text.split(".")
    if not text or len(text) > 253:
        return "not 1 to 253 characters long"
    if wildcard and labels[0] == "*":
        labels = labels[1:]
    leading = True
    for label in labels:
        if leading and _SERVICE_LABEL.fullmatch(label):
            continue
        leading = False
        if not _LDH_LABEL.fullmatch(label):
            return f"the label {label!r} is not letters, digits and inner hyphens"
    return None


def absolute(name: str) -> str:
    """``name`` as absolute lower-case text: ``Example.TEST`` -> ``example.test.``."""
    return dns.name.from_text(name).to_text().lower()


def in_zone(name: str, zone: str) -> bool:
    """Whether ``name`` is ``zone`` or below it."""
    return dns.name.from_text(name).is_subdomain(dns.name.from_text(zone))


def _rrsets(
    section: list[dns.rrset.RRset], rdtype: dns.rdatatype.RdataType
) -> list[dns.rrset.RRset]:
    return [rrset for rrset in section if rrset.rdtype == rdtype]


def follow_cname(lookup: Lookup, name: str, *, max_hops: int = MAX_CNAME_HOPS) -> str:
    """The end of the CNAME chain that starts at ``name`` (``name`` itself without one)."""
    current = absolute(name)
    seen = [current]
    for _ in range(max_hops + 1):
        response = lookup.ask(current, dns.rdatatype.CNAME)
        target = None
        for rrset in _rrsets(response.answer, dns.rdatatype.CNAME):
            if rrset.name == dns.name.from_text(current):
                target = rrset[0].target.to_text().lower()
        if target is None:
            return current
        why = check_hostname(target)
        if why is not None:
            raise DnsQueryError(
                f"{current} is a CNAME to {target!r}, which is not a host name: {why}"
            )
        if target in seen:
            raise DnsQueryError("CNAME loop: " + " -> ".join([*seen, target]))
        seen.append(target)
        current = target
    raise DnsQueryError(f"more than {max_hops} CNAMEs from {seen[0]}: " + " -> ".join(seen))


def find_zone(lookup: Lookup, name: str) -> str:
    """The apex of the zone that holds ``name``, found by walking up SOA queries."""
    candidate = dns.name.from_text(name)
    while True:
        response = lookup.ask(candidate.to_text(), dns.rdatatype.SOA)
        zone = _zone_in(response, candidate)
        if zone is not None:
            return zone.to_text().lower()
        if candidate == dns.name.root:
            raise DnsQueryError(f"no SOA record found at or above {absolute(name)}")
        candidate = candidate.parent()


def _zone_in(response: dns.message.Message, candidate: dns.name.Name) -> dns.name.Name | None:
    """The zone apex this answer reveals for ``candidate``, if it reveals one.

    An SOA owned by ``candidate`` in the answer makes it the apex; an SOA in the authority
    section of a negative answer names the enclosing zone; a referral (NS records in the
    authority section of a non-authoritative answer) marks a zone cut below the server's zone.
    """
    for rrset in _rrsets(response.answer, dns.rdatatype.SOA):
        if rrset.name == candidate:
            return candidate
    for rrset in _rrsets(response.authority, dns.rdatatype.SOA):
        if candidate.is_subdomain(rrset.name):
            return rrset.name
    if not response.flags & dns.flags.AA:
        for rrset in _rrsets(response.authority, dns.rdatatype.NS):
            if candidate.is_subdomain(rrset.name) and rrset.name != dns.name.root:
                return rrset.name
    return None


def nameservers(lookup: Lookup, zone: str, *, port: int = 53) -> list[Server]:
    """The zone's authoritative nameservers, one :class:`Server` per address.

    IPv4 addresses are used when a nameserver has any; IPv6 only for those that have none.
    """
    response = lookup.ask(zone, dns.rdatatype.NS)
    apex = dns.name.from_text(zone)
    names = sorted(
        {
            rdata.target.to_text().lower()
            for rrset in _rrsets(response.answer, dns.rdatatype.NS)
            if rrset.name == apex
            for rdata in rrset
        }
    )
    if not names:
        raise DnsQueryError(f"no NS records found for zone {absolute(zone)}")
    glue: dict[str, dict[dns.rdatatype.RdataType, list[str]]] = {}
    for rrset in response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            owner = rrset.name.to_text().lower()
            glue.setdefault(owner, {})[rrset.rdtype] = [rdata.address for rdata in rrset]
    servers: list[Server] = []
    failures: list[str] = []
    for ns in names:
        try:
            addresses = _addresses(lookup, ns, glue.get(ns, {}))
        except DnsQueryError as exc:
            failures.append(str(exc))
            continue
        label = ns.rstrip(".")
        servers.extend(Server(address, port, label) for address in addresses)
    if not servers:
        raise DnsQueryError(
            f"no address found for the nameservers of {absolute(zone)}: " + "; ".join(failures)
        )
    return servers


def _addresses(
    lookup: Lookup, ns: str, glue: dict[dns.rdatatype.RdataType, list[str]]
) -> list[str]:
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        if glue.get(rdtype):
            return glue[rdtype]
        response = lookup.ask(ns, rdtype)
        found = [rdata.address for rrset in _rrsets(response.answer, rdtype) for rdata in rrset]
        if found:
            return found
    raise DnsQueryError(f"nameserver {ns} has no A or AAAA record")
