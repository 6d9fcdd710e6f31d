"""The TLS-ALPN-01 solver (RFC 8737; RFC 8738 §6 for IP addresses): a standalone TLS server.

The CA connects to port 443 of the name, offers the ALPN protocol ``acme-tls/1`` and the
name as SNI (for an IP address, its reverse-DNS name: ``1.2.0.192.in-addr.arpa``), and
expects a self-signed certificate for exactly that identifier with the critical
``acmeIdentifier`` extension (``id-pe 31``) holding SHA-256 of the key authorization.

Theory of operation — one connection:

1. the ClientHello is *peeked* from the socket (not consumed) and its SNI and ALPN read;
2. a hello that does not offer ``acme-tls/1``, or names no task in flight, gets a fatal TLS
   alert (``no_application_protocol``, ``unrecognized_name``) and nothing else: the
   validation certificate is never shown to a client that did not ask for it (§6);
3. otherwise the handshake runs with that task's certificate, TLS 1.2 or later, and the
   connection is closed as soon as it completes (nothing else is ever spoken).

The listener is bound by :meth:`TlsAlpnSolver.prepare`, before the first request (a busy
port is an error before an account or order exists), and closed once the last order it
served is released. Handshakes run on their own threads, at most ``max_connections`` at once, each
bounded by ``handshake_timeout``. :mod:`acmelite.solvers.alpn` builds the certificate (also
for a solver that hands it to a server of yours) and reads the ClientHello.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import ec

from ..challenges import ChallengeTask, SolverOption
from ..errors import InvalidInput, SolverError
from .alpn import ACME_TLS_ALPN, parse_client_hello, sni_name, validation_certificate

__all__ = ["TlsAlpnSolver"]

log = logging.getLogger(__name__)

_MAX_RECORD = 5 + 2**14
_ALERT_UNRECOGNIZED_NAME = 112
_ALERT_NO_APPLICATION_PROTOCOL = 120


@dataclass(slots=True)
class _Answer:
    task: ChallengeTask
    context: ssl.SSLContext
    fetched: int = 0


class TlsAlpnSolver:
    """Answers tls-alpn-01 from a TLS server of its own on ``port`` (default 443).

    ``address`` ``""`` listens on all addresses (IPv6 and IPv4 where the system allows).
    One solver can serve several orders at once: each :meth:`cleanup` withdraws only its
    own names, and the listener closes when no order holds it any more. Two orders for the
    same name at the same time cannot share it (the SNI is the only key): the later wins.
    """

    challenge_type: ClassVar[str] = "tls-alpn-01"
    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(name="port", help="TCP port to listen on", default="443"),
        SolverOption(name="address", help="address to listen on (default: all)", default=""),
    )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> TlsAlpnSolver:
        """Build from the string options of :attr:`options` (see the registry)."""
        text = options.get("port", "443")
        if not text.isdigit():
            raise InvalidInput(f"option port={text!r} is not a TCP port")
        return cls(port=int(text), address=options.get("address", ""))

    def __init__(
        self,
        port: int = 443,
        address: str = "",
        *,
        handshake_timeout: float = 10.0,
        max_connections: int = 32,
    ) -> None:
        if not 0 <= port <= 65535:
            raise InvalidInput(f"port {port} is not a TCP port (0-65535)")
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise InvalidInput(f"the address {address!r} is not an IP address") from None
        self.port = port
        self.address = address
        self.handshake_timeout = handshake_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._answers: dict[str, _Answer] = {}
        self._lock = threading.Lock()
        self._fetched = threading.Condition(self._lock)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # one per listener: a restart gets a new one
        self._users = 0

    def __repr__(self) -> str:
        return f"TlsAlpnSolver(port={self.port}, address={self.address!r})"

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful with ``port=0``)."""
        with self._lock:
            listener = self._listener
        return self.port if listener is None else int(listener.getsockname()[1])

    # -- the PreparedSolver hooks: bind before the first request, close at the end --------

    def prepare(self) -> None:
        """Bind the listener now, before any request (:class:`InvalidInput` for a busy or
        privileged port); it answers nothing until :meth:`perform`. Each ``prepare`` holds
        the listener until its ``release``."""
        with self._lock:
            self._users += 1
        try:
            self.start()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give back one :meth:`prepare`; the listener closes when no order holds it."""
        with self._lock:
            self._users = max(0, self._users - 1)
        self._stop_if_idle()

    # -- the Solver protocol --------------------------------------------------------------

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        answers = {}
        with tempfile.TemporaryDirectory(prefix="acmelite-tls-alpn-") as scratch:
            for task in tasks:
                if task.challenge.type != self.challenge_type:
                    raise InvalidInput(
                        f"TlsAlpnSolver answers tls-alpn-01, not {task.challenge.type}"
                        f" ({task.name})"
                    )
                answers[sni_name(task.identifier)] = _Answer(task, self._context(task, scratch))
        self.start()
        with self._lock:
            self._answers.update(answers)
        log.info("tls-alpn-01 server on port %d answers %s", self.bound_port, ", ".join(answers))

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        with self._lock:
            for task in tasks:
                name = sni_name(task.identifier)
                answer = self._answers.get(name)
                if answer is not None and answer.task.token == task.token:
                    del self._answers[name]
        self._stop_if_idle()

    def wait_fetched(self, tasks: Sequence[ChallengeTask], seen: int, timeout: float) -> int:
        """How many validation handshakes of ``tasks`` completed, once that is more than
        ``seen`` and each task had one; ``seen`` after ``timeout`` s (ValidationWatcher)."""
        tokens = {t.token for t in tasks}

        def count() -> int:
            counts = [a.fetched for a in self._answers.values() if a.task.token in tokens]
            return sum(counts) if len(counts) == len(tokens) and all(counts) else 0

        with self._fetched:
            if self._fetched.wait_for(lambda: count() > seen, timeout):
                return count()
        return seen

    # -- the server -----------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve (once); :class:`InvalidInput` for a port that cannot be had."""
        with self._lock:
            if self._listener is not None:
                return
            self._listener = self._bind()
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._accept_loop, args=(self._listener, self._stopping),
                name="acmelite-tls-alpn", daemon=True,
            )  # fmt: skip
            self._thread.start()
        log.debug("tls-alpn-01 server listening on port %d", self.bound_port)

    def _bind(self) -> socket.socket:
        where = self.address or "all addresses"
        ipv6 = (self.address == "" and socket.has_ipv6) or ":" in self.address
        try:
            return self._listen(ipv6)
        except OSError as exc:
            if self.address == "" and ipv6 and exc.errno == errno.EAFNOSUPPORT:
                with contextlib.suppress(OSError):
                    return self._listen(False)
            if exc.errno == errno.EADDRINUSE:
                raise InvalidInput(
                    f"tls-alpn-01: port {self.port} on {where} is already in use",
                    code="tls-port-in-use",
                ) from None
            if exc.errno == errno.EACCES:
                raise InvalidInput(
                    f"tls-alpn-01: no permission to listen on port {self.port}",
                    code="tls-port-denied",
                ) from None
            raise InvalidInput(
                f"tls-alpn-01: cannot listen on {where} port {self.port}: {exc.strerror}"
            ) from None

    def _listen(self, ipv6: bool) -> socket.socket:
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        host = self.address or ("::" if ipv6 else "0.0.0.0")  # noqa: S104 - the default is all
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if ipv6 and not self.address:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, self.port))
            sock.listen(64)
            sock.settimeout(0.05)
        except BaseException:
            sock.close()
            raise
        return sock

    def _stop_if_idle(self) -> None:
        with self._lock:
            if self._listener is None or self._answers or self._users:
                return
            listener, thread = self._listener, self._thread
            self._listener, self._thread = None, None
            self._stopping.set()
        if thread is not None:
            thread.join(timeout=5)
        listener.close()
        log.debug("tls-alpn-01 server stopped")

    def _accept_loop(self, listener: socket.socket, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            if not self._slots.acquire(blocking=False):
                log.debug("tls-alpn-01: too many connections; dropping %s", peer)
                conn.close()
                continue
            threading.Thread(
                target=self._handle, args=(conn,), name="acmelite-tls-alpn-conn", daemon=True
            ).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            deadline = time.monotonic() + self.handshake_timeout
            conn.settimeout(self.handshake_timeout)
            hello = parse_client_hello(_peek_record(conn, deadline))
            if ACME_TLS_ALPN not in hello.protocols:
                log.debug("tls-alpn-01: refused a handshake without %s", ACME_TLS_ALPN)
                _alert(conn, _ALERT_NO_APPLICATION_PROTOCOL)
                return
            with self._lock:
                answer = self._answers.get(hello.server_name)
            if answer is None:
                log.debug("tls-alpn-01: refused SNI %r (no task in flight)", hello.server_name)
                _alert(conn, _ALERT_UNRECOGNIZED_NAME)
                return
            with answer.context.wrap_socket(conn, server_side=True) as tls:
                if tls.selected_alpn_protocol() != ACME_TLS_ALPN:
                    return
                with self._fetched:
                    answer.fetched += 1
                    self._fetched.notify_all()
                log.debug("tls-alpn-01: validation handshake for %s", hello.server_name)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.debug("tls-alpn-01: connection dropped: %s", exc)
        finally:
            conn.close()
            self._slots.release()

    def _context(self, task: ChallengeTask, scratch: str) -> ssl.SSLContext:
        cert_pem, key_pem = validation_certificate(task, self._key)
        base = Path(scratch) / task.token
        cert_path, key_path = base.with_suffix(".crt"), base.with_suffix(".key")
        cert_path.write_bytes(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols([ACME_TLS_ALPN])
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise SolverError(f"tls-alpn-01: cannot load the validation certificate: {exc}",
                              identifiers=[task.name]) from None  # fmt: skip
        return context


def _peek_record(conn: socket.socket, deadline: float) -> bytes:
    """The first TLS record, read with MSG_PEEK so the handshake still sees it."""
    need = 5
    while True:
        data = conn.recv(_MAX_RECORD, socket.MSG_PEEK)
        if not data:
            raise ValueError("closed before a ClientHello")
        if len(data) >= 5:
            need = 5 + int.from_bytes(data[3:5], "big")
            if need > _MAX_RECORD:
                raise ValueError("oversized TLS record")
        if len(data) >= need:
            return data[:need]
        if time.monotonic() > deadline:
            raise ValueError("the ClientHello did not arrive in time")
        time.sleep(0.005)


def _alert(conn: socket.socket, description: int) -> None:
    """A fatal TLS alert record (RFC 8446 §6), best effort."""
    with contextlib.suppress(OSError):
        conn.sendall(bytes([21, 3, 3, 0, 2, 2, description]))
