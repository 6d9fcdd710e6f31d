"""Strangers and probed hosts: whoever reaches port 80, and whatever a probed endpoint presents.

The threat model in docs/reliability.md: while a certificate is issued, the standalone
HTTP-01 server is open to the Internet (scanners reset half-way, slow clients hold
connections); ``check`` and ``verify`` connect to hosts that may present anything at all.
Neither may make acmelite print a traceback, hang, or write a stranger's escape sequences
to the operator's terminal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from acmelite.challenges import ChallengeTask
from acmelite.models import Challenge, Identifier
from acmelite.solvers.http01 import ACME_CHALLENGE_PATH, StandaloneSolver
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import Fault, FaultProxy, On
from acmelite.verify import VerifyStatus, verify_deployment
from tests.reliability import Ledger
from tests.support import issue_argv, run_cli_subprocess

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
NOW = dt.datetime.now(dt.timezone.utc)
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
    # An in-process CLI run earlier may have left its handler on "acmelite": its one-line
    # records may reach stderr, socketserver's tracebacks must not.
    raw = [line for line in err.splitlines() if line and "http-01 server:" not in line]
    ledger.record(
        "30 clients reset the connection mid-request",
        bad_inputs=30,
        failed_cleanly=int(not raw),
        message=re.sub(r"127\.0\.0\.1:\d+", "CLIENT", failures[0]) if failures else "",
    )
    assert raw == [], f"the server wrote to stderr:\n{err[:2000]}"
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


# -- finding 8: a malformed certificate is a verdict, never a traceback -------------------------


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
    broken: bool = False,
) -> x509.Certificate:
    """A certificate; ``broken`` adds an SCT-list extension that is not DER (cryptography
    refuses it when the extensions are read; OpenSSL still serves it)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), False)
    if broken:
        sct = ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS
        builder = builder.add_extension(x509.UnrecognizedExtension(sct, b"\x30\x03\x82\x01"), False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


class TlsEndpoint:
    """Python's ssl in a thread on 127.0.0.1, presenting ``chain`` (leaf first)."""

    def __init__(
        self, directory: Path, chain: list[x509.Certificate], key: ec.EllipticCurvePrivateKey
    ):
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        (directory / "chain.pem").write_bytes(pem)
        (directory / "key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "chain.pem", directory / "key.pem")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with contextlib.suppress(OSError), self.context.wrap_socket(conn, server_side=True):
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@dataclass
class Pki:
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    bundle: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Probed Test Root", key, ca=True)
    bundle = tmp_path_factory.mktemp("probed-pki") / "root.pem"
    bundle.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return Pki(root, key, bundle)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Callable[..., TlsEndpoint]]:
    started: list[TlsEndpoint] = []

    def start(chain: list[x509.Certificate], key: ec.EllipticCurvePrivateKey) -> TlsEndpoint:
        started.append(TlsEndpoint(tmp_path, chain, key))
        return started[-1]

    try:
        yield start
    finally:
        for running in started:
            running.close()


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
@pytest.mark.parametrize("how", ["live", "--cert"])
def test_check_judges_a_malformed_certificate(
    pki: Pki,
    endpoint: Callable[..., TlsEndpoint],
    tmp_path: Path,
    where: str,
    how: str,
    ledger: Ledger,
) -> None:
    inter_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    inter = _cert("Probed Intermediate", inter_key, issuer=(pki.root, pki.root_key), ca=True,
                  broken=where == "intermediate")  # fmt: skip
    leaf = _cert("bad.acmelite.test", leaf_key, issuer=(inter, inter_key), broken=where == "leaf")
    served = endpoint([leaf, inter], leaf_key)
    argv = ["check", "--name", "bad.acmelite.test", "--ca-bundle", str(pki.bundle)]
    if how == "live":
        argv.insert(1, f"127.0.0.1:{served.port}")
    else:
        argv += ["--cert", str(tmp_path / "chain.pem")]
    result = run_cli_subprocess(argv)
    ledger.record(
        f"check ({how}): {where} with a malformed extension",
        bad_inputs=1,
        failed_cleanly=int(result.code == 12 and "Traceback" not in result.err),
    )
    assert "Traceback" not in result.err, result.err
    assert result.code == 12, result.out + result.err
    number = "" if where == "leaf" else " in its chain (number 2)"
    assert f"the server presents an invalid certificate{number}: its extensions" in result.out
    assert "Result: untrusted chain (exit 12)" in result.out


def test_verify_judges_a_malformed_certificate(
    pki: Pki, endpoint: Callable[..., TlsEndpoint], ledger: Ledger
) -> None:
    """The endpoint serves a malformed leaf instead of the new certificate; then the new one
    with a malformed intermediate."""
    key = ec.generate_private_key(ec.SECP256R1())
    new = _cert("bad.acmelite.test", key, issuer=(pki.root, pki.root_key))
    bad = endpoint([_cert("bad.acmelite.test", key, broken=True)], key)
    report = verify_deployment(
        new, ["bad.acmelite.test"], "127.0.0.1", bad.port, ca_bundle=[pki.root], timeout=0
    )
    (result,) = report.results
    assert not report.ok and result.status is VerifyStatus.STALE
    assert result.detail.startswith("the server presents an invalid certificate: its extensions")
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert("Probed Intermediate", inter_key, issuer=(pki.root, pki.root_key), ca=True,
                  broken=True)  # fmt: skip
    leaf = _cert("bad.acmelite.test", key, issuer=(inter, inter_key))
    served = endpoint([leaf, inter], key)
    report = verify_deployment(
        leaf, ["bad.acmelite.test"], "127.0.0.1", served.port, ca_bundle=[pki.root], timeout=0
    )
    (result,) = report.results
    ledger.record("verify: malformed leaf, then malformed intermediate", bad_inputs=2,
                  failed_cleanly=2)  # fmt: skip
    assert result.status is VerifyStatus.UNTRUSTED
    assert "invalid certificate in its chain (number 2)" in result.detail


# -- finding 6: a probed certificate's names are escaped before they are printed ----------------

HOSTILE_CN = "\x1b]0;pwned\x07\x1b[2Jexample.com\u202e"
HOSTILE_SAN = "\x1b[31mevil.acmelite.test"


def test_check_escapes_the_names_a_probed_certificate_carries(
    pki: Pki, endpoint: Callable[..., TlsEndpoint], ledger: Ledger
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(pki.root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTILE_SAN)]), critical=False)
        .sign(pki.root_key, hashes.SHA256())
    )
    served = endpoint([cert], key)
    result = run_cli_subprocess(
        ["check", f"127.0.0.1:{served.port}", "--name", "evil.acmelite.test",
         "--ca-bundle", str(pki.bundle)]
    )  # fmt: skip
    shown = result.out + result.err
    ledger.record("check: CN and SAN with escape sequences and bidi controls", bad_inputs=1,
                  failed_cleanly=int("\x1b" not in shown))  # fmt: skip
    assert result.code in (10, 12), result.out + result.err
    for char in ("\x1b", "\x07", "\u202e"):
        assert char not in shown, f"{char!r} reached the terminal"
    assert "\\x1b]0\\;pwned\\x07\\x1b[2Jexample.com\\u202e" in result.out
    assert "\\x1b[31mevil.acmelite.test" in result.out
