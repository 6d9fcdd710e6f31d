"""HTTP transport: the only module that imports ``requests``.

It owns the session (one kept-alive connection pool), the CA bundle, timeouts, the
nonce pool, signed POSTs and the translation of every failure into acmelite's errors.

Theory of operation — nonces and retries (RFC 8555 §6.5, §6.6):

* Every response may carry ``Replay-Nonce``; each one goes into the pool. A signed
  request takes a nonce from the pool, and only when the pool is empty does it spend a
  ``HEAD newNonce``. In a sequential flow that means exactly one newNonce per run.
* ``badNonce`` is not an error for the caller: the problem response carries a fresh
  nonce, so the request is signed again with it and resent, up to ``max_bad_nonce``
  times (a CA rejecting half of all nonces still succeeds with near certainty). A
  ``badNonce`` without a ``Replay-Nonce`` empties the pool (its nonces are suspect too),
  so the retry spends a fresh ``newNonce``.
* ``HEAD newNonce`` answered 404 or 405 (a CA that only knows GET) is sent as ``GET``,
  then and for the rest of the session (RFC 8555 §7.2 allows both).
* 429 and 503 with ``Retry-After`` are waited out when the wait fits under
  ``max_retry_after`` and the deadline; otherwise the error carries ``retry_after``.
* A connection failure is retried only for requests that are safe to repeat: GET, HEAD
  and POST-as-GET. A signed POST with a payload may have taken effect; it is not resent.

Theory of operation — bounded reads (the CA may be hostile, or broken):

* A socket timeout bounds each read, not a request: a server that sends one byte a second
  never trips it. So every request attempt is watched: at ``timeout`` seconds, or at the
  deadline if that comes first, a timer shuts the connection's socket down, which wakes the
  blocked read at once; the attempt then fails as a timeout (or :class:`DeadlineExceeded`,
  naming the URL). Connect, headers and body all count.
* Bodies are read in chunks and never beyond a cap (:data:`MAX_JSON_BYTES` for JSON,
  :data:`MAX_CHAIN_BYTES` for a certificate chain; constructor arguments change them): a
  larger ``Content-Length`` is refused before reading, a longer body once the cap is passed.
  Compression is not asked for, so a small body cannot inflate into a large one.
* Every URL is checked against the directory's origin (:mod:`acmelite.origin`) before it
  is requested, and every ``Location`` as it arrives.

With a :class:`~acmelite.breaker.CircuitBreaker` (``breaker=``; a fleet gives one per CA
account), each request is reported to it once, after the retries above — failed at the
transport, or answered — and none is sent while it is open.
"""

from __future__ import annotations

import contextlib
import email.utils
import heapq
import json
import logging
import re
import socket
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from ._version import __version__
from .breaker import CircuitBreaker, server_error
from .errors import (
    AcmeliteError,
    BadNonceError,
    DeadlineExceeded,
    InvalidInput,
    NetworkError,
    Problem,
    ProblemError,
    ProtocolError,
    problem_error,
)
from .origin import Origin

__all__ = [
    "MAX_CHAIN_BYTES",
    "MAX_JSON_BYTES",
    "MAX_POLL_WAIT",
    "MAX_RETRY_AFTER",
    "NoncePool",
    "Response",
    "Transport",
    "deadline_scope",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

USER_AGENT = f"acmelite/{__version__} python-requests/{requests.__version__}"
JOSE_JSON = "application/jose+json"
_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
#: The deadline of the :func:`deadline_scope` the current thread (or task) is in.
_SCOPE_DEADLINE: ContextVar[float | None] = ContextVar("acmelite_deadline", default=None)


@contextlib.contextmanager
def deadline_scope(seconds: float | None) -> Iterator[None]:
    """No request sent from this thread inside the block starts after ``seconds`` from now
    (with any :attr:`Transport.deadline` too; nested scopes keep the earlier end).

    How one job's time is bounded on a transport that several threads share: each thread
    sets its own scope, and :attr:`Transport.deadline` stays the bound of the whole client.
    """
    if seconds is None:
        yield
        return
    end = time.monotonic() + seconds
    outer = _SCOPE_DEADLINE.get()
    token = _SCOPE_DEADLINE.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _SCOPE_DEADLINE.reset(token)


#: The largest JSON answer read (directory, account, order, authorization, problem): 1 MiB.
MAX_JSON_BYTES = 1 << 20
#: The largest certificate chain read (RFC 8555 §7.4.2): 1 MiB, hundreds of certificates.
MAX_CHAIN_BYTES = 1 << 20
#: The longest ``Retry-After`` a request waits out by itself; a longer one is raised, with
#: ``retry_after`` on the error (:attr:`Transport.max_retry_after`).
MAX_RETRY_AFTER = 60.0
#: The longest wait between two polls of an order, whatever its ``Retry-After`` asks
#: (RFC 8555 §7.5.1 leaves it to the server; a hostile or broken one must not park the
#: client for years): ``AcmeClient(poll_max_retry_after=...)``.
MAX_POLL_WAIT = 60.0
#: ``Retry-After`` values are read as at most a year, so no arithmetic on them overflows.
RETRY_AFTER_CEILING = 366 * 86400.0
_CHUNK = 64 * 1024
PEM_CHAIN = "application/pem-certificate-chain"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; ``None`` when absent or invalid.

    At most :data:`RETRY_AFTER_CEILING` (a year), however far away the server says.
    """
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), RETRY_AFTER_CEILING)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return min(max(0.0, when.timestamp() - current), RETRY_AFTER_CEILING)


def parse_links(values: list[str]) -> tuple[tuple[str, str], ...]:
    """``Link`` headers (RFC 8288) as ``(rel, url)`` pairs, every header and every link."""
    links: list[tuple[str, str]] = []
    for value in values:
        for match in _LINK_RE.finditer(value):
            url, params = match.group(1), match.group(2)
            rel = re.search(r'rel\s*=\s*"?([^";,]+)"?', params)
            if rel:
                links.extend((r, url) for r in rel.group(1).split())
    return tuple(links)


@dataclass(frozen=True, slots=True)
class Response:
    """What acmelite keeps of an HTTP response."""

    url: str
    status: int
    headers: Mapping[str, str]
    content: bytes
    links: tuple[tuple[str, str], ...] = ()

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def link(self, rel: str) -> list[str]:
        return [url for r, url in self.links if r == rel]

    def json(self) -> Mapping[str, object]:
        """The body as a JSON object, or :class:`ProtocolError` saying what came instead."""
        try:
            data = json.loads(self.content)
        except (ValueError, RecursionError):
            raise ProtocolError(
                f"{self.url} answered HTTP {self.status} with {self.content_type or 'no type'}"
                f" that is not JSON: {_snippet(self.content)}"
            ) from None
        if not isinstance(data, dict):
            raise ProtocolError(f"{self.url} answered JSON that is not an object")
        return data


def _snippet(content: bytes, limit: int = 120) -> str:
    text = re.sub(r"<[^>]*>", " ", content[:2000].decode("utf-8", "replace"))
    text = " ".join(text.split())
    return repr(text[:limit]) if text else "(empty body)"


class NoncePool:
    """A thread-safe pool of unused nonces, newest first (RFC 8555 §7.2)."""

    def __init__(self, limit: int = 64) -> None:
        self._nonces: deque[str] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def put(self, nonce: str | None) -> None:
        if nonce:
            with self._lock:
                self._nonces.append(nonce)

    def take(self) -> str | None:
        with self._lock:
            return self._nonces.pop() if self._nonces else None

    def clear(self) -> None:
        with self._lock:
            self._nonces.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._nonces)


class Transport:
    """One HTTP session to one ACME server. Safe to share between threads."""

    def __init__(
        self,
        *,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
        user_agent: str = USER_AGENT,
        max_bad_nonce: int = 25,
        max_retry_after: float = 60.0,
        max_rate_limit_retries: int = 3,
        connection_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        insecure: bool = False,
        max_connections: int = 10,
        max_json_bytes: int = MAX_JSON_BYTES,
        max_chain_bytes: int = MAX_CHAIN_BYTES,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.new_nonce_url = ""
        #: ``HEAD``, or ``GET`` once the CA refused HEAD on newNonce.
        self.new_nonce_method = "HEAD"
        self.nonces = NoncePool()
        #: Seconds for one request attempt, all of it: connect, headers and body.
        self.timeout = timeout
        #: A ``time.monotonic()`` after which no request starts (``--timeout``); None: none.
        self.deadline: float | None = None
        self.insecure = insecure
        self._origin: Origin | None = None
        #: Body caps in bytes: JSON answers, and certificate chains (``Accept`` PEM chain).
        self.max_json_bytes = max_json_bytes
        self.max_chain_bytes = max_chain_bytes
        self.max_bad_nonce = max_bad_nonce
        self.max_retry_after = max_retry_after
        self.max_rate_limit_retries = max_rate_limit_retries
        self.connection_retries = connection_retries
        #: Told of every request's outcome; while open, no request is sent.
        self.breaker = breaker
        self._sleep = sleep
        # requests prefers REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE over Session.verify, so the
        # bundle is passed with every request, where it always wins.
        self._verify: str | bool = False if insecure else (ca_bundle or True)
        if insecure:
            log.warning(
                "TLS certificate verification of the ACME server is OFF: anyone on the network"
                " path can impersonate the CA; use this only against a test CA"
            )
            # Said once, here, instead of by urllib3 on every request.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        # No compression: a few KiB of gzip must not inflate past the body caps.
        self._session.headers["Accept-Encoding"] = "identity"
        # One kept-alive connection per thread that talks at once: requests' pool keeps at
        # most 10 and closes any connection beyond that after its request, so 32 threads
        # would pay a TCP and TLS handshake for most requests.
        adapter = _WatchedAdapter(pool_maxsize=max(1, max_connections))
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._count_lock = threading.Lock()
        self.request_count = 0
        #: Responses received, by (method, URL).
        self.requests: Counter[tuple[str, str]] = Counter()

    def close(self) -> None:
        self._session.close()

    @property
    def origin(self) -> Origin | None:
        """The CA's origin (its directory URL's); every URL requested must be on it."""
        return self._origin

    @origin.setter
    def origin(self, value: Origin | None) -> None:
        if value is not None and value.scheme != "https" and not self.insecure:
            raise InvalidInput(
                f"{value} is plain HTTP: account keys' signatures, the account URL and every"
                " answer would travel unprotected; an ACME server must use HTTPS (RFC 8555"
                " §6.1), a test CA without TLS needs the insecure option"
            )
        self._origin = value

    # -- plain requests -------------------------------------------------------------

    def get(self, url: str, *, deadline: float | None = None) -> Response:
        """An unauthenticated GET (the directory, RFC 8555 §7.1.1; renewalInfo, RFC 9773)."""
        return self._waiting(
            lambda: self._checked(
                "GET", url, deadline=deadline, idempotent=True, limit=self.max_json_bytes
            ),
            url,
            deadline,
        )

    def new_nonce(self, *, deadline: float | None = None) -> str:
        """``HEAD newNonce`` (RFC 8555 §7.2), or ``GET`` where HEAD is refused; only used
        when the pool is empty."""
        if not self.new_nonce_url:
            raise ProtocolError("no newNonce URL: fetch the directory first")
        url = self.new_nonce_url

        def fetch(method: str) -> Response:
            return self._waiting(
                lambda: self._checked(
                    method,
                    url,
                    deadline=deadline,
                    idempotent=True,
                    limit=0 if method == "HEAD" else self.max_json_bytes,
                ),
                url,
                deadline,
            )

        try:
            resp = fetch(self.new_nonce_method)
        except (ProblemError, ProtocolError) as exc:
            status = exc.problem.status if isinstance(exc, ProblemError) else exc.status
            if self.new_nonce_method != "HEAD" or status not in (404, 405):
                raise
            log.info("%s refuses HEAD (HTTP %s); asking for nonces with GET", url, status)
            self.new_nonce_method = "GET"
            resp = fetch("GET")
        nonce = resp.headers.get("Replay-Nonce")
        if not nonce:
            raise ProtocolError(f"{self.new_nonce_url} returned no Replay-Nonce header")
        return nonce

    # -- signed requests ------------------------------------------------------------

    def post(
        self,
        url: str,
        sign: Callable[[str], bytes],
        *,
        as_get: bool = False,
        accept: str | None = None,
        deadline: float | None = None,
    ) -> Response:
        """A signed POST. ``sign(nonce)`` returns the JWS body for that nonce.

        ``as_get`` marks a POST-as-GET, which is safe to repeat after a connection error.
        """
        bad_nonces = rate_limits = 0
        while True:
            nonce = self.nonces.take() or self.new_nonce(deadline=deadline)
            headers = {"Content-Type": JOSE_JSON}
            if accept:
                headers["Accept"] = accept
            try:
                return self._checked(
                    "POST",
                    url,
                    data=sign(nonce),
                    headers=headers,
                    deadline=deadline,
                    idempotent=as_get,
                    limit=self.max_chain_bytes if accept == PEM_CHAIN else self.max_json_bytes,
                )
            except BadNonceError:
                bad_nonces += 1
                if bad_nonces > self.max_bad_nonce:
                    raise
                log.debug("badNonce from %s; retrying with the fresh nonce (%d)", url, bad_nonces)
            except ProblemError as exc:
                rate_limits += 1
                wait = self._wait_for(exc, rate_limits, deadline)
                if wait is None:
                    self._gave_up(exc)
                    raise
                log.info("%s asks to retry after %.0f s; waiting", url, wait)
                self._sleep(wait)

    def _waiting(self, send: Callable[[], Response], url: str, deadline: float | None) -> Response:
        """``send()``, again after each 429/503 whose ``Retry-After`` fits (as in :meth:`post`)."""
        waits = 0
        while True:
            try:
                return send()
            except ProblemError as exc:
                waits += 1
                wait = self._wait_for(exc, waits, deadline)
                if wait is None:
                    self._gave_up(exc)
                    raise
                log.info("%s asks to retry after %.0f s; waiting", url, wait)
                self._sleep(wait)

    def _gave_up(self, exc: ProblemError) -> None:
        """Tell the breaker of a problem answer not retried: a 5xx is a failure of the CA
        (the other answers were told as they arrived, in :meth:`_send`)."""
        status = exc.problem.status
        if self.breaker is not None and status is not None and server_error(status):
            self.breaker.answered(status, exc.url)

    def _wait_for(self, exc: ProblemError, attempt: int, deadline: float | None) -> float | None:
        """How long to wait before retrying after ``exc``; ``None``: do not retry."""
        wait = exc.retry_after
        if exc.problem.status not in (429, 503) or wait is None:
            return None
        if attempt > self.max_rate_limit_retries or wait > self.max_retry_after:
            return None
        deadline = self._deadline(deadline)
        if deadline is not None and time.monotonic() + wait >= deadline:
            return None
        return wait

    def _deadline(self, deadline: float | None) -> float | None:
        """The earliest of a request's own deadline, :attr:`deadline` and the thread's
        :func:`deadline_scope`."""
        bounds = [d for d in (deadline, self.deadline, _SCOPE_DEADLINE.get()) if d is not None]
        return min(bounds) if bounds else None

    # -- the wire -------------------------------------------------------------------

    def _checked(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        idempotent: bool,
        limit: int,
    ) -> Response:
        resp = self._send(
            method,
            url,
            data=data,
            headers=headers,
            deadline=deadline,
            idempotent=idempotent,
            limit=limit,
        )
        if resp.status < 400:
            return resp
        if resp.content_type == "application/problem+json" or _looks_like_problem(resp):
            try:
                problem = Problem.from_json(resp.json(), status=resp.status)
            except ProtocolError:
                problem = Problem(detail=_snippet(resp.content), status=resp.status)
            if problem.short_type == "badNonce" and not resp.headers.get("Replay-Nonce"):
                self.nonces.clear()
            raise problem_error(problem, url=url, retry_after=resp.retry_after)
        if resp.status in (429, 503):
            problem = Problem(
                type="urn:ietf:params:acme:error:rateLimited"
                if resp.status == 429
                else "about:blank",
                detail=f"HTTP {resp.status} {_snippet(resp.content)}",
                status=resp.status,
            )
            raise problem_error(problem, url=url, retry_after=resp.retry_after)
        if self.breaker is not None and server_error(resp.status):
            self.breaker.answered(resp.status, f"{method} {url}")  # a 502 page, say
        raise ProtocolError(
            f"{url} answered HTTP {resp.status} with {resp.content_type or 'no content type'}"
            f" instead of a problem document: {_snippet(resp.content)}",
            status=resp.status,
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        idempotent: bool,
        limit: int,
    ) -> Response:
        if self._origin is not None:
            self._origin.check(url, source=f"the URL to {method}")
        attempts = 1 + (self.connection_retries if idempotent else 0)
        deadline = self._deadline(deadline)
        breaker = self.breaker
        if breaker is not None:
            breaker.check()
        for attempt in range(1, attempts + 1):
            timeout = self.timeout
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if breaker is not None:
                        breaker.check_late()
                    raise DeadlineExceeded(f"deadline reached before {method} {url}")
                timeout = min(timeout, remaining)
            watch = _Watch(timeout)
            raw = None  # set once the status line and headers are in
            try:
                with watch:
                    raw = self._session.request(
                        method,
                        url,
                        data=data,
                        headers=dict(headers or {}),
                        timeout=timeout,
                        verify=self._verify,
                        allow_redirects=False,
                        stream=True,
                    )
                    content = self._read_body(raw, method, url, limit)
            except (requests.exceptions.RequestException, OSError, ValueError) as exc:
                if not watch.fired and not isinstance(exc, requests.exceptions.RequestException):
                    raise
                failure = self._failure(
                    exc,
                    watch,
                    method,
                    url,
                    timeout=timeout,
                    deadline=deadline,
                    attempt=attempt,
                    attempts=attempts,
                    idempotent=idempotent,
                    answering=raw is not None,
                )
                if failure is not None:
                    if breaker is not None:
                        breaker.failed(failure)
                    raise failure from exc
                continue
            with self._count_lock:
                self.request_count += 1
                self.requests[method, url] += 1
            self.nonces.put(raw.headers.get("Replay-Nonce"))
            if breaker is not None and not server_error(raw.status_code):
                breaker.answered(raw.status_code, f"{method} {url}")  # a 5xx: told at its end
            log.debug("%s %s -> %d (%d bytes)", method, url, raw.status_code, len(content))
            location = raw.headers.get("Location")
            if location and self._origin is not None:
                self._origin.check(location, source=f"the Location of {method} {url}")
            return Response(
                url=url,
                status=raw.status_code,
                headers=raw.headers,
                content=content,
                links=parse_links(raw.raw.headers.getlist("Link") if raw.raw is not None else []),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _failure(
        self,
        exc: BaseException,
        watch: _Watch,
        method: str,
        url: str,
        *,
        timeout: float,
        deadline: float | None,
        attempt: int,
        attempts: int,
        idempotent: bool,
        answering: bool = False,
    ) -> AcmeliteError | None:
        """The error to raise for a failed attempt; None: pause and try again. ``answering``:
        the server had sent its status line and headers (it was slow with the body)."""
        timed_out = watch.fired or isinstance(exc, requests.exceptions.Timeout)
        if isinstance(exc, requests.exceptions.SSLError) and not watch.fired:
            return NetworkError(
                f"TLS verification of {_host(url)} failed ({_reason(exc)})",
                code="tls-verification",
            )
        pause = min(0.5 * attempt, 2.0)
        late = deadline is not None and time.monotonic() + pause >= deadline
        if attempt < attempts and not late:
            log.debug("%s %s failed (%s); retrying", method, url, _reason(exc))
            self._sleep(pause)
            return None
        if late and timed_out:
            what = "still sending its answer to" if answering else "did not answer"
            return DeadlineExceeded(f"{_host(url)} {what} {method} {url} at the deadline")
        if watch.fired:
            what = "did not finish answering" if answering else "did not answer"
            return NetworkError(f"{_host(url)} {what} {method} {url} within {timeout:.0f} s")
        assert isinstance(exc, requests.exceptions.RequestException)  # noqa: S101 - see caller
        return _network_error(method, url, exc, timeout, resent=attempt > 1, idempotent=idempotent)

    def _read_body(self, raw: requests.Response, method: str, url: str, limit: int) -> bytes:
        """The whole body, in chunks, refused once it passes ``limit`` bytes."""
        if method == "HEAD" or raw.status_code in (204, 304):
            raw.close()
            return b""
        declared = raw.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raw.close()
            raise _too_large(method, url, limit, f"announces {int(declared)} bytes")
        body = bytearray()
        for chunk in raw.iter_content(_CHUNK):
            body += chunk
            if len(body) > limit:
                raw.close()
                raise _too_large(method, url, limit, f"went on past {len(body)} bytes")
        return bytes(body)


def _too_large(method: str, url: str, limit: int, what: str) -> ProtocolError:
    return ProtocolError(
        f"the answer to {method} {url} {what}, more than the limit of {limit} bytes"
        " (Transport max_json_bytes, max_chain_bytes): refusing to read it"
    )


# -- watching a request -------------------------------------------------------------------------

_current = threading.local()


class _Watch:
    """At ``seconds`` from :meth:`__enter__`, shut down the socket of this thread's request.

    The connection is learned from the connection pool (:class:`_WatchedHTTPSPool`) as the
    request goes out; a blocked read on it then returns at once, so no server can hold a
    request past its time by sending slowly. One :class:`_Watchdog` thread serves every
    watch of the process.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self.done = False
        self._conn: object = None
        self._lock = threading.Lock()

    def __enter__(self) -> _Watch:
        _current.watch = self
        _WATCHDOG.arm(self, time.monotonic() + self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.watch = None
        with self._lock:
            self.done = True  # the watchdog drops it when its time comes

    def attach(self, conn: object) -> None:
        with self._lock:
            self._conn = conn
            fired = self.fired
        if fired:
            _shut(conn)

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            conn = self._conn
        _shut(conn)


class _Watchdog:
    """One daemon thread that fires each :class:`_Watch` at its time: a heap of deadlines,
    woken only when a new one is the earliest (a thread per request cost 0.6 ms each)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._changed = threading.Condition()
        self._count = 0
        self._thread: threading.Thread | None = None

    def arm(self, watch: _Watch, when: float) -> None:
        with self._changed:
            self._count += 1
            heapq.heappush(self._heap, (when, self._count, watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="acmelite-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._heap or (
                    not self._heap[0][2].done and self._heap[0][0] > time.monotonic()
                ):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._changed.wait(wait)
                _, _, watch = heapq.heappop(self._heap)
            watch.fire()


_WATCHDOG = _Watchdog()


def _shut(conn: object) -> None:
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        # socket.socket's own shutdown, not SSLSocket's: that one drops the TLS object the
        # reading thread is still using.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _attach(conn: object) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.attach(conn)


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        _attach(conn)
        return super()._make_request(conn, *args, **kwargs)


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        _attach(conn)
        return super()._make_request(conn, *args, **kwargs)


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with pools that tell the current :class:`_Watch` their connection."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.ProxyManager:
        manager: urllib3.ProxyManager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is urllib3.ProxyManager:  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


_ERRNO = re.compile(r"\[Errno (-?\d+)\] ([^'\"\)\]]+)")
_OBJECT_REPR = re.compile(r"<[^<>]*>:?\s*")
_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)")
_POOL = re.compile(r"^\w+ConnectionPool\([^)]*\):\s*")
_ABORTED = re.compile(r"\('([^']*)', \w+\('([^']*)'\)\)")


def _reason(exc: BaseException) -> str:
    """The cause of a requests error in words, without urllib3's reprs and wrappers:
    ``Connection refused (errno 111)``, ``certificate verify failed: unable to get local
    issuer certificate``, ``Read timed out``."""
    text = " ".join(str(exc).split())
    errno_match = _ERRNO.search(text)
    if errno_match:
        return f"{errno_match.group(2).strip()} (errno {errno_match.group(1)})"
    aborted = _ABORTED.search(text)
    if aborted:
        return f"{aborted.group(1).rstrip('.')}: {aborted.group(2)}"
    for marker in ("certificate verify failed:", "Caused by "):
        if marker in text:
            text = text[text.index(marker) :].removeprefix("Caused by ")
            break
    text = _SSL_SOURCE.sub("", _OBJECT_REPR.sub("", _POOL.sub("", text)))
    for wrapper in ("SSLError(", "SSLCertVerificationError(", "ReadTimeoutError(",
                    "NewConnectionError(", "ProtocolError(", "MaxRetryError("):  # fmt: skip
        text = text.replace(wrapper, "")
    return _balanced(text.strip(" '\","))[:200] or type(exc).__name__


def _balanced(text: str) -> str:
    """``text`` less the closing brackets and quotes that have no opening one."""
    out, depth = [], 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                continue
            depth -= 1
        out.append(char)
    return "".join(out).rstrip(" '\",")


def _looks_like_problem(resp: Response) -> bool:
    """A problem document mislabelled ``application/json`` (an object with a string ``type``)."""
    if resp.content_type != "application/json":
        return False
    try:
        return isinstance(resp.json().get("type"), str)
    except ProtocolError:
        return False


def _network_error(
    method: str,
    url: str,
    exc: requests.RequestException,
    timeout: float,
    *,
    resent: bool,
    idempotent: bool,
) -> NetworkError:
    if isinstance(exc, requests.exceptions.Timeout):
        return NetworkError(f"{_host(url)} did not answer {method} {url} within {timeout:.0f} s")
    if isinstance(exc, requests.exceptions.ConnectionError) and _never_connected(exc):
        return NetworkError(f"cannot reach {_host(url)} ({_reason(exc)})", code="unreachable")
    # Connected, then the connection broke: say which request, and whether it was resent.
    if not idempotent:
        what = "not sent again, as it may have taken effect: run acmelite again"
    else:
        what = "also when sent again" if resent else "not sent again"
    return NetworkError(
        f"the connection to {_host(url)} broke during {method} {url} ({_cause(exc)}); {what}"
    )


def _never_connected(exc: BaseException) -> bool:
    """True when no connection was made at all (refused, unresolvable, connect timeout)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.NewConnectionError):
            return True
        if isinstance(seen, urllib3.exceptions.MaxRetryError):
            seen = seen.reason
        elif seen.args and isinstance(seen.args[0], BaseException):
            seen = seen.args[0]
        else:
            return False
    return False


def _cause(exc: BaseException) -> str:
    """The innermost exception's own words ("Connection reset by peer"), not the wrappers'."""
    inner = exc
    while True:
        nested = [a for a in inner.args if isinstance(a, BaseException)]
        if not nested:
            break
        inner = nested[-1]
    return _reason(inner) or type(inner).__name__
