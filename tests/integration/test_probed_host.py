"""Strangers and probed hosts: whoever reaches port 80, and whatever a probed endpoint presents.

The threat model in docs/reliability.md: while a certificate is issued, the standalone
HTTP-01 server is open to the Internet (scanners reset half-way, slow clients hold
connections); ``check`` and ``verify`` connect to hosts that may present anything at all.
Neither may make acmelite print a traceback, hang, or write a stranger's escape sequences
to the operator's terminal.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmelite.models import Challenge, Identifier
from acmelite.solvers.base import ChallengeTask
from acmelite.solvers.http01 import ACME_CHALLENGE_PATH, StandaloneSolver
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import Fault, FaultProxy, On
from tests.reliability import Ledger
from tests.support import issue_argv, run_cli_subprocess

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
#: StandaloneSolver's default cap on connections served at once.
MAX_CONNECTIONS = 64


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    book = Ledger(
        "probed-host", "Strangers on port 80 and hostile probed hosts (test_probed_host.py)"
    )
    yield book
    book.save()


def _task(token: str = TOKEN) -> ChallengeTask:
    challenge = Challenge(type="http-01", url="https://ca.test/c/1", status="pending", token=token)
    return ChallengeTask(
        identifier=Identifier(type="dns", value="probed.acmelite.test"),
        challenge=challenge,
        key_authorization=f"{token}.thumbprint",
    )


@pytest.fixture
def server() -> Iterator[tuple[StandaloneSolver, int]]:
    solver = StandaloneSolver(port=0, address="127.0.0.1")
    solver.perform([_task()])
    try:
        yield solver, solver.bound_port
    finally:
        solver.cleanup([_task()])


def _reset_after(port: int, raw: bytes) -> None:
    """Connect, send ``raw``, and close with a TCP RST (what port scanners do)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(raw)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {ACME_CHALLENGE_PATH}{TOKEN} HTTP/1.0\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _wait_quiet(solver: StandaloneSolver) -> None:
    """Until the server has finished with every connection (at most a few seconds)."""
    limit = time.monotonic() + 10
    while getattr(solver._server, "_open", None) and time.monotonic() < limit:
        time.sleep(0.02)
    time.sleep(0.2)


# -- finding 7: the standalone HTTP-01 server ---------------------------------------------------


def test_resetting_clients_cause_no_traceback_only_one_debug_line_each(
    server: tuple[StandaloneSolver, int],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    ledger: Ledger,
) -> None:
    solver, port = server
    library = logging.getLogger("acmelite")
    library.addHandler(caplog.handler)  # an in-process CLI run before stops propagation
    try:
        with caplog.at_level(logging.DEBUG, logger="acmelite"):
            for i in range(30):
                path = f"{ACME_CHALLENGE_PATH}{TOKEN}" if i % 2 else "/"
                _reset_after(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode())
            _wait_quiet(solver)
            assert _fetch(port).endswith(f"{TOKEN}.thumbprint".encode())
    finally:
        library.removeHandler(caplog.handler)
    err = capfd.readouterr().err
    failures = [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()]
    ledger.record(
        "30 clients reset the connection mid-request",
        bad_inputs=30,
        failed_cleanly=int(not err),
        message=failures[0] if failures else "",
    )
    assert err == "", f"the server wrote to stderr:\n{err[:2000]}"
    assert failures, "a broken connection is logged at DEBUG"
    for message in failures:
        assert "\n" not in message and message.startswith("http-01 server: connection from")


def test_a_dripping_client_is_dropped_at_the_connection_deadline(
    server: tuple[StandaloneSolver, int], ledger: Ledger
) -> None:
    """One header byte every second never trips the 10 s read timeout; the 10 s connection
    deadline ends it all the same."""
    _, port = server
    start = time.monotonic()
    dropped_after = None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Drip: ")
        while time.monotonic() - start < 40:
            try:
                sock.sendall(b"y")
                sock.settimeout(1.0)
                if sock.recv(1) == b"":
                    dropped_after = time.monotonic() - start
                    break
            except TimeoutError:
                continue
            except OSError:
                dropped_after = time.monotonic() - start
                break
    ledger.record(
        "a client dripping one header byte a second",
        bad_inputs=1,
        failed_cleanly=int(dropped_after is not None),
    )
    assert dropped_after is not None, "still connected after 40 s"
    assert 5 < dropped_after < 25, f"dropped after {dropped_after:.1f} s (deadline 10 s)"


def _handler_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_idle_connections_are_capped_and_the_ca_still_gets_through(
    server: tuple[StandaloneSolver, int], ledger: Ledger
) -> None:
    _, port = server
    before = _handler_threads()
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        most = _handler_threads() - before
        answer = _fetch(port)
    finally:
        for sock in idle:
            sock.close()
    ledger.record(
        "200 idle connections at once",
        bad_inputs=200,
        failed_cleanly=int(most <= MAX_CONNECTIONS),
    )
    assert answer.endswith(f"{TOKEN}.thumbprint".encode())
    assert most <= MAX_CONNECTIONS + 2, f"{most} handler threads for 200 idle clients"


def test_an_issue_with_scanners_on_port_80_prints_no_traceback(
    pebble: Pebble, tmp_path: Path, ledger: Ledger
) -> None:
    """A real run: while its server waits for the CA, 30 clients reset their connections."""
    with FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as proxy:
        # Hold the challenge answer 2 s, so the server is up while the scanners come.
        proxy.inject(Fault.delay(2.0, on=On(kind="challenge")))
        argv = issue_argv(
            pebble,
            tmp_path,
            "scanned.acmelite.test",
            directory_url=proxy.directory_url,
            ca_bundle=proxy.ca_bundle,
        )
        resets = []
        stop = threading.Event()

        def scanner() -> None:
            while not stop.is_set() and len(resets) < 30:
                try:
                    _reset_after(pebble.http_port, b"GET / HTTP/1.1\r\nHost: scanner\r\n")
                    resets.append(1)
                except OSError:
                    time.sleep(0.01)

        thread = threading.Thread(target=scanner, daemon=True)
        thread.start()
        try:
            result = run_cli_subprocess(argv)
        finally:
            stop.set()
            thread.join(10)
    ledger.record(
        f"issue with {len(resets)} scanner resets on the HTTP-01 port",
        bad_inputs=len(resets),
        recovered=int(result.code == 0),
    )
    assert result.code == 0, result.err
    assert len(resets) >= 10, "the scanner reached the server"
    assert "Traceback" not in result.err
    assert len(result.err.splitlines()) < 15, result.err
