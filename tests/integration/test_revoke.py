"""Revocation (RFC 8555 §7.6) against a real Pebble, confirmed through its management
interface (``/cert-status-by-serial/<hex>``: Status, Serial, Reason, RevokedAt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from acmelite import AccountKey, AcmeClient
from acmelite.keys import load_private_key
from acmelite.testing.pebble import Pebble
from tests.support import issue_argv, run_cli


def _issue(pebble: Pebble, tmp: Path, capsys: pytest.CaptureFixture[str], name: str) -> int:
    """Issue a certificate into ``tmp/out`` with ``tmp/account.key``; return its serial."""
    result = run_cli(issue_argv(pebble, tmp, name), capsys)
    assert result.code == 0, result.err
    serial = x509.load_pem_x509_certificate((tmp / "out/cert.pem").read_bytes()).serial_number
    assert pebble.cert_status(serial)["Status"] == "Valid"
    return serial


def revoke_argv(pebble: Pebble, tmp: Path, *extra: str) -> list[str]:
    return [
        "revoke",
        "--server",
        pebble.directory_url,
        "--ca-bundle",
        pebble.ca_bundle,
        "--account-key",
        str(tmp / "account.key"),
        *extra,
    ]


def _last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


def test_revoke_with_account_key_and_reason_then_twice(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serial = _issue(pebble, tmp_path, capsys, "revoke-acct.acmelite.test")
    argv = revoke_argv(pebble, tmp_path, "--cert", str(tmp_path / "out/cert.pem"))
    result = run_cli([*argv, "--reason", "keyCompromise"], capsys)
    assert result.code == 0, result.err
    assert result.out.strip() == (
        f"revoked certificate {serial:x} (revoke-acct.acmelite.test), reason keyCompromise,"
        " signed by the account"
    )
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked"
    assert status["Reason"] == 1
    assert status["RevokedAt"]

    again = run_cli([*argv, "--reason", "superseded"], capsys)
    assert again.code == 1
    assert _last_line(again.err) == (
        f"acmelite: error: certificate {serial:x} (revoke-acct.acmelite.test) is already revoked"
    )
    assert pebble.cert_status(serial)["Reason"] == 1  # the first revocation stands


def test_revoke_with_certificate_key_needs_no_account(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serial = _issue(pebble, tmp_path, capsys, "revoke-key.acmelite.test")
    (tmp_path / "account.key").unlink()  # the account key is lost
    argv = revoke_argv(
        pebble,
        tmp_path,
        "--cert",
        str(tmp_path / "out/fullchain.pem"),
        "--key",
        str(tmp_path / "out/privkey.pem"),
        "--reason",
        "cessationOfOperation",
        "--json",
    )
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary == {
        "ok": True,
        "serial": f"{serial:x}",
        "names": ["revoke-key.acmelite.test"],
        "reason": "cessationOfOperation",
        "signed_by": "certificate key",
        "account": None,
    }
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked"
    assert status["Reason"] == 5
    assert not (tmp_path / "account.key").exists()  # nothing was created for an account


def test_library_revocation_both_ways(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serial = _issue(pebble, tmp_path, capsys, "revoke-lib.acmelite.test")
    cert = x509.load_pem_x509_certificate((tmp_path / "out/cert.pem").read_bytes())
    cert_key = load_private_key((tmp_path / "out/privkey.pem").read_bytes())
    # Signed by the certificate key, given as a bare private key, with a reason code.
    with AcmeClient(pebble.directory_url, AccountKey.generate(), ca_bundle=pebble.ca_bundle) as c:
        c.revoke_certificate(cert, 4, cert_key=cert_key)
    assert pebble.cert_status(serial)["Reason"] == 4

    other = tmp_path / "second"
    other.mkdir()
    serial2 = _issue(pebble, other, capsys, "revoke-lib2.acmelite.test")
    cert2 = (other / "out/cert.pem").read_bytes()
    der2 = x509.load_pem_x509_certificate(cert2).public_bytes(serialization.Encoding.DER)
    # Signed by the account (kid, looked up by key), without a reason.
    with AcmeClient(
        pebble.directory_url, AccountKey.load(other / "account.key"), ca_bundle=pebble.ca_bundle
    ) as c:
        c.revoke_certificate(der2)
    status = pebble.cert_status(serial2)
    assert status["Status"] == "Revoked"
    assert "Reason" not in status


def test_revocation_refusals(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serial = _issue(pebble, tmp_path, capsys, "revoke-no.acmelite.test")
    cert = str(tmp_path / "out/cert.pem")
    # Another account may not revoke it (Pebble: only the ordering account).
    stranger = tmp_path / "stranger.key"
    reg = run_cli(
        [
            "account",
            "register",
            "--agree-tos",
            "--server",
            pebble.directory_url,
            "--ca-bundle",
            pebble.ca_bundle,
            "--account-key",
            str(stranger),
        ],
        capsys,
    )
    assert reg.code == 0, reg.err
    argv = revoke_argv(pebble, tmp_path, "--cert", cert)
    argv[argv.index("--account-key") + 1] = str(stranger)
    result = run_cli(argv, capsys)
    assert result.code == 1
    line = _last_line(result.err)
    assert "does not let this account revoke" in line and "--key PATH" in line
    # A key that is not the certificate's is refused before anything is sent.
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(AccountKey.generate().to_pem())
    result = run_cli([*revoke_argv(pebble, tmp_path, "--cert", cert), "--key", str(wrong)], capsys)
    assert result.code == 1
    assert "is not the private key of the certificate" in _last_line(result.err)
    # An unknown reason is a usage error.
    result = run_cli([*revoke_argv(pebble, tmp_path, "--cert", cert), "--reason", "bored"], capsys)
    assert result.code == 2
    assert "invalid choice: 'bored'" in result.err
    assert pebble.cert_status(serial)["Status"] == "Valid"
