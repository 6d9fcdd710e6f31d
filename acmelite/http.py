"""HTTP for DNS provider APIs: a small JSON client, and a timeout for other libraries' requests.

ACME traffic goes through :mod:`acmelite.transport`, which knows nonces, JWS and problem
documents. A DNS solver talks to something else — a provider's REST API (PowerDNS) — and
needs much less, but the same care:

* :class:`JsonApi` — one base URL and fixed headers (the API key, never logged), a
  timeout on every request, no redirects (a custom key header would follow one to another
  host), a cap on the size of an answer, and errors (:class:`ApiError`) that carry the
  API's own message;
* :func:`default_timeout` — inside the ``with`` block, a request made *from this thread*
  by code that sets no timeout of its own (dns-lexicon's providers call ``requests`` without
  one) gets ``seconds``. Other threads, and requests that do set a timeout, are untouched.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters

from ._version import __version__
from .errors import AcmeliteError, InvalidInput

__all__ = [
    "MAX_ANSWER",
    "ApiError",
    "ApiResponse",
    "JsonApi",
    "default_timeout",
    "error_text",
    "is_transient",
]

log = logging.getLogger(__name__)

#: The largest answer :class:`JsonApi` reads (a zone listing of a big zone fits).
MAX_ANSWER = 16 * 1024 * 1024
_DETAIL_LIMIT = 300


class ApiError(AcmeliteError):
    """An API request failed: ``status`` is the HTTP status (None when no answer came),
    ``detail`` the API's own message, ``url`` the request's URL."""

    def __init__(self, message: str, *, url: str, status: int | None, detail: str = "") -> None:
        super().__init__(message, code="unreachable" if status is None else "")
        self.url = url
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """An answer: ``status``, and ``data``, its JSON (None for an empty body)."""

    status: int
    data: object


class JsonApi:
    """JSON requests to one API: ``JsonApi("https://ns1:8081/api/v1", {"X-API-Key": key})``.

    ``headers`` are sent with every request and never logged or put into an error;
    ``verify`` is a CA bundle path, True (the system's) or False.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 30.0,
        verify: str | bool = True,
        max_answer: int = MAX_ANSWER,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"bad API URL {base_url!r}: expected http(s)://HOST[:PORT][/PATH]")
        if not timeout > 0:
            raise InvalidInput(f"API timeout must be > 0 seconds, not {timeout}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"User-Agent": f"acmelite/{__version__}", **(headers or {})}
        self._verify = verify
        self._max_answer = max_answer
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"JsonApi({self.base_url!r})"

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def request(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> ApiResponse:
        """``method`` ``base_url + path`` with ``body`` as JSON; :class:`ApiError` for a
        network failure or a status >= 400 (its JSON ``error``/``message``, else its text)."""
        url = self.base_url + path
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            with self._session().request(
                method, url, data=data, headers=headers, params=dict(params or {}),
                timeout=self.timeout, verify=self._verify, allow_redirects=False, stream=True,
            ) as raw:  # fmt: skip
                content = _read_capped(raw, self._max_answer, url)
                status = raw.status_code
        except requests.exceptions.Timeout:
            raise ApiError(
                f"{method} {url}: no answer within {self.timeout:g} s", url=url, status=None
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ApiError(f"{method} {url}: {_reason(exc)}", url=url, status=None) from None
        log.debug("%s %s -> %d (%d bytes)", method, url, status, len(content))
        parsed = _json(content)
        if status >= 400:
            detail = _detail(parsed, content)
            raise ApiError(
                f"{method} {url} answered {status}: {detail or 'no detail'}",
                url=url,
                status=status,
                detail=detail,
            )
        if 300 <= status < 400:
            raise ApiError(f"{method} {url} answered a redirect ({status})", url=url, status=status)
        if content.strip() and parsed is None:
            raise ApiError(f"{method} {url}: the answer is not JSON", url=url, status=status)
        return ApiResponse(status=status, data=parsed)

    def close(self) -> None:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None


def _read_capped(raw: requests.Response, limit: int, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in raw.iter_content(65536):
        size += len(chunk)
        if size > limit:
            raise ApiError(
                f"the answer of {url} is larger than {limit} bytes",
                url=url,
                status=raw.status_code,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _json(content: bytes) -> object:
    if not content.strip():
        return None
    try:
        parsed: object = json.loads(content)
    except ValueError:
        return None
    return parsed


def _detail(parsed: object, content: bytes) -> str:
    """The API's own words: ``error``/``message``/``detail`` of a JSON object, else the text."""
    text = ""
    if isinstance(parsed, Mapping):
        for key in ("error", "message", "detail", "errors"):
            value = parsed.get(key)
            if isinstance(value, str) and value:
                text = value
                break
    if not text:
        text = content.decode("utf-8", "replace")
    return _one_line(text)


def _one_line(text: str) -> str:
    """``text`` on one line, without control characters, cut at 300 characters."""
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= _DETAIL_LIMIT else cleaned[:_DETAIL_LIMIT] + "…"


def error_text(exc: BaseException) -> str:
    """One line on what went wrong in another library's HTTP call: for an HTTP error its
    status and the API's message, for a network failure its cause; else the exception."""
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        response = exc.response
        detail = _detail(_json(response.content[:MAX_ANSWER]), response.content[:4096])
        return f"HTTP {response.status_code} {response.reason or ''}".rstrip() + (
            f": {detail}" if detail else ""
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer in time ({_reason(exc)})"
    if isinstance(exc, requests.exceptions.RequestException):
        return _reason(exc)
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Whether another library's HTTP failure may pass when tried again: a 5xx answer, a
    connection that failed or broke, a timeout."""
    if isinstance(exc, requests.exceptions.HTTPError):
        return exc.response is not None and exc.response.status_code >= 500
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def _reason(exc: BaseException) -> str:
    inner = exc
    while True:
        nested = [a for a in inner.args if isinstance(a, BaseException)]
        if not nested:
            break
        inner = nested[-1]
    return _one_line(str(inner)) or type(inner).__name__


# -- a default timeout for requests made by other libraries -----------------------------------

_defaults = threading.local()
_patch_lock = threading.Lock()
_patched = False


@contextmanager
def default_timeout(seconds: float) -> Iterator[None]:
    """Requests made in this thread without a timeout get ``seconds`` (connect and read)."""
    _install()
    previous = getattr(_defaults, "timeout", None)
    _defaults.timeout = seconds
    try:
        yield
    finally:
        _defaults.timeout = previous


def _install() -> None:
    """Wrap ``HTTPAdapter.send`` once: a missing timeout becomes this thread's default."""
    global _patched  # noqa: PLW0603 - one process-wide wrapper, installed once
    with _patch_lock:
        if _patched:
            return
        original = requests.adapters.HTTPAdapter.send

        def send(
            self: requests.adapters.HTTPAdapter,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            *args: Any,
            **kwargs: Any,
        ) -> requests.Response:
            if timeout is None:
                timeout = getattr(_defaults, "timeout", None)
            return original(self, request, stream, timeout, *args, **kwargs)

        requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
        _patched = True
