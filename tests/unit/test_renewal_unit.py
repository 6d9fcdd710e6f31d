"""Renewal decisions, ARI ids and windows, back-off, state files, deploy hook and Secret.

No network: certificates are made here, the CA is a canned ``renewalInfo`` answer, and the
CLI cases point at a closed port (a request would fail, and the decision must not need one).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acmelite.accounts import AccountClient
from acmelite.cli import build_parser
from acmelite.config import CertificateConfig, load_config, save_config
from acmelite.csr import certificate_id
from acmelite.deploy import (
    DeployHookError,
    SecretRef,
    run_deploy_hook,
    secret_manifest,
    write_secret,
)
from acmelite.errors import InvalidInput, Problem, ProblemError
from acmelite.keys import AccountKey, private_key_pem
from acmelite.managed import STATE_FILE, load_state, save_state
from acmelite.models import Directory, RenewalInfo
from acmelite.renewal import (
    AriRecord,
    RenewalState,
    ari_answered,
    ari_failed,
    ari_unsupported,
    backoff_delay,
    decide,
    lifetime_threshold,
    lifetime_window,
    pick_moment,
    refused_replaces,
    when,
)
from acmelite.solvers import ChallengeConfig
from acmelite.transport import Response
from tests.support import run_cli

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(
    *,
    days: float = 90,
    start: dt.datetime = NOW,
    serial: int = 0x1234,
    aki: bytes | None = b"\x01" * 20,
    name: str = "www.example.test",
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    )
    if aki is not None:
        ext = x509.AuthorityKeyIdentifier(aki, None, None)
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(KEY, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


# -- RFC 9773 §4.1: the certificate identifier ----------------------------------------------


def test_certificate_id_rfc9773_example() -> None:
    """The worked example of RFC 9773 §4.1 (a serial whose high bit needs a 00 byte)."""
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    cert = make_cert(serial=0x87654321, aki=aki)
    assert certificate_id(cert) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


@pytest.mark.parametrize(
    ("serial", "encoded"), [(0x7F, "fw"), (0x80, "AIA"), (0x0100, "AQA"), (0xFF00, "AP8A")]
)
def test_certificate_id_serial_is_der_content_octets(serial: int, encoded: str) -> None:
    assert certificate_id(make_cert(serial=serial)).split(".")[1] == encoded


def test_certificate_id_needs_an_aki() -> None:
    with pytest.raises(InvalidInput, match="Authority Key Identifier"):
        certificate_id(make_cert(aki=None))


# -- the lifetime rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "due_after_days"),
    [(90, 60), (45, 30), (6, 3), (10, 5), (11, 11 * 2 / 3), (1, 0.5), (365, 365 * 2 / 3)],
)
def test_lifetime_threshold_never_assumes_90_days(days: float, due_after_days: float) -> None:
    cert = make_cert(days=days)
    assert lifetime_threshold(cert) == NOW + dt.timedelta(days=due_after_days)


def test_decide_by_lifetime() -> None:
    cert = make_cert(days=6)
    # The lifetime window: the twelfth of the lifetime that ends when half remains.
    window = lifetime_window(cert)
    assert (window.start, window.end) == (NOW + dt.timedelta(days=2.5), NOW + dt.timedelta(days=3))
    early = decide(cert, now=NOW + dt.timedelta(days=2))
    assert not early.due
    assert early.renew_at is not None and window.start <= early.renew_at <= window.end
    assert early.next_check == early.renew_at
    assert early.lifetime_window == window and early.window is None
    assert "6 days lifetime, due before half remains" in early.reason
    assert not decide(cert, now=early.renew_at - dt.timedelta(seconds=1)).due
    assert decide(cert, now=early.renew_at).due
    assert decide(cert, now=NOW + dt.timedelta(days=3)).due
    expired = decide(cert, now=NOW + dt.timedelta(days=7))
    assert expired.due and "expired" in expired.reason
    assert decide(cert, now=NOW, force=True).reason == "forced"


def _ari(window: RenewalInfo | None, renew_at: dt.datetime | None, **kw: Any) -> AriRecord:
    return AriRecord(
        cert_id="x.y",
        fetched=NOW,
        next_fetch=kw.pop("next_fetch", NOW + dt.timedelta(hours=6)),
        window=window,
        renew_at=renew_at,
        **kw,
    )


def test_decide_by_ari_window() -> None:
    cert = make_cert(days=90)
    window = RenewalInfo(start=NOW + dt.timedelta(days=10), end=NOW + dt.timedelta(days=12))
    moment = NOW + dt.timedelta(days=11)
    before = decide(cert, now=NOW, ari=_ari(window, moment))
    assert not before.due
    # Not due yet: look again when ARI may have changed (Retry-After), not at the moment.
    assert before.next_check == NOW + dt.timedelta(hours=6)
    assert before.window == window and before.renew_at == moment
    after = decide(cert, now=moment, ari=_ari(window, moment, next_fetch=moment))
    assert after.due and "has come" in after.reason
    # ARI beats the lifetime rule in both directions: due before 1/3 remains.
    assert lifetime_threshold(cert) > moment


def test_decide_falls_back_when_ari_failed_or_nonsense() -> None:
    cert = make_cert(days=90)
    failed = decide(cert, now=NOW, ari=_ari(None, None, error="HTTP 500"))
    assert not failed.due and "ARI failed" in failed.reason
    assert failed.next_check == NOW + dt.timedelta(hours=6)
    late = RenewalInfo(start=NOW + dt.timedelta(days=100), end=NOW + dt.timedelta(days=101))
    ignored = decide(cert, now=NOW + dt.timedelta(days=61), ari=_ari(late, late.start))
    assert ignored.due and ignored.window is None


def test_pick_moment_is_uniform_and_repeatable() -> None:
    window = RenewalInfo(start=NOW, end=NOW + dt.timedelta(days=2))
    picks = [pick_moment(window, seed=f"aki.{i}") for i in range(400)]
    assert all(window.start <= p <= window.end for p in picks)
    assert pick_moment(window, seed="aki.7") == picks[7]
    span = (window.end - window.start).total_seconds()
    offsets = sorted((p - window.start).total_seconds() / span for p in picks)
    assert offsets[0] < 0.05 and offsets[-1] > 0.95
    assert 0.4 < offsets[200] < 0.6
    unseeded = {pick_moment(window) for _ in range(5)}
    assert len(unseeded) == 5


# -- fetching renewalInfo --------------------------------------------------------------------


class FakeTransport:
    def __init__(self, body: object, retry_after: str | None = None):
        self.body = body
        self.retry_after = retry_after
        self.urls: list[str] = []

    def get(self, url: str) -> Response:
        self.urls.append(url)
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        return Response(url, 200, headers, json.dumps(self.body).encode())

    def close(self) -> None:
        pass


def ari_client(transport: FakeTransport, renewal_info: str = "https://ca.test/ari/") -> Any:
    client = AccountClient("https://ca.test/dir", AccountKey.generate(), transport=transport)  # type: ignore[arg-type]
    directory = {"newNonce": "n", "newAccount": "a", "newOrder": "o", "renewalInfo": renewal_info}
    client._directory = Directory.from_json(directory)
    return client


def _window_json(start: dt.datetime, end: dt.datetime) -> dict[str, object]:
    return {"suggestedWindow": {"start": start.isoformat(), "end": end.isoformat()}}


def test_renewal_info_requests_cert_id_and_reads_retry_after() -> None:
    cert = make_cert()
    start, end = NOW + dt.timedelta(days=59), NOW + dt.timedelta(days=61)
    transport = FakeTransport(_window_json(start, end), retry_after="21600")
    window, retry_after = ari_client(transport).renewal_info(cert)
    assert transport.urls == [f"https://ca.test/ari/{certificate_id(cert)}"]
    assert (window.start, window.end, retry_after) == (start, end, 21600)
    record = ari_answered(certificate_id(cert), window, retry_after=retry_after, previous=None,
                          now=NOW)  # fmt: skip
    assert record.renew_at is not None and start <= record.renew_at <= end
    assert record.next_fetch == NOW + dt.timedelta(hours=6)
    assert record.cert_id == certificate_id(cert)
    with pytest.raises(InvalidInput, match="offers no renewalInfo"):
        ari_client(transport, renewal_info="").renewal_info(cert)


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        (5.0, dt.timedelta(minutes=1)),
        (9999999.0, dt.timedelta(hours=24)),
        (None, dt.timedelta(hours=6)),
    ],
)
def test_retry_after_is_clamped(retry_after: float | None, wait: dt.timedelta) -> None:
    window = RenewalInfo(start=NOW + dt.timedelta(days=1), end=NOW + dt.timedelta(days=2))
    record = ari_answered("id", window, retry_after=retry_after, previous=None, now=NOW)
    assert record.next_fetch == NOW + wait


def test_stored_moment_kept_while_window_stands() -> None:
    cert = make_cert()
    start, end = NOW + dt.timedelta(days=59), NOW + dt.timedelta(days=61)
    stored = AriRecord(
        cert_id=certificate_id(cert),
        fetched=NOW,
        next_fetch=NOW,
        window=RenewalInfo(start=start, end=end),
        renew_at=start + dt.timedelta(hours=3),
    )
    same = ari_answered(stored.cert_id, RenewalInfo(start=start, end=end), retry_after=None,
                        previous=stored, now=NOW)  # fmt: skip
    assert same.renew_at == start + dt.timedelta(hours=3)
    moved = RenewalInfo(start=NOW - dt.timedelta(hours=2), end=NOW - dt.timedelta(hours=1))
    new = ari_answered(stored.cert_id, moved, retry_after=None, previous=stored, now=NOW)
    assert new.renew_at is not None and new.renew_at < NOW


def test_ari_failures_and_absence_fall_back() -> None:
    record = ari_failed("id", "rateLimited", retry_after=120, now=NOW)
    assert record.window is None and record.error == "rateLimited"
    assert record.next_fetch == NOW + dt.timedelta(minutes=2)
    assert ari_failed("id", "x", retry_after=None, now=NOW).next_fetch == NOW + dt.timedelta(
        hours=1
    )
    none = ari_unsupported("id", now=NOW)
    assert none.window is None and not none.error
    assert decide(make_cert(), now=NOW, ari=record).reason.endswith("ARI failed")


def test_refused_replaces() -> None:
    def problem(kind: str, detail: str) -> ProblemError:
        return ProblemError(Problem(type=f"urn:ietf:params:acme:error:{kind}", detail=detail))

    assert refused_replaces(problem("alreadyReplaced", "serial 1 already has a replacement order"))
    assert refused_replaces(
        problem("unauthorized", "requester account did not request the certificate being replaced")
    )
    assert refused_replaces(problem("malformed", "parsing ARI CertID failed"))
    pebble = "could not find an order for the given certificate: could not find order resulting"
    assert refused_replaces(problem("serverInternal", pebble + " in the given certificate serial"))
    assert not refused_replaces(problem("rejectedIdentifier", "example.test is forbidden"))


# -- back-off and state ------------------------------------------------------------------------


def test_backoff_schedule() -> None:
    minutes = [backoff_delay(n).total_seconds() / 60 for n in range(1, 7)]
    assert minutes == [1, 10, 100, 1440, 1440, 1440]
    state = RenewalState().failed("boom", now=NOW).failed("bang", now=NOW)
    assert state.failures == 2 and state.last_error == "bang"
    assert state.next_attempt == NOW + dt.timedelta(minutes=10)


def test_state_round_trip_and_unreadable_state(tmp_path: Path) -> None:
    window = RenewalInfo(start=NOW, end=NOW + dt.timedelta(days=1), explanation_url="https://x")
    state = RenewalState(ari=_ari(window, NOW), deploy_pending=True).failed("no", now=NOW)
    save_state(tmp_path, state)
    assert stat.S_IMODE((tmp_path / STATE_FILE).stat().st_mode) == 0o600
    assert load_state(tmp_path) == state
    (tmp_path / STATE_FILE).write_text("{not json")
    assert load_state(tmp_path) == RenewalState()


def test_config_round_trip_and_refusals(tmp_path: Path) -> None:
    config = CertificateConfig(
        server="https://ca.test/dir",
        names=("a.test", "*.a.test"),
        account_key="/k",
        challenge=ChallengeConfig(type="dns-01", solver="rfc2136",
                                  options={"server": "ns1", "tsig-secret": "@/s"}),
    )  # fmt: skip
    save_config(tmp_path, config)
    assert stat.S_IMODE((tmp_path / "renewal.json").stat().st_mode) == 0o600
    assert load_config(tmp_path) == config
    assert json.loads((tmp_path / "renewal.json").read_text())["version"] == 2
    with pytest.raises(InvalidInput, match=r"renewal\.json not found"):
        load_config(tmp_path / "nothing")
    with pytest.raises(InvalidInput, match="wildcards can only be validated by dns-01"):
        CertificateConfig(server="https://ca.test/d", names=("*.a.test",), account_key="/k")
    with pytest.raises(InvalidInput, match="cannot validate IP identifiers"):
        CertificateConfig(server="https://ca.test/d", names=("127.0.0.1",), account_key="/k",
                          challenge=ChallengeConfig(type="dns-01", solver="hook"))  # fmt: skip
    with pytest.raises(TypeError, match="not one string"):
        CertificateConfig(server="https://ca.test/d", names="a.test", account_key="/k")  # type: ignore[arg-type]
    (tmp_path / "renewal.json").write_text('{"version": 9, "server": "x", "names": ["a"]}')
    with pytest.raises(InvalidInput, match="written by a newer acmelite"):
        load_config(tmp_path)


def test_version_1_renewal_json_reads_as_the_same_configuration() -> None:
    v1 = {
        "version": 1, "server": "https://ca.test/dir", "names": ["*.a.test"], "key_type": "ec384",
        "account_key": "", "ca_bundle": None, "profile": None, "preferred_chain": None,
        "deploy_hook": "reload", "k8s_secret": None, "csr": None,
        "challenge": {"type": "dns-01", "dns": "rfc2136", "dns_server": "127.0.0.1:53",
                      "tsig_key_name": "acme", "tsig_secret_file": "/etc/acme.key",
                      "dns_propagation_timeout": 120.0},
    }  # fmt: skip
    config = CertificateConfig.from_json(v1, source="renewal.json", account_key="/default.key")
    assert config.account_key == "/default.key"
    assert config.key_type == "ec384" and config.deploy_hook == "reload"
    assert config.challenge == ChallengeConfig(type="dns-01", solver="rfc2136", options={
        "server": "127.0.0.1:53", "tsig-key-name": "acme", "tsig-secret": "@/etc/acme.key",
        "propagation-timeout": "120"})  # fmt: skip
    http = CertificateConfig.from_json(
        {"server": "https://ca.test/dir", "names": ["a.test"], "account_key": "/k",
         "challenge": {"type": "http-01", "http_port": 5002, "http_address": "127.0.0.1",
                       "webroot": None}},
        source="renewal.json",
    )  # fmt: skip
    assert http.challenge == ChallengeConfig(
        solver="standalone", options={"port": "5002", "address": "127.0.0.1"}
    )


def test_issue_options_become_a_config_without_secrets(tmp_path: Path) -> None:
    from acmelite.cli.issue import _config

    secret = base64.b64encode(b"tsig secret bytes").decode()
    args = build_parser().parse_args([
        "issue", "-d", "*.example.test", "--server", "https://ca.test/dir",
        "--account-key", str(tmp_path / "a.key"), "--out", str(tmp_path / "out"),
        "--challenge", "dns-01", "--dns", "rfc2136", "--dns-server", "127.0.0.1:53",
        "--tsig-key-name", "acme", "--tsig-secret", secret,
        "--eab-kid", "kid-1", "--eab-hmac-key", "ZWFiIGtleQ",
        "--profile", "shortlived", "--preferred-chain", "Root X2",
        "--deploy-hook", "systemctl reload nginx", "--k8s-secret", "web-tls/istio-system",
    ])  # fmt: skip
    config, runtime = _config(args)
    data = config.absolute().to_json()
    text = json.dumps(data)
    assert secret not in text and "ZWFiIGtleQ" not in text and "kid-1" not in text
    assert runtime == {"ACMELITE_DNS_TSIG_SECRET": secret}
    assert data["challenge"] == {
        "type": "dns-01", "solver": "rfc2136",
        "options": {"server": "127.0.0.1:53", "tsig-key-name": "acme"},
    }  # fmt: skip
    assert data["profile"] == "shortlived" and data["preferred_chain"] == "Root X2"
    assert data["deploy_hook"] == "systemctl reload nginx"
    assert data["k8s_secret"] == "web-tls/istio-system"
    assert data["account_key"] == str(tmp_path / "a.key")


# -- deploy hook and Kubernetes Secret -------------------------------------------------------


def test_secret_ref_parse() -> None:
    assert SecretRef.parse("web-tls") == SecretRef(name="web-tls")
    assert str(SecretRef.parse("web.tls/istio-system")) == "web.tls/istio-system"
    for bad in ("Web", "web_tls", "", "web/", "/ns", "web/Istio", "web/a.b", "x" * 254):
        with pytest.raises(InvalidInput):
            SecretRef.parse(bad)


def test_secret_manifest(tmp_path: Path) -> None:
    cert = make_cert()
    key = private_key_pem(KEY)
    path = write_secret(tmp_path, SecretRef.parse("web-tls/istio-system"),
                        fullchain_pem=pem(cert), key_pem=key)  # fmt: skip
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    manifest = json.loads(path.read_text())
    assert manifest["kind"] == "Secret" and manifest["type"] == "kubernetes.io/tls"
    assert manifest["metadata"]["name"] == "web-tls"
    assert manifest["metadata"]["namespace"] == "istio-system"
    assert base64.b64decode(manifest["data"]["tls.crt"]) == pem(cert)
    assert base64.b64decode(manifest["data"]["tls.key"]) == key
    no_ns = secret_manifest(SecretRef.parse("web"), fullchain_pem=pem(cert), key_pem=key)
    assert "namespace" not in no_ns["metadata"]  # type: ignore[operator]
    with pytest.raises(InvalidInput, match="private key"):
        secret_manifest(SecretRef.parse("web"), fullchain_pem=pem(cert), key_pem=b"")


def test_deploy_hook_environment_and_output(tmp_path: Path) -> None:
    out = run_deploy_hook(
        'echo "$ACMELITE_CERT_DIR|$ACMELITE_NAMES"; echo note >&2',
        cert_dir=tmp_path / "out",
        names=["a.test", "b.test"],
    )
    assert out.splitlines() == [f"{tmp_path / 'out'}|a.test b.test", "note"]


def test_deploy_hook_failures() -> None:
    with pytest.raises(DeployHookError) as info:
        run_deploy_hook("echo starting; echo 'kubectl: forbidden' >&2; exit 7", cert_dir=".",
                        names=["a.test"])  # fmt: skip
    assert str(info.value) == "deploy hook exited with status 7: kubectl: forbidden"
    assert info.value.status == 7
    with pytest.raises(DeployHookError, match="killed by signal 9"):
        run_deploy_hook("kill -9 $$", cert_dir=".", names=["a.test"])
    with pytest.raises(DeployHookError, match=r"did not finish within 0\.2 s"):
        run_deploy_hook("sleep 5", cert_dir=".", names=["a.test"], timeout=0.2)


# -- the renew command without a CA ------------------------------------------------------------


@pytest.fixture
def closed_server() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"https://127.0.0.1:{port}/dir"


def _cert_dir(tmp: Path, server: str, cert: x509.Certificate) -> Path:
    out = tmp / "out"
    out.mkdir()
    (out / "cert.pem").write_bytes(pem(cert))
    save_config(out, CertificateConfig(server=server, names=("www.example.test",),
                                       account_key=str(tmp / "a.key")))  # fmt: skip
    return out


def test_renew_needs_directories(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["renew"], capsys)
    assert result.code == 2
    assert "nothing to renew" in result.err


def test_renew_directory_without_renewal_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(["renew", str(tmp_path)], capsys)
    assert result.code == 1
    assert "renewal.json not found" in result.out


def test_renew_unreachable_ca_falls_back_to_lifetime(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    out = _cert_dir(tmp_path, closed_server, make_cert(days=6, start=now - dt.timedelta(days=1)))
    result = run_cli(["renew", str(out), "--json"], capsys)
    assert result.code == 0, result.err
    (decision,) = json.loads(result.out)["certificates"]
    assert decision["status"] == "not-due"
    assert "6 days lifetime, due before half remains" in decision["reason"]
    assert "no ARI" in result.err and "cannot reach" in result.err


def test_renew_dry_run_changes_nothing(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    out = _cert_dir(tmp_path, closed_server, make_cert(days=1, start=now - dt.timedelta(days=2)))
    before = sorted(p.name for p in out.iterdir())
    result = run_cli(["renew", str(out), "--dry-run"], capsys)
    assert result.code == 0, result.err
    assert f"{out}: due: expired" in result.out
    assert sorted(p.name for p in out.iterdir()) == before


def test_renew_backs_off_without_a_request(
    tmp_path: Path, closed_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    out = _cert_dir(tmp_path, closed_server, make_cert(days=1, start=now - dt.timedelta(days=2)))
    save_state(out, RenewalState().failed("validation failed for www.example.test", now=now))
    result = run_cli(["renew", str(out), "--json"], capsys)
    assert result.code == 0, result.err
    (decision,) = json.loads(result.out)["certificates"]
    assert decision["status"] == "backing-off"
    assert decision["failures"] == 1
    assert "validation failed for www.example.test" in decision["reason"]
    assert "cannot reach" not in result.err  # no request was even tried


# -- the docs stay true ------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _blocks(doc: str, lang: str) -> list[str]:
    text = (DOCS / doc).read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)


def test_documented_renewal_json_has_every_field() -> None:
    (documented,) = _blocks("kubernetes.md", "json")
    fields = CertificateConfig(
        server="https://ca.test/dir", names=("a.test",), account_key="/k"
    ).to_json()
    assert set(json.loads(documented)) == set(fields)
    assert json.loads(documented)["version"] == fields["version"]
    no_refs = documented.replace('"tsig-secret": "@', "").replace("k8s_secret", "")
    assert "secret" not in no_refs


def test_documented_manifests_parse_and_the_cronjob_maps_exit_3() -> None:
    yaml = pytest.importorskip("yaml")
    docs = [d for block in _blocks("kubernetes.md", "yaml") for d in yaml.safe_load_all(block)]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("CronJob") == 1 and "Gateway" in kinds
    cronjob = next(d for d in docs if d["kind"] == "CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert '[ "$status" -eq 3 ] && exit 0' in container["args"][0]
    gateway = next(d for d in docs if d["kind"] == "Gateway")
    assert gateway["spec"]["servers"][0]["tls"]["credentialName"] == "apps-tls"


def test_documented_exit_codes() -> None:
    from acmelite.cli.renew import EXIT_RENEWED

    text = (DOCS / "renewal.md").read_text()
    assert f"| {EXIT_RENEWED} | at least one certificate renewed, and none failed |" in text


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 11, 23, 12, 0, 59, 999999, tzinfo=dt.timezone.utc),  # not rounded
        dt.datetime(2027, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-11))),
        dt.datetime(999, 3, 4, 5, 6, tzinfo=dt.timezone.utc),  # years padded to four digits
    ],
)
def test_when_is_the_utc_minute(moment: dt.datetime) -> None:
    utc = moment.astimezone(dt.timezone.utc)
    expected = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d} {utc.hour:02d}:{utc.minute:02d} UTC"
    assert when(moment) == expected
