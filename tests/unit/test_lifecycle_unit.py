"""Account and revocation pieces without a CA: revocation requests (RFC 8555 §7.6), reason
codes, EAB key sizes, IP identifiers and dns-01, and the command-line contract of
``acmelite account`` and ``acmelite revoke``."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from acmelite import AccountKey, AcmeClient, ChallengeTask
from acmelite.accounts import REVOCATION_REASONS, revocation_reason_code
from acmelite.cli import build_parser
from acmelite.cli.revoke import REASONS
from acmelite.errors import InvalidInput
from acmelite.jws import eab_jws
from acmelite.keys import generate_private_key
from acmelite.transport import Response
from tests.support import run_cli

CA = "https://ca.test"
REVOKE = f"{CA}/revoke"
ACCOUNT = f"{CA}/acct/7"
DIRECTORY = {
    "newNonce": f"{CA}/nonce",
    "newAccount": f"{CA}/new-acct",
    "newOrder": f"{CA}/new-order",
    "revokeCert": REVOKE,
}
DOCS = Path(__file__).resolve().parents[2] / "docs"
# Nothing listens here: a command that reaches the network fails with "cannot reach".
NOWHERE = "https://127.0.0.1:9/dir"


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RecordingTransport:
    def __init__(self) -> None:
        self.new_nonce_url = ""
        self.posts: list[tuple[str, dict[str, str]]] = []

    def get(self, url: str, **_: object) -> Response:
        return Response(url=url, status=200, headers={}, content=json.dumps(DIRECTORY).encode())

    def post(self, url: str, sign: Callable[[str], bytes], **_: object) -> Response:
        self.posts.append((url, json.loads(sign("n0nce"))))
        return Response(url=url, status=200, headers={}, content=b"")

    def close(self) -> None:
        pass


def _certificate() -> tuple[x509.Certificate, object]:
    key = generate_private_key("ec256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "revoke.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234ABCD)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _client(transport: RecordingTransport) -> AcmeClient:
    return AcmeClient(CA + "/dir", AccountKey.generate(), account_url=ACCOUNT, transport=transport)  # type: ignore[arg-type]


def _header_and_payload(body: dict[str, str]) -> tuple[dict[str, object], dict[str, object]]:
    return json.loads(_b64d(body["protected"])), json.loads(_b64d(body["payload"]))


# -- revocation requests -------------------------------------------------------------------


def test_revocation_signed_by_the_account() -> None:
    transport = RecordingTransport()
    cert, _ = _certificate()
    der = cert.public_bytes(serialization.Encoding.DER)
    _client(transport).revoke_certificate(der, "keyCompromise")
    [(url, body)] = transport.posts
    header, payload = _header_and_payload(body)
    assert url == REVOKE
    assert header["kid"] == ACCOUNT and "jwk" not in header
    assert payload == {
        "certificate": base64.urlsafe_b64encode(der).rstrip(b"=").decode(),
        "reason": 1,
    }


def test_revocation_signed_by_the_certificate_key() -> None:
    transport = RecordingTransport()
    cert, key = _certificate()
    client = _client(transport)
    client.revoke_certificate(cert, 4, cert_key=key)  # type: ignore[arg-type]
    [(_, body)] = transport.posts
    header, payload = _header_and_payload(body)
    assert "kid" not in header
    assert header["jwk"] == AccountKey(key).public_jwk()  # type: ignore[arg-type]
    assert header["jwk"] != client.account_key.public_jwk()
    assert payload["reason"] == 4


def test_revocation_without_reason_and_with_a_wrong_key() -> None:
    transport = RecordingTransport()
    cert, _ = _certificate()
    client = _client(transport)
    client.revoke_certificate(cert)
    assert "reason" not in _header_and_payload(transport.posts[0][1])[1]
    with pytest.raises(InvalidInput, match="not the key of certificate 1234abcd"):
        client.revoke_certificate(cert, cert_key=generate_private_key())
    with pytest.raises(InvalidInput, match="not a DER certificate"):
        client.revoke_certificate(b"-----BEGIN CERTIFICATE-----")
    assert len(transport.posts) == 1


def test_revocation_reason_codes() -> None:
    assert revocation_reason_code(None) is None
    assert revocation_reason_code("superseded") == 4
    assert revocation_reason_code("KEYCOMPROMISE") == 1
    assert revocation_reason_code(10) == 10
    for bad in (7, 11, -1, True):
        with pytest.raises(InvalidInput):
            revocation_reason_code(bad)
    with pytest.raises(InvalidInput, match="unknown revocation reason 'bored'"):
        revocation_reason_code("bored")
    assert set(REASONS) <= set(REVOCATION_REASONS)
    assert "cACompromise" not in REASONS  # the CA's own reason, not the subscriber's


# -- EAB key sizes (RFC 7518 §3.2) ------------------------------------------------------------


@pytest.mark.parametrize(("alg", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_eab_key_must_be_as_long_as_the_hash(alg: str, size: int) -> None:
    key = AccountKey.generate()
    enough = base64.urlsafe_b64encode(b"k" * size).rstrip(b"=").decode()
    short = base64.urlsafe_b64encode(b"k" * (size - 1)).rstrip(b"=").decode()
    assert eab_jws(key, kid="k", hmac_key_b64=enough, url="u", alg=alg)["signature"]
    with pytest.raises(InvalidInput, match=f"has {size - 1} bytes, {alg} needs at least {size}"):
        eab_jws(key, kid="k", hmac_key_b64=short, url="u", alg=alg)


# -- IP identifiers (RFC 8738) ---------------------------------------------------------------


class _Dns01:
    challenge_type: ClassVar[str] = "dns-01"

    def perform(self, tasks: list[ChallengeTask]) -> None:
        raise AssertionError("never reached")

    def cleanup(self, tasks: list[ChallengeTask]) -> None:
        pass


@pytest.mark.parametrize("name", ["192.0.2.1", "2001:db8::1"])
def test_ip_identifier_is_never_sent_to_dns01(name: str) -> None:
    transport = RecordingTransport()
    with pytest.raises(InvalidInput, match=f"{re.escape(name)} is an IP address: dns-01 cannot"):
        _client(transport).issue(["example.test", name], solver=_Dns01())
    assert transport.posts == []


# -- the command line --------------------------------------------------------------------------


def _argv(*args: str, key: Path) -> list[str]:
    return [*args, "--server", NOWHERE, "--account-key", str(key)]


def test_account_usage_errors_send_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "account.key"
    result = run_cli(_argv("account", "deactivate", key=key), capsys)
    assert result.code == 2
    assert "cannot be undone" in result.err and "--yes-deactivate" in result.err
    result = run_cli(_argv("account", "update", key=key), capsys)
    assert result.code == 2
    assert "--email" in result.err
    result = run_cli(
        _argv("account", "update", "--email", "a@b.test", "--no-email", key=key), capsys
    )
    assert result.code == 2
    result = run_cli(
        _argv("account", "rollover", "--new-key", "x", "--key-type", "ec384", key=key), capsys
    )
    assert result.code == 2
    assert "not allowed with" in result.err
    result = run_cli(["account"], capsys)
    assert result.code == 2
    assert not key.exists()


@pytest.mark.parametrize("action", ["show", "update", "deactivate", "rollover"])
def test_account_actions_never_create_a_key(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "account.key"
    extra = {"update": ["--email", "a@b.test"], "deactivate": ["--yes-deactivate"]}
    result = run_cli(_argv("account", action, *extra.get(action, []), key=key), capsys)
    assert result.code == 1
    assert "no account key at" in result.err.strip().splitlines()[-1]
    assert not key.exists()


def test_revoke_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "account.key"
    assert run_cli(_argv("revoke", key=key), capsys).code == 2  # --cert is required
    result = run_cli(_argv("revoke", "--cert", str(tmp_path / "none.pem"), key=key), capsys)
    assert result.code == 1
    assert "cannot read --cert" in result.err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    result = run_cli(_argv("revoke", "--cert", str(garbage), key=key), capsys)
    assert result.code == 1
    assert "not a PEM or DER certificate" in result.err
    cert, _ = _certificate()
    pem = tmp_path / "cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result = run_cli(_argv("revoke", "--cert", str(pem), key=key), capsys)
    assert result.code == 1
    assert "no account key at" in result.err and "--key PATH" in result.err
    assert not key.exists()


def test_every_command_in_the_accounts_doc_parses() -> None:
    """docs/accounts.md shows real commands: each one must still parse."""
    text = (DOCS / "accounts.md").read_text()
    commands = re.findall(r"^\$ (?:\S+=\S+ )*acmelite (.*)$", text, flags=re.M)
    assert len(commands) >= 20
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command.replace("<another key>", "x")))
