"""HTTP-01 solvers (RFC 8555 §8.3): a standalone server and a webroot writer."""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from ..challenges import ChallengeTask, SolverOption
from ..errors import InvalidInput, SolverError
from ..text import printable

__all__ = ["ACME_CHALLENGE_PATH", "StandaloneSolver", "WebrootSolver", "check_token"]

log = logging.getLogger(__name__)

ACME_CHALLENGE_PATH = "/.well-known/acme-challenge/"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def check_token(token: str) -> str:
    """A token is pure base64url (RFC 8555 §8.3); anything else could name another path."""
    if not _TOKEN_RE.fullmatch(token):
        raise SolverError(f"the CA sent a token that is not base64url: {token[:40]!r}")
    return token


class _Handler(BaseHTTPRequestHandler):
    server: _ChallengeServer
    server_version = "acmelite"
    sys_version = ""
    timeout = 10  # a slow client cannot hold a handler thread for ever

    def do_GET(self) -> None:
        body = None
        if self.path.startswith(ACME_CHALLENGE_PATH):
            token = self.path[len(ACME_CHALLENGE_PATH) :]
            with self.server.fetched_changed:
                body = self.server.answers.get(token)
                if body is not None:
                    self.server.fetched[token] = self.server.fetched.get(token, 0) + 1
                    self.server.fetched_changed.notify_all()
        if body is None:
            self._reply(404, b"not found\n")
        else:
            self._reply(200, body.encode("ascii"))

    def do_HEAD(self) -> None:
        self.do_GET()

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Anyone can send us a request line: no escape sequences for the operator's terminal.
        text = printable(format % args)
        log.debug("http-01 server: %s", text)


class _ChallengeServer(ThreadingHTTPServer):
    """The threaded server, hardened for the open Internet.

    Theory of operation: anyone may connect while a certificate is issued (scanners do, and
    reset half-way). So every connection gets ``connection_deadline`` seconds in all —
    :meth:`service_actions`, run by ``serve_forever`` between polls, shuts down the sockets
    past theirs, which wakes their threads at once — and at most ``max_connections`` are
    open: one more pushes out the oldest, so slow clients cannot lock the CA out. A broken
    connection is one DEBUG line, never a traceback.
    """

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        *,
        ipv6: bool,
        max_connections: int = 64,
        connection_deadline: float = 10.0,
    ) -> None:
        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        self.answers: dict[str, str] = {}
        self.lock = threading.Lock()
        #: How often the CA fetched each token; ``fetched_changed`` (on ``lock``) wakes
        #: the waiters of :meth:`StandaloneSolver.wait_fetched`.
        self.fetched: dict[str, int] = {}
        self.fetched_changed = threading.Condition(self.lock)
        self.max_connections = max_connections
        self.connection_deadline = connection_deadline
        #: Open connections and when each must end (``inf`` once it was shut down).
        self._open: dict[socket.socket, float] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        assert isinstance(request, socket.socket)  # noqa: S101 - a stream server
        with self._open_lock:
            live = [s for s, end in self._open.items() if end != math.inf]
            if len(live) >= self.max_connections:
                oldest = min(live, key=self._open.__getitem__)
                self._open[oldest] = math.inf
                _drop(oldest)
                log.debug("http-01 server: %d connections open; dropped the oldest", len(live))
            self._open[request] = time.monotonic() + self.connection_deadline
        super().process_request(request, client_address)

    def process_request_thread(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.pop(request, None)  # type: ignore[arg-type]

    def service_actions(self) -> None:
        super().service_actions()
        now = time.monotonic()
        with self._open_lock:
            late = [s for s, end in self._open.items() if end <= now]
            for sock in late:
                self._open[sock] = math.inf
        for sock in late:
            _drop(sock)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        exc = sys.exc_info()[1]
        what = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
        log.debug(
            "http-01 server: connection from %s failed: %s",
            _peer(client_address),
            printable(what),
        )

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            _drop(sock)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


class StandaloneSolver:
    """Serves ``/.well-known/acme-challenge/<token>`` from a small threaded HTTP server.

    The server starts in :meth:`perform` and stops in :meth:`cleanup`; it answers only the
    tokens in flight and 404 for everything else. It is open to the Internet while it runs,
    so each connection has ``connection_deadline`` seconds in all, at most
    ``max_connections`` are served at once, and a broken connection is one DEBUG line.
    ``address`` ``""`` listens on all addresses (IPv6 and IPv4 where the system allows).

    One solver can serve several orders at once (``AcmeClient.issue_many``): each
    :meth:`cleanup` withdraws only its own tasks' answers, and the server stops when the
    last answer is gone. It sees the CA fetch each answer, so the client can poll the
    order right after the last fetch (:class:`~acmelite.challenges.ValidationWatcher`).
    """

    challenge_type: ClassVar[str] = "http-01"
    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(name="port", help="TCP port to listen on", default="80"),
        SolverOption(name="address", help="address to listen on (default: all)", default=""),
    )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> StandaloneSolver:
        """Build from the string options of :attr:`options` (see the registry)."""
        text = options.get("port", "80")
        if not text.isdigit():
            raise InvalidInput(f"option port={text!r} is not a TCP port")
        return cls(port=int(text), address=options.get("address", ""))

    def __init__(
        self,
        port: int = 80,
        address: str = "",
        *,
        max_connections: int = 64,
        connection_deadline: float = 10.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise InvalidInput(f"port {port} is not a TCP port (0-65535)")
        if max_connections < 1 or not connection_deadline > 0:
            raise InvalidInput("max_connections must be >= 1 and connection_deadline > 0")
        self.port = port
        self.address = address
        #: Connections served at once (one more pushes out the oldest), and the seconds
        #: each may last in all: a stranger cannot hold the server's threads.
        self.max_connections = max_connections
        self.connection_deadline = connection_deadline
        self._server: _ChallengeServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful with ``port=0``)."""
        if self._server is None:
            return self.port
        return int(self._server.server_address[1])

    def prepare(self) -> None:
        """Bind the port now (before any request); the server answers 404 until
        :meth:`perform`. Raises :class:`InvalidInput` for a busy or privileged port."""
        with self._lifecycle:
            self.start()

    def release(self) -> None:
        """Stop the server unless answers of an order are still in flight."""
        self.cleanup(())

    def start(self) -> None:
        if self._server is not None:
            return
        ipv6 = (self.address == "" and socket.has_ipv6) or ":" in self.address
        host = ("::" if ipv6 else "0.0.0.0") if self.address == "" else self.address  # noqa: S104
        try:
            server = self._server_for(host, ipv6=ipv6)
        except OSError as exc:
            if self.address == "" and ipv6 and exc.errno == errno.EAFNOSUPPORT:
                server = self._server_for("0.0.0.0", ipv6=False)  # noqa: S104
            elif exc.errno == errno.EADDRINUSE:
                raise InvalidInput(
                    f"port {self.port} on {self.address or 'all addresses'} is already in use",
                    code="port-in-use",
                ) from None
            elif exc.errno == errno.EACCES:
                raise InvalidInput(
                    f"no permission to listen on port {self.port}", code="port-denied"
                ) from None
            else:
                raise InvalidInput(
                    f"cannot listen on {host} port {self.port}: {exc.strerror}"
                ) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="acmelite-http01",
            daemon=True,
        )
        self._thread.start()
        log.debug("http-01 server listening on %s port %d", host, self.bound_port)

    def _server_for(self, host: str, *, ipv6: bool) -> _ChallengeServer:
        return _ChallengeServer(
            (host, self.port),
            ipv6=ipv6,
            max_connections=self.max_connections,
            connection_deadline=self.connection_deadline,
        )

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        answers = {check_token(t.token): t.key_authorization for t in tasks}
        with self._lifecycle:
            self.start()
            assert self._server is not None  # noqa: S101 - start() sets it
            with self._server.lock:
                self._server.answers.update(answers)

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        with self._lifecycle:
            server = self._server
            if server is None:
                return
            with server.lock:
                for task in tasks:
                    server.answers.pop(task.token, None)
                    server.fetched.pop(task.token, None)
                if server.answers:
                    return  # another order is still being validated
            self._server = None
            self._stop(server)

    def wait_fetched(self, tasks: Sequence[ChallengeTask], seen: int, timeout: float) -> int:
        """How often the CA has fetched the answers of ``tasks``, once that is more than
        ``seen`` and every answer was fetched at least once; ``seen`` after ``timeout`` s."""
        server = self._server
        if server is None:
            return seen
        tokens = [t.token for t in tasks]

        def count() -> int:
            counts = [server.fetched.get(token, 0) for token in tokens]
            return sum(counts) if all(counts) else 0

        with server.fetched_changed:
            if server.fetched_changed.wait_for(lambda: count() > seen, timeout):
                return count()
        return seen

    def _stop(self, server: _ChallengeServer) -> None:
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None


class WebrootSolver:
    """Writes ``<webroot>/.well-known/acme-challenge/<token>`` for a running web server.

    Below the webroot nothing is followed: each directory is opened relative to its parent
    with ``O_DIRECTORY | O_NOFOLLOW`` and the token file with ``O_NOFOLLOW``, so a link that
    another local user planted (``.well-known/acme-challenge -> /etc/sudoers.d``) is refused
    instead of making a run as root write through it. Files are 0644 and the directories it
    creates 0755, whatever the umask, so a web server running as another user can serve them.

    Safe to share between concurrent orders: :meth:`cleanup` removes only its own tasks'
    files, and the directories it made once no file of its own is left.
    """

    challenge_type: ClassVar[str] = "http-01"
    #: The directories below the webroot that hold the answers (RFC 8555 §8.3).
    PARTS: ClassVar[tuple[str, ...]] = (".well-known", "acme-challenge")
    FILE_MODE: ClassVar[int] = 0o644
    DIR_MODE: ClassVar[int] = 0o755
    options: ClassVar[tuple[SolverOption, ...]] = (
        SolverOption(
            name="path",
            help="the web server's document root; files go to PATH/.well-known/acme-challenge/",
            required=True,
            path=True,
        ),
    )

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> WebrootSolver:
        """Build from the string options of :attr:`options` (see the registry)."""
        path = options["path"]
        if not os.path.isdir(path):
            raise InvalidInput(f"the webroot {path} is not a directory")
        return cls(path)

    def prepare(self) -> None:
        """Check, before any request, that the webroot is a directory this process may
        write (:class:`InvalidInput` if not)."""
        if not self.webroot.is_dir():
            raise InvalidInput(f"the webroot {self.webroot} is not a directory")
        if not os.access(self.webroot, os.W_OK | os.X_OK):
            raise InvalidInput(f"the webroot {self.webroot} is not writable by this user")

    def release(self) -> None:
        """Nothing to give back: :meth:`cleanup` removed the files."""

    def __init__(self, webroot: str | os.PathLike[str]) -> None:
        self.webroot = Path(webroot)
        self._written: dict[str, Path] = {}
        self._made_dirs: list[str] = []
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        return self.webroot.joinpath(*self.PARTS)

    def perform(self, tasks: Sequence[ChallengeTask]) -> None:
        with self._lock:
            self._perform(tasks)

    def _perform(self, tasks: Sequence[ChallengeTask]) -> None:
        tokens = [check_token(t.token) for t in tasks]
        fd = self._open_directory(create=True)
        try:
            for task, token in zip(tasks, tokens, strict=True):
                path = self.directory / token
                try:
                    self._write(fd, token, task.key_authorization.encode("ascii"))
                except OSError as exc:
                    why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
                    raise SolverError(
                        f"cannot write {path}: {why}", identifiers=[task.name]
                    ) from None
                self._written[task.token] = path
        finally:
            os.close(fd)

    def _write(self, directory_fd: int, name: str, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(name, flags, self.FILE_MODE, dir_fd=directory_fd)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, self.FILE_MODE)  # umask 077 must not hide it from the web server
            handle.write(data)

    def _open_directory(self, *, create: bool) -> int:
        """A descriptor of the challenge directory, walked down from the webroot link-free."""
        try:
            fd = os.open(self.webroot, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            raise InvalidInput(f"the webroot {self.webroot} is not a directory") from None
        here = self.webroot
        for part in self.PARTS:
            here = here / part
            try:
                if create:
                    self._make(fd, part, here)
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(here):
                    raise SolverError(
                        f"{here} is a symbolic link: refusing to write challenge files through"
                        f" it; point the webroot at a directory without links below it"
                    ) from None
                if exc.errno == errno.ENOTDIR:
                    raise SolverError(f"{here} is not a directory") from None
                raise SolverError(f"cannot open {here}: {exc.strerror}") from None
            os.close(fd)
            fd = child
        return fd

    def _make(self, parent_fd: int, name: str, path: Path) -> None:
        try:
            os.mkdir(name, self.DIR_MODE, dir_fd=parent_fd)
        except FileExistsError:
            return
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
        try:
            os.fchmod(fd, self.DIR_MODE)
        finally:
            os.close(fd)
        self._made_dirs.append(str(path))

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        errors = []
        with self._lock:
            paths = [p for p in (self._written.pop(t.token, None) for t in tasks) if p]
            if paths:
                errors = self._remove([p.name for p in paths])
            if not self._written:
                self._remove_made_dirs()
        if errors:
            raise SolverError("cannot remove challenge files: " + "; ".join(errors))

    def _remove(self, names: Sequence[str]) -> list[str]:
        try:
            fd = self._open_directory(create=False)
        except (SolverError, InvalidInput) as exc:
            return [str(exc)]
        errors = []
        try:
            for name in names:
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    errors.append(f"{self.directory / name}: {exc.strerror}")
        finally:
            os.close(fd)
        return errors

    def _remove_made_dirs(self) -> None:
        """rmdir what :meth:`perform` created, innermost first, never through a link."""
        made, self._made_dirs = self._made_dirs, []
        for path in reversed(made):
            with contextlib.suppress(OSError):
                parent = os.open(
                    os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                )
                try:
                    os.rmdir(os.path.basename(path), dir_fd=parent)
                finally:
                    os.close(parent)
