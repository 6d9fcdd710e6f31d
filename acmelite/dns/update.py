"""Sending one signed dynamic update (RFC 2136, TSIG RFC 8945), and saying why it failed.

The same failure reads differently on each server, so the answer is read in full before
it is judged: its rcode, whether it is signed, and the TSIG error it carries. What the
three servers acmelite is tested against answer (the tests reproduce each case):

=================================  ==================  ==================  ==================
case                               BIND 9              Knot DNS 3          PowerDNS 4
=================================  ==================  ==================  ==================
wrong secret                       NOTAUTH + BADSIG    NOTAUTH + BADSIG    REFUSED, unsigned
unknown key name                   NOTAUTH + BADKEY    NOTAUTH + BADKEY    REFUSED, unsigned
key not allowed for the zone       REFUSED, signed     NOTAUTH + BADKEY    REFUSED, signed
updates off (``dnsupdate=no``)     —                   —                   REFUSED, signed
zone not served by the server      NOTAUTH, signed     NOTAUTH, unsigned   REFUSED, signed [1]
=================================  ==================  ==================  ==================

[1] NOTAUTH when ``allow-dnsupdate-from`` admits the client (the address is checked first).

So an error names what the answer *can* mean on the server that gave it; which server
that is comes from ``version.bind CH TXT``, asked only once something failed (a server
that hides its version gets the explanation for every kind). Errors name the server, the
zone and the key, never the secret; an unsigned answer is never taken as success.
"""

from __future__ import annotations

import socket
import time

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from ..errors import DnsQueryError, SolverError
from .query import Server, resolve_address

__all__ = ["send_update", "server_kind"]

_BIND, _KNOT, _POWERDNS = "BIND", "Knot DNS", "PowerDNS"


def server_kind(address: str, port: int, *, timeout: float = 1.0) -> str:
    """``"BIND"``, ``"Knot DNS"``, ``"PowerDNS"`` or "" — from ``version.bind CH TXT``."""
    query = dns.message.make_query("version.bind.", dns.rdatatype.TXT, dns.rdataclass.CH)
    try:
        response = dns.query.udp(query, address, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return ""
    text = " ".join(
        b"".join(rdata.strings).decode("utf-8", "replace")
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    )
    if "knot" in text.lower():
        return _KNOT
    if "powerdns" in text.lower():
        return _POWERDNS
    if "bind" in text.lower() or text[:2] == "9.":
        return _BIND
    return ""


def send_update(
    update: dns.update.UpdateMessage,
    server: Server,
    *,
    zone: str,
    key: dns.tsig.Key,
    algorithm: str,
    timeout: float,
) -> None:
    """Send ``update`` over TCP and return when the server applied it; else
    :class:`SolverError` with what the answer means on that server."""
    context = _Context(server=server, zone=zone.rstrip("."), key=key.name.to_text().rstrip("."),
                       algorithm=algorithm)  # fmt: skip
    try:
        address = resolve_address(server.host)
    except DnsQueryError as exc:
        raise SolverError(f"cannot send the update for zone {context.zone}: {exc}") from None
    response = _exchange(update, address, server.port, timeout, context)
    tsig_error = response.tsig[0].error if response.had_tsig and response.tsig else 0
    rcode = response.rcode()
    if response.had_tsig and tsig_error == 0:
        try:  # now check the answer's own signature
            dns.message.from_wire(response.wire or b"", keyring={key.name: key},
                                  request_mac=update.mac)  # fmt: skip
        except dns.tsig.BadTime:
            raise SolverError(
                f"{context.rejected}: the answer's TSIG time is off — the clocks differ too much"
            ) from None
        except dns.exception.DNSException:
            raise SolverError(
                f"the answer of DNS server {context.where} is signed with another secret than"
                f" {context.key_text}'s: check the secret"
            ) from None
        if rcode == dns.rcode.NOERROR:
            return
    kind = server_kind(address, server.port)
    if tsig_error:
        raise _tsig_error(tsig_error, kind, context)
    if not response.had_tsig:
        raise _unsigned(rcode, kind, context)
    raise _refusal(rcode, kind, context)


class _Context:
    def __init__(self, *, server: Server, zone: str, key: str, algorithm: str) -> None:
        self.server = server
        self.zone = zone
        self.key = key
        self.algorithm = algorithm

    @property
    def key_text(self) -> str:
        return f"TSIG key {self.key!r}"

    @property
    def where(self) -> str:
        return f"{self.server.hostport} for zone {self.zone}"

    @property
    def rejected(self) -> str:
        return f"{self.key_text} rejected by {self.where}"


def _exchange(
    update: dns.update.UpdateMessage, address: str, port: int, timeout: float, context: _Context
) -> dns.message.Message:
    """One TCP exchange; the answer parsed without checking its TSIG (checked after)."""
    expiration = time.time() + timeout
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((address, port))
            dns.query.send_tcp(sock, update, expiration)
            # keyring=False: parse whatever comes back; the TSIG is checked by the caller.
            unchecked: object = False
            response, _ = dns.query.receive_tcp(
                sock,
                expiration,
                keyring=unchecked,  # type: ignore[arg-type]
                request_mac=update.mac,
            )
    except (dns.exception.Timeout, TimeoutError):
        raise SolverError(
            f"DNS server {context.where} did not answer the update within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise SolverError(
            f"could not send the update to DNS server {context.where}: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
    except dns.exception.DNSException as exc:
        raise SolverError(
            f"bad answer from DNS server {context.where}: {type(exc).__name__}"
        ) from None
    if not update.is_response(response):
        raise SolverError(f"DNS server {context.where} answered another question")
    return response


def _tsig_error(error: int, kind: str, c: _Context) -> SolverError:
    """The server could not verify the request's TSIG (RFC 8945 §5.2)."""
    if error == dns.rcode.BADSIG:
        where = {
            _KNOT: f" (key id {c.key} in knot.conf)",
            _BIND: f' (key "{c.key}" in named.conf)',
        }.get(kind, "")
        return SolverError(f"{c.rejected}: BADSIG — check the secret{where}")
    if error == dns.rcode.BADKEY:
        if kind == _KNOT:
            return SolverError(
                f"{c.rejected}: BADKEY — Knot DNS answers this when it knows no key"
                f" {c.key!r} with algorithm {c.algorithm} and also when no ACL of the zone"
                f" lets this key update it: check knot.conf for the key and for an acl with"
                f" key: {c.key}, action: update (update-type: [TXT]) in zone {c.zone}'s acl list",
                code="dns-badkey",
            )
        also = "" if kind == _BIND else (
            f" (on Knot DNS also: no ACL of zone {c.zone} lets this key update it)"
        )  # fmt: skip
        return SolverError(
            f"{c.rejected}: BADKEY — the server does not know a key of this name and"
            f" algorithm ({c.algorithm}){also}",
            code="dns-badkey",
        )
    if error == dns.rcode.BADTIME:
        return SolverError(f"{c.rejected}: BADTIME — the clocks differ too much")
    return SolverError(f"{c.rejected}: TSIG error {dns.rcode.to_text(error)}")  # type: ignore[arg-type]


def _unsigned(rcode: dns.rcode.Rcode, kind: str, c: _Context) -> SolverError:
    """An answer without a TSIG record, to a signed request: never a success."""
    if rcode == dns.rcode.NOTAUTH:
        return _notauth(c)
    if rcode == dns.rcode.REFUSED:
        if kind == _POWERDNS:
            why = (
                f"PowerDNS answers so when it cannot verify the signature: it knows no key"
                f" {c.key!r} with algorithm {c.algorithm} (pdnsutil list-tsig-keys), or the"
                " secret differs"
            )
        else:
            why = (
                f"the server does not accept {c.key_text}: an unknown key name or algorithm"
                f" ({c.algorithm}), or a wrong secret"
            )
        return SolverError(
            f"server {c.server.hostport} refused the update for zone {c.zone} without signing"
            f" its answer: {why}",
            code="dns-unsigned-refusal",
        )
    what = dns.rcode.to_text(rcode)
    if rcode == dns.rcode.NOERROR:
        return SolverError(
            f"DNS server {c.where} answered the signed update without a signature; the update"
            " is not trusted to have been applied"
        )
    return SolverError(f"server {c.where} answered {what} to the update, without a signature")


def _refusal(rcode: dns.rcode.Rcode, kind: str, c: _Context) -> SolverError:
    """A signed answer that says no."""
    if rcode == dns.rcode.REFUSED:
        check = {
            _BIND: f"check update-policy: grant {c.key} zonesub TXT;",
            _POWERDNS: (
                f"PowerDNS answers so when it has no zone {c.zone}, when dnsupdate=yes is"
                " missing from pdns.conf, when the zone's TSIG-ALLOW-DNSUPDATE metadata does"
                f" not name the key (pdnsutil set-meta {c.zone} TSIG-ALLOW-DNSUPDATE {c.key}),"
                " or when neither allow-dnsupdate-from nor the zone's ALLOW-DNSUPDATE-FROM"
                " admits this address"
            ),
            _KNOT: f"check zone {c.zone}'s acl in knot.conf (action: update, key: {c.key})",
        }.get(
            kind,
            f"check the server's update rules — BIND: update-policy {{ grant {c.key} zonesub"
            " TXT; }; PowerDNS: dnsupdate=yes and the zone's TSIG-ALLOW-DNSUPDATE metadata;"
            " Knot DNS: the zone's update acl",
        )
        return SolverError(
            f"server {c.server.hostport} refused the update for zone {c.zone}: the"
            f" {c.key_text} may not update this name ({check})",
            code="dns-refused",
        )
    if rcode == dns.rcode.NOTAUTH:
        return _notauth(c)
    if rcode == dns.rcode.NOTIMP:
        return SolverError(
            f"server {c.where} does not take dynamic updates (NOTIMP): is it the zone's"
            " primary (PowerDNS: dnsupdate=yes)?"
        )
    if rcode == dns.rcode.FORMERR:
        return SolverError(
            f"server {c.where} could not parse the update (FORMERR): it may not support"
            " RFC 2136 updates, or not for this zone"
        )
    if rcode == dns.rcode.SERVFAIL:
        return SolverError(
            f"server {c.where} failed to apply the update (SERVFAIL): its log says why (a"
            " journal or database it cannot write, a zone not loaded)"
        )
    return SolverError(f"server {c.where} answered {dns.rcode.to_text(rcode)} to the update")


def _notauth(c: _Context) -> SolverError:
    return SolverError(
        f"server {c.server.hostport} is not authoritative for zone {c.zone} (NOTAUTH)",
        code="dns-notauth",
    )
