"""One DNS question to one server, and a :class:`Lookup` that asks a list of servers.

Questions go over UDP and are repeated over TCP when the answer comes back truncated
(RFC 7766 §5). Authoritative servers are asked without recursion; lookups through a resolver
ask for it. Failures become :class:`DnsQueryError` with the server named, so callers can put
them into one-line messages.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from ..errors import DnsQueryError, InvalidInput

__all__ = ["Lookup", "Server", "ask", "parse_server", "resolve_address"]

#: The EDNS buffer size of the DNS flag day 2020: large answers fall back to TCP.
EDNS_PAYLOAD = 1232


@dataclass(frozen=True, slots=True)
class Server:
    """A DNS server: an address or host name and a port; ``label`` is its NS name, if any."""

    host: str
    port: int = 53
    label: str = ""

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.label} ({self.hostport})" if self.label else self.hostport


def parse_server(text: str, *, default_port: int = 53) -> Server:
    """Parse ``HOST``, ``HOST:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidInput(f"bad DNS server {text!r}: expected [IPv6]:PORT")
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    if not host or any(c.isspace() for c in host):
        raise InvalidInput(f"bad DNS server {text!r}: expected HOST[:PORT]")
    port = default_port
    if port_text or value.endswith(":"):
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidInput(f"bad DNS server {text!r}: the port must be 1-65535")
        port = int(port_text)
    return Server(host, port)


def resolve_address(host: str) -> str:
    """An IP address for ``host`` (which may already be one)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise DnsQueryError(f"cannot resolve DNS server name {host!r}: {exc}") from exc
    # Prefer IPv4: it works on every machine that has any network at all.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


def ask(
    server: Server,
    name: str,
    rdtype: dns.rdatatype.RdataType,
    *,
    recursion: bool,
    timeout: float,
) -> dns.message.Message:
    """Ask ``server`` one question; retry over TCP when the UDP answer is truncated."""
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
    if not recursion:
        query.flags &= ~dns.flags.RD
    what = f"{name} {dns.rdatatype.to_text(rdtype)}"
    try:
        address = resolve_address(server.host)
        response = dns.query.udp(query, address, port=server.port, timeout=timeout)
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(query, address, port=server.port, timeout=timeout)
    except dns.exception.Timeout as exc:
        raise DnsQueryError(f"{server} did not answer {what} within {timeout:g} s") from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DnsQueryError(f"{server} could not be asked {what}: {reason}") from exc
    except dns.exception.DNSException as exc:
        raise DnsQueryError(f"{server} sent a bad answer to {what}: {exc}") from exc
    return response


class Lookup:
    """Asks a list of servers in turn, with recursion desired.

    A server that fails, times out or answers REFUSED, SERVFAIL or NOTAUTH is skipped and the
    next one asked; NOERROR and NXDOMAIN are answers. With ``use_system`` the nameservers of
    the system's resolver configuration (``/etc/resolv.conf``) come after ``servers``.
    """

    def __init__(
        self, servers: Sequence[Server] = (), *, use_system: bool = False, timeout: float = 3.0
    ) -> None:
        self._servers = tuple(servers)
        self._use_system = use_system
        self.timeout = timeout

    @property
    def servers(self) -> tuple[Server, ...]:
        return self._servers + (system_nameservers() if self._use_system else ())

    def __repr__(self) -> str:
        names = ", ".join(str(s) for s in self._servers)
        system = " + system resolver" if self._use_system else ""
        return f"Lookup({names}{system})"

    def ask(self, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        servers = self.servers
        if not servers:
            raise DnsQueryError("no DNS server to ask: give a resolver (HOST:PORT)")
        failures: list[str] = []
        for server in servers:
            try:
                response = ask(server, name, rdtype, recursion=True, timeout=self.timeout)
            except DnsQueryError as exc:
                failures.append(str(exc))
                continue
            if response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return response
            failures.append(f"{server} answered {dns.rcode.to_text(response.rcode())}")
        raise DnsQueryError("; ".join(failures))


_system_lock = threading.Lock()
_system_cache: list[tuple[Server, ...]] = []


def system_nameservers() -> tuple[Server, ...]:
    """The nameservers of the system resolver configuration; empty when there is none."""
    with _system_lock:
        if not _system_cache:
            try:
                resolver = dns.resolver.Resolver()
            except (dns.exception.DNSException, OSError):
                _system_cache.append(())
            else:
                _system_cache.append(
                    tuple(
                        Server(ns, resolver.port)
                        for ns in resolver.nameservers
                        if isinstance(ns, str)
                    )
                )
        return _system_cache[0]
