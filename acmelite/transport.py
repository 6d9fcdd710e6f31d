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
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import re
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3

from ._version import __version__
from .errors import (
    BadNonceError,
    DeadlineExceeded,
    NetworkError,
    Problem,
    ProblemError,
    ProtocolError,
    problem_error,
)

__all__ = ["NoncePool", "Response", "Transport", "deadline_scope", "parse_retry_after"]

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


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; ``None`` when absent or invalid."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


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
    ) -> None:
        self.new_nonce_url = ""
        #: ``HEAD``, or ``GET`` once the CA refused HEAD on newNonce.
        self.new_nonce_method = "HEAD"
        self.nonces = NoncePool()
        self.timeout = timeout
        #: A ``time.monotonic()`` after which no request starts (``--timeout``); None: none.
        self.deadline: float | None = None
        self.max_bad_nonce = max_bad_nonce
        self.max_retry_after = max_retry_after
        self.max_rate_limit_retries = max_rate_limit_retries
        self.connection_retries = connection_retries
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
        # One kept-alive connection per thread that talks at once: requests' pool keeps at
        # most 10 and closes any connection beyond that after its request, so 32 threads
        # would pay a TCP and TLS handshake for most requests.
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(1, max_connections))
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._count_lock = threading.Lock()
        self.request_count = 0
        #: Responses received, by (method, URL).
        self.requests: Counter[tuple[str, str]] = Counter()

    def close(self) -> None:
        self._session.close()

    # -- plain requests -------------------------------------------------------------

    def get(self, url: str, *, deadline: float | None = None) -> Response:
        """An unauthenticated GET (the directory, RFC 8555 §7.1.1; renewalInfo, RFC 9773)."""
        return self._waiting(
            lambda: self._checked("GET", url, deadline=deadline, idempotent=True), url, deadline
        )

    def new_nonce(self, *, deadline: float | None = None) -> str:
        """``HEAD newNonce`` (RFC 8555 §7.2), or ``GET`` where HEAD is refused; only used
        when the pool is empty."""
        if not self.new_nonce_url:
            raise ProtocolError("no newNonce URL: fetch the directory first")
        url = self.new_nonce_url

        def fetch(method: str) -> Response:
            return self._waiting(
                lambda: self._checked(method, url, deadline=deadline, idempotent=True),
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
                    raise
                log.info("%s asks to retry after %.0f s; waiting", url, wait)
                self._sleep(wait)

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
    ) -> Response:
        resp = self._send(
            method, url, data=data, headers=headers, deadline=deadline, idempotent=idempotent
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
    ) -> Response:
        attempts = 1 + (self.connection_retries if idempotent else 0)
        deadline = self._deadline(deadline)
        for attempt in range(1, attempts + 1):
            timeout = self.timeout
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded(f"deadline reached before {method} {url}")
                timeout = min(timeout, remaining)
            try:
                raw = self._session.request(
                    method,
                    url,
                    data=data,
                    headers=dict(headers or {}),
                    timeout=timeout,
                    verify=self._verify,
                    allow_redirects=False,
                )
            except requests.exceptions.SSLError as exc:
                raise NetworkError(
                    f"TLS verification of {_host(url)} failed ({_reason(exc)})",
                    code="tls-verification",
                ) from exc
            except requests.exceptions.RequestException as exc:
                pause = min(0.5 * attempt, 2.0)
                late = deadline is not None and time.monotonic() + pause >= deadline
                if attempt < attempts and not late:
                    log.debug("%s %s failed (%s); retrying", method, url, _reason(exc))
                    self._sleep(pause)
                    continue
                if late and isinstance(exc, requests.exceptions.Timeout):
                    raise DeadlineExceeded(
                        f"{_host(url)} did not answer {method} {url} before the deadline"
                    ) from exc
                raise _network_error(
                    method, url, exc, timeout, resent=attempt > 1, idempotent=idempotent
                ) from exc
            with self._count_lock:
                self.request_count += 1
                self.requests[method, url] += 1
            self.nonces.put(raw.headers.get("Replay-Nonce"))
            log.debug("%s %s -> %d (%d bytes)", method, url, raw.status_code, len(raw.content))
            return Response(
                url=url,
                status=raw.status_code,
                headers=raw.headers,
                content=raw.content,
                links=parse_links(raw.raw.headers.getlist("Link") if raw.raw is not None else []),
            )
        raise AssertionError("unreachable")  # pragma: no cover


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
