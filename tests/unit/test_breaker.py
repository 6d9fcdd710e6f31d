"""The circuit breaker of one CA account (acmelite.breaker) and the transport's reports to it.

No CA: the transport's requests go to a closed loopback port (refused at once).
"""

from __future__ import annotations

import socket

import pytest

from acmelite.breaker import DEFAULT_THRESHOLD, DEFAULT_WAIT, CircuitBreaker
from acmelite.errors import CaUnavailable, NetworkError
from acmelite.fleet import Fleet
from acmelite.transport import Transport

SERVER = "https://ca.example.test/dir"


def test_three_transport_failures_in_a_row_open_it() -> None:
    breaker = CircuitBreaker(SERVER)
    assert breaker.threshold == DEFAULT_THRESHOLD == 3
    breaker.failed("timeout 1")
    breaker.failed("timeout 2")
    breaker.check()  # still closed
    assert not breaker.is_open
    breaker.failed(NetworkError("cannot reach ca.example.test (Connection refused)"))
    assert breaker.is_open
    with pytest.raises(CaUnavailable) as caught:
        breaker.check()
    error = caught.value
    assert str(error) == (
        f"not tried: {SERVER} failed 3 requests in a row in this run (last: cannot reach"
        " ca.example.test (Connection refused)), so no more are sent to it"
    )
    assert (error.server, error.failures, error.code) == (SERVER, 3, "ca-unavailable")
    assert error.retry_after == DEFAULT_WAIT and isinstance(error, NetworkError)
    # Once open, it stays open for the run, whatever answers later.
    breaker.answered(200, f"GET {SERVER}")
    assert breaker.is_open


@pytest.mark.parametrize("status", [200, 201, 400, 403, 404, 429, 501])
def test_an_answer_resets_the_count(status: int) -> None:
    """A problem document (a failed validation, a rate limit) is the CA answering."""
    breaker = CircuitBreaker(SERVER)
    breaker.failed("a")
    breaker.failed("b")
    breaker.answered(status, f"GET {SERVER}")
    breaker.failed("c")
    breaker.failed("d")
    assert not breaker.is_open


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_answer_is_a_failure(status: int) -> None:
    breaker = CircuitBreaker(SERVER, threshold=2)
    breaker.answered(status, f"GET {SERVER}")
    assert not breaker.is_open
    breaker.answered(status, f"POST {SERVER}x")
    assert breaker.is_open
    assert breaker.last_error == f"ca.example.test answered HTTP {status} to POST {SERVER}x"


def test_late_requests_are_held_back_only_behind_a_failure() -> None:
    breaker = CircuitBreaker(SERVER, wait=60)
    breaker.check_late()  # nothing failed: the caller's own deadline error
    breaker.failed("no answer within 30 s")
    with pytest.raises(CaUnavailable, match=r"the time ran out waiting for .*no answer") as caught:
        breaker.check_late()
    assert caught.value.retry_after == 60 and not breaker.is_open


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(SERVER, threshold=0)
    with pytest.raises(ValueError, match="0 or more seconds"):
        CircuitBreaker(SERVER, wait=-1)
    with pytest.raises(ValueError, match="breaker_threshold must be 1 or more"):
        Fleet([], breaker_threshold=0)


def test_the_transport_reports_each_request_once_and_sends_nothing_while_open() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/dir"
    breaker = CircuitBreaker(url, threshold=2)
    slept: list[float] = []
    transport = Transport(insecure=True, breaker=breaker, sleep=slept.append)
    try:
        with pytest.raises(NetworkError, match="cannot reach"):
            transport.get(url)
        assert len(slept) == 2  # retried twice, reported once
        assert not breaker.is_open
        with pytest.raises(NetworkError, match="cannot reach"):
            transport.get(url)
        assert breaker.is_open
        with pytest.raises(CaUnavailable):
            transport.get(url)
        assert len(slept) == 4  # the third request never tried the port
    finally:
        transport.close()


def test_a_server_that_never_answers_is_said_to_have_not_answered() -> None:
    """A connection accepted and never answered (a blackhole): "did not answer", not
    "still sending its answer" — that is for a server that sent its head, then stalled."""
    import time

    from acmelite.errors import DeadlineExceeded
    from acmelite.testing.blackhole import Blackhole

    with Blackhole(scheme="http") as hole:
        transport = Transport(insecure=True, timeout=0.5, sleep=lambda _: None)
        try:
            with pytest.raises(NetworkError, match=r"did not answer GET http://\S+/dir within"):
                transport.get(hole.url)
            with pytest.raises(DeadlineExceeded, match=r"did not answer GET .* at the deadline"):
                transport.get(hole.url, deadline=time.monotonic() + 0.5)
        finally:
            transport.close()
        assert hole.connections >= 2
