"""Free loopback ports for servers started by tests.

The operating system picks the port (bind to port 0) so parallel test runs do not collide.
There is an unavoidable gap between closing our probe socket and the server binding the port;
callers that start servers retry with fresh ports when a bind fails (``PebbleServer`` does).
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from typing import Literal

__all__ = ["PortKind", "free_port", "free_ports"]

PortKind = Literal["tcp", "udp", "tcp+udp"]

_SOCKET_TYPES = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}
_DUAL_ATTEMPTS = 100


def free_port(kind: PortKind = "tcp", host: str = "127.0.0.1") -> int:
    """Return a port on ``host`` that is free for ``kind`` right now.

    ``"tcp+udp"`` finds a port free for both protocols, as a DNS server needs.
    """
    return free_ports(1, kind, host)[0]


def free_ports(count: int, kind: PortKind = "tcp", host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct ports on ``host`` that are free for ``kind`` right now.

    All probe sockets stay open until every port is chosen, so the ports are distinct.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count}")
    if kind not in ("tcp", "udp", "tcp+udp"):
        raise ValueError(f"kind must be 'tcp', 'udp' or 'tcp+udp', not {kind!r}")
    ports: list[int] = []
    with ExitStack() as held:
        while len(ports) < count:
            if kind == "tcp+udp":
                ports.append(_hold_dual(held, host))
            else:
                ports.append(_hold(held, _SOCKET_TYPES[kind], host, 0))
    return ports


def _hold(held: ExitStack, sock_type: int, host: str, port: int) -> int:
    """Bind ``sock_type`` to ``host:port``, keep the socket open in ``held``, return the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = held.enter_context(socket.socket(family, sock_type))
    sock.bind((host, port))
    bound: int = sock.getsockname()[1]
    return bound


def _hold_dual(held: ExitStack, host: str) -> int:
    """Find a port free for TCP that is also free for UDP; keep both probes open."""
    for _ in range(_DUAL_ATTEMPTS):
        port = _hold(held, socket.SOCK_STREAM, host, 0)
        try:
            return _hold(held, socket.SOCK_DGRAM, host, port)
        except OSError:
            continue  # the TCP probe stays held, so the next try gets another port
    raise OSError(f"no port on {host} free for both TCP and UDP after {_DUAL_ATTEMPTS} tries")
