"""acmelite against a second ACME server: Caddy's ``acme_server`` (smallstep's step-ca).

The session's :class:`~tests.integration.conftest.CaddyLab` runs Caddy with a BIND of its
own for ``caddy.test``, whose names all resolve to a loopback address of the session's own:
HTTP-01 answers are served on port 80 there, because that is where step-ca looks. What this
CA does differently from Pebble, and what acmelite does about it, is in docs/interop.md.
"""

from __future__ import annotations

import datetime as dt
import http.client
import http.server
import json
import os
import re
import shlex
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acmelite import AccountKey, AcmeClient, AuthorizationFailed
from acmelite.renewal import lifetime_threshold, lifetime_window
from acmelite.solvers.http01 import StandaloneSolver
from acmelite.testing.ports import free_port
from tests.integration.conftest import CADDY_ZONE, CaddyLab
from tests.support import CliResult, run_cli, serve_directory, verify_chain

#: A failed validation must end this long after it started, at most (the CA knows at once;
#: acmelite retries step-ca's pending challenge twice, 1 s and 2 s apart). The bound tells a
#: fast failure from waiting out --timeout, not one machine's speed from another's.
FAIL_FAST = 60.0
TIMEOUT = "300"


def name(label: str) -> str:
    return f"{label}.{CADDY_ZONE}"


def issue_argv(
    lab: CaddyLab, tmp: Path, *names: str, out: str = "out", standalone: bool = True
) -> list[str]:
    """``issue`` at Caddy; ``standalone``: answers served on port 80 of the lab's address."""
    argv = ["issue"]
    for each in names:
        argv += ["-d", each]
    argv += ["--server", lab.directory_url, "--ca-bundle", lab.ca_bundle, "--agree-tos"]
    argv += ["--account-key", str(tmp / "account.key"), "--out", str(tmp / out)]
    argv += ["--timeout", TIMEOUT]
    if standalone:
        argv += ["--http-port", "80", "--http-address", lab.address]
    return argv


def account_argv(lab: CaddyLab, tmp: Path, command: str, *extra: str) -> list[str]:
    return [
        "account",
        command,
        "--server",
        lab.directory_url,
        "--ca-bundle",
        lab.ca_bundle,
        "--account-key",
        str(tmp / "account.key"),
        *extra,
    ]


def issued(lab: CaddyLab, tmp: Path, result: CliResult, *names: str) -> x509.Certificate:
    """The certificate in ``tmp/out``, verified to Caddy's root for every name."""
    assert result.code == 0, result.err
    full = (tmp / "out" / "fullchain.pem").read_bytes()
    for each in names:
        leaf = verify_chain(full, lab.caddy.root_pem(), each)
    chain = x509.load_pem_x509_certificates((tmp / "out" / "chain.pem").read_bytes())
    assert [c.subject for c in chain] == [
        x509.load_pem_x509_certificate(lab.caddy.intermediate_pem().encode()).subject
    ]
    return leaf


def last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


# -- issue --------------------------------------------------------------------------------------


def test_http01_standalone_several_names(
    caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [name("www"), name("api"), name("static")]
    result = run_cli(issue_argv(caddy, tmp_path, *names), capsys)
    leaf = issued(caddy, tmp_path, result, *names)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
    # step-ca's default lifetime for Caddy's acme_server: 12 hours.
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert dt.timedelta(hours=11) < lifetime <= dt.timedelta(hours=12, minutes=5)


def test_http01_webroot(
    caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    webroot = tmp_path / "www"
    webroot.mkdir()
    argv = issue_argv(caddy, tmp_path, name("webroot"), standalone=False)
    with serve_directory(webroot, 80, host=caddy.address):
        result = run_cli([*argv, "--webroot", str(webroot)], capsys)
    issued(caddy, tmp_path, result, name("webroot"))
    assert not [p for p in webroot.rglob("*") if p.is_file()]  # the answer was withdrawn


def test_ip_identifier(caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """RFC 8738: step-ca fetches http://<address>:80/ for an IP identifier."""
    result = run_cli(issue_argv(caddy, tmp_path, caddy.address), capsys)
    leaf = issued(caddy, tmp_path, result, caddy.address)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [caddy.address]


@pytest.mark.parametrize("key_type", ["ec256", "ec384", "rsa2048", "rsa3072", "rsa4096"])
def test_each_key_type(
    caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str], key_type: str
) -> None:
    argv = issue_argv(caddy, tmp_path, name(f"key-{key_type}"))
    result = run_cli([*argv, "--key-type", key_type], capsys)
    leaf = issued(caddy, tmp_path, result, name(f"key-{key_type}"))
    public = leaf.public_key()
    if key_type.startswith("ec"):
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.key_size == int(key_type[2:])
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == int(key_type[3:])


def test_dns01_rfc2136(caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """step-ca looks the TXT record up with the system resolver: Caddy's private
    resolv.conf sends it through the relay to the session's BIND."""
    bind = caddy.bind
    argv = issue_argv(caddy, tmp_path, name("dns"), f"*.{name('dns')}", standalone=False)
    argv += ["--challenge", "dns-01", "--dns", "rfc2136", "--dns-server", bind.address]
    key_file = tmp_path / "tsig.key"
    key_file.write_text(bind.key_secret)
    argv += ["--tsig-key-name", bind.key_name, "--tsig-secret-file", str(key_file)]
    argv += ["--dns-resolver", bind.address, "--dns-propagation-timeout", "10"]
    result = run_cli(argv, capsys)
    issued(caddy, tmp_path, result, name("dns"), f"x.{name('dns')}")


# -- failed validation: seconds, with the reason -----------------------------------------------


def test_unreachable_answer_fails_in_seconds_with_the_reason(
    caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing answers on port 80: step-ca keeps the challenge pending with an error and
    waits for the client to POST it again. acmelite did so twice, then named the error
    (before: "still pending at the deadline", after the whole --timeout)."""
    argv = issue_argv(caddy, tmp_path, name("unreachable"))
    argv[argv.index("--http-port") + 1] = "81"  # the answer is served where nobody looks
    start = time.monotonic()
    result = run_cli(argv, capsys)
    elapsed = time.monotonic() - start
    assert result.code == 1
    assert last_line(result.err) == (
        f"acmelite: error: validation failed for {name('unreachable')}: {name('unreachable')}:"
        " connection: The server could not connect to validation target"
        " (still failing after 3 attempts)"
    )
    assert elapsed < FAIL_FAST
    assert result.err.count("asking the CA to try again") == 2
    assert not (tmp_path / "out").exists()


class _WrongAnswer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"not the key authorization"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def wrong_answer(caddy: CaddyLab) -> Iterator[None]:
    """Port 80 of the lab's address answers every request with the wrong text."""
    server = http.server.ThreadingHTTPServer((caddy.address, 80), _WrongAnswer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_wrong_answer_fails_at_once_several_names(
    caddy: CaddyLab, wrong_answer: None, tmp_path: Path
) -> None:
    """A wrong answer: step-ca's challenge POST answers ``invalid`` while the order stays
    ``pending``. The library fails every name at once, each with the CA's reason."""
    names = [name("wrong-a"), name("wrong-b")]
    with AcmeClient(caddy.directory_url, AccountKey.generate(), ca_bundle=caddy.ca_bundle) as c:
        c.register(agree_tos=True)
        # The solver serves on another port: the CA reaches the wrong server on port 80.
        solver = StandaloneSolver(port=0, address="127.0.0.1")
        start = time.monotonic()
        with pytest.raises(AuthorizationFailed) as info:
            c.issue(names, solver=solver, timeout=300)
        elapsed = time.monotonic() - start
    assert elapsed < FAIL_FAST
    problems = info.value.problems
    assert [p.identifier for p in problems] == names
    assert {p.short_type for p in problems} == {"rejectedIdentifier"}
    # step-ca keeps its own words ("keyAuthorization does not match") in its log; the
    # problem document has the generic text of the type.
    assert {p.detail for p in problems} == {
        "The server will not issue certificates for the identifier"
    }
    lines = str(info.value).splitlines()
    assert lines[0] == f"validation failed for {names[0]}, {names[1]}:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == names


# -- renew, revoke, accounts -------------------------------------------------------------------


def test_renew_without_ari_uses_the_lifetime(
    caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = issued(
        caddy, tmp_path, run_cli(issue_argv(caddy, tmp_path, name("renew")), capsys), name("renew")
    )
    out = str(tmp_path / "out")
    result = run_cli(["renew", "--json", out], capsys)
    assert result.code == 0, result.err
    (decision,) = json.loads(result.out)["certificates"]
    assert decision["status"] == "not-due"
    assert decision["ari_window"] is None  # Caddy's directory has no renewalInfo
    # A 12-hour certificate is short-lived: due in the lifetime window that ends when half
    # its lifetime remains, at a moment drawn stably in it (a fleet does not renew at once).
    window = lifetime_window(leaf)
    assert window.end == lifetime_threshold(leaf)
    assert window.start <= dt.datetime.fromisoformat(decision["renew_at"]) <= window.end
    forced = run_cli(["renew", "--json", "--force", out], capsys)
    assert forced.code == 3, forced.err
    (renewed,) = json.loads(forced.out)["certificates"]
    assert renewed["status"] == "renewed"
    new_leaf = x509.load_pem_x509_certificate((tmp_path / "out" / "cert.pem").read_bytes())
    assert new_leaf.serial_number != leaf.serial_number
    verify_chain((tmp_path / "out" / "fullchain.pem").read_bytes(), caddy.caddy.root_pem())


def revoke_argv(lab: CaddyLab, tmp: Path, *extra: str) -> list[str]:
    return [
        "revoke",
        "--server",
        lab.directory_url,
        "--ca-bundle",
        lab.ca_bundle,
        "--account-key",
        str(tmp / "account.key"),
        "--cert",
        str(tmp / "out" / "cert.pem"),
        *extra,
    ]


@pytest.mark.parametrize("signer", ["account", "certificate key"])
def test_revoke_then_twice(
    caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str], signer: str
) -> None:
    label = "revoke-" + signer.split(maxsplit=1)[0]
    leaf = issued(
        caddy, tmp_path, run_cli(issue_argv(caddy, tmp_path, name(label)), capsys), name(label)
    )
    extra = ["--reason", "superseded"]
    if signer == "certificate key":
        extra += ["--key", str(tmp_path / "out" / "privkey.pem")]
    result = run_cli(revoke_argv(caddy, tmp_path, *extra), capsys)
    assert result.code == 0, result.err
    assert result.out.strip() == (
        f"revoked certificate {leaf.serial_number:x} ({name(label)}), reason superseded,"
        f" signed by the {signer}"
    )
    again = run_cli(revoke_argv(caddy, tmp_path, *extra), capsys)
    assert again.code == 1
    assert last_line(again.err) == (
        f"acmelite: error: certificate {leaf.serial_number:x} ({name(label)}) is already revoked"
    )


def test_account_show_update_deactivate(
    caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    created = run_cli(
        account_argv(caddy, tmp_path, "register", "--agree-tos", "--json", "--email", "a@x.test"),
        capsys,
    )
    assert created.code == 0, created.err
    url = json.loads(created.out)["url"]
    assert url.startswith(caddy.directory_url.rsplit("/", 1)[0] + "/account/")
    shown = run_cli(account_argv(caddy, tmp_path, "show", "--json"), capsys)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["contact"] == ["mailto:a@x.test"]
    updated = run_cli(
        account_argv(caddy, tmp_path, "update", "--json", "--email", "b@x.test"), capsys
    )
    assert updated.code == 0, updated.err
    assert json.loads(updated.out)["contact"] == ["mailto:b@x.test"]
    gone = run_cli(account_argv(caddy, tmp_path, "deactivate", "--yes-deactivate"), capsys)
    assert gone.code == 0, gone.err
    refused = run_cli(issue_argv(caddy, tmp_path, name("deactivated")), capsys)
    assert refused.code == 1
    assert "unauthorized" in last_line(refused.err) or "deactivated" in last_line(refused.err)


def test_rollover_is_not_implemented(
    caddy: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """step-ca answers keyChange with HTTP 501 typed ``rejectedIdentifier``: the message
    says what is missing, and the key file stays as it was."""
    created = run_cli(account_argv(caddy, tmp_path, "register", "--agree-tos"), capsys)
    assert created.code == 0, created.err
    key = tmp_path / "account.key"
    before = key.read_bytes()
    result = run_cli(account_argv(caddy, tmp_path, "rollover"), capsys)
    assert result.code == 1
    line = last_line(result.err)
    assert line.startswith("acmelite: error: the CA does not implement key change"), line
    assert "HTTP 501" in line
    assert key.read_bytes() == before
    assert not (tmp_path / "account.key.new").exists()
    shown = run_cli(account_argv(caddy, tmp_path, "show"), capsys)
    assert shown.code == 0, shown.err


# -- the examples of docs/interop.md -----------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "interop.md"


def doc_example(label: str) -> str:
    """The fenced block after ``<!-- example: LABEL -->`` in docs/interop.md."""
    text = DOC.read_text()
    match = re.search(rf"<!-- example: {re.escape(label)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert match, f"no example {label!r} in {DOC}"
    return match.group(1)


def doc_commands(label: str) -> list[str]:
    """The shell lines of an example, continuation lines joined."""
    return [line for line in doc_example(label).replace("\\\n", " ").splitlines() if line]


@pytest.fixture
def doc_caddy(
    caddy_lab: CaddyLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[int]:
    """Caddy run as docs/interop.md says, in ``tmp_path``, on a free port instead of 8443."""
    monkeypatch.chdir(tmp_path)
    port = free_port("tcp+udp")
    (tmp_path / "Caddyfile").write_text(
        doc_example("caddyfile").replace("127.0.0.1:8443", f"127.0.0.1:{port}")
    )
    start = doc_commands("caddy-issue")[0]
    assert start.endswith(" &"), start
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    log = (tmp_path / "caddy.log").open("wb")
    proc = subprocess.Popen(
        shlex.split(start[:-2]), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        root = tmp_path / "caddy-data" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + 30
        while not (root.is_file() and _answers(port, root)):
            assert proc.poll() is None, (tmp_path / "caddy.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "caddy.log").read_text()
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _answers(port: int, root: Path) -> bool:
    context = ssl.create_default_context(cafile=str(root))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
    try:
        conn.request("GET", "/acme/local/directory")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def doc_argv(command: str, port: int, address: str) -> list[str]:
    """An ``acmelite ...`` line of the docs for this test's port and loopback address."""
    argv = shlex.split(command.removeprefix("sudo "))
    assert argv[0] == "acmelite", command
    argv = [a.replace("127.0.0.1:8443", f"127.0.0.1:{port}") for a in argv[1:]]
    argv[argv.index("-d") + 1] = address
    return [*argv, "--http-address", address]


def test_the_docs_examples_run(
    doc_caddy: int, caddy_lab: CaddyLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = caddy_lab.address
    issue = doc_argv(doc_commands("caddy-issue")[1], doc_caddy, address)
    result = run_cli(issue, capsys)
    assert result.code == 0, result.err
    root = (tmp_path / "caddy-data" / "pki" / "authorities" / "local" / "root.crt").read_text()
    verify_chain((tmp_path / "certs" / "local" / "fullchain.pem").read_bytes(), root, address)

    (fail,) = doc_commands("caddy-fail")
    start = time.monotonic()
    failed = run_cli(doc_argv(fail, doc_caddy, address), capsys)
    assert time.monotonic() - start < FAIL_FAST
    assert failed.code == 1
    (expected,) = doc_commands("caddy-fail-output")
    assert last_line(failed.err) == expected.replace("127.0.0.1", address)
