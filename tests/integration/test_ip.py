"""IP address certificates (RFC 8738) over http-01 against a real Pebble.

For an ``ip`` identifier no DNS is involved: Pebble's validator connects to the address
itself, on its http port, so a standalone solver on that address proves it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path

import pytest
from cryptography import x509

from acmelite.testing.pebble import Pebble
from tests.support import issue_argv, key_matches_cert, run_cli, verify_chain


def _sans(leaf: x509.Certificate) -> tuple[list[str], list[str]]:
    ext = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return sorted(ext.get_values_for_type(x509.DNSName)), sorted(ips)


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ipv4_certificate(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli([*issue_argv(pebble, tmp_path, "127.0.0.1"), "--json"], capsys)
    assert result.code == 0, result.err
    assert json.loads(result.out)["names"] == ["127.0.0.1"]
    out = tmp_path / "out"
    leaf = verify_chain((out / "fullchain.pem").read_bytes(), pebble.roots(), "127.0.0.1")
    assert _sans(leaf) == ([], ["127.0.0.1"])
    assert key_matches_cert((out / "privkey.pem").read_bytes(), (out / "cert.pem").read_bytes())


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_certificate(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = issue_argv(pebble, tmp_path, "[0:0::1]")  # brackets and a long form: normalised
    argv[argv.index("--http-address") + 1] = "::1"
    result = run_cli([*argv, "--json"], capsys)
    assert result.code == 0, result.err
    assert json.loads(result.out)["names"] == ["::1"]
    leaf = verify_chain((tmp_path / "out/fullchain.pem").read_bytes(), pebble.roots(), "::1")
    assert _sans(leaf) == ([], ["::1"])
    assert ipaddress.ip_address("::1") in leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.IPAddress)


def test_dns_name_and_ip_in_one_certificate(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = issue_argv(pebble, tmp_path, "ip-mixed.acmelite.test", "127.0.0.1")
    result = run_cli(argv, capsys)
    assert result.code == 0, result.err
    fullchain = (tmp_path / "out/fullchain.pem").read_bytes()
    leaf = verify_chain(fullchain, pebble.roots(), "127.0.0.1")
    verify_chain(fullchain, pebble.roots(), "ip-mixed.acmelite.test")
    assert _sans(leaf) == (["ip-mixed.acmelite.test"], ["127.0.0.1"])
