"""``--verify``: after issuing, is the new certificate what the live endpoint serves?

The endpoint is a real TLS server run here (Python's ``ssl`` on 127.0.0.1) that serves
whatever ``fullchain.pem`` and ``privkey.pem`` are in an output directory, and picks up new
files only on :meth:`ReloadingTlsServer.reload` (or when a watched file changes, which a
deploy hook can do with ``touch``). Certificates come from Pebble; the one that is wrong
for the cluster name is made here with cryptography.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acmelite.cli.check import EXIT_MISMATCH
from acmelite.cli.verify_options import EXIT_NOT_SERVED
from acmelite.testing.pebble import Pebble
from acmelite.verify import VerifyStatus, verify_deployment
from tests.support import CliResult, issue_argv, run_cli

CLUSTER = "api-2-0-4.team-ns.svc.clusterset.local"
#: The service's names in the examples of docs/check.md.
NAMES = (CLUSTER, "api.team-ns.svc.clusterset.local")
DOC = Path(__file__).resolve().parents[2] / "docs" / "check.md"


# --- an endpoint that reloads only when told to ---------------------------------------------


class ReloadingTlsServer:
    """TLS on 127.0.0.1 with ``cert_dir``'s fullchain.pem and privkey.pem, read at reload().

    With ``watch``, the server also reloads when that file appears or its mtime changes.
    ``sni_seen`` records the server name of every handshake, ``reloads`` counts reloads.
    """

    def __init__(self, cert_dir: Path, *, watch: Path | None = None, port: int = 0) -> None:
        self.cert_dir = cert_dir
        self.watch = watch
        self.sni_seen: list[str | None] = []
        self.reloads = 0
        self._context = self._load()
        self._watched = self._stamp()
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ReloadingTlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reload(self) -> None:
        """Read the files again, as ``nginx -s reload`` would."""
        self._context = self._load()
        self.reloads += 1

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_dir / "fullchain.pem", self.cert_dir / "privkey.pem")

        def remember(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            self.sni_seen.append(name)

        context.sni_callback = remember
        return context

    def _stamp(self) -> int | None:
        if self.watch is None or not self.watch.exists():
            return None
        return self.watch.stat().st_mtime_ns

    def _serve(self) -> None:
        while not self._stop.is_set():
            stamp = self._stamp()
            if stamp != self._watched:
                self._watched = stamp
                self.reload()
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self._context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # until the client closes
            except (OSError, ssl.SSLError):
                conn.close()


# --- certificates ---------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def _local_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Example Internal CA"))
        .issuer_name(_name("Example Internal CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], *sans: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(sans[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _install(out: Path, chain: list[x509.Certificate], key: ec.EllipticCurvePrivateKey) -> None:
    """What was deployed before acmelite: plain files in the output directory."""
    out.mkdir(mode=0o700, exist_ok=True)
    (out / "fullchain.pem").write_bytes(_pem(*chain))
    (out / "privkey.pem").write_bytes(_key_pem(key))


def _cert(out: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())


def _hex(cert: x509.Certificate) -> str:
    text = f"{cert.serial_number:x}"
    return "0" * (len(text) % 2) + text


def _since(cert: x509.Certificate) -> str:
    return cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def pebble_root(pebble: Pebble, tmp_path: Path) -> Path:
    """Pebble's issuing root: what clients of a Pebble-issued certificate trust."""
    path = tmp_path / "pebble-root.pem"
    path.write_text(pebble.roots(), encoding="ascii")
    return path


def _verify_lines(result: CliResult) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("verify ")]


def _verify_argv(server: ReloadingTlsServer | str, root: Path, timeout: float) -> list[str]:
    target = server if isinstance(server, str) else server.target
    return ["--verify", target, "--verify-ca-bundle", str(root), "--verify-timeout", f"{timeout:g}"]


def _check(target: str, root: Path, capsys: pytest.CaptureFixture[str]) -> CliResult:
    return run_cli(["check", target, "--name", CLUSTER, "--ca-bundle", str(root)], capsys)


def _doc_lines(example: str) -> list[str]:
    """The ``verify`` lines of the docs/check.md block marked ``verify-example: NAME``."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(rf"<!-- verify-example: {example} -->\n```console\n(.*?)```", text, re.S)
    assert found is not None, f"docs/check.md has no verify-example {example}"
    return [line for line in found[1].splitlines() if line.startswith("verify ")]


def _stable(line: str) -> str:
    """A verify line without what changes from run to run."""
    line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<date>", line)
    line = re.sub(r"serial [0-9a-f]+", "serial <hex>", line)
    line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)
    line = re.sub(r"CN=Pebble Root CA [0-9a-f]+", "CN=Pebble Root CA <id>", line)
    return re.sub(r" after \d+ attempts in \d+\.\d s:", " after <n> attempts in <t> s:", line)


# --- (a) the cluster story, end to end ------------------------------------------------------


def test_cluster_story_check_issue_deploy_hook_check(
    pebble: Pebble, pebble_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    wrong, wrong_key = _leaf(_local_ca(), "*.dev.example.internal")
    _install(out, [wrong], wrong_key)
    trigger = tmp_path / "reload-requested"
    with ReloadingTlsServer(out, watch=trigger) as server:
        # 1. The endpoint's certificate is for other names: check says so, exit 10.
        before = _check(server.target, pebble_root, capsys)
        assert before.code == EXIT_MISMATCH == 10, before.out + before.err
        assert f"Name      FAIL  no SAN covers {CLUSTER}" in before.out
        assert "  DNS SANs  *.dev.example.internal\n" in before.out
        assert f"  acmelite issue -d '*.dev.example.internal' -d {CLUSTER}" in before.out

        # 2. Issue the exact name from Pebble; the deploy hook asks the server to reload;
        #    --verify confirms the server now presents it.
        hook = f"touch {shlex.quote(str(trigger))}"
        argv = issue_argv(pebble, tmp_path, CLUSTER)
        issued = run_cli(
            [*argv, "--deploy-hook", hook, *_verify_argv(server, pebble_root, 30)], capsys
        )
        assert issued.code == 0, issued.err
        new = _cert(out)
        assert server.reloads == 1
        [line] = _verify_lines(issued)
        # The hook only asks for a reload: the first handshake may still see the old one.
        assert re.fullmatch(
            rf"verify {server.target} {CLUSTER}: ok( after \d+ attempts in \d+\.\d s)?:"
            rf" serves the new certificate, serial {_hex(new)}; verifies to CN=Pebble Root CA"
            r" [0-9a-f]+",
            line,
        ), line
        assert server.sni_seen[-1] == CLUSTER

        # 3. The same check as in step 1 now passes.
        after = _check(server.target, pebble_root, capsys)
        assert after.code == 0, after.out
        assert f"Name      ok    {CLUSTER} covers {CLUSTER}" in after.out
        assert f"  serial    {_hex(new)}\n" in after.out
        assert after.out.rstrip().endswith("Result: ok (exit 0)")


# --- (b) a server that does not reload ------------------------------------------------------


def test_verify_reports_the_stale_certificate_then_passes_after_reload(
    pebble: Pebble, pebble_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = NAMES
    out = tmp_path / "out"
    argv = issue_argv(pebble, tmp_path, *names)
    first = run_cli(argv, capsys)
    assert first.code == 0, first.err
    old = _cert(out)
    with ReloadingTlsServer(out) as server:
        # A new certificate is installed, but nothing tells the server.
        started = time.monotonic()
        stale = run_cli([*argv, *_verify_argv(server, pebble_root, 1.5)], capsys)
        waited = time.monotonic() - started
        assert stale.code == EXIT_NOT_SERVED == 4, stale.err
        new = _cert(out)
        assert _hex(new) != _hex(old)
        lines = _verify_lines(stale)
        assert len(lines) == 2, stale.err
        stale_detail = (
            f"the server still presents serial {_hex(old)} from {_since(old)}: reload missing?"
            f" (the new certificate is serial {_hex(new)})"
        )
        # The first name was retried for the whole --verify-timeout, the second tried once.
        assert re.fullmatch(
            rf"verify {server.target} {names[0]}: FAIL after \d+ attempts in 1\.\d s: "
            + re.escape(stale_detail),
            lines[0],
        ), lines[0]
        assert lines[1] == f"verify {server.target} {names[1]}: FAIL: {stale_detail}"
        assert waited >= 1.5
        assert set(names) <= set(server.sni_seen)
        assert server.reloads == 0
        assert [_stable(x) for x in lines] == [_stable(x) for x in _doc_lines("stale")]

        # Now the server reloads a second after the next certificate is installed, while
        # --verify is still waiting for it.
        reloader = _reload_when_replaced(server, out, replaced=new, delay=1.0)
        try:
            fresh = run_cli([*argv, *_verify_argv(server, pebble_root, 30)], capsys)
        finally:
            reloader.join(timeout=60)
        assert fresh.code == 0, fresh.err
        newest = _cert(out)
        assert server.reloads == 1
        lines = _verify_lines(fresh)
        assert len(lines) == 2, fresh.err
        assert re.fullmatch(
            rf"verify {server.target} {names[0]}: ok after \d+ attempts in \d+\.\d s: serves"
            rf" the new certificate, serial {_hex(newest)}; verifies to CN=Pebble Root CA"
            r" [0-9a-f]+",
            lines[0],
        ), lines[0]
        # By the time the second name is tried, the server has reloaded: one attempt.
        assert re.fullmatch(
            rf"verify {server.target} {names[1]}: ok: serves the new certificate, serial"
            rf" {_hex(newest)}; verifies to CN=Pebble Root CA [0-9a-f]+",
            lines[1],
        ), lines[1]
        assert [_stable(x) for x in lines] == [_stable(x) for x in _doc_lines("reloaded")]


def _reload_when_replaced(
    server: ReloadingTlsServer, out: Path, *, replaced: x509.Certificate, delay: float
) -> threading.Thread:
    """Reload ``server`` ``delay`` seconds after cert.pem stops being ``replaced``."""

    def wait_then_reload() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _cert(out).serial_number != replaced.serial_number:
                time.sleep(delay)
                server.reload()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=wait_then_reload, daemon=True)
    thread.start()
    return thread


# --- (c) nothing listening ------------------------------------------------------------------


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def test_verify_closed_port_is_one_clear_line(
    pebble: Pebble, pebble_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    argv = issue_argv(pebble, tmp_path, *NAMES)
    result = run_cli([*argv, *_verify_argv(f"127.0.0.1:{port}", pebble_root, 1)], capsys)
    assert result.code == EXIT_NOT_SERVED, result.err
    refused = f"cannot connect to 127.0.0.1:{port}: Connection refused"
    lines = _verify_lines(result)
    assert len(lines) == 2, result.err
    assert re.fullmatch(
        rf"verify 127\.0\.0\.1:{port} {re.escape(NAMES[0])}: FAIL after \d+ attempts in"
        rf" 1\.\d s: {re.escape(refused)}",
        lines[0],
    ), lines[0]
    assert lines[1] == f"verify 127.0.0.1:{port} {NAMES[1]}: FAIL: {refused}"
    assert "Traceback" not in result.err
    assert "error" not in result.err.lower()
    # The certificate is issued and installed all the same.
    sans = _cert(tmp_path / "out").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sorted(sans.value.get_values_for_type(x509.DNSName)) == sorted(NAMES)
    assert [_stable(x) for x in lines] == [_stable(x) for x in _doc_lines("closed")]


# --- options, checked before anything is ordered --------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--verify", "127.0.0.1:99999", "port must be a number from 1 to 65535"),
        ("--verify", "bad..name", "it has an empty label"),
        ("--verify-timeout", "-1", "must be 0 or more seconds: '-1'"),
        ("--verify-ca-bundle", "missing.pem", "cannot read CA bundle missing.pem"),
    ],
)
def test_bad_verify_options_are_usage_errors(
    option: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["issue", "-d", "a.verify.test", "--out", str(tmp_path / "out")]
    argv += ["--account-key", str(tmp_path / "account.key"), option, value]
    result = run_cli(argv, capsys)
    assert result.code == 2
    assert f"argument {option}: " in result.err and message in result.err, result.err
    assert not (tmp_path / "account.key").exists()
    assert not (tmp_path / "out").exists()


# --- the library, against locally made certificates -----------------------------------------


@pytest.fixture
def local_pki(tmp_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    cert, key = _local_ca()
    bundle = tmp_path / "local-root.pem"
    bundle.write_bytes(_pem(cert))
    return cert, key, bundle


def test_library_wildcard_is_probed_with_a_label(
    local_pki: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path], tmp_path: Path
) -> None:
    ca_cert, ca_key, bundle = local_pki
    leaf, key = _leaf((ca_cert, ca_key), "*.apps.verify.test")
    _install(tmp_path / "out", [leaf, ca_cert], key)
    with ReloadingTlsServer(tmp_path / "out") as server:
        report = verify_deployment(
            leaf, ["*.apps.verify.test"], "127.0.0.1", server.port, ca_bundle=bundle, timeout=5
        )
    assert report.ok
    [result] = report.results
    assert result.status is VerifyStatus.OK
    assert result.sni == "acmelite-verify.apps.verify.test"
    assert server.sni_seen == ["acmelite-verify.apps.verify.test"]
    doc = report.to_json()
    assert doc["ok"] is True
    assert doc["expected"] == {
        "serial": _hex(leaf),
        "sha256": leaf.fingerprint(hashes.SHA256()).hex(),
    }
    names = doc["names"]
    assert isinstance(names, list)
    assert names[0]["status"] == "ok"
    assert names[0]["attempts"] == 1
    assert names[0]["trust"] == {
        "verdict": "ok",
        "detail": "verifies to CN=Example Internal CA",
        "anchor": "CN=Example Internal CA",
    }


def test_library_new_certificate_with_a_broken_chain_is_not_waited_for(
    local_pki: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path], tmp_path: Path
) -> None:
    """Served, but the chain does not verify: waiting cannot fix that, so no retries."""
    ca_cert, ca_key, _ = local_pki
    leaf, key = _leaf((ca_cert, ca_key), "broken.verify.test")
    _install(tmp_path / "out", [leaf], key)
    other_root = tmp_path / "other-root.pem"
    other_root.write_bytes(_pem(_local_ca()[0]))
    with ReloadingTlsServer(tmp_path / "out") as server:
        started = time.monotonic()
        report = verify_deployment(
            leaf, ["broken.verify.test"], "127.0.0.1", server.port, ca_bundle=other_root,
            timeout=30,
        )  # fmt: skip
    assert time.monotonic() - started < 5
    [result] = report.results
    assert result.status is VerifyStatus.UNTRUSTED
    assert result.attempts == 1
    assert result.detail.startswith(
        "the new certificate is served, but its chain fails: missing-intermediate: "
    ), result.detail


def test_library_same_serial_other_key_is_not_the_new_certificate(
    local_pki: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path], tmp_path: Path
) -> None:
    ca_cert, ca_key, bundle = local_pki
    served, key = _leaf((ca_cert, ca_key), "twin.verify.test")
    _install(tmp_path / "out", [served, ca_cert], key)
    # The certificate we expect has the served one's serial but another key.
    other_key = ec.generate_private_key(ec.SECP256R1())
    twin = (
        x509.CertificateBuilder()
        .subject_name(served.subject)
        .issuer_name(served.issuer)
        .public_key(other_key.public_key())
        .serial_number(served.serial_number)
        .not_valid_before(served.not_valid_before_utc)
        .not_valid_after(served.not_valid_after_utc)
        .sign(ca_key, hashes.SHA256())
    )
    with ReloadingTlsServer(tmp_path / "out") as server:
        report = verify_deployment(
            twin, ["twin.verify.test"], "127.0.0.1", server.port, ca_bundle=bundle, timeout=0
        )
    [result] = report.results
    assert result.status is VerifyStatus.STALE
    assert result.attempts == 1
    assert not report.ok
    assert result.served is not None and result.served.serial == _hex(twin)


def test_doc_library_example(
    local_pki: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path], tmp_path: Path
) -> None:
    [example] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    ca_cert, ca_key, bundle = local_pki
    leaf, key = _leaf((ca_cert, ca_key), CLUSTER)
    out = tmp_path / "out"
    _install(out, [leaf, ca_cert], key)
    (out / "cert.pem").write_bytes(_pem(leaf))
    with ReloadingTlsServer(out) as server:
        env = {**os.environ, "OUT": str(out), "PORT": str(server.port), "CA_BUNDLE": str(bundle)}
        proc = subprocess.run(
            [sys.executable, "-c", example],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"{CLUSTER} ok serves the new certificate, serial {_hex(leaf)}; verifies to"
        " CN=Example Internal CA",
    ]
    doc = json.loads(proc.stdout)
    assert (doc["host"], doc["port"], doc["ok"]) == ("127.0.0.1", server.port, True)
    assert [(n["name"], n["sni"], n["status"]) for n in doc["names"]] == [(CLUSTER, CLUSTER, "ok")]


# --- renew --verify -------------------------------------------------------------------------


def test_renew_verifies_each_renewed_certificate(
    pebble: Pebble, pebble_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    issued = run_cli(issue_argv(pebble, tmp_path, *NAMES), capsys)
    assert issued.code == 0, issued.err
    old = _cert(out)
    with ReloadingTlsServer(out) as server:
        renew = ["renew", "--force", str(out)]
        stale = run_cli([*renew, *_verify_argv(server, pebble_root, 0.5)], capsys)
        assert stale.code == EXIT_NOT_SERVED, stale.out + stale.err
        assert stale.out.startswith(f"{out}: renewed: "), stale.out
        new = _cert(out)
        lines = _verify_lines(stale)
        assert len(lines) == 2, stale.err
        assert lines[1] == (
            f"verify {server.target} {NAMES[1]}: FAIL: the server still presents serial"
            f" {_hex(old)} from {_since(old)}: reload missing? (the new certificate is serial"
            f" {_hex(new)})"
        )

        reloader = _reload_when_replaced(server, out, replaced=new, delay=0.5)
        try:
            fresh = run_cli([*renew, *_verify_argv(server, pebble_root, 30)], capsys)
        finally:
            reloader.join(timeout=60)
        assert fresh.code == 3, fresh.out + fresh.err  # renewed, and served
        newest = _cert(out)
        assert [line.split(": ok", 1)[0] for line in _verify_lines(fresh)] == [
            f"verify {server.target} {name}" for name in NAMES
        ]
        assert f"serves the new certificate, serial {_hex(newest)}" in _verify_lines(fresh)[1]

    # Nothing renewed, nothing to verify: the endpoint is not even contacted.
    quiet = run_cli(["renew", str(out), "--verify", "127.0.0.1:1"], capsys)
    assert quiet.code == 0, quiet.out + quiet.err
    assert _verify_lines(quiet) == []
