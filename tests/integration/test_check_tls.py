"""``acmelite check`` against real TLS servers on loopback, one per case.

Each server is Python's ``ssl`` in a thread on a free 127.0.0.1 port, serving a chain made
here with cryptography: a small local CA (root -> intermediate -> leaf). The CA bundle the
check trusts holds only that root. The check runs in-process through ``run()`` with a
parser built from ``add_parser``, exactly as ``acmelite check`` parses its arguments.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import ipaddress
import json
import re
import shlex
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acmelite.cli import check
from acmelite.tlsprobe import fetch_chain

CLUSTER = "api-2-0-4.team-ns.svc.clusterset.local"
NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)

# --- a small PKI ----------------------------------------------------------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _issue(
    cn: str,
    *,
    issuer: Issued | None,
    ca: bool = False,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    not_before: dt.datetime = NOW - DAY,
    not_after: dt.datetime = NOW + 90 * DAY,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = builder.add_extension(usage, critical=True)
    else:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@dataclass
class Pki:
    root: Issued
    intermediate: Issued
    bundle: Path

    def leaf(self, cn: str, **options: object) -> Issued:
        return _issue(cn, issuer=self.intermediate, **options)  # type: ignore[arg-type]

    def chain(self, leaf: Issued) -> list[x509.Certificate]:
        return [leaf.cert, self.intermediate.cert]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = _issue("acmelite test root", issuer=None, ca=True, not_after=NOW + 3650 * DAY)
    intermediate = _issue("acmelite test intermediate", issuer=root, ca=True)
    bundle = tmp_path_factory.mktemp("pki") / "root.pem"
    bundle.write_bytes(_pem(root.cert))
    return Pki(root=root, intermediate=intermediate, bundle=bundle)


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# --- a real TLS server ----------------------------------------------------------------------


Check = Callable[..., "Outcome"]


@dataclass
class TlsServer:
    """Serves one chain on 127.0.0.1; records the SNI each client sent."""

    port: int
    sni_seen: list[str | None] = field(default_factory=list)


Serve = Callable[..., TlsServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    stops: list[Callable[[], None]] = []

    def start(
        leaf: Issued, chain: Sequence[x509.Certificate], host: str = "127.0.0.1"
    ) -> TlsServer:
        certfile = tmp_path / f"chain-{len(stops)}.pem"
        keyfile = tmp_path / f"key-{len(stops)}.pem"
        certfile.write_bytes(_pem(*chain))
        keyfile.write_bytes(
            leaf.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, 0), family=family)
        listener.settimeout(0.1)
        server = TlsServer(port=listener.getsockname()[1])

        def remember(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            server.sni_seen.append(name)

        context.sni_callback = remember
        stop = threading.Event()
        thread = threading.Thread(target=_accept, args=(listener, context, stop), daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5)
            listener.close()

        stops.append(halt)
        return server

    yield start
    for halt in stops:
        halt()


def _accept(listener: socket.socket, context: ssl.SSLContext, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        conn.settimeout(5)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # until the client closes
        except (OSError, ssl.SSLError):
            conn.close()


@pytest.fixture
def garbage_server() -> Iterator[int]:
    """Accepts TCP and answers with plain text: every TLS handshake fails."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\nthis is not TLS\r\n" * 4)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


# --- running the command --------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, object]:
        doc = json.loads(self.out)
        assert isinstance(doc, dict)
        return doc


@pytest.fixture
def acmelite_check(capsys: pytest.CaptureFixture[str], pki: Pki) -> Check:
    def call(*argv: str, bundle: bool = True) -> Outcome:
        parser = argparse.ArgumentParser(prog="acmelite")
        subparsers = parser.add_subparsers(dest="command", required=True)
        check.add_parser(subparsers)
        extra = ["--ca-bundle", str(pki.bundle)] if bundle else []
        args = parser.parse_args(["check", *argv, *extra])
        code = args.func(args)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return call


def _at(server: TlsServer) -> str:
    return f"127.0.0.1:{server.port}"


# --- the cases ------------------------------------------------------------------------------


def test_cluster_mismatch_unrelated_wildcard(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("*.dev.aws.cloud.us.local", dns=["*.dev.aws.cloud.us.local"])
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server), "--name", CLUSTER)
    assert result.code == check.EXIT_MISMATCH == 10
    assert server.sni_seen == [CLUSTER]
    assert f"Name      FAIL  no SAN covers {CLUSTER}" in result.out
    assert "none of the certificate's SANs is for this name or a name near it" in result.out
    assert (
        f"fixing SANs: {CLUSTER} or *.team-ns.svc.clusterset.local (a wildcard needs "
        "--challenge dns-01)" in result.out
    )
    assert "Chain     ok    verifies to CN=acmelite test root" in result.out
    assert "  sent      1. CN=*.dev.aws.cloud.us.local\n" in result.out
    assert "            2. CN=acmelite test intermediate\n" in result.out
    assert (
        f"  acmelite issue -d '*.dev.aws.cloud.us.local' -d {CLUSTER} --challenge dns-01"
        in result.out
    )
    assert result.out.rstrip().endswith("Result: name mismatch (exit 10)")


def test_two_label_miss_is_explained(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("svc", dns=["*.svc.clusterset.local", "svc.clusterset.local"])
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server), "--name", CLUSTER, "--json")
    assert result.code == 10
    doc = result.json()
    match = doc["name_match"]
    assert isinstance(match, dict)
    assert match["matched"] is False
    assert match["fixing_sans"] == [CLUSTER, "*.team-ns.svc.clusterset.local"]
    assert match["near_misses"] == [
        {
            "san": "*.svc.clusterset.local",
            "reason": "*.svc.clusterset.local covers one label before svc.clusterset.local; "
            "this name has two (api-2-0-4.team-ns)",
        },
        {
            "san": "svc.clusterset.local",
            "reason": f"svc.clusterset.local covers only itself, not names under it such as "
            f"{CLUSTER}",
        },
    ]
    assert doc["problems"] == ["name-mismatch"]
    assert doc["suggested_command"] == (
        f"acmelite issue -d '*.svc.clusterset.local' -d svc.clusterset.local -d {CLUSTER} "
        "--challenge dns-01"
    )
    assert doc["exit_code"] == 10
    assert doc["target"] == {"host": "127.0.0.1", "port": server.port, "sni": CLUSTER}


def test_one_label_wildcard_matches(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("team-ns", dns=["*.team-ns.svc.clusterset.local"])
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server), "--name", CLUSTER)
    assert result.code == check.EXIT_OK == 0
    assert f"Name      ok    *.team-ns.svc.clusterset.local covers {CLUSTER}" in result.out
    assert "Fix:" not in result.out
    assert result.out.rstrip().endswith("Result: ok (exit 0)")


def test_expired(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf(
        "old", dns=["old.example.test"], not_before=NOW - 100 * DAY, not_after=NOW - 10 * DAY
    )
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server), "--name", "old.example.test", "--json")
    assert result.code == check.EXIT_EXPIRED == 11
    doc = result.json()
    assert doc["problems"] == ["validity"]
    validity = doc["validity"]
    assert isinstance(validity, dict)
    assert validity["state"] == "expired"
    assert validity["days_left"] == -10
    assert str(validity["detail"]).startswith("expired 10 days ago (")
    assert doc["trust"] == {
        "verdict": "expired",
        "detail": f"the certificate expired on {(NOW - 10 * DAY):%Y-%m-%d}",
        "anchor": "CN=acmelite test root",
    }
    assert doc["suggested_command"] == "acmelite issue -d old.example.test"


def test_not_yet_valid(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf(
        "new", dns=["new.example.test"], not_before=NOW + 10 * DAY, not_after=NOW + 100 * DAY
    )
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server), "--name", "new.example.test")
    assert result.code == 11
    assert "Validity  FAIL  not valid before" in result.out
    assert "(is the clock right?)" in result.out
    assert "Chain     FAIL  not-yet-valid: the certificate is not valid before" in result.out


def test_self_signed(serve: Serve, acmelite_check: Check) -> None:
    leaf = _issue("self.example.test", issuer=None, dns=["self.example.test"])
    server = serve(leaf, [leaf.cert])
    result = acmelite_check(_at(server), "--name", "self.example.test")
    assert result.code == check.EXIT_UNTRUSTED == 12
    assert (
        "Chain     FAIL  self-signed: the certificate is self-signed and is not in the CA bundle"
        in result.out
    )
    assert "Fix:" not in result.out


def test_missing_intermediate(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("leaf", dns=["leaf.example.test"])
    server = serve(leaf, [leaf.cert])
    result = acmelite_check(_at(server), "--name", "leaf.example.test", "--json")
    assert result.code == 12
    trust = result.json()["trust"]
    assert isinstance(trust, dict)
    assert trust["verdict"] == "missing-intermediate"
    assert str(trust["detail"]).startswith(
        "the server sent only the leaf, and its issuer CN=acmelite test intermediate is not "
        "in the CA bundle: serve the full chain (fullchain.pem)"
    )
    # The same leaf with its intermediate verifies.
    full = serve(leaf, pki.chain(leaf))
    assert acmelite_check(_at(full), "--name", "leaf.example.test").code == 0


def test_untrusted_root(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    other_root = _issue("some other root", issuer=None, ca=True)
    other_ca = _issue("some other intermediate", issuer=other_root, ca=True)
    leaf = _issue("x", issuer=other_ca, dns=["x.example.test"])
    server = serve(leaf, [leaf.cert, other_ca.cert, other_root.cert])
    result = acmelite_check(_at(server), "--name", "x.example.test")
    assert result.code == 12
    assert (
        "untrusted-root: the chain ends at the root CN=some other root, which is not in the CA "
        "bundle" in result.out
    )


def test_ip_address_san(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("ip", dns=["ip.example.test"], ips=["127.0.0.1"])
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server))
    assert result.code == 0
    assert server.sni_seen == [None]  # no SNI for an IP address, as clients do
    assert "Checking 127.0.0.1 at 127.0.0.1:" in result.out
    assert "(SNI none)" in result.out
    assert "IP SANs   127.0.0.1" in result.out
    assert "Name      ok    127.0.0.1 covers 127.0.0.1" in result.out


def test_ip_address_missing(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("ip", dns=["127.0.0.1", "*.example.test"], ips=["127.0.0.2"])
    server = serve(leaf, pki.chain(leaf))
    doc = acmelite_check(_at(server), "--json").json()
    assert doc["exit_code"] == 10
    match = doc["name_match"]
    assert isinstance(match, dict)
    assert match["fixing_sans"] == ["127.0.0.1"]
    assert match["near_misses"] == [
        {"san": "*.example.test", "reason": "*.example.test is a wildcard, and a wildcard never "
         "matches an IP address"},
        {"san": "127.0.0.1", "reason": "127.0.0.1 is a DNS SAN; an IP address needs an IP SAN"},
    ]  # fmt: skip


def _ipv6_loopback() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_target_and_san(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("v6", ips=["::1"])
    server = serve(leaf, pki.chain(leaf), host="::1")
    result = acmelite_check(f"[::1]:{server.port}")
    assert result.code == 0
    assert f"Checking ::1 at [::1]:{server.port} (SNI none)" in result.out
    assert "Name      ok    ::1 covers ::1" in result.out


def test_idn_name(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("idn", dns=["xn--bcher-kva.example"])
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server), "--name", "Bücher.example")
    assert result.code == 0
    assert server.sni_seen == ["xn--bcher-kva.example"]
    assert "Checking Bücher.example (xn--bcher-kva.example) at" in result.out
    assert "Name      ok    xn--bcher-kva.example covers xn--bcher-kva.example" in result.out


def test_idn_mismatch_fix_uses_a_labels(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("idn", dns=["xn--bcher-kva.example"])
    server = serve(leaf, pki.chain(leaf))
    doc = acmelite_check(_at(server), "--name", "straße.bücher.example", "--json").json()
    match = doc["name_match"]
    assert isinstance(match, dict)
    assert match["fixing_sans"] == [
        "xn--strae-oqa.xn--bcher-kva.example",
        "*.xn--bcher-kva.example",
    ]
    assert match["near_misses"] == [
        {
            "san": "xn--bcher-kva.example",
            "reason": "xn--bcher-kva.example covers only itself, not names under it such as "
            "xn--strae-oqa.xn--bcher-kva.example",
        }
    ]


def test_sni_option_overrides_name(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf("a", dns=["a.example.test"])
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server), "--name", "a.example.test", "--sni", "B.example.test")
    assert result.code == 0
    assert server.sni_seen == ["b.example.test"]


def test_several_problems_first_code_wins(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    expired_self_signed = _issue(
        "old", issuer=None, dns=["old.example.test"], not_after=NOW - DAY,
        not_before=NOW - 9 * DAY,
    )  # fmt: skip
    server = serve(expired_self_signed, [expired_self_signed.cert])
    mismatch = acmelite_check(_at(server), "--name", "other.example.test", "--json").json()
    assert mismatch["problems"] == ["name-mismatch", "validity", "trust"]
    assert mismatch["exit_code"] == 10
    result = acmelite_check(_at(server), "--name", "old.example.test")
    assert result.code == 11
    assert "Result: not within its validity period, untrusted chain (exit 11)" in result.out


def test_warn_days_flags_but_exits_zero(pki: Pki, serve: Serve, acmelite_check: Check) -> None:
    leaf = pki.leaf(
        "soon", dns=["soon.example.test"], not_after=NOW + 5 * DAY + dt.timedelta(hours=1)
    )
    server = serve(leaf, pki.chain(leaf))
    result = acmelite_check(_at(server), "--name", "soon.example.test")
    assert result.code == 0
    assert "Validity  WARN  expires in 5 days" in result.out
    assert "within the 14-day warning window: renew" in result.out
    quiet = acmelite_check(_at(server), "--name", "soon.example.test", "--warn-days", "3", "--json")
    validity = quiet.json()["validity"]
    assert isinstance(validity, dict)
    assert validity["expiring_soon"] is False
    assert quiet.code == 0


def test_fetch_chain_returns_the_presented_chain(pki: Pki, serve: Serve) -> None:
    leaf = pki.leaf("leaf", dns=["leaf.example.test"])
    server = serve(leaf, [*pki.chain(leaf), pki.root.cert])
    got = fetch_chain("127.0.0.1", server.port, sni="leaf.example.test", timeout=5)
    assert got == [leaf.cert, pki.intermediate.cert, pki.root.cert]


# --- offline, and the failures before any report -----------------------------------------


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_offline_cert_from_stdin(
    pki: Pki, acmelite_check: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaf = pki.leaf("web", dns=["*.dev.aws.cloud.us.local"])
    _stdin(monkeypatch, _pem(*pki.chain(leaf)))
    result = acmelite_check("--cert", "-", "--name", CLUSTER)
    assert result.code == 10
    assert "Checking api-2-0-4.team-ns.svc.clusterset.local against the certificate in stdin" in (
        result.out
    )
    assert "Chain     ok" in result.out


def test_offline_cert_base64_as_kubectl_gives_it(
    pki: Pki, acmelite_check: Check, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaf = pki.leaf("web", dns=["api.example.test"])
    _stdin(monkeypatch, base64.b64encode(_pem(*pki.chain(leaf))))
    result = acmelite_check("--cert", "-", "--name", "api.example.test", "--json")
    assert result.code == 0
    assert result.json()["target"] == {"cert": "-"}


def test_offline_cert_file(pki: Pki, acmelite_check: Check, tmp_path: Path) -> None:
    leaf = pki.leaf("web", dns=["api.example.test"])
    path = tmp_path / "tls.crt"
    path.write_bytes(_pem(leaf.cert))
    result = acmelite_check("--cert", str(path), "--name", "api.example.test")
    assert result.code == 12
    assert "missing-intermediate" in result.out


def test_unreachable(acmelite_check: Check) -> None:
    port = _closed_port()
    result = acmelite_check(f"127.0.0.1:{port}", "--name", "x.example.test", "--json")
    assert result.code == check.EXIT_UNREACHABLE == 13
    assert f"cannot connect to 127.0.0.1:{port}" in result.err
    doc = result.json()
    assert doc["exit_code"] == 13
    assert doc["ok"] is False
    assert doc["error"]["type"] == "NetworkError"
    assert doc["error"]["message"].startswith(f"cannot connect to 127.0.0.1:{port}")
    assert doc["target"] == {"host": "127.0.0.1", "port": port, "sni": "x.example.test"}


def test_handshake_failure(garbage_server: int, acmelite_check: Check) -> None:
    result = acmelite_check(f"127.0.0.1:{garbage_server}", "--name", "x.example.test")
    assert result.code == 13
    # A server that answers in plain HTTP is named as such, with what to check.
    assert result.err.strip() == (
        f"acmelite: error: 127.0.0.1:{garbage_server} does not speak TLS (WRONG_VERSION_NUMBER):"
        " is it a plain HTTP port?; check the port: acmelite check needs the TLS port"
        " (443 by default)"
    )
    assert result.out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give HOST[:PORT] or --cert FILE|-, not both and not neither"),
        (("h.example.test", "--cert", "-"), "not both and not neither"),
        (("--cert", "-"), "--cert needs --name"),
        (("h.example.test:99999",), "port must be a number from 1 to 65535"),
        (("[::1",), "expected [IPv6] or [IPv6]:PORT"),
        (("bad..name",), "invalid name 'bad..name': it has an empty label"),
        (("h.example.test", "--name=-x.example"), "starts or ends with a hyphen"),
        (("--cert", "/nonexistent/tls.crt", "--name", "a.example"), "cannot read --cert"),
    ],
)
def test_usage_errors(acmelite_check: Check, argv: tuple[str, ...], message: str) -> None:
    result = acmelite_check(*argv)
    assert result.code == check.EXIT_USAGE == 2
    assert result.err.startswith("acmelite: error: ")
    assert message in result.err
    assert result.out == ""


def test_bad_ca_bundle_is_a_usage_error(pki: Pki, acmelite_check: Check, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cert = tmp_path / "tls.crt"
    cert.write_bytes(_pem(pki.leaf("a", dns=["a.example"]).cert))
    result = acmelite_check(
        "--cert", str(cert), "--name", "a.example", "--ca-bundle", str(junk), bundle=False
    )
    assert result.code == 2
    assert (
        f"CA bundle {junk}: expected PEM certificates (-----BEGIN CERTIFICATE-----), found none"
        in result.err
    )


def test_argparse_errors_exit_2(acmelite_check: Check) -> None:
    with pytest.raises(SystemExit) as info:
        acmelite_check("h.example.test", "--warn-days", "-1")
    assert info.value.code == 2


# --- the examples in docs/check.md, replayed --------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "check.md"
_EXAMPLE = re.compile(
    r"<!-- check-example: (?P<name>[\w-]+) -->\n```console\n\$ (?P<command>[^\n]+)\n"
    r"(?P<output>.*?)```",
    re.DOTALL,
)
#: Example name -> (the leaf's SANs, whether the server sends the intermediate too).
DOC_SETUPS = {
    "wrong-cert": (["*.dev.aws.cloud.us.local", "dev.aws.cloud.us.local"], True),
    "usual-advice": (["*.svc.clusterset.local"], True),
    "fixed": (["*.team-ns.svc.clusterset.local"], True),
    "leaf-only": (["*.team-ns.svc.clusterset.local"], False),
    "stdin": (["*.dev.aws.cloud.us.local", "dev.aws.cloud.us.local"], True),
    "json": (["*.svc.clusterset.local"], True),
}


def _doc_examples() -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["command"], m["output"]) for m in _EXAMPLE.finditer(DOC.read_text())}


def _stable(text: str) -> str:
    """The output without what changes from run to run: dates, serials, ports, day counts."""
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<date>", text)
    text = re.sub(r"(serial +)[0-9a-f]+", r"\1<hex>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    return re.sub(r"expires in \d+ days", "expires in <n> days", text)


def test_doc_examples_are_all_replayed() -> None:
    assert set(_doc_examples()) == set(DOC_SETUPS)


@pytest.mark.parametrize("example", sorted(DOC_SETUPS))
def test_doc_example(
    example: str,
    serve: Serve,
    acmelite_check: Check,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command, expected = _doc_examples()[example]
    sans, full_chain = DOC_SETUPS[example]
    root = _issue("Example Internal Root CA", issuer=None, ca=True, not_after=NOW + 3650 * DAY)
    issuing = _issue("Example Internal Issuing CA", issuer=root, ca=True)
    leaf = _issue(sans[0], issuer=issuing, dns=sans)
    bundle = tmp_path / "internal-root.pem"
    bundle.write_bytes(_pem(root.cert))
    server = serve(leaf, [leaf.cert, issuing.cert] if full_chain else [leaf.cert])
    command, _, jq = command.partition(" | jq ")
    command, _, stdin_file = command.partition(" < ")
    if stdin_file:
        _stdin(monkeypatch, _pem(leaf.cert, issuing.cert))
    argv = shlex.split(command)
    assert argv[:2] == ["acmelite", "check"]
    argv = [
        str(bundle) if a == "internal-root.pem" else re.sub(r"^127\.0\.0\.1:\d+$", _at(server), a)
        for a in argv[2:]
    ]
    result = acmelite_check(*argv, bundle=False)
    if jq:
        keys = re.findall(r"\w+", jq.strip("'{}"))
        doc = result.json()
        assert {k: doc[k] for k in keys} == json.loads(expected)
    else:
        assert _stable(result.out) == _stable(expected)
