"""Hostile clients against the standalone HTTP-01 server, and hostile paths on disk.

The standalone server listens on the open Internet while a certificate is being issued, so
anyone may talk to it: it must survive garbage, floods of headers and clients that stall,
and only ever answer the exact token paths in flight. The webroot solver must never write
outside its directory, and the certificate output must never follow a symbolic link that
someone planted in ``--out``.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmelite.challenges import ChallengeTask
from acmelite.errors import AcmeliteError, SolverError
from acmelite.models import Challenge, Identifier
from acmelite.solvers.http01 import ACME_CHALLENGE_PATH, StandaloneSolver, WebrootSolver
from acmelite.storage import OutputLock, write_output_dir
from tests.reliability import Ledger

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
OTHER = "a" * 43


def _task(token: str, name: str = "hostile.acmelite.test") -> ChallengeTask:
    challenge = Challenge(
        type="http-01", url="https://ca.test/chal/1", status="pending", token=token
    )
    return ChallengeTask(
        identifier=Identifier(type="dns", value=name),
        challenge=challenge,
        key_authorization=f"{token}.thumbprint",
    )


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    book = Ledger(
        "http01",
        "Hostile requests and paths against HTTP-01 and the output (test_http01_server.py)",
    )
    yield book
    book.save()


@pytest.fixture
def server() -> Iterator[tuple[StandaloneSolver, int]]:
    solver = StandaloneSolver(port=0, address="127.0.0.1")
    task = _task(TOKEN)
    solver.perform([task])
    try:
        yield solver, solver.bound_port
    finally:
        solver.cleanup([task])


def _exchange(port: int, raw: bytes, *, timeout: float = 5) -> bytes:
    """Send ``raw`` on a fresh connection; everything the server answers before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close on us half-way through a flood
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    """The status code of an answer; 0 when the server just closed.

    A two-word request line is HTTP/0.9, whose answer has no status line: the stdlib's error
    page then names the code in its body.
    """
    if not answer:
        return 0
    if not answer.startswith(b"HTTP/"):
        code = answer.partition(b"Error code: ")[2][:3]
        assert code.isdigit(), answer[:200]
        return int(code)
    line = answer.split(b"\r\n", 1)[0].split()
    assert line[0].startswith(b"HTTP/1."), answer[:200]
    return int(line[1])


def _get(port: int, path: str) -> tuple[int, bytes]:
    answer = _exchange(port, f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode("latin-1"))
    return _status(answer), answer.partition(b"\r\n\r\n")[2]


def _still_serves(port: int) -> None:
    status, body = _get(port, ACME_CHALLENGE_PATH + TOKEN)
    assert (status, body) == (200, f"{TOKEN}.thumbprint".encode())


# -- the standalone server -------------------------------------------------------------------

GARBAGE = [
    b"\x00" * 100,
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),  # a TLS ClientHello
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\n\r\n",
    b"GET " + b"/" * 70_000 + b" HTTP/1.1\r\n\r\n",  # request line past the 64 KiB limit
    b"GET / HTTP/1.1\r\n" + b"X-Flood: y\r\n" * 500 + b"\r\n",  # too many headers
    b"GET / HTTP/1.1\r\nX-Big: " + b"y" * 100_000 + b"\r\n\r\n",  # one header past 64 KiB
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST " + ACME_CHALLENGE_PATH.encode() + TOKEN.encode() + b" HTTP/1.1\r\n"
    b"Content-Length: 99999999\r\n\r\nabc",
    b"GET /\xff\xfe\xfd HTTP/1.1\r\n\r\n",
    b"\r\n" * 1000,
    os.urandom(4096),
]


@pytest.mark.parametrize("raw", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_gets_an_error_or_a_close_and_the_server_lives_on(
    server: tuple[StandaloneSolver, int], raw: bytes, ledger: Ledger
) -> None:
    _, port = server
    status = _status(_exchange(port, raw))
    ledger.record(f"garbage request {raw[:24]!r}", bad_inputs=1, failed_cleanly=1)
    assert status == 0 or 400 <= status < 600
    assert status != 200
    _still_serves(port)


PATHS = [
    "/",
    "/etc/passwd",
    ACME_CHALLENGE_PATH,
    ACME_CHALLENGE_PATH + OTHER,
    ACME_CHALLENGE_PATH + "../../../../etc/passwd",
    ACME_CHALLENGE_PATH + "..%2f..%2f..%2fetc%2fpasswd",
    ACME_CHALLENGE_PATH + "%2e%2e/%2e%2e/etc/passwd",
    ACME_CHALLENGE_PATH + TOKEN + "/..",
    ACME_CHALLENGE_PATH + TOKEN + "%2f",
    ACME_CHALLENGE_PATH + TOKEN + "/",
    ACME_CHALLENGE_PATH + TOKEN + "?download=1",
    ACME_CHALLENGE_PATH + TOKEN + "#x",
    ACME_CHALLENGE_PATH + TOKEN.lower(),
    ACME_CHALLENGE_PATH + "/" + TOKEN,
    "/.well-known/acme-challenge/./" + TOKEN,
    "/.WELL-KNOWN/acme-challenge/" + TOKEN,
    "/.well-known/acme-challenge%2f" + TOKEN,
    "/.well-known/acme-challenge/" + TOKEN[:-1],
    "/.well-known/acme-challenge/" + TOKEN + "\x00",
    "http://evil.test" + ACME_CHALLENGE_PATH + "../x",
    "*",
]


@pytest.mark.parametrize("path", PATHS)
def test_only_the_exact_token_path_is_served(
    server: tuple[StandaloneSolver, int], path: str, ledger: Ledger
) -> None:
    _, port = server
    status, body = _get(port, path)
    ledger.record(f"path {path[:40]!r}", bad_inputs=1, failed_cleanly=int(status != 200))
    assert status in (400, 404), (status, body)
    assert b"thumbprint" not in body


def test_a_doubled_leading_slash_is_the_same_resource(server: tuple[StandaloneSolver, int]) -> None:
    """http.server collapses a leading ``//`` (CPython gh-87389): still only that token."""
    _, port = server
    status, body = _get(port, "/" + ACME_CHALLENGE_PATH + TOKEN)
    assert (status, body) in ((200, f"{TOKEN}.thumbprint".encode()), (404, b"not found\n"))
    assert _get(port, "/" + ACME_CHALLENGE_PATH + OTHER)[0] == 404


def test_head_and_the_answer_itself(server: tuple[StandaloneSolver, int]) -> None:
    _, port = server
    answer = _exchange(port, f"HEAD {ACME_CHALLENGE_PATH}{TOKEN} HTTP/1.0\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert _status(answer) == 200 and body == b""
    assert b"Content-Type: text/plain" in head
    _still_serves(port)


def test_slow_clients_do_not_block_others(
    server: tuple[StandaloneSolver, int], ledger: Ledger
) -> None:
    """Twenty clients send half a request and stall; a real fetch still answers at once."""
    _, port = server
    stalled = []
    try:
        for i in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /.well-known/acme-chal" if i % 2 else b"GET / HTTP/1.1\r\nHo")
            stalled.append(sock)
        start = time.monotonic()
        _still_serves(port)
        took = time.monotonic() - start
    finally:
        for sock in stalled:
            sock.close()
    ledger.record("20 clients stalled mid-request", bad_inputs=20, failed_cleanly=20)
    assert took < 3.0, f"a real fetch waited {took:.2f} s behind stalled clients"


def test_a_stalled_client_is_dropped_after_the_handler_timeout(
    server: tuple[StandaloneSolver, int],
) -> None:
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        start = time.monotonic()
        while sock.recv(4096):
            pass
        assert time.monotonic() - start < 20


def test_many_garbage_clients_in_parallel(
    server: tuple[StandaloneSolver, int], ledger: Ledger
) -> None:
    _, port = server
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        try:
            for i in range(10):
                _exchange(port, os.urandom(64 + seed * i) + b"\r\n\r\n", timeout=10)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ledger.record(
        "160 random requests from 16 clients at once",
        bad_inputs=160,
        failed_cleanly=160 - len(errors),
    )
    assert not errors
    _still_serves(port)


def test_request_lines_are_logged_without_control_characters(
    server: tuple[StandaloneSolver, int], caplog: pytest.LogCaptureFixture
) -> None:
    """What a stranger sends must not reach the operator's terminal as escape sequences."""
    _, port = server
    library = logging.getLogger("acmelite")
    library.addHandler(caplog.handler)  # an in-process CLI run before stops propagation
    try:
        with caplog.at_level(logging.DEBUG, logger="acmelite"):
            _exchange(port, b"GET /\x1b]0;pwned\x07\x1b[2J HTTP/1.0\r\n\r\n")
            _exchange(port, b"GET /\x1b[31m\r\n\r\n")
            _still_serves(port)
    finally:
        library.removeHandler(caplog.handler)
    messages = [r.getMessage() for r in caplog.records if "http01" in r.name]
    assert messages, "the server logs requests at DEBUG"
    for message in messages:
        assert not any(ord(c) < 32 or ord(c) == 127 for c in message), repr(message)


def test_cleanup_stops_the_server_and_frees_the_port() -> None:
    solver = StandaloneSolver(port=0, address="127.0.0.1")
    task = _task(TOKEN)
    solver.perform([task])
    port = solver.bound_port
    solver.cleanup([task])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    again = StandaloneSolver(port=port, address="127.0.0.1")
    again.perform([task])
    again.cleanup([task])


# -- tokens on disk --------------------------------------------------------------------------

BAD_TOKENS = [
    "../../../etc/cron.d/evil",
    "..",
    ".",
    "",
    "a/b",
    "a\\b",
    "/etc/passwd",
    "%2e%2e%2fescape",
    "tok en",
    "tok\x00en",
    "tok\nen",
    "token=",
    "tóken",
    "a" * 257,
]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_webroot_refuses_tokens_that_are_not_base64url(
    token: str, tmp_path: Path, ledger: Ledger
) -> None:
    webroot = tmp_path / "www" / "site"
    webroot.mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    solver = WebrootSolver(webroot)
    task = _task(token)
    with pytest.raises(SolverError, match="not base64url"):
        solver.perform([task])
    solver.cleanup([task])
    after = sorted(tmp_path.rglob("*"))
    ledger.record(
        f"webroot token {token[:30]!r}",
        bad_inputs=1,
        failed_cleanly=1,
        data_lost=int(after != before),
    )
    assert after == before, "nothing was written, inside the webroot or out of it"


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_standalone_refuses_the_same_tokens(token: str) -> None:
    solver = StandaloneSolver(port=0, address="127.0.0.1")
    with pytest.raises(SolverError, match="not base64url"):
        solver.perform([_task(token)])
    assert solver.bound_port == 0, "the server never started"


def test_webroot_does_not_follow_a_planted_token_symlink(tmp_path: Path, ledger: Ledger) -> None:
    webroot = tmp_path / "www"
    challenges = webroot / ".well-known" / "acme-challenge"
    challenges.mkdir(parents=True)
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    (challenges / TOKEN).symlink_to(victim)
    solver = WebrootSolver(webroot)
    with pytest.raises(SolverError, match="cannot write"):
        solver.perform([_task(TOKEN)])
    solver.cleanup([_task(TOKEN)])
    ledger.record(
        "webroot token path planted as a symlink",
        bad_inputs=1,
        failed_cleanly=1,
        data_lost=int(victim.read_text() != "precious\n"),
    )
    assert victim.read_text() == "precious\n"


def test_webroot_writes_only_the_token_and_cleans_up(tmp_path: Path) -> None:
    webroot = tmp_path / "www"
    webroot.mkdir()
    solver = WebrootSolver(webroot)
    tasks = [_task(TOKEN), _task(OTHER, "b.acmelite.test")]
    solver.perform(tasks)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == [f"www/.well-known/acme-challenge/{t}" for t in sorted((TOKEN, OTHER))]
    solver.cleanup(tasks)
    assert list(webroot.iterdir()) == []


# -- the output directory --------------------------------------------------------------------

FILES = {
    "cert.pem": b"cert\n",
    "chain.pem": b"chain\n",
    "fullchain.pem": b"cert\nchain\n",
    "privkey.pem": b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n",
}


def _outside_files(outside: Path) -> list[str]:
    return sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))


@pytest.mark.parametrize("planted", ["privkey.pem", "cert.pem", ".live", "fullchain.pem"])
def test_output_replaces_planted_links_instead_of_following_them(
    tmp_path: Path, planted: str, ledger: Ledger
) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    write_output_dir(out, FILES)
    (outside / "target").write_text("precious\n")
    link = out / planted
    link.unlink()
    link.symlink_to(outside / "target")
    write_output_dir(out, FILES)
    intact = (outside / "target").read_text() == "precious\n"
    ledger.record(
        f"--out/{planted} planted as a symlink to outside",
        bad_inputs=1,
        recovered=1,
        data_lost=int(not intact),
    )
    assert intact
    assert _outside_files(outside) == ["target"]
    assert (out / "privkey.pem").read_bytes() == FILES["privkey.pem"]
    assert os.readlink(out / planted) != str(outside / "target")


def test_output_refuses_a_planted_versions_link(tmp_path: Path, ledger: Ledger) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    out.mkdir(mode=0o700)
    (out / ".versions").symlink_to(outside)
    with pytest.raises(AcmeliteError, match="symbolic link"):
        write_output_dir(out, FILES)
    ledger.record(
        "--out/.versions planted as a symlink to outside",
        bad_inputs=1,
        failed_cleanly=1,
        data_lost=int(bool(_outside_files(outside))),
    )
    assert _outside_files(outside) == [], "no key was written through the link"


def test_pruning_never_deletes_through_a_planted_version_link(
    tmp_path: Path, ledger: Ledger
) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.me").write_text("precious\n")
    write_output_dir(out, FILES)
    (out / ".versions" / "000000-planted").symlink_to(outside)
    for _ in range(5):
        write_output_dir(out, FILES)
    intact = _outside_files(outside) == ["keep.me"]
    ledger.record(
        ".versions/<old> planted as a symlink to outside, then pruned",
        bad_inputs=1,
        recovered=1,
        data_lost=int(not intact),
    )
    assert intact


def test_lock_file_planted_as_a_symlink_is_refused(tmp_path: Path, ledger: Ledger) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    out.mkdir(mode=0o700)
    (out / ".lock").symlink_to(outside / "created-by-root")
    with pytest.raises(AcmeliteError, match="lock"), OutputLock(out):
        pass
    ledger.record(
        "--out/.lock planted as a symlink to outside",
        bad_inputs=1,
        failed_cleanly=1,
        data_lost=int(bool(_outside_files(outside))),
    )
    assert _outside_files(outside) == [], "the lock must not create files through a link"


def test_output_modes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_output_dir(out, FILES)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / ".versions").stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "privkey.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "cert.pem").stat().st_mode) == 0o644
