"""The three newer challenge types without a network: dns-account-01 record names (the
draft's example vector), the tls-alpn-01 certificate and ClientHello reading, and the
command line's challenge options for tls-alpn-01, dns-account-01 and dns-persist-01."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from acmelite.challenges import ChallengeTask, account_label
from acmelite.cli import build_parser
from acmelite.cli.challenge_options import challenge_config
from acmelite.config import CertificateConfig
from acmelite.errors import InvalidInput
from acmelite.models import Authorization, Challenge, Identifier
from acmelite.solvers import ChallengeConfig, check_config, solver_for, solver_info
from acmelite.solvers.alpn import (
    ACME_IDENTIFIER_OID,
    ACME_TLS_ALPN,
    parse_client_hello,
    sni_name,
    validation_certificate,
)
from acmelite.solvers.persist import PersistSolver
from acmelite.solvers.registry import absolute_config
from acmelite.solvers.tlsalpn import TlsAlpnSolver
from tests.support import run_cli

ACCOUNT = "https://example.com/acme/acct/ExampleAccount"


def task(kind: str, name: str = "example.test", *, ident: str = "dns") -> ChallengeTask:
    return ChallengeTask(
        identifier=Identifier(type=ident, value=name.removeprefix("*.")),
        challenge=Challenge(type=kind, url="https://ca.test/c/1", status="pending", token="tok"),
        key_authorization="tok.thumbprint",
        wildcard=name.startswith("*."),
        account_url=ACCOUNT,
    )


# -- dns-account-01 -----------------------------------------------------------------------


def test_account_label_matches_the_drafts_example() -> None:
    # draft-ietf-acme-dns-account-label: the label of this account URL.
    assert account_label(ACCOUNT) == "_ujmmovf2vn55tgye"
    assert len(account_label(ACCOUNT)) == 1 + 16  # 10 bytes are 16 base32 characters
    assert account_label(ACCOUNT + "2") != account_label(ACCOUNT)
    with pytest.raises(ValueError, match="needs the account URL"):
        account_label("")


def test_each_dns_challenge_type_has_its_record() -> None:
    assert task("dns-01").dns_record == "_acme-challenge.example.test."
    assert task("dns-account-01").dns_record == "_ujmmovf2vn55tgye._acme-challenge.example.test."
    assert task("dns-account-01", "*.example.test").dns_record == (
        "_ujmmovf2vn55tgye._acme-challenge.example.test."
    )
    assert task("dns-persist-01").dns_record == "_validation-persist.example.test."
    # Plugins written for dns-01 use the old names; they follow the task's type.
    account = task("dns-account-01")
    assert account.dns01_record == account.dns_record
    assert account.dns01_value == account.dns_value == task("dns-01").dns_value


def test_a_dns_account_task_without_the_account_url_is_refused() -> None:
    bare = ChallengeTask(
        identifier=Identifier(type="dns", value="example.test"),
        challenge=Challenge(type="dns-account-01", url="u", status="pending", token="t"),
        key_authorization="t.x",
    )
    with pytest.raises(ValueError, match="needs the account URL"):
        _ = bare.dns_record


def test_dns_solvers_answer_dns_account_01_but_not_dns_persist_01() -> None:
    check_config(ChallengeConfig(type="dns-account-01", solver="hook", options={"command": "x"}))
    with pytest.raises(InvalidInput, match="answers dns-01, not dns-persist-01"):
        check_config(ChallengeConfig(type="dns-persist-01", solver="hook"))
    with pytest.raises(InvalidInput, match="answers dns-persist-01, not dns-01"):
        check_config(ChallengeConfig(type="dns-01", solver="persist"))


# -- tls-alpn-01 ----------------------------------------------------------------------------


def test_the_validation_certificate_is_what_rfc_8737_asks_for() -> None:
    one = task("tls-alpn-01", "www.example.test")
    cert = x509.load_pem_x509_certificate(validation_certificate(one)[0])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["www.example.test"]
    assert len(list(san.value)) == 1
    ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert ext.critical
    digest = hashlib.sha256(b"tok.thumbprint").digest()
    assert ext.value.public_bytes() == b"\x04\x20" + digest  # DER OCTET STRING
    assert cert.issuer == cert.subject  # self-signed

    ip = task("tls-alpn-01", "192.0.2.7", ident="ip")
    ip_cert = x509.load_pem_x509_certificate(validation_certificate(ip)[0])
    ip_san = ip_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ip_san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.7")]


def test_sni_of_an_ip_identifier_is_its_reverse_name() -> None:
    assert sni_name(Identifier(type="ip", value="127.0.0.1")) == "1.0.0.127.in-addr.arpa"
    assert sni_name(Identifier(type="ip", value="2001:db8::1")).endswith(
        ".8.b.d.0.1.0.0.2.ip6.arpa"
    )
    assert sni_name(Identifier(type="dns", value="WWW.Example.test.")) == "www.example.test"


def _client_hello(server_name: str | None, protocols: list[str] | None) -> bytes:
    """The first record of a real ClientHello from Python's own TLS client."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if protocols:
        context.set_alpn_protocols(protocols)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    data = outgoing.read()
    return data[: 5 + int.from_bytes(data[3:5], "big")]


def test_client_hello_sni_and_alpn_are_read() -> None:
    hello = parse_client_hello(_client_hello("Www.Example.Test", [ACME_TLS_ALPN, "h2"]))
    assert hello.server_name == "www.example.test"
    assert hello.protocols == (ACME_TLS_ALPN, "h2")
    bare = parse_client_hello(_client_hello(None, None))
    assert bare.server_name == "" and bare.protocols == ()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_client_hello_parsing_of_garbage_fails_only_with_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        hello = parse_client_hello(data)
        assert hello.server_name == hello.server_name.lower()


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_a_truncated_client_hello_is_a_value_error(cut: int) -> None:
    whole = _HELLO
    if cut >= len(whole):
        return
    with pytest.raises(ValueError, match=r"truncated|not a TLS|not a ClientHello|spans"):
        parse_client_hello(whole[:cut])


_HELLO = _client_hello("example.test", [ACME_TLS_ALPN])


def test_tls_alpn_solver_options() -> None:
    options = {"port": "8443", "address": "127.0.0.1"}
    solver = solver_for(ChallengeConfig(type="tls-alpn-01", solver="tls-alpn", options=options))
    assert isinstance(solver, TlsAlpnSolver)
    assert (solver.port, solver.address) == (8443, "127.0.0.1")
    assert (
        solver_for(
            ChallengeConfig(type="tls-alpn-01", solver="tls-alpn"),
            environ={"ACMELITE_TLS_PORT": "9"},
        ).port
        == 9
    )  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match="not a TCP port"):
        solver_for(ChallengeConfig(type="tls-alpn-01", solver="tls-alpn", options={"port": "x"}))
    with pytest.raises(InvalidInput, match="not an IP address"):
        TlsAlpnSolver(address="localhost")
    assert solver_info("tls-alpn").challenge_type == "tls-alpn-01"
    assert solver_info("persist").challenge_type == "dns-persist-01"


# -- the command line -----------------------------------------------------------------------


def parse_issue(*argv: str) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    args = build_parser().parse_args(["issue", "-d", "x.test", *argv])
    return args, args.parser


def test_cli_tls_alpn_options() -> None:
    config, _ = challenge_config(*parse_issue("--challenge", "tls-alpn-01", "--tls-port", "8443",
                                              "--tls-address", "127.0.0.1"))  # fmt: skip
    assert config == ChallengeConfig(
        type="tls-alpn-01", solver="tls-alpn", options={"port": "8443", "address": "127.0.0.1"}
    )


def test_cli_dns_account_uses_the_dns_flags() -> None:
    config, _ = challenge_config(
        *parse_issue("--challenge", "dns-account-01", "--dns", "hook", "--dns-hook", "/bin/x")
    )
    assert config == ChallengeConfig(
        type="dns-account-01", solver="hook", options={"command": "/bin/x"}
    )


def test_cli_persist_with_and_without_fallback() -> None:
    config, _ = challenge_config(
        *parse_issue("--challenge", "dns-persist-01", "--persist-option", "issuer=ca.example")
    )
    assert config == ChallengeConfig(
        type="dns-persist-01", solver="persist", options={"issuer": "ca.example"}
    )
    config, runtime = challenge_config(*parse_issue(
        "--challenge", "dns-persist-01", "--fallback", "dns-01", "--dns", "rfc2136",
        "--dns-server", "192.0.2.53", "--tsig-key-name", "k", "--tsig-secret", "c2VjcmV0",
    ))  # fmt: skip
    assert config.fallback == ChallengeConfig(
        type="dns-01", solver="rfc2136", options={"server": "192.0.2.53", "tsig-key-name": "k"}
    )
    assert runtime == {"ACMELITE_DNS_TSIG_SECRET": "c2VjcmV0"}
    assert "c2VjcmV0" not in json.dumps(config.to_json())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--tls-port", "443"], "--tls-port go with --challenge tls-alpn-01, not http-01"),
        (["--challenge", "tls-alpn-01", "--http-port", "80"],
         "--http-port go with --challenge http-01, not tls-alpn-01"),
        (["--challenge", "dns-persist-01", "--dns", "rfc2136"],
         "--dns go with --challenge dns-01 or --fallback dns-01, not dns-persist-01"),
        (["--fallback", "dns-01"], "--fallback goes with --challenge dns-persist-01"),
        (["--challenge", "dns-persist-01", "--fallback", "dns-01"],
         "--fallback dns-01 needs --dns NAME"),
        (["--challenge", "dns-account-01"], "--challenge dns-account-01 needs --dns NAME"),
        (["--challenge", "tls-alpn-01", "--tls-solver", "rfc2136"],
         "solver 'rfc2136' answers dns-01, not tls-alpn-01"),
        (["--challenge", "dns-persist-01", "--persist-option", "nope=1"],
         "solver 'persist' has no option 'nope'"),
    ],
)  # fmt: skip
def test_usage_errors_of_the_new_challenges(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = run_cli(["issue", "-d", "x.test", "--out", str(tmp_path / "o"), *argv], capsys)
    assert result.code == 2, result.err
    assert expected in result.err
    assert not (tmp_path / "o").exists()


def test_a_fallback_is_kept_in_renewal_json_with_absolute_paths(tmp_path: Path) -> None:
    challenge = ChallengeConfig(
        type="dns-persist-01",
        solver="persist",
        fallback=ChallengeConfig(type="dns-01", solver="rfc2136",
                                 options={"server": "a", "tsig-secret": "@key"}),
    )  # fmt: skip
    config = CertificateConfig(
        names=("x.test",), server="https://ca.test/dir", account_key="k", challenge=challenge
    )
    made = absolute_config(challenge, tmp_path)
    assert made.fallback is not None
    assert made.fallback.options["tsig-secret"] == f"@{tmp_path / 'key'}"
    again = CertificateConfig.from_json(json.loads(json.dumps(config.to_json())), source="t")
    assert again.challenge == challenge
    with pytest.raises(InvalidInput, match="another challenge type"):
        ChallengeConfig(type="dns-01", solver="hook", fallback=ChallengeConfig(type="dns-01"))


def test_wildcards_and_ips_by_challenge_type() -> None:
    base = {"server": "https://ca.test/dir", "account_key": "k"}
    CertificateConfig(names=("*.x.test",), challenge=ChallengeConfig(
        type="dns-persist-01", solver="persist"), **base)  # fmt: skip
    with pytest.raises(InvalidInput, match="wildcard"):
        CertificateConfig(names=("*.x.test",), challenge=ChallengeConfig(
            type="tls-alpn-01", solver="tls-alpn"), **base)  # fmt: skip
    with pytest.raises(InvalidInput, match="cannot validate IP"):
        CertificateConfig(names=("192.0.2.1",), challenge=ChallengeConfig(
            type="dns-account-01", solver="hook"), **base)  # fmt: skip
    CertificateConfig(names=("192.0.2.1",), challenge=ChallengeConfig(
        type="tls-alpn-01", solver="tls-alpn"), **base)  # fmt: skip


def test_persist_challenge_objects_are_read() -> None:
    authz = Authorization.from_json(
        {
            "identifier": {"type": "dns", "value": "example.test"},
            "status": "pending",
            "challenges": [
                {
                    "type": "dns-persist-01",
                    "url": "https://ca.test/c/9",
                    "status": "pending",
                    "issuer-domain-names": ["authority.example", "ca.example.net"],
                    "accounturi": "https://ca.test/acct/1",
                }
            ],
        },
        url="https://ca.test/a/1",
    )
    chal = authz.challenge("dns-persist-01")
    assert chal is not None
    assert chal.issuer_domain_names == ("authority.example", "ca.example.net")
    assert chal.account_uri == "https://ca.test/acct/1"
    assert chal.token == ""


def test_persist_solver_refuses_a_malformed_challenge() -> None:
    from acmelite.errors import ProtocolError

    bad = ChallengeTask(
        identifier=Identifier(type="dns", value="example.test"),
        challenge=Challenge(type="dns-persist-01", url="u", status="pending",
                            issuer_domain_names=tuple(f"ca{i}.example" for i in range(11))),
        key_authorization="", account_url=ACCOUNT,
    )  # fmt: skip
    with pytest.raises(ProtocolError, match="lists 11 issuer domain names"):
        PersistSolver().perform([bad])
