"""A DNS relay on ``ADDRESS:53`` to a test DNS server on another port (UDP and TCP).

A stub resolver (``/etc/resolv.conf``, which Caddy and other Go or C programs read) knows
only port 53, and BIND listens only on addresses an interface has, while Linux lets any
process bind any ``127.x.y.z``. So a test that must make a program resolve through its own
BIND starts one on a free port and relays a loopback address of its own to it::

    with BindServer() as bind, DnsRelay("127.53.0.7", bind.host, bind.port):
        ...  # nameserver 127.53.0.7 in a private resolv.conf

Each query is forwarded as it came and the answer returned unchanged; binding port 53
needs root.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
from types import TracebackType

__all__ = ["DnsRelay"]

_UPSTREAM_TIMEOUT = 5.0


class DnsRelay:
    """Relay UDP and TCP DNS from ``listen:port`` to ``upstream_host:upstream_port``."""

    def __init__(
        self, listen: str, upstream_host: str, upstream_port: int, *, port: int = 53
    ) -> None:
        self.listen = listen
        self.port = port
        self.upstream = (upstream_host, upstream_port)
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        return f"{self.listen}:{self.port}"

    def start(self) -> DnsRelay:
        if self._servers:
            return self
        relay = self
        try:
            for kind in (_UdpServer, _TcpServer):
                server = kind((self.listen, self.port), relay)
                self._servers.append(server)
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"acmelite-dns-relay-{kind.__name__}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> DnsRelay:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def ask_udp(self, query: bytes) -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(_UPSTREAM_TIMEOUT)
            sock.sendto(query, self.upstream)
            answer, _ = sock.recvfrom(65535)
            return answer

    def ask_tcp(self, query: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=_UPSTREAM_TIMEOUT) as sock:
            sock.sendall(struct.pack("!H", len(query)) + query)
            return _read_message(sock)


def _read_message(sock: socket.socket) -> bytes:
    """One length-prefixed DNS message from a TCP stream (RFC 1035 §4.2.2)."""
    (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    return _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the DNS connection closed mid-message")
        data += chunk
    return data


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        query, sock = self.request
        with contextlib.suppress(OSError):
            sock.sendto(self.server.relay.ask_udp(query), self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(_UPSTREAM_TIMEOUT)
        with contextlib.suppress(OSError, ConnectionError, struct.error):
            while True:
                answer = self.server.relay.ask_tcp(_read_message(conn))
                conn.sendall(struct.pack("!H", len(answer)) + answer)


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], relay: DnsRelay) -> None:
        self.relay = relay
        super().__init__(address, _UdpHandler)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], relay: DnsRelay) -> None:
        self.relay = relay
        super().__init__(address, _TcpHandler)
