"""acmelite issue and the library flow against a real Pebble (RFC 8555 end to end)."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acmelite import AccountKey, AcmeClient, AuthorizationFailed, NetworkError
from acmelite.csr import make_csr
from acmelite.keys import generate_private_key, private_key_pem
from acmelite.models import Identifier
from acmelite.solvers.http01 import StandaloneSolver
from acmelite.testing.pebble import Pebble
from tests.support import (
    issue_argv,
    key_matches_cert,
    run_cli,
    run_cli_subprocess,
    serve_directory,
    tree_snapshot,
    verify_chain,
    without_http,
)


def _client(pebble: Pebble) -> AcmeClient:
    client = AcmeClient(pebble.directory_url, AccountKey.generate(), ca_bundle=pebble.ca_bundle)
    client.register(agree_tos=True, contact=["ops@example.test"])
    return client


def _solver(pebble: Pebble) -> StandaloneSolver:
    return StandaloneSolver(port=pebble.http_port, address="127.0.0.1")


def test_library_issue_verifies_against_pebble_root(pebble: Pebble) -> None:
    with _client(pebble) as client:
        bundle = client.issue(
            ["lib.acmelite.test", "www.lib.acmelite.test"], solver=_solver(pebble)
        )
    leaf = verify_chain(bundle.fullchain_pem, pebble.roots(), "www.lib.acmelite.test")
    assert key_matches_cert(bundle.key_pem, bundle.cert_pem)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == [
        "lib.acmelite.test",
        "www.lib.acmelite.test",
    ]
    assert bundle.fullchain_pem == bundle.cert_pem + bundle.chain_pem
    assert bundle.chain_pem.count(b"BEGIN CERTIFICATE") >= 1


def test_every_protocol_step_is_public(pebble: Pebble) -> None:
    """An integrator can drive the flow step by step (RFC 8555 §7.4-§7.5)."""
    with _client(pebble) as client:
        idents = [Identifier(type="dns", value="steps.acmelite.test")]
        order = client.new_order(idents)
        assert order.status == "pending"
        authzs = [client.get_authorization(u) for u in order.authorizations]
        assert [a.identifier.value for a in authzs] == ["steps.acmelite.test"]
        tasks = client.challenge_tasks(authzs, "http-01")
        solver = _solver(pebble)
        solver.perform(tasks)
        try:
            challenge = client.answer_challenge(tasks[0].challenge)
            assert challenge.status in ("pending", "processing", "valid")
            order = client.poll_order(order, ("ready", "invalid"))
        finally:
            solver.cleanup(tasks)
        assert order.status == "ready"
        key = generate_private_key("ec256")
        order = client.finalize(order, make_csr(key, idents))
        assert order.status == "valid"
        pem = client.download_certificate(order.certificate)
        verify_chain(pem, pebble.roots(), "steps.acmelite.test")
        assert client.get_order(order.url).status == "valid"


def test_cli_subprocess_writes_verified_files_with_modes(pebble: Pebble, tmp_path: Path) -> None:
    argv = [*issue_argv(pebble, tmp_path, "cli.acmelite.test", "www.cli.acmelite.test"), "--json"]
    result = run_cli_subprocess(argv)
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    out = tmp_path / "out"
    assert summary["names"] == ["cli.acmelite.test", "www.cli.acmelite.test"]
    assert set(summary["files"]) == {"privkey.pem", "cert.pem", "chain.pem", "fullchain.pem"}
    for key in ("serial", "not_before", "not_after", "issuer"):
        assert summary[key]
    assert stat.S_IMODE((out / "privkey.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "cert.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "account.key").stat().st_mode) == 0o600
    fullchain = (out / "fullchain.pem").read_bytes()
    leaf = verify_chain(fullchain, pebble.roots(), "cli.acmelite.test")
    assert format(leaf.serial_number, "x") == summary["serial"]
    assert fullchain == (out / "cert.pem").read_bytes() + (out / "chain.pem").read_bytes()
    assert key_matches_cert((out / "privkey.pem").read_bytes(), (out / "cert.pem").read_bytes())
    # Progress for a person on stderr: account, order, challenges, finalize, download.
    for word in ("account", "order", "http-01", "finalizing", "downloading", "certificate for"):
        assert word in result.err
    assert "BEGIN" not in result.err


def test_cli_webroot(pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    webroot = tmp_path / "www"
    webroot.mkdir()
    (webroot / "index.html").write_text("hello")
    argv = without_http(issue_argv(pebble, tmp_path, "webroot.acmelite.test"))
    argv += ["--webroot", str(webroot)]
    with serve_directory(webroot, pebble.http_port):
        result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    verify_chain(
        (tmp_path / "out/fullchain.pem").read_bytes(), pebble.roots(), "webroot.acmelite.test"
    )
    # Challenge files and the directories acmelite made are gone; the site is untouched.
    assert sorted(p.name for p in webroot.iterdir()) == ["index.html"]


def test_ten_names_in_one_order(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"n{i}.ten.acmelite.test" for i in range(10)]
    result = run_cli(issue_argv(pebble, tmp_path, *names), capsys)
    assert result.code == 0, result.err
    leaf = verify_chain((tmp_path / "out/fullchain.pem").read_bytes(), pebble.roots(), names[7])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
    assert "publishing 10 http-01 answer(s)" in result.err


@pytest.mark.parametrize(
    ("key_type", "kind", "size"),
    [
        ("ec256", ec.EllipticCurvePrivateKey, 256),
        ("ec384", ec.EllipticCurvePrivateKey, 384),
        ("rsa2048", rsa.RSAPrivateKey, 2048),
        ("rsa3072", rsa.RSAPrivateKey, 3072),
        ("rsa4096", rsa.RSAPrivateKey, 4096),
    ],
)
def test_every_key_type(
    pebble: Pebble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    key_type: str,
    kind: type,
    size: int,
) -> None:
    argv = [*issue_argv(pebble, tmp_path, f"{key_type}.acmelite.test"), "--key-type", key_type]
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((tmp_path / "out/privkey.pem").read_bytes(), None)
    assert isinstance(key, kind)
    assert key.key_size == size
    assert key_matches_cert(
        (tmp_path / "out/privkey.pem").read_bytes(), (tmp_path / "out/cert.pem").read_bytes()
    )


@pytest.mark.parametrize("account_key_type", ["ec384", "rsa2048"])
def test_account_key_types(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str], account_key_type: str
) -> None:
    """ES384 and RS256 account keys sign every request as well as ES256."""
    key = AccountKey.generate(account_key_type)
    (tmp_path / "account.key").write_bytes(key.to_pem())
    result = run_cli(issue_argv(pebble, tmp_path, f"acct-{account_key_type}.acmelite.test"), capsys)
    assert result.code == 0, result.err


def test_user_supplied_csr(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_private_key("ec256")
    idents = [Identifier(type="dns", value="csr.acmelite.test")]
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "req.der").write_bytes(
        make_csr(key, idents).public_bytes(serialization.Encoding.DER)
    )
    argv = [*issue_argv(pebble, tmp_path, "csr.acmelite.test"), "--csr", str(tmp_path / "req.der")]
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    out = tmp_path / "out"
    assert not (out / "privkey.pem").exists()
    assert key_matches_cert(private_key_pem(key), (out / "cert.pem").read_bytes())


def test_account_url_is_reused_and_stale_one_recovered(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The account URL is stored beside the key: the second run sends no newAccount; a URL
    the CA no longer knows (a restarted test CA) is dropped and the account registered again."""
    argv = issue_argv(pebble, tmp_path, "reuse.acmelite.test")
    assert run_cli(argv, capsys).code == 0
    stored = json.loads((tmp_path / "account.key.accounts.json").read_text())
    assert list(stored) == [pebble.directory_url]
    second = run_cli([*argv, "-v"], capsys)
    assert second.code == 0, second.err
    assert "new-acct" not in second.err and "newAccount" not in second.err
    stored[pebble.directory_url] = stored[pebble.directory_url] + "0000"
    (tmp_path / "account.key.accounts.json").write_text(json.dumps(stored))
    third = run_cli(argv, capsys)
    assert third.code == 0, third.err
    assert "no longer knows the stored account" in third.err


def test_failed_validation_names_the_name_and_keeps_old_files(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = issue_argv(pebble, tmp_path, "keep.acmelite.test")
    assert run_cli(argv, capsys).code == 0
    before = tree_snapshot(tmp_path / "out")
    # Listen somewhere Pebble does not look: validation fails with connection refused. Another
    # account, so that Pebble cannot reuse the valid authorization (it does 1% of the time even
    # with PEBBLE_AUTHZREUSE=0: its check is `rand.Intn(100) > percent`).
    other_account = ["--account-key", str(tmp_path / "other-account.key")]
    result = run_cli([*argv, "--http-port", "0", *other_account], capsys)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert lines[-1].startswith("acmelite: error: validation failed for keep.acmelite.test")
    assert "Traceback" not in result.err
    assert "connection" in lines[-1].lower()
    assert tree_snapshot(tmp_path / "out") == before


def test_library_raises_authorization_failed_with_problem(pebble: Pebble) -> None:
    with _client(pebble) as client:
        solver = StandaloneSolver(port=0, address="127.0.0.1")
        with pytest.raises(AuthorizationFailed) as info:
            client.issue(["fail.acmelite.test"], solver=solver)
    problem = info.value.problems[0]
    assert problem.identifier == "fail.acmelite.test"
    assert problem.short_type == "connection"
    assert problem.detail


def test_ca_bundle_wins_over_requests_env(
    pebble: Pebble,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """requests prefers REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE over Session.verify; --ca-bundle wins."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    result = run_cli(issue_argv(pebble, tmp_path, "bundle.acmelite.test"), capsys)
    assert result.code == 0, result.err
    argv = issue_argv(pebble, tmp_path, "bundle.acmelite.test", out="out2")
    i = argv.index("--ca-bundle")
    del argv[i : i + 2]
    result = run_cli([*argv, "--account-key", str(tmp_path / "other.key")], capsys)
    assert result.code == 1
    assert "TLS verification" in result.err and "--ca-bundle" in result.err
    assert not (tmp_path / "out2").exists()


def test_library_tls_failure_is_network_error(pebble: Pebble) -> None:
    client = AcmeClient(pebble.directory_url, AccountKey.generate(), ca_bundle=None)
    with pytest.raises(NetworkError, match=r"TLS verification of 127\.0\.0\.1") as caught:
        client.register(agree_tos=True)
    assert caught.value.code == "tls-verification"  # the data the CLI's hint is keyed on
    assert "--" not in str(caught.value)  # no command-line flag in a library error


def test_standalone_port_in_use(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = issue_argv(pebble, tmp_path, "busy.acmelite.test")
        argv[argv.index("--http-port") + 1] = str(port)
        result = run_cli(argv, capsys)
    assert result.code == 1
    assert f"port {port}" in result.err and "--webroot" in result.err
    assert not (tmp_path / "out" / "cert.pem").exists()


def test_nonce_rejection_half_of_all_nonces(
    pebble_factory: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With PEBBLE_WFE_NONCEREJECT=50, five issuances in a row all succeed."""
    noisy = pebble_factory(nonce_reject=50)  # type: ignore[operator]
    for i in range(5):
        result = run_cli(
            issue_argv(noisy, tmp_path, f"nonce{i}.acmelite.test", out=f"o{i}"), capsys
        )
        assert result.code == 0, result.err


def test_unreachable_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [
        "issue",
        "-d",
        "x.acmelite.test",
        "--server",
        f"https://127.0.0.1:{port}/dir",
        "--agree-tos",
        "--account-key",
        str(tmp_path / "a.key"),
        "--out",
        str(tmp_path / "o"),
    ]
    result = run_cli(argv, capsys)
    assert result.code == 1
    assert result.err.strip().splitlines()[-1].startswith("acmelite: error: cannot reach 127.0.0.1")
    assert not (tmp_path / "o" / "cert.pem").exists()
