"""The Pebble harness itself (acmelite.testing): what other integration tests stand on.

The ACME traffic here is hand-made with ``cryptography`` on purpose, so that these tests check
the harness (ports, DNS, certificates, Pebble's knobs) independently of acmelite's client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

import acmelite.testing.pebble as pebble_module
from acmelite.testing import (
    ChallTestSrv,
    ExternalPebble,
    Pebble,
    PebbleError,
    PebbleNotFound,
    PebbleServer,
    PebbleStartError,
    free_port,
    free_ports,
)

PebbleFactory = Callable[..., PebbleServer]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def get(url: str, ca_bundle: str | bool, method: str = "GET") -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE must not decide what we verify with
        return session.request(method, url, verify=ca_bundle, timeout=10)


class MiniAcme:
    """Just enough RFC 8555 to drive Pebble: ES256 JWS (§6.2), nonces (§7.2), POST-as-GET."""

    def __init__(self, pebble: Pebble) -> None:
        self.pebble = pebble
        self.directory = get(pebble.directory_url, pebble.ca_bundle).json()
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }
        self.kid: str | None = None
        self.session = requests.Session()
        self.session.trust_env = False

    def close(self) -> None:
        self.session.close()

    def thumbprint(self) -> str:
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":"))
        return b64(hashlib.sha256(canonical.encode()).digest())

    def post(self, url: str, payload: Mapping[str, object] | None) -> requests.Response:
        nonce = self.session.head(
            self.directory["newNonce"], verify=self.pebble.ca_bundle, timeout=10
        ).headers["Replay-Nonce"]
        protected: dict[str, object] = {"alg": "ES256", "nonce": nonce, "url": url}
        if self.kid:
            protected["kid"] = self.kid
        else:
            protected["jwk"] = self.jwk
        body = {
            "protected": b64(json.dumps(protected).encode()),
            "payload": "" if payload is None else b64(json.dumps(payload).encode()),
        }
        der = self.key.sign(
            f"{body['protected']}.{body['payload']}".encode(), ec.ECDSA(hashes.SHA256())
        )
        r, s = decode_dss_signature(der)
        body["signature"] = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return self.session.post(
            url,
            data=json.dumps(body),
            headers={"Content-Type": "application/jose+json"},
            verify=self.pebble.ca_bundle,
            timeout=10,
        )

    def new_account(self) -> requests.Response:
        response = self.post(self.directory["newAccount"], {"termsOfServiceAgreed": True})
        if response.status_code == 201:
            self.kid = response.headers["Location"]
        return response

    def poll(self, url: str, done: str) -> dict[str, object]:
        deadline = time.monotonic() + 30
        while True:
            resource: dict[str, object] = self.post(url, None).json()
            if resource["status"] == done or time.monotonic() > deadline:
                return resource
            if resource["status"] == "invalid":
                pytest.fail(f"{url} became invalid: {resource}")
            time.sleep(0.2)


@pytest.fixture
def quiet_pebble(pebble_factory: PebbleFactory) -> PebbleServer:
    """A Pebble that never rejects a good nonce, for hand-made requests without retries."""
    return pebble_factory(nonce_reject=0)


@contextmanager
def http01_responder(port: int, answers: Mapping[str, str]) -> Iterator[list[str]]:
    """Serve ``/.well-known/acme-challenge/<token>`` on 127.0.0.1:port; yield the paths asked."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            token = self.path.rpartition("/")[2]
            body = answers.get(token, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_directory_lists_the_acme_resources(pebble: Pebble) -> None:
    response = get(pebble.directory_url, pebble.ca_bundle)

    assert response.status_code == 200
    directory = response.json()
    for resource in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert directory[resource].startswith("https://"), resource
    assert "renewalInfo" in directory, f"Pebble {pebble.version} has no ARI"


def test_pebble_https_is_not_trusted_without_the_ca_bundle(pebble: Pebble) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        get(pebble.directory_url, True)


def test_local_pebble_listens_on_loopback_with_a_cert_for_localhost(
    quiet_pebble: PebbleServer,
) -> None:
    port = quiet_pebble.directory_url.split(":")[2].split("/")[0]

    assert quiet_pebble.directory_url == f"https://127.0.0.1:{port}/dir"
    assert get(f"https://localhost:{port}/dir", quiet_pebble.ca_bundle).status_code == 200


def test_head_new_nonce_returns_a_replay_nonce(pebble: Pebble) -> None:
    directory = get(pebble.directory_url, pebble.ca_bundle).json()

    first = get(directory["newNonce"], pebble.ca_bundle, method="HEAD")
    second = get(directory["newNonce"], pebble.ca_bundle, method="HEAD")

    assert first.status_code == 200
    assert first.headers["Replay-Nonce"]
    assert first.headers["Replay-Nonce"] != second.headers["Replay-Nonce"]


def test_management_root_is_a_ca_that_issued_the_intermediate(pebble: Pebble) -> None:
    root = x509.load_pem_x509_certificate(pebble.roots().encode())
    intermediate = x509.load_pem_x509_certificate(pebble.intermediates().encode())

    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    intermediate.verify_directly_issued_by(root)
    bundle = Path(pebble.root_bundle_path()).read_bytes()
    assert x509.load_pem_x509_certificates(bundle) == [root]


def test_default_profiles_are_advertised(quiet_pebble: PebbleServer) -> None:
    meta = get(quiet_pebble.directory_url, quiet_pebble.ca_bundle).json()["meta"]
    if "profiles" not in meta:
        pytest.skip(f"Pebble {quiet_pebble.version} predates certificate profiles")

    assert set(meta["profiles"]) == {"default", "shortlived"}


def test_nonce_reject_100_rejects_every_good_nonce(pebble_factory: PebbleFactory) -> None:
    strict = pebble_factory(nonce_reject=100)
    client = MiniAcme(strict)
    try:
        response = client.new_account()
    finally:
        client.close()

    assert response.status_code == 400
    assert response.json()["type"] == "urn:ietf:params:acme:error:badNonce"


def test_eab_required_pebble_refuses_plain_accounts(pebble_factory: PebbleFactory) -> None:
    eab = pebble_factory(nonce_reject=0, eab_required=True, eab_mac_keys={"kid-1": b64(b"k" * 32)})
    client = MiniAcme(eab)
    try:
        response = client.new_account()
    finally:
        client.close()

    assert client.directory["meta"]["externalAccountRequired"] is True
    assert response.status_code >= 400
    assert response.json()["type"] == "urn:ietf:params:acme:error:externalAccountRequired"


def test_http01_reaches_http_port_and_the_issued_cert_is_on_record(
    quiet_pebble: PebbleServer,
) -> None:
    name = "harness.acmelite.test"
    client = MiniAcme(quiet_pebble)
    try:
        assert client.new_account().status_code == 201
        order_response = client.post(
            client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
        )
        order = order_response.json()
        authz = client.post(order["authorizations"][0], None).json()
        challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
        answer = f"{challenge['token']}.{client.thumbprint()}"

        with http01_responder(quiet_pebble.http_port, {challenge["token"]: answer}) as seen:
            client.post(challenge["url"], {})
            assert client.poll(order["authorizations"][0], "valid")["status"] == "valid"
        assert f"/.well-known/acme-challenge/{challenge['token']}" in seen

        cert_key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(cert_key, hashes.SHA256())
        )
        client.post(order["finalize"], {"csr": b64(csr.public_bytes(serialization.Encoding.DER))})
        done = client.poll(order_response.headers["Location"], "valid")
        chain = client.post(str(done["certificate"]), None).text
    finally:
        client.close()

    leaf, intermediate = x509.load_pem_x509_certificates(chain.encode())[:2]
    root = x509.load_pem_x509_certificate(Path(quiet_pebble.root_bundle_path()).read_bytes())
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    status = quiet_pebble.cert_status(leaf.serial_number)
    assert status["Status"] == "Valid"
    assert x509.load_pem_x509_certificate(str(status["Certificate"]).encode()) == leaf


def test_cert_status_of_an_unknown_serial_is_an_error(quiet_pebble: PebbleServer) -> None:
    with pytest.raises(PebbleError, match="cert-status-by-serial/abc123 answered 404"):
        quiet_pebble.cert_status(0xABC123)


@pytest.mark.usefixtures("pebble_binaries")
def test_stop_leaves_no_process_and_no_files() -> None:
    server = PebbleServer(nonce_reject=0).start()
    pids = server.pids
    workdir = server.log_path.parent
    assert set(pids) == {"pebble", "challtestsrv"}
    assert server.running

    server.stop()
    server.stop()

    assert not server.running
    assert not workdir.exists()
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_dns_server_option_replaces_challtestsrv(quiet_pebble: PebbleServer) -> None:
    with PebbleServer(nonce_reject=0, dns_server=quiet_pebble.dns_server) as server:
        assert set(server.pids) == {"pebble"}
        assert server.challtestsrv_url is None
        assert server.dns_server == quiet_pebble.dns_server
        assert f"-dnsserver {quiet_pebble.dns_server}" in server.log_path.read_text()
        assert get(server.directory_url, server.ca_bundle).status_code == 200


@pytest.mark.usefixtures("pebble_binaries")
def test_bad_config_fails_with_pebble_own_words_and_cleans_up() -> None:
    server = PebbleServer(key_algorithm="no-such-algorithm", ready_timeout=10)

    with pytest.raises(PebbleStartError, match="exited with status") as failure:
        server.start()

    assert "invalid key algorithm" in str(failure.value)
    assert server.pids == {}


@pytest.mark.usefixtures("pebble_binaries")
def test_port_clash_is_retried_with_fresh_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    real_free_ports = pebble_module.free_ports
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        calls = []

        def clashing(count: int, kind: str = "tcp", host: str = "127.0.0.1") -> list[int]:
            ports = real_free_ports(count, "tcp", host)
            calls.append(ports)
            return [taken, *ports[1:]] if len(calls) == 1 else ports

        monkeypatch.setattr(pebble_module, "free_ports", clashing)
        with PebbleServer(nonce_reject=0) as server:
            assert len(calls) == 2
            assert f":{taken}/" not in server.directory_url
            assert get(server.directory_url, server.ca_bundle).status_code == 200


def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(PebbleNotFound, match=r"python -m acmelite\.testing install-pebble"):
        PebbleServer(pebble_bin=tmp_path / "pebble").start()


def test_environment_variable_names_the_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACMELITE_PEBBLE_BIN", str(tmp_path / "nowhere" / "pebble"))

    with pytest.raises(PebbleNotFound, match="nowhere"):
        PebbleServer().start()


def test_retry_after_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="retry_after"):
        PebbleServer(retry_after_order=-1)


def test_external_pebble_from_environment(quiet_pebble: PebbleServer, tmp_path: Path) -> None:
    env = {
        "ACMELITE_TEST_PEBBLE_URL": quiet_pebble.directory_url,
        "ACMELITE_TEST_PEBBLE_CA": quiet_pebble.ca_bundle,
        "ACMELITE_TEST_PEBBLE_MANAGEMENT_URL": str(quiet_pebble.management_url),
    }

    external = ExternalPebble.from_env(env)

    assert external is not None
    assert external.http_port == 5002
    assert external.roots() == quiet_pebble.roots()
    assert get(external.directory_url, external.ca_bundle).status_code == 200
    assert ExternalPebble.from_env({}) is None
    missing_ca = {**env, "ACMELITE_TEST_PEBBLE_CA": str(tmp_path / "none.pem")}
    with pytest.raises(PebbleError, match="ACMELITE_TEST_PEBBLE_CA"):
        ExternalPebble.from_env(missing_ca)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)

    assert len(set(ports)) == 20
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    dual = free_port("tcp+udp")
    with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", dual))
        udp.bind(("127.0.0.1", dual))
    with socket.socket(type=socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", free_port("udp")))
    with pytest.raises(ValueError, match="kind"):
        free_port("sctp")  # type: ignore[arg-type]


def _answers(pebble: PebbleServer, name: str, rdtype: str = "A") -> tuple[str, list[str]]:
    """(rcode, answers) from the DNS server Pebble resolves with."""
    host, _, port = pebble.dns_server.rpartition(":")
    query = dns.message.make_query(name, rdtype)
    response = dns.query.udp(query, host, port=int(port), timeout=5)
    values = [item.to_text() for rrset in response.answer for item in rrset]
    return dns.rcode.to_text(response.rcode()), values


def test_challtestsrv_records_and_reset(quiet_pebble: PebbleServer) -> None:
    dns_api = quiet_pebble.challtestsrv
    try:
        dns_api.add_a("moved.harness.test", "127.0.0.9", "127.0.0.10")
        dns_api.set_txt("_acme-challenge.harness.test", "one")
        dns_api.set_txt("_acme-challenge.harness.test", "two")
        dns_api.set_cname("alias.harness.test", "moved.harness.test")
        dns_api.fail("broken.harness.test")
        dns_api.set_default_ipv4("127.0.0.5")

        assert sorted(_answers(quiet_pebble, "moved.harness.test")[1]) == [
            "127.0.0.10",
            "127.0.0.9",
        ]
        assert sorted(_answers(quiet_pebble, "_acme-challenge.harness.test", "TXT")[1]) == [
            '"one"',
            '"two"',
        ]
        assert "moved.harness.test." in _answers(quiet_pebble, "alias.harness.test")[1]
        assert _answers(quiet_pebble, "broken.harness.test")[0] == "SERVFAIL"
        assert _answers(quiet_pebble, "other.harness.test")[1] == ["127.0.0.5"]
        assert len(dns_api.dns_queries("moved.harness.test")) >= 1
    finally:
        dns_api.reset()

    assert _answers(quiet_pebble, "moved.harness.test")[1] == ["127.0.0.1"]
    assert _answers(quiet_pebble, "_acme-challenge.harness.test", "TXT")[1] == []
    assert _answers(quiet_pebble, "broken.harness.test") == ("NOERROR", ["127.0.0.1"])
    assert _answers(quiet_pebble, "other.harness.test")[1] == ["127.0.0.1"]


def test_challtestsrv_is_refused_for_a_pebble_with_another_dns(
    quiet_pebble: PebbleServer,
) -> None:
    with (
        PebbleServer(nonce_reject=0, dns_server=quiet_pebble.dns_server) as server,
        pytest.raises(PebbleError, match="no pebble-challtestsrv as its DNS server"),
    ):
        _ = server.challtestsrv


def test_challtestsrv_that_does_not_answer_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PebbleError, match=f"pebble-challtestsrv {url}/add-a failed"):
        ChallTestSrv(url).add_a("x.harness.test", "127.0.0.1")
