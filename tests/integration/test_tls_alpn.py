"""TLS-ALPN-01 (RFC 8737, RFC 8738 §6): the solver's server with a real TLS client, and
certificates from Pebble for a DNS name and for 127.0.0.1 through ``acmelite issue``.

Pebble's validator connects to ``pebble.tls_port`` of the name (every name resolves to
127.0.0.1 through its challenge test server), so the solver listens there.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from acmelite.challenges import ChallengeTask
from acmelite.models import Challenge, Identifier
from acmelite.solvers.alpn import ACME_IDENTIFIER_OID, ACME_TLS_ALPN
from acmelite.solvers.tlsalpn import TlsAlpnSolver
from acmelite.testing.pebble import Pebble
from acmelite.testing.proxy import FaultProxy
from tests.support import issue_argv, run_cli, verify_chain, without_http


def make_task(name: str, kind: str = "dns") -> ChallengeTask:
    return ChallengeTask(
        identifier=Identifier(type=kind, value=name),
        challenge=Challenge(type="tls-alpn-01", url="u", status="pending", token=f"tok-{name}"),
        key_authorization=f"tok-{name}.thumb",
    )


@pytest.fixture
def served() -> Iterator[tuple[TlsAlpnSolver, ChallengeTask]]:
    solver = TlsAlpnSolver(port=0, address="127.0.0.1", handshake_timeout=2)
    task = make_task("www.example.test")
    solver.prepare()
    solver.perform([task])
    try:
        yield solver, task
    finally:
        solver.cleanup([task])
        solver.release()


def handshake(port: int, sni: str | None, protocols: list[str] | None) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if protocols:
        context.set_alpn_protocols(protocols)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname=sni)


def test_the_validation_handshake_shows_the_certificate(
    served: tuple[TlsAlpnSolver, ChallengeTask],
) -> None:
    solver, task = served
    with handshake(solver.bound_port, "www.example.test", [ACME_TLS_ALPN]) as tls:
        assert tls.selected_alpn_protocol() == ACME_TLS_ALPN
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert ext.critical
    assert ext.value.public_bytes()[2:] == hashlib.sha256(b"tok-www.example.test.thumb").digest()
    assert solver.wait_fetched([task], 0, 2.0) == 1


@pytest.mark.parametrize(
    ("sni", "protocols", "alert"),
    [
        ("www.example.test", None, "no application protocol"),
        ("www.example.test", ["h2", "http/1.1"], "no application protocol"),
        ("other.example.test", [ACME_TLS_ALPN], "unrecognized name"),
        (None, [ACME_TLS_ALPN], "unrecognized name"),
    ],
)
def test_other_handshakes_get_an_alert_and_no_certificate(
    served: tuple[TlsAlpnSolver, ChallengeTask],
    sni: str | None,
    protocols: list[str] | None,
    alert: str,
) -> None:
    solver, task = served
    with pytest.raises(ssl.SSLError, match=alert):
        handshake(solver.bound_port, sni, protocols)
    assert solver.wait_fetched([task], 0, 0.05) == 0


def test_the_listener_is_bound_by_prepare_and_closed_after_release() -> None:
    solver = TlsAlpnSolver(port=0, address="127.0.0.1")
    solver.prepare()
    port = solver.bound_port
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # listening already
    task = make_task("127.0.0.1", "ip")
    solver.perform([task])
    with handshake(port, "1.0.0.127.in-addr.arpa", [ACME_TLS_ALPN]) as tls:
        assert tls.selected_alpn_protocol() == ACME_TLS_ALPN
    solver.cleanup([task])
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # held until release
    solver.release()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def _tls_argv(pebble: Pebble, tmp: Path, *names: str) -> list[str]:
    return [
        *without_http(issue_argv(pebble, tmp, *names)),
        "--challenge", "tls-alpn-01", "--tls-port", str(pebble.tls_port),
        "--tls-address", "127.0.0.1",
    ]  # fmt: skip


def test_pebble_validates_a_dns_name_and_127_0_0_1(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(_tls_argv(pebble, tmp_path, "tls.alpn.test", "127.0.0.1"), capsys)
    assert result.code == 0, result.err
    assert "publishing 2 tls-alpn-01 answer(s)" in result.err
    fullchain = (tmp_path / "out" / "fullchain.pem").read_bytes()
    verify_chain(fullchain, pebble.roots(), "tls.alpn.test")
    verify_chain(fullchain, pebble.roots(), "127.0.0.1")
    config = json.loads((tmp_path / "out" / "renewal.json").read_text())
    assert config["challenge"] == {
        "type": "tls-alpn-01",
        "solver": "tls-alpn",
        "options": {"address": "127.0.0.1", "port": str(pebble.tls_port)},
    }
    renewed = run_cli(["renew", "--force", "--json", str(tmp_path / "out")], capsys)
    assert renewed.code == 3, renewed.err
    assert json.loads(renewed.out)["certificates"][0]["status"] == "renewed"


def test_a_busy_port_fails_before_any_request(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        FaultProxy(pebble.directory_url, upstream_ca_bundle=pebble.ca_bundle) as proxy,
        socket.socket() as holder,
    ):
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        argv = [
            *without_http(issue_argv(pebble, tmp_path, "busy.alpn.test",
                                     directory_url=proxy.directory_url,
                                     ca_bundle=proxy.ca_bundle)),
            "--challenge", "tls-alpn-01", "--tls-port", str(port), "--tls-address", "127.0.0.1",
        ]  # fmt: skip
        result = run_cli(argv, capsys)
        counts = proxy.counts()
    assert result.code == 1
    last = result.err.strip().splitlines()[-1]
    assert last == (
        f"acmelite: error: tls-alpn-01: port {port} on 127.0.0.1 is already in use; stop the"
        " server holding it, pick --tls-port, or let a server of yours answer with"
        " --tls-solver NAME"
    )
    assert sum(counts.values()) == 0  # bound before the first request, not only before newOrder
    assert not (tmp_path / "out").exists()
