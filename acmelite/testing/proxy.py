"""A fault-injecting, TLS-terminating reverse proxy to put between an ACME client and a CA.

``FaultProxy`` listens on 127.0.0.1 with its own throwaway CA, forwards every request to the
upstream CA (a Pebble, say) over HTTPS and hands back the answer, with the upstream's
``host:port`` rewritten to its own in bodies and headers, so a client that starts from
``proxy.directory_url`` never talks to the CA directly. Keep-alive towards the client works
as with a real CA (HTTP/1.1, one connection for many requests)::

    from acmelite.testing import PebbleServer
    from acmelite.testing.proxy import Fault, FaultProxy, On

    with PebbleServer() as pebble, FaultProxy(pebble.directory_url,
                                              upstream_ca_bundle=pebble.ca_bundle) as proxy:
        proxy.inject(Fault.error(503, retry_after=1, on=On(method="POST", kind="newOrder")))
        with proxy.inject(Fault.bad_nonce(on=On(method="POST", nth=3, every=3, times=None))):
            ...  # run the client against proxy.directory_url, verify with proxy.ca_bundle
        proxy.requests   # [(method, path, status), ...] for request budgets
        proxy.counts()   # Counter({("POST", "order"): 3, ...})

A :class:`Fault` says what to do and :class:`On` which requests it hits: a method, a
resource kind (see :func:`path_kind`) and/or a path regex, then "the ``nth`` match", "every
``every``-th match from there" and "at most ``times`` of them". Faults are tried in the order
they were injected; the first one that fires decides, and every matching fault counts the
request either way.

Fault kinds: an HTTP error (429/503 with ``Retry-After`` in seconds or as an HTTP-date, any
type and detail), a ``badNonce`` problem carrying a fresh nonce fetched from the CA (or none),
a connection reset before the response or in the middle of its body, a delay (past the
client's timeout), malformed JSON, an HTML page with any status, a wrong ``Content-Type``, a
truncated or garbage certificate PEM, a JSON patch of the CA's answer (a directory without
``newOrder``, an order stuck ``processing``, with headers such as ``Retry-After``), a made-up
JSON answer to a request the CA never sees (a challenge as another CA would answer it), a
regex rewrite of the CA's body and headers, headers set on any answer (a ``Link`` on a
certificate), a body dripped byte by byte, and a body padded to any size (chunked or not). A
delay or stall can be ended early with :meth:`Injection.release`, which crash tests use to
hold a client at an exact request while they kill it. Faults that spoil the CA's answer
(malformed, truncated, garbage, patched, rewritten, wrong type, cut mid-body, dripped,
padded) apply only to a successful one: an error the CA sent itself (Pebble's random
``badNonce``) passes
through, and the fault waits for the next match without counting a hit.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import re
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from acmelite.testing.pebble import _write_tls_files

__all__ = [
    "Exchange",
    "Fault",
    "FaultKind",
    "FaultProxy",
    "Injection",
    "On",
    "path_kind",
]

log = logging.getLogger(__name__)

FaultKind = Literal[
    "error",
    "bad-nonce",
    "reset",
    "reset-mid-body",
    "delay",
    "malformed-json",
    "html",
    "content-type",
    "truncated-pem",
    "garbage-pem",
    "patch-json",
    "respond",
    "rewrite",
    "headers",
    "drip",
    "oversize",
]

#: Pebble's resource paths by the RFC 8555 name of what they serve (first path segment).
_PEBBLE_KINDS = {
    "dir": "directory",
    "nonce-plz": "newNonce",
    "sign-me-up": "newAccount",
    "order-plz": "newOrder",
    "revoke-cert": "revokeCert",
    "rollover-account-key": "keyChange",
    "my-account": "account",
    "list-orderz": "orders",
    "my-order": "order",
    "authZ": "authz",
    "chalZ": "challenge",
    "finalize-order": "finalize",
    "certZ": "certificate",
    "renewal-info": "renewalInfo",
    "draft-ietf-acme-ari-03": "renewalInfo",
}
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_NO_BODY_STATUSES = frozenset({204, 304})
_GARBAGE_PEM = (
    b"-----BEGIN CERTIFICATE-----\nThis is not base64 at all!! @@@@\n-----END CERTIFICATE-----\n"
)
_HTML = (
    "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n"
    "<body><h1>{status} {reason}</h1><p>The proxy could not serve this request.</p>"
    "<hr><address>nginx</address></body></html>\n"
)
_UPSTREAM_TIMEOUT = 30.0
_IDLE_TIMEOUT = 60.0
_RST_GRACE = 0.05


def path_kind(path: str, learned: Mapping[str, str] | None = None) -> str:
    """What an ACME request path addresses: ``directory``, ``newNonce``, ``order``, ...

    ``learned`` maps exact paths to kinds (the proxy learns them from the directory); after
    that, Pebble's path prefixes are known; any other path is named by its first segment.
    """
    bare = path.split("?", 1)[0]
    if learned and bare in learned:
        return learned[bare]
    first = bare.lstrip("/").split("/", 1)[0]
    return _PEBBLE_KINDS.get(first, first)


class Exchange(NamedTuple):
    """One request as the proxy saw it; ``status`` is 0 when no status line was sent."""

    method: str
    path: str
    status: int

    @property
    def kind(self) -> str:
        return path_kind(self.path)


@dataclass(frozen=True, slots=True, kw_only=True)
class On:
    """Which requests a fault hits.

    A request *matches* when its method, kind and path (``re.search``) fit; the ``nth``
    match fires, then every ``every``-th match after it, up to ``times`` (``None``: no limit).
    """

    method: str | None = None
    kind: str | None = None
    path: str | None = None
    nth: int = 1
    every: int = 1
    times: int | None = 1

    def __post_init__(self) -> None:
        if self.nth < 1 or self.every < 1 or (self.times is not None and self.times < 1):
            raise ValueError("nth, every and times count from 1")
        if self.path is not None:
            re.compile(self.path)

    def matches(self, method: str, path: str, kind: str) -> bool:
        if self.method is not None and method.upper() != self.method.upper():
            return False
        if self.kind is not None and kind != self.kind:
            return False
        return self.path is None or re.search(self.path, path) is not None

    def fires(self, match_number: int, fired: int) -> bool:
        """Whether the ``match_number``-th matching request (1-based) is hit."""
        if match_number < self.nth or (match_number - self.nth) % self.every:
            return False
        return self.times is None or fired < self.times


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """What to do to a request. Build one with the class methods; ``on`` picks the requests."""

    kind: FaultKind
    on: On = field(default_factory=On)
    status: int = 0
    retry_after: float | None = None
    retry_after_date: bool = False
    problem_type: str = ""
    seconds: float = 0.0
    forward: bool = False
    content_type: str = ""
    keep: float = 0.5
    cut_after: bytes = b""
    set_fields: Mapping[str, object] = field(default_factory=dict)
    remove_fields: tuple[str, ...] = ()
    where: Mapping[str, object] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""
    fresh_nonce: bool = True
    drop_challenges: tuple[str, ...] = ()
    pattern: str = ""
    replacement: str = ""
    size: int = 0
    chunked: bool = False

    @classmethod
    def error(
        cls,
        status: int,
        *,
        retry_after: float | None = None,
        retry_after_date: bool = False,
        problem_type: str | None = None,
        content_type: str = "application/problem+json",
        detail: str = "",
        on: On | None = None,
    ) -> Fault:
        """Answer ``status`` with a problem document (``problem_type=""``: a plain-text body).

        ``retry_after`` seconds go out as delay-seconds, or with ``retry_after_date`` as an
        HTTP-date (RFC 9110 §10.2.3). The type defaults to ``rateLimited`` for 429 and
        ``serverInternal`` otherwise; ``content_type`` can mislabel the document, and
        ``detail`` replaces the made-up detail ("Too Many Requests (injected ...)").
        """
        if problem_type is None:
            short = "rateLimited" if status == 429 else "serverInternal"
            problem_type = f"urn:ietf:params:acme:error:{short}"
        return cls(
            kind="error",
            status=status,
            retry_after=retry_after,
            retry_after_date=retry_after_date,
            problem_type=problem_type,
            content_type=content_type,
            detail=detail,
            on=on or On(),
        )

    @classmethod
    def bad_nonce(cls, *, fresh_nonce: bool = True, on: On | None = None) -> Fault:
        """A ``badNonce`` problem (HTTP 400) with a fresh ``Replay-Nonce`` from the CA, or
        without any ``Replay-Nonce`` (``fresh_nonce=False``), as some CAs send it."""
        return cls(kind="bad-nonce", status=400, fresh_nonce=fresh_nonce, on=on or On())

    @classmethod
    def reset(cls, *, forward: bool = False, on: On | None = None) -> Fault:
        """Reset the connection (TCP RST) instead of answering.

        With ``forward`` the CA gets the request first, so it may have taken effect.
        """
        return cls(kind="reset", forward=forward, on=on or On())

    @classmethod
    def reset_mid_body(
        cls, *, keep: float = 0.5, stall: float = 0.0, on: On | None = None
    ) -> Fault:
        """Forward, send the status, headers and ``keep`` of the body, wait ``stall`` s, reset."""
        return cls(kind="reset-mid-body", keep=keep, seconds=stall, forward=True, on=on or On())

    @classmethod
    def delay(cls, seconds: float, *, forward: bool = True, on: On | None = None) -> Fault:
        """Hold the request ``seconds`` (until :meth:`Injection.release`), then go on.

        Without ``forward`` the connection is reset after the wait instead of answered.
        """
        return cls(kind="delay", seconds=seconds, forward=forward, on=on or On())

    @classmethod
    def malformed_json(cls, *, on: On | None = None) -> Fault:
        """The CA's answer cut in half, so the JSON never closes."""
        return cls(kind="malformed-json", forward=True, on=on or On())

    @classmethod
    def html(cls, status: int, *, on: On | None = None) -> Fault:
        """An HTML error page from "a proxy" with ``status`` (200 and 502 are the classics)."""
        return cls(kind="html", status=status, on=on or On())

    @classmethod
    def wrong_content_type(cls, content_type: str = "text/html", *, on: On | None = None) -> Fault:
        """The CA's answer unchanged, under another ``Content-Type``."""
        return cls(kind="content-type", content_type=content_type, forward=True, on=on or On())

    @classmethod
    def truncated_pem(cls, *, keep: float = 0.5, after: bytes = b"", on: On | None = None) -> Fault:
        """The CA's answer (a certificate chain) cut to its first ``keep`` fraction.

        With ``after``, cut just after the first occurrence of those bytes instead (for
        instance in the middle of the second ``-----BEGIN CERTIFICATE-----`` line).
        """
        return cls(kind="truncated-pem", keep=keep, cut_after=after, forward=True, on=on or On())

    @classmethod
    def garbage_pem(cls, *, on: On | None = None) -> Fault:
        """A PEM block whose content is not base64 DER, instead of the CA's answer."""
        return cls(kind="garbage-pem", forward=True, on=on or On())

    @classmethod
    def patch_json(
        cls,
        *,
        set_fields: Mapping[str, object] | None = None,
        remove_fields: Sequence[str] = (),
        where: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        drop_challenges: Sequence[str] = (),
        on: On | None = None,
    ) -> Fault:
        """Change top-level fields of the CA's JSON answer, if it has every ``where`` value.

        ``remove_fields=("newOrder",)`` on the directory; ``set_fields={"status":
        "processing"}, remove_fields=("certificate",), where={"status": "valid"}`` on orders
        keeps an order processing for ever. A ``where`` value that is a tuple matches any of
        its items (``{"status": ("ready", "invalid")}``). A request whose answer does not
        fit ``where`` is passed through and does not count as a hit. ``headers`` are set
        on the patched answer (``{"Retry-After": "30"}``); ``drop_challenges=
        ("dns-persist-01",)`` on authorizations plays a CA that does not offer that type.
        """
        return cls(
            kind="patch-json",
            set_fields=dict(set_fields or {}),
            remove_fields=tuple(remove_fields),
            where=dict(where or {}),
            headers=dict(headers or {}),
            drop_challenges=tuple(drop_challenges),
            forward=True,
            on=on or On(),
        )

    @classmethod
    def respond(
        cls,
        body: Mapping[str, object],
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        on: On | None = None,
    ) -> Fault:
        """Answer with this JSON ``body`` (and a fresh nonce) instead of asking the CA: the
        CA never sees the request, so a test can play a CA that Pebble is not (step-ca
        keeping a challenge ``pending`` with an error, say)."""
        return cls(
            kind="respond",
            status=status,
            set_fields=dict(body),
            headers=dict(headers or {}),
            content_type="application/json",
            on=on or On(),
        )

    @classmethod
    def rewrite(cls, pattern: str, replacement: str, *, on: On | None = None) -> Fault:
        """``re.sub(pattern, replacement)`` over the CA's body and each of its header values
        (a challenge URL moved to another host, say); an answer it does not change is passed
        through without counting a hit."""
        re.compile(pattern)
        return cls(
            kind="rewrite", pattern=pattern, replacement=replacement, forward=True, on=on or On()
        )

    @classmethod
    def with_headers(cls, headers: Mapping[str, str], *, on: On | None = None) -> Fault:
        """The CA's answer, JSON or not, with ``headers`` set (replacing any of the same
        name): a ``Link`` on a certificate chain, a ``Location`` elsewhere."""
        return cls(kind="headers", headers=dict(headers), forward=True, on=on or On())

    @classmethod
    def drip(cls, interval: float = 1.0, *, on: On | None = None) -> Fault:
        """The CA's answer with its body sent one byte every ``interval`` seconds (until
        :meth:`Injection.release`, which resets the connection instead)."""
        return cls(kind="drip", seconds=interval, forward=True, on=on or On())

    @classmethod
    def oversize(cls, size: int, *, chunked: bool = True, on: On | None = None) -> Fault:
        """The CA's answer followed by ``size`` spaces (still valid JSON), sent chunked (no
        ``Content-Length`` to warn the client) or with the true ``Content-Length``."""
        return cls(kind="oversize", size=size, chunked=chunked, forward=True, on=on or On())

    @property
    def label(self) -> str:
        """A short human name, e.g. ``error 503`` or ``reset-mid-body``."""
        return f"{self.kind} {self.status}" if self.kind in ("error", "html") else self.kind


class Injection:
    """A fault in place: how often it matched and fired; a context manager that removes it."""

    def __init__(self, proxy: FaultProxy, fault: Fault) -> None:
        self.fault = fault
        self.matched = 0
        self.hits = 0
        self._proxy = proxy
        self._hit = threading.Event()
        self._released = threading.Event()

    def wait_hit(self, timeout: float) -> bool:
        """Block until the fault fired once (True) or ``timeout`` passed (False)."""
        return self._hit.wait(timeout)

    def release(self) -> None:
        """End every current and future wait of this fault at once."""
        self._released.set()

    def remove(self) -> None:
        """Stop injecting (and release any request held now)."""
        self.release()
        self._proxy._remove(self)

    def __enter__(self) -> Injection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def _consider(self, method: str, path: str, kind: str) -> bool:
        if not self.fault.on.matches(method, path, kind):
            return False
        self.matched += 1
        return self.fault.on.fires(self.matched, self.hits)

    def _fired(self) -> None:
        self.hits += 1
        self._hit.set()

    def _wait(self, seconds: float) -> None:
        self._released.wait(seconds)

    def __repr__(self) -> str:
        return f"<Injection {self.fault.label} matched={self.matched} hits={self.hits}>"


@dataclass(slots=True)
class _Upstream:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class _Abort(Exception):
    """End this connection without a response (the proxy is closing)."""


class FaultProxy:
    """A TLS reverse proxy on 127.0.0.1 in front of the CA at ``upstream`` (its directory URL).

    ``upstream_ca_bundle`` verifies the CA's HTTPS; the proxy's own certificate (for
    127.0.0.1, localhost and ::1) is verified by :attr:`ca_bundle`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        upstream_ca_bundle: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"upstream must be an https:// directory URL, not {upstream!r}")
        self.upstream = upstream
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 443
        self._upstream_netloc = parts.netloc
        self._directory_path = parts.path or "/"
        self._upstream_ctx = ssl.create_default_context(cafile=upstream_ca_bundle)
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._injections: list[Injection] = []
        self._log: list[Exchange] = []
        self._connections = 0
        self._learned: dict[str, str] = {self._directory_path: "directory"}
        self._new_nonce_path = ""
        self._closing = threading.Event()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None
        self._ca_bundle = ""

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen (a free port unless one was given) and learn the CA's directory."""
        if self._server is not None:
            return self
        self._dir = Path(tempfile.mkdtemp(prefix="acmelite-proxy-"))
        ca, cert, key = _write_tls_files(self._dir)
        self._ca_bundle = str(ca)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._closing.clear()
        self._server = _ProxyServer((self._host, self._port), self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="acmelite-fault-proxy",
            daemon=True,
        )
        self._thread.start()
        try:
            self._learn_directory()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Release every stall, close every connection, stop listening. Idempotent."""
        self._closing.set()
        with self._lock:
            for injection in self._injections:
                injection.release()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_all()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a test uses ---------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not running")
        return int(self._server.server_address[1])

    @property
    def netloc(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``."""
        return f"https://{self.netloc}"

    @property
    def directory_url(self) -> str:
        """The CA's directory URL, through the proxy."""
        return self.url + self._directory_path

    @property
    def ca_bundle(self) -> str:
        """PEM file of the proxy's own CA: what a client must trust to talk to it."""
        if not self._ca_bundle:
            raise RuntimeError("the proxy is not running")
        return self._ca_bundle

    def inject(self, fault: Fault) -> Injection:
        """Put ``fault`` in place until removed (``with proxy.inject(...)`` removes it)."""
        injection = Injection(self, fault)
        with self._lock:
            self._injections.append(injection)
        return injection

    def clear(self) -> None:
        """Remove every fault and release every held request."""
        with self._lock:
            injections, self._injections = self._injections, []
        for injection in injections:
            injection.release()

    @property
    def injections(self) -> list[Injection]:
        with self._lock:
            return list(self._injections)

    @property
    def requests(self) -> list[Exchange]:
        """Every request so far (since :meth:`reset_counts`), in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def connections(self) -> int:
        """TLS connections clients opened (since :meth:`reset_counts`): keep-alive keeps it low."""
        with self._lock:
            return self._connections

    def reset_counts(self) -> None:
        """Forget the request log and the connection count (faults keep their counters)."""
        with self._lock:
            self._log.clear()
            self._connections = 0

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def counts(self) -> Counter[tuple[str, str]]:
        """Requests by ``(method, kind)``, e.g. ``counts()[("POST", "order")]``."""
        with self._lock:
            return Counter((e.method, self.kind_of(e.path)) for e in self._log)

    def kind_of(self, path: str) -> str:
        """:func:`path_kind` with the paths learned from this CA's directory."""
        return path_kind(path, self._learned)

    # -- internals ----------------------------------------------------------------------

    def _remove(self, injection: Injection) -> None:
        with self._lock:
            if injection in self._injections:
                self._injections.remove(injection)

    def _learn_directory(self) -> None:
        answer = self.forward("GET", self._directory_path, {}, b"")
        try:
            directory = json.loads(answer.body)
        except ValueError:
            return
        if not isinstance(directory, dict):
            return
        for name, url in directory.items():
            if isinstance(url, str) and url.startswith("https://"):
                path = urlsplit(url).path
                self._learned[path] = name
                if name == "newNonce":
                    self._new_nonce_path = path

    def _pick(self, method: str, path: str) -> Injection | None:
        kind = self.kind_of(path)
        chosen = None
        with self._lock:
            for injection in self._injections:
                if injection._consider(method, path, kind) and chosen is None:
                    chosen = injection
        return chosen

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._log.append(Exchange(method, path, status))

    def forward(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> _Upstream:
        """Send one request to the CA; its answer with our ``host:port`` in place of the CA's."""
        conn = http.client.HTTPSConnection(
            self._upstream_host,
            self._upstream_port,
            context=self._upstream_ctx,
            timeout=_UPSTREAM_TIMEOUT,
        )
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            sent.setdefault("Host", self.netloc)
            sent.setdefault("User-Agent", "acmelite-fault-proxy")
            conn.request(
                method, path, body=body if body or method == "POST" else None, headers=sent
            )
            resp = conn.getresponse()
            data = resp.read()
            answer = _Upstream(resp.status, resp.reason, resp.getheaders(), data)
        finally:
            conn.close()
        ours = self.netloc
        if self._server is not None and ours != self._upstream_netloc:
            theirs = self._upstream_netloc
            answer.body = answer.body.replace(theirs.encode(), ours.encode())
            answer.headers = [(k, v.replace(theirs, ours)) for k, v in answer.headers]
        return answer

    def fresh_nonce(self) -> str:
        """A new nonce from the CA (``HEAD newNonce``), for problems the proxy makes up."""
        path = self._new_nonce_path or "/nonce-plz"
        answer = self.forward("HEAD", path, {}, b"")
        return next((v for k, v in answer.headers if k.lower() == "replay-nonce"), "")


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], proxy: FaultProxy, context: ssl.SSLContext
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.proxy = proxy
        self.context = context
        self._open: set[socket.socket] = set()
        self._to_reset: set[int] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _ProxyHandler)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        conn, addr = self.socket.accept()
        # Like Go's net/http (Pebble, Boulder): without it, the body written after the
        # headers waits for the client's delayed ACK, +40 ms per response on a kept-alive
        # connection (bench: 0.58 s -> 0.32 s for a one-name issuance).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with self._conn_lock:
            self._open.add(wrapped)
        self.proxy._connected()
        return wrapped, addr

    def finish_request(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int],
    ) -> None:
        assert isinstance(request, ssl.SSLSocket)  # noqa: S101 - get_request made it
        request.settimeout(_IDLE_TIMEOUT)
        try:
            request.do_handshake()
        except (OSError, ssl.SSLError) as exc:
            log.debug("proxy: TLS handshake with %s failed: %s", client_address, exc)
            return
        super().finish_request(request, client_address)

    def mark_reset(self, conn: socket.socket) -> None:
        """Close ``conn`` with a TCP RST (SO_LINGER 0, no FIN first)."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._conn_lock:
            self._to_reset.add(id(conn))

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        assert isinstance(request, socket.socket)  # noqa: S101 - a stream server
        with self._conn_lock:
            self._open.discard(request)
            reset = id(request) in self._to_reset
            self._to_reset.discard(id(request))
        if reset:
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def close_all(self) -> None:
        with self._conn_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int] | str,
    ) -> None:
        log.debug("proxy: error serving %s", client_address, exc_info=True)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"
    server_version = "acmelite-fault-proxy"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("proxy: " + format, *args)

    # Theory of operation: each request is read whole, the first fault that fires picks
    # what happens, and the CA is asked only when the fault needs its answer (``forward``).
    # Every request gets exactly one record, made just before its status line goes out (so
    # a client that has its answer finds it in ``requests``), or 0 before a reset.
    def _serve(self) -> None:
        proxy = self.server.proxy
        self._recorded = False
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        injection = proxy._pick(self.command, self.path)
        try:
            self._answer(injection, self.command, self.path, body)
        except _Abort:
            self._note(0)
            self._reset()
        except (OSError, http.client.HTTPException) as exc:
            log.debug("proxy: %s %s failed: %s", self.command, self.path, exc)
            self._note(0)
            self._reset()

    def _note(self, status: int) -> None:
        if not self._recorded:
            self._recorded = True
            self.server.proxy._record(self.command, self.path, status)

    def _answer(self, injection: Injection | None, method: str, path: str, body: bytes) -> None:
        proxy = self.server.proxy
        if injection is None:
            self._relay(proxy.forward(method, path, self._headers(), body))
            return
        fault = injection.fault
        if fault.kind in ("error", "bad-nonce", "html", "respond"):
            injection._fired()
            self._relay(self._made_up(fault))
            return
        if fault.kind in ("delay", "reset"):
            injection._fired()
            injection._wait(fault.seconds)
            if proxy._closing.is_set() or not fault.forward:
                raise _Abort
            answer = proxy.forward(method, path, self._headers(), body)
            if fault.kind == "reset":
                raise _Abort
            self._relay(answer)
            return
        answer = proxy.forward(method, path, self._headers(), body)
        patched = _patch(answer, fault) if fault.kind in ("patch-json", "rewrite") else answer
        if patched is None or answer.status >= 400:
            # Only a successful answer is spoilt (not one of Pebble's own badNonces, say);
            # the fault stays armed for the next match.
            self._relay(answer)
            return
        answer = patched
        injection._fired()
        if fault.kind == "reset-mid-body":
            self._cut(answer, fault, injection)
        elif fault.kind == "drip":
            self._drip(answer, fault, injection)
        elif fault.kind == "oversize":
            self._oversize(answer, fault)
        else:
            self._relay(_mangle(answer, fault))

    def _headers(self) -> dict[str, str]:
        # No compression: the proxy rewrites bodies.
        drop = _HOP_BY_HOP | {"accept-encoding"}
        return {k: v for k, v in self.headers.items() if k.lower() not in drop}

    def _made_up(self, fault: Fault) -> _Upstream:
        status = fault.status
        reason = http.client.responses.get(status, "Error")
        headers: list[tuple[str, str]] = []
        if fault.retry_after is not None:
            if fault.retry_after_date:
                when = email.utils.formatdate(time.time() + fault.retry_after, usegmt=True)
                headers.append(("Retry-After", when))
            else:
                headers.append(("Retry-After", str(int(fault.retry_after))))
        if fault.kind == "html":
            headers.append(("Content-Type", "text/html; charset=utf-8"))
            page = _HTML.format(status=status, reason=reason).encode()
            return _Upstream(status, reason, headers, page)
        if fault.kind == "respond":
            nonce = self.server.proxy.fresh_nonce()
            headers += [("Replay-Nonce", nonce)] if nonce else []
            headers += [("Content-Type", fault.content_type), *fault.headers.items()]
            return _Upstream(status, reason, headers, json.dumps(dict(fault.set_fields)).encode())
        if fault.kind == "bad-nonce":
            problem_type = "urn:ietf:params:acme:error:badNonce"
            detail = "JWS has an invalid anti-replay nonce (injected by the fault proxy)"
        else:
            problem_type = fault.problem_type
            detail = fault.detail or f"{reason} (injected by the fault proxy)"
        if not problem_type:
            # What a load balancer in front of the CA sends: no problem document, no nonce.
            headers.append(("Content-Type", "text/plain"))
            return _Upstream(status, reason, headers, f"{status} {reason}\n".encode())
        nonce = self.server.proxy.fresh_nonce() if fault.fresh_nonce else ""
        if nonce:
            headers.append(("Replay-Nonce", nonce))
        headers.append(("Content-Type", fault.content_type or "application/problem+json"))
        doc = {"type": problem_type, "detail": detail, "status": status}
        return _Upstream(status, reason, headers, json.dumps(doc).encode())

    def _relay(self, answer: _Upstream) -> None:
        self._note(answer.status)
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        head_only = self.command == "HEAD" or answer.status in _NO_BODY_STATUSES
        if answer.status not in _NO_BODY_STATUSES:
            self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(answer.body)

    def _cut(self, answer: _Upstream, fault: Fault, injection: Injection) -> None:
        """Status, headers and part of the body; then (after a stall) a reset."""
        self._note(answer.status)
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body[: int(len(answer.body) * fault.keep)])
        self.wfile.flush()
        # Let the client read what was sent: an RST makes its kernel drop unread data.
        time.sleep(_RST_GRACE)
        if fault.seconds:
            injection._wait(fault.seconds)
        raise _Abort

    def _head(self, answer: _Upstream, extra: Sequence[tuple[str, str]]) -> None:
        self._note(answer.status)
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def _drip(self, answer: _Upstream, fault: Fault, injection: Injection) -> None:
        """Status and headers at once, then the body a byte at a time."""
        self._head(answer, [("Content-Length", str(len(answer.body)))])
        for i in range(len(answer.body)):
            if injection._released.is_set() or self.server.proxy._closing.is_set():
                raise _Abort
            self.wfile.write(answer.body[i : i + 1])
            self.wfile.flush()
            injection._wait(fault.seconds)

    def _oversize(self, answer: _Upstream, fault: Fault) -> None:
        total = len(answer.body) + fault.size
        if fault.chunked:
            self._head(answer, [("Transfer-Encoding", "chunked")])
        else:
            self._head(answer, [("Content-Length", str(total))])
        pad = b" " * 65536
        chunks = [answer.body]
        left = fault.size
        while chunks or left:
            if self.server.proxy._closing.is_set():
                raise _Abort
            piece = chunks.pop() if chunks else pad[: min(left, len(pad))]
            left -= 0 if piece is answer.body else len(piece)
            if fault.chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
        if fault.chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.server.mark_reset(self.connection)
        except OSError:
            pass


def _patch(answer: _Upstream, fault: Fault) -> _Upstream | None:
    if fault.kind == "rewrite":
        return _rewrite(answer, fault)
    try:
        data = json.loads(answer.body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if not all(_fits(data.get(k), v) for k, v in fault.where.items()):
        return None
    for name in fault.remove_fields:
        data.pop(name, None)
    data.update(fault.set_fields)
    challenges = data.get("challenges")
    if fault.drop_challenges and isinstance(challenges, list):
        dropped = fault.drop_challenges
        data["challenges"] = [
            c for c in challenges if not isinstance(c, dict) or c.get("type") not in dropped
        ]
    headers = answer.headers
    if fault.headers:
        replaced = {k.lower() for k in fault.headers}
        headers = [(k, v) for k, v in headers if k.lower() not in replaced]
        headers += list(fault.headers.items())
    return _Upstream(answer.status, answer.reason, headers, json.dumps(data).encode())


def _fits(value: object, wanted: object) -> bool:
    return value in wanted if isinstance(wanted, tuple) else value == wanted


def _rewrite(answer: _Upstream, fault: Fault) -> _Upstream | None:
    body = re.sub(fault.pattern.encode(), fault.replacement.encode(), answer.body)
    headers = [(k, re.sub(fault.pattern, fault.replacement, v)) for k, v in answer.headers]
    if body == answer.body and headers == answer.headers:
        return None
    return _Upstream(answer.status, answer.reason, headers, body)


def _mangle(answer: _Upstream, fault: Fault) -> _Upstream:
    body, headers = answer.body, answer.headers
    if fault.kind == "headers":
        names = {k.lower() for k in fault.headers}
        headers = [(k, v) for k, v in headers if k.lower() not in names]
        headers += list(fault.headers.items())
    if fault.kind == "malformed-json":
        body = body[: max(1, len(body) // 2)]
    elif fault.kind == "truncated-pem":
        at = body.find(fault.cut_after) if fault.cut_after else -1
        end = at + len(fault.cut_after) if at >= 0 else int(len(body) * fault.keep)
        body = body[:end]
    elif fault.kind == "garbage-pem":
        body = _GARBAGE_PEM
    elif fault.kind == "content-type":
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        headers.append(("Content-Type", fault.content_type))
    return _Upstream(answer.status, answer.reason, headers, body)
