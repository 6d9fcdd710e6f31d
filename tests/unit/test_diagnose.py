"""``acmelite.diagnose``, ``acmelite.trust`` and the offline parts of ``acmelite.tlsprobe``.

No network: chains are built here with cryptography and judged directly.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acmelite import tlsprobe
from acmelite.cli.check import exit_code, render
from acmelite.diagnose import (
    CertSummary,
    ChainVerdict,
    NearMiss,
    check_name,
    check_validity,
    diagnose,
    issue_command,
)
from acmelite.errors import InvalidInput
from acmelite.tlsprobe import load_pem_chain, split_host_port
from acmelite.trust import check_chain, load_ca_bundle

NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
CLUSTER = "api-2-0-4.team-ns.svc.clusterset.local"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class Issued:
    cert: x509.Certificate
    key: PrivateKey


def make(
    cn: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    start: dt.datetime = NOW - 30 * DAY,
    end: dt.datetime = NOW + 60 * DAY,
    key: PrivateKey | None = None,
    eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.SERVER_AUTH,),
    serial: int | None = None,
) -> Issued:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    else:
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signer, algorithm), key)


@pytest.fixture(scope="module")
def root() -> Issued:
    return make("Test Root", ca=True, start=NOW - 900 * DAY, end=NOW + 3000 * DAY)


@pytest.fixture(scope="module")
def inter(root: Issued) -> Issued:
    return make("Test Intermediate", root, ca=True, start=NOW - 300 * DAY, end=NOW + 900 * DAY)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# --- chain verdicts ------------------------------------------------------------------------


def test_chain_ok(root: Issued, inter: Issued) -> None:
    leaf = make("a", inter, dns=["a.example"])
    got = check_chain([leaf.cert, inter.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.OK
    assert got.ok
    assert got.detail == "verifies to CN=Test Root"
    assert got.anchor == "CN=Test Root"


def test_chain_ok_in_any_order_and_with_the_root_sent(root: Issued, inter: Issued) -> None:
    leaf = make("a", inter, dns=["*.example"])
    got = check_chain([leaf.cert, root.cert, inter.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.OK


def test_chain_self_signed(root: Issued) -> None:
    leaf = make("self", dns=["self.example"])
    got = check_chain([leaf.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.SELF_SIGNED
    assert got.detail == "the certificate is self-signed and is not in the CA bundle"


def test_chain_self_signed_but_pinned_in_bundle(root: Issued) -> None:
    leaf = make("self", dns=["self.example"])
    got = check_chain([leaf.cert], [root.cert, leaf.cert], now=NOW)
    assert got.verdict is ChainVerdict.OK
    assert got.detail == "trusted directly: the certificate itself is in the CA bundle"


def test_chain_missing_intermediate(root: Issued, inter: Issued) -> None:
    leaf = make("a", inter, dns=["a.example"])
    got = check_chain([leaf.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.MISSING_INTERMEDIATE
    assert "its issuer CN=Test Intermediate is not in the CA bundle" in got.detail
    assert "serve the full chain (fullchain.pem)" in got.detail


def test_chain_untrusted_root_sent(root: Issued, inter: Issued) -> None:
    leaf = make("a", inter, dns=["a.example"])
    other = make("Other Root", ca=True)
    got = check_chain([leaf.cert, inter.cert, root.cert], [other.cert], now=NOW)
    assert got.verdict is ChainVerdict.UNTRUSTED_ROOT
    assert got.detail.startswith("the chain ends at the root CN=Test Root, which is not in")


def test_chain_untrusted_root_not_sent(root: Issued, inter: Issued) -> None:
    leaf = make("a", inter, dns=["a.example"])
    other = make("Other Root", ca=True)
    got = check_chain([leaf.cert, inter.cert], [other.cert], now=NOW)
    assert got.verdict is ChainVerdict.UNTRUSTED_ROOT
    assert got.detail.startswith(
        "the chain ends at CN=Test Intermediate, issued by CN=Test Root, which is not in"
    )


def test_chain_wrong_intermediate(root: Issued, inter: Issued) -> None:
    leaf = make("a", inter, dns=["a.example"])
    impostor = make("Test Intermediate", root, ca=True)  # same name, another key
    got = check_chain([leaf.cert, impostor.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.INVALID
    assert "its key did not sign CN=a: a wrong or outdated intermediate" in got.detail


def test_chain_expired_intermediate(root: Issued) -> None:
    old = make("Old Intermediate", root, ca=True, start=NOW - 400 * DAY, end=NOW - DAY)
    leaf = make("a", old, dns=["a.example"])
    got = check_chain([leaf.cert, old.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.EXPIRED
    assert got.detail == "the chain's CN=Old Intermediate expired on 2030-05-31"


def test_chain_leaf_not_yet_valid(root: Issued, inter: Issued) -> None:
    leaf = make("a", inter, dns=["a.example"], start=NOW + 2 * DAY)
    got = check_chain([leaf.cert, inter.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.NOT_YET_VALID
    assert got.detail == "the certificate is not valid before 2030-06-03"


def test_chain_policy_failure_is_invalid(root: Issued, inter: Issued) -> None:
    leaf = make("a", inter, dns=["a.example"], eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    got = check_chain([leaf.cert, inter.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.INVALID
    assert got.detail.startswith("path validation failed: ")
    assert got.anchor == "CN=Test Root"


def test_chain_leaf_without_san_is_invalid(root: Issued, inter: Issued) -> None:
    leaf = make("a.example", inter)
    got = check_chain([leaf.cert, inter.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.INVALID
    assert got.detail == "the certificate has no subjectAltName, which TLS clients require"


def test_chain_with_an_odd_san(root: Issued, inter: Issued) -> None:
    odd = make("a", inter, dns=["a_b.example"])
    got = check_chain([odd.cert, inter.cert], [root.cert], now=NOW)
    assert got.verdict is ChainVerdict.INVALID
    assert got.detail.startswith("path validation refused the SAN a_b.example: ")
    # Another SAN the validator accepts is enough to judge the path.
    mixed = make("a", inter, dns=["a_b.example", "ok.example"])
    assert check_chain([mixed.cert, inter.cert], [root.cert], now=NOW).ok


def test_chain_with_ip_only_leaf(root: Issued, inter: Issued) -> None:
    leaf = make("ip", inter, ips=["192.0.2.7"])
    assert check_chain([leaf.cert, inter.cert], [root.cert], now=NOW).ok


# --- validity ------------------------------------------------------------------------------


def _summary(**options: object) -> CertSummary:
    return CertSummary.from_certificate(make("x", dns=["x.example"], **options).cert)  # type: ignore[arg-type]


def test_validity_is_inclusive_at_both_ends() -> None:
    summary = _summary(start=NOW, end=NOW + 10 * DAY)
    assert check_validity(summary, now=NOW).state == "valid"
    assert check_validity(summary, now=NOW + 10 * DAY).state == "valid"
    late = check_validity(summary, now=NOW + 10 * DAY + dt.timedelta(seconds=1))
    assert late.state == "expired"
    assert late.detail == "expired less than a day ago (2030-06-11 12:00 UTC)"
    assert late.days_left == 0
    early = check_validity(summary, now=NOW - dt.timedelta(seconds=1))
    assert early.state == "not-yet-valid"
    assert early.detail == "not valid before 2030-06-01 12:00 UTC (is the clock right?)"


def test_validity_counts_days_and_warns() -> None:
    summary = _summary(start=NOW - DAY, end=NOW + 20 * DAY + dt.timedelta(hours=3))
    fine = check_validity(summary, now=NOW, warn_days=14)
    assert (fine.days_left, fine.expiring_soon) == (20, False)
    assert fine.detail == "expires in 20 days (2030-06-21 15:00 UTC)"
    soon = check_validity(summary, now=NOW + 10 * DAY, warn_days=14)
    assert (soon.days_left, soon.expiring_soon, soon.ok) == (10, True, True)
    assert soon.detail.endswith(", within the 14-day warning window: renew")
    one = check_validity(summary, now=NOW + 19 * DAY + dt.timedelta(hours=2), warn_days=0)
    assert one.detail.startswith("expires in 1 day (")
    last = check_validity(summary, now=NOW + 19 * DAY + dt.timedelta(hours=4), warn_days=0)
    assert (last.days_left, last.detail) == (0, "expires in less than a day (2030-06-21 15:00 UTC)")
    gone = check_validity(summary, now=NOW + 23 * DAY)
    assert gone.detail.startswith("expired 2 days ago")
    assert gone.days_left == -2
    assert gone.expiring_soon is False


# --- names ---------------------------------------------------------------------------------


def test_name_match_uses_sans_and_explains_the_cluster_case() -> None:
    leaf = _summary_for(dns=["*.svc.clusterset.local", "*.dev.aws.cloud.us.local"])
    got = check_name(leaf, CLUSTER)
    assert not got.matched
    assert got.near_misses == (
        NearMiss(
            san="*.svc.clusterset.local",
            reason="*.svc.clusterset.local covers one label before svc.clusterset.local; "
            "this name has two (api-2-0-4.team-ns)",
        ),
    )
    assert got.fixing_sans == (CLUSTER, "*.team-ns.svc.clusterset.local")
    assert got.note == ""


def test_name_match_ok_reports_the_san() -> None:
    leaf = _summary_for(dns=["other.example", "*.team-ns.svc.clusterset.local"])
    got = check_name(leaf, CLUSTER.upper())
    assert got.matched
    assert got.matched_by == "*.team-ns.svc.clusterset.local"
    assert got.name == CLUSTER
    assert got.requested == CLUSTER.upper()
    assert got.fixing_sans == ()


def test_name_cn_alone_does_not_match() -> None:
    leaf = CertSummary.from_certificate(make("www.example", dns=["example"]).cert)
    got = check_name(leaf, "www.example")
    assert not got.matched
    assert got.note.startswith("the subject CN www.example would match, but clients check only")


def test_name_without_any_san() -> None:
    leaf = CertSummary.from_certificate(make("www.example").cert)
    got = check_name(leaf, "www.example")
    assert not got.matched
    assert got.note == "the certificate has no subjectAltName at all; clients ignore the subject CN"
    assert got.fixing_sans == ("www.example", None)[:1]


def test_name_ip_needs_ip_san() -> None:
    leaf = _summary_for(dns=["192.0.2.1"], ips=["2001:db8::1"])
    assert not check_name(leaf, "192.0.2.1").matched
    assert check_name(leaf, "2001:DB8:0::1").matched_by == "2001:db8::1"
    assert check_name(leaf, "[2001:db8::1]").matched


def test_name_invalid_is_refused() -> None:
    with pytest.raises(InvalidInput, match="empty label"):
        check_name(_summary_for(dns=["a.example"]), "a..example")


def _summary_for(*, dns: Sequence[str] = (), ips: Sequence[str] = ()) -> CertSummary:
    return CertSummary.from_certificate(make("leaf", dns=dns, ips=ips).cert)


# --- the report ----------------------------------------------------------------------------


def test_diagnose_report_and_json(root: Issued, inter: Issued) -> None:
    leaf = make("web", inter, dns=["*.dev.aws.cloud.us.local"], ips=["10.0.0.1"])
    report = diagnose([leaf.cert, inter.cert], CLUSTER, ca_bundle=[root.cert], now=NOW)
    assert report.problems == ("name-mismatch",)
    assert not report.ok
    assert report.suggested_command == (
        f"acmelite issue -d '*.dev.aws.cloud.us.local' -d 10.0.0.1 -d {CLUSTER} --challenge dns-01"
    )
    doc = report.to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["problems"] == ["name-mismatch"]
    assert doc["certificate"] == {
        "subject": "CN=web",
        "issuer": "CN=Test Intermediate",
        "serial": report.leaf.serial,
        "sans": {"dns": ["*.dev.aws.cloud.us.local"], "ip": ["10.0.0.1"]},
        "not_before": "2030-05-02T12:00:00+00:00",
        "not_after": "2030-07-31T12:00:00+00:00",
        "key": {"type": "EC", "size": 256, "detail": "secp256r1"},
        "sha256": leaf.cert.fingerprint(hashes.SHA256()).hex(),
        "is_ca": False,
    }
    assert [c.subject for c in report.chain] == ["CN=web", "CN=Test Intermediate"]
    assert doc["chain"] == [c.to_json() for c in report.chain]
    assert doc["trust"] == {
        "verdict": "ok",
        "detail": "verifies to CN=Test Root",
        "anchor": "CN=Test Root",
    }
    assert exit_code(report) == 10


def test_diagnose_all_good_has_no_command(root: Issued, inter: Issued, tmp_path: Path) -> None:
    leaf = make("web", inter, dns=["a.example"])
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(make("Unrelated", ca=True).cert, root.cert))
    report = diagnose([leaf.cert, inter.cert], "A.example.", ca_bundle=str(bundle), now=NOW)
    assert report.ok
    assert report.problems == ()
    assert report.suggested_command is None
    assert exit_code(report) == 0
    text = render(report, {"cert": "tls.crt"}, 0)
    assert text.startswith("Checking a.example against the certificate in tls.crt\n")
    assert text.endswith("Result: ok (exit 0)")


def test_diagnose_expired_suggests_a_renewal(root: Issued, inter: Issued) -> None:
    leaf = make("web", inter, dns=["a.example", "b.example"], end=NOW - DAY)
    report = diagnose([leaf.cert, inter.cert], "a.example", ca_bundle=[root.cert], now=NOW)
    assert report.problems == ("validity",)
    assert report.suggested_command == "acmelite issue -d a.example -d b.example"
    assert exit_code(report) == 11


def test_diagnose_expired_intermediate_counts_as_validity(root: Issued) -> None:
    old = make("Old", root, ca=True, start=NOW - 400 * DAY, end=NOW - DAY)
    leaf = make("web", old, dns=["a.example"])
    report = diagnose([leaf.cert, old.cert], "a.example", ca_bundle=[root.cert], now=NOW)
    assert report.validity.ok
    assert report.problems == ("validity",)
    assert exit_code(report) == 11


def test_diagnose_trust_only(root: Issued) -> None:
    leaf = make("self", dns=["a.example"])
    report = diagnose([leaf.cert], "a.example", ca_bundle=[root.cert], now=NOW)
    assert report.problems == ("trust",)
    assert report.suggested_command is None
    assert exit_code(report) == 12


def test_diagnose_refuses_empty_chain_and_bad_name(root: Issued) -> None:
    with pytest.raises(InvalidInput, match="the chain is empty"):
        diagnose([], "a.example", ca_bundle=[root.cert])
    leaf = make("self", dns=["a.example"])
    with pytest.raises(InvalidInput, match="invalid name"):
        diagnose([leaf.cert], "-a.example", ca_bundle=[root.cert])


def test_diagnose_defaults_to_the_system_bundle() -> None:
    today = dt.datetime.now(dt.timezone.utc)
    leaf = make("self", dns=["a.example"], start=today - DAY, end=today + DAY)
    report = diagnose([leaf.cert], "a.example")
    assert report.chain_check.verdict is ChainVerdict.SELF_SIGNED
    assert report.validity.ok  # ``now`` defaults to the real time


def test_serial_is_whole_bytes_of_hex() -> None:
    assert CertSummary.from_certificate(make("s", serial=0xABC).cert).serial == "0abc"
    assert CertSummary.from_certificate(make("s", serial=0x1234).cert).serial == "1234"


def test_key_descriptions() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert CertSummary.from_certificate(make("r", key=rsa_key).cert).key_type == "RSA"
    assert CertSummary.from_certificate(make("r", key=rsa_key).cert).key_size == 2048
    ed = CertSummary.from_certificate(make("e", key=ed25519.Ed25519PrivateKey.generate()).cert)
    assert (ed.key_type, ed.key_size, ed.key_detail) == ("Ed25519", 256, "")
    p384 = ec.generate_private_key(ec.SECP384R1())
    summary = CertSummary.from_certificate(make("p", key=p384, ca=True).cert)
    assert (summary.key_type, summary.key_size, summary.key_detail) == ("EC", 384, "secp384r1")
    assert summary.is_ca


@pytest.mark.parametrize(
    ("names", "command"),
    [
        (["a.example"], "acmelite issue -d a.example"),
        (["a.example", "A.example", "a.example"], "acmelite issue -d a.example -d A.example"),
        (["*.a.example", "a.example"], "acmelite issue -d '*.a.example' -d a.example "
         "--challenge dns-01"),
        (["192.0.2.1", "2001:db8::1"], "acmelite issue -d 192.0.2.1 -d 2001:db8::1"),
    ],
)  # fmt: skip
def test_issue_command(names: list[str], command: str) -> None:
    assert issue_command(names) == command


# --- loading chains and bundles ------------------------------------------------------------


def test_load_pem_chain_forms(root: Issued, inter: Issued) -> None:
    data = pem(inter.cert, root.cert)
    assert load_pem_chain(data) == [inter.cert, root.cert]
    assert load_pem_chain(b"junk before\n" + data + b"\njunk after") == [inter.cert, root.cert]
    assert load_pem_chain(base64.b64encode(data)) == [inter.cert, root.cert]
    wrapped = base64.encodebytes(data)  # with newlines, as `kubectl ... | base64` might wrap
    assert load_pem_chain(wrapped) == [inter.cert, root.cert]
    der = root.cert.public_bytes(serialization.Encoding.DER)
    assert load_pem_chain(der) == [root.cert]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "stdin: expected PEM certificates (-----BEGIN CERTIFICATE-----), found no cert"),
        (b"hello world", "found no certificate"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "found a private key"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot be parsed"),
        (b"\x30\x03\x02\x01\x01", "found no certificate"),
    ],
)
def test_load_pem_chain_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match="stdin: ") as info:
        load_pem_chain(data, source="stdin")
    assert message in str(info.value)


def test_load_ca_bundle(root: Issued, tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(pem(root.cert))
    assert load_ca_bundle(path) == [root.cert]
    with pytest.raises(InvalidInput, match=r"cannot read CA bundle .*missing\.pem"):
        load_ca_bundle(tmp_path / "missing.pem")
    system = load_ca_bundle()
    assert len(system) > 10
    verification.Store(system)  # every anchor we return is usable by the validator


def test_load_ca_bundle_skips_unparsable_entries(root: Issued, tmp_path: Path) -> None:
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    path = tmp_path / "ca.pem"
    path.write_bytes(broken + pem(root.cert))
    assert load_ca_bundle(path) == [root.cert]
    path.write_bytes(broken)
    with pytest.raises(InvalidInput, match="none of its 1 can be parsed"):
        load_ca_bundle(path)


def test_load_ca_bundle_from_a_directory(
    root: Issued, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "one.pem").write_bytes(pem(root.cert))
    (tmp_path / "abcdef01.0").write_bytes(pem(root.cert))  # a hash link: same certificate
    (tmp_path / "readme.txt").write_text("not a certificate")
    missing = str(tmp_path / "none.pem")
    paths = ssl.DefaultVerifyPaths(missing, str(tmp_path), "", missing, "", "")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths)
    assert load_ca_bundle() == [root.cert]
    empty = ssl.DefaultVerifyPaths(missing, missing, "", missing, "", missing)
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: empty)
    with pytest.raises(InvalidInput, match="no system CA bundle found: pass one with --ca-bundle"):
        load_ca_bundle()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("example.com", ("example.com", 443)),
        ("example.com:8443", ("example.com", 8443)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("[::1]", ("::1", 443)),
        ("[2001:db8::1]:8443", ("2001:db8::1", 8443)),
        ("2001:db8::1", ("2001:db8::1", 443)),
        (" bücher.example:444 ", ("bücher.example", 444)),
    ],
)
def test_split_host_port(target: str, expected: tuple[str, int]) -> None:
    assert split_host_port(target) == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("example.com:", "empty port"),
        ("example.com:0", "port must be a number from 1 to 65535"),
        ("example.com:https", "port must be a number"),
        (":443", "no host"),
        ("[::1", "expected [IPv6] or [IPv6]:PORT"),
        ("[::1]x", "expected [IPv6] or [IPv6]:PORT"),
        ("[example.com]:443", "is not an IPv6 address"),
        ("a:b:c", "is not an IPv6 address"),
    ],
)
def test_split_host_port_errors(target: str, message: str) -> None:
    with pytest.raises(InvalidInput, match="bad target") as info:
        split_host_port(target)
    assert message in str(info.value)


def test_presented_chain_falls_back_to_the_leaf() -> None:
    class Bare:  # an SSL socket with neither chain accessor (neither 3.13+ nor 3.10-3.12)
        def getpeercert(self, binary_form: bool = False) -> bytes:
            return b"leaf-der"

    assert tlsprobe._presented_der(Bare()) == [b"leaf-der"]  # type: ignore[arg-type]
