"""A circuit breaker per CA account for one fleet run: stop asking a CA that stopped answering.

A CA that is down or blackholed — connection refused, a TLS failure, 5xx answers, or worst,
a connection that is accepted and never answered, so every request waits out its whole
timeout — would otherwise cost every due directory of a fleet a timeout of its own:
1,000 directories times ten minutes. :class:`CircuitBreaker` counts the requests to one CA
account that failed *at the transport*, in a row, and after ``threshold`` of them it opens:
every later request of that account in the run fails at once with
:class:`~acmelite.errors.CaUnavailable`, before anything is sent.

Theory of operation:

* The :class:`~acmelite.transport.Transport` reports each request once, after its own
  retries (a 503 whose short ``Retry-After`` it waits out is not the end of the request):
  :meth:`~CircuitBreaker.failed` for a network failure or a timeout;
  :meth:`~CircuitBreaker.answered` for an answer — a failure if its status is 500, 502,
  503, 504 or above (501 means "not implemented": the CA answered); any other, a problem
  document included — a failed validation, a malformed CSR or a rate limit is the CA
  speaking about one order — resets the count.
* The breaker never closes again within the run (a fleet run is a batch; the next run,
  at least ``wait`` seconds later, tries again). :class:`~acmelite.errors.CaUnavailable`
  carries that ``wait`` as ``retry_after``: what a certificate held back records as its
  next attempt, which is not a failure of the certificate.
* Requests of several threads share one CA's connection pool and directory fetch, so a
  thread may spend its certificate's whole deadline waiting for another thread's request
  that then fails. :meth:`~CircuitBreaker.check_late`: a request whose deadline passed
  before it was sent, while the CA's last request failed, is held back in the same way
  (the CA, not the certificate, is what failed).

Thread-safe; no I/O. The pool of shared clients makes one breaker per CA account
(:mod:`acmelite.client_pool`).
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

from .errors import CaUnavailable

__all__ = ["DEFAULT_THRESHOLD", "DEFAULT_WAIT", "CircuitBreaker", "server_error"]

log = logging.getLogger(__name__)

#: Transport failures in a row after which a fleet run stops sending to a CA account.
DEFAULT_THRESHOLD = 3
#: Seconds a certificate held back by an open breaker waits before its next attempt
#: (an hourly run always tries again; one started right after a failed run does not).
DEFAULT_WAIT = 600.0
#: 5xx statuses that are the CA answering, not failing: "not implemented".
_ANSWERS = frozenset({501})


def server_error(status: int | None) -> bool:
    """Whether an answer with ``status`` is the CA failing (5xx, but 501)."""
    return status is not None and status >= 500 and status not in _ANSWERS


class CircuitBreaker:
    """Consecutive transport failures of one CA account (directory URL ``server``); see the
    module's docstring. ``threshold`` (at least 1) failures in a row open it."""

    def __init__(
        self, server: str, *, threshold: int = DEFAULT_THRESHOLD, wait: float = DEFAULT_WAIT
    ) -> None:
        if threshold < 1:
            raise ValueError(f"the breaker threshold must be at least 1, not {threshold}")
        if not wait >= 0:
            raise ValueError(f"the breaker wait must be 0 or more seconds, not {wait}")
        self.server = server
        self.threshold = threshold
        self.wait = wait
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._last_error = ""
        self._open = False

    def __repr__(self) -> str:
        state = "open" if self._open else f"{self._in_a_row} failure(s)"
        return f"CircuitBreaker({self.server!r}, {state})"

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open

    @property
    def last_error(self) -> str:
        """The message of the last transport failure ("" before the first)."""
        with self._lock:
            return self._last_error

    def check(self) -> None:
        """Raise :class:`CaUnavailable` if the breaker is open; before every request."""
        with self._lock:
            if not self._open:
                return
        raise self.error()

    def check_late(self) -> None:
        """For a request whose deadline passed before it was sent: raise
        :class:`CaUnavailable` when the CA's last request failed (the time went waiting for
        it), else return (the caller raises its deadline error)."""
        with self._lock:
            failing = self._in_a_row > 0
        if failing:
            raise self.error(late=True)

    def answered(self, status: int, what: str) -> None:
        """The final answer to a request (``what``: ``GET https://...``) has ``status``: a
        :func:`server_error` is a failure, anything else resets the count."""
        if server_error(status):
            self.failed(f"{_host(self.server)} answered HTTP {status} to {what}")
            return
        with self._lock:
            self._in_a_row = 0

    def failed(self, error: BaseException | str) -> None:
        """One more request failed at the transport; the threshold-th in a row opens."""
        with self._lock:
            self._in_a_row += 1
            self._last_error = str(error)
            opening = not self._open and self._in_a_row >= self.threshold
            if opening:
                self._open = True
        if opening:
            log.warning(
                "%s failed %d requests in a row (last: %s): nothing more is sent to it for"
                " this account in this run",
                self.server,
                self.threshold,
                self._last_error,
            )

    def error(self, *, late: bool = False) -> CaUnavailable:
        """The :class:`CaUnavailable` for a request held back now."""
        with self._lock:
            in_a_row, last = self._in_a_row, self._last_error
        if late:
            what = f"the time ran out waiting for {self.server}, whose last request failed ({last})"
        else:
            what = (
                f"{self.server} failed {in_a_row} requests in a row in this run (last:"
                f" {last}), so no more are sent to it"
            )
        return CaUnavailable(
            f"not tried: {what}",
            server=self.server,
            failures=in_a_row,
            last_error=last,
            retry_after=self.wait,
        )


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
